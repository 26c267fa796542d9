// Which way dualwan reaches OPNsense: through the Proxmox host (SSH, a channel to
// proxmox.cutover.gateway) until the cutover is done, directly at opnsense.host otherwise.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { loadConfigText } from '../../../src/config/load';
import type { DesiredState } from '../../../src/core/desired';
import { chooseOpnsenseRoute, cutoverDoneIn, isCutoverDone, routeText } from '../../../src/flows/opnsense-route';
import type { NetworkIface } from '../../../src/providers/proxmox/schemas';
import { packageRoot } from '../../doubles/proxmox/simulated-host';
import { TestUi } from '../../helpers/test-ui';

function load(cutover: boolean): DesiredState {
  const doc = parseDocument(fs.readFileSync(path.join(packageRoot(), 'playbooks', 'hotspot-failover.yaml'), 'utf8'));
  if (cutover) {
    doc.setIn(['lan', 'uplink'], doc.createNode({ type: 'pci-nic', pci: '0000:01:00.0' }));
    doc.setIn(['vm', 'bridgeNic'], doc.createNode({ bridge: 'vmbr1' }));
    doc.setIn(['proxmox', 'cutover'], doc.createNode({ hostAddress: '10.10.99.2/24', gateway: '10.10.99.1', ssh: { user: 'root', port: 2222 } }));
  }
  const r = loadConfigText(doc.toString(), 'dualwan.yaml');
  if (!r.state) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.state;
}

const iface = (x: Partial<NetworkIface> & { iface: string }): NetworkIface => ({ type: 'bridge', active: 1, ...x }) as NetworkIface;
const C = { bridge: 'vmbr1', hostAddress: '10.10.99.2/24', gateway: '10.10.99.1' };

describe('the route to OPNsense', () => {
  it('before the cutover: through the Proxmox host at its current address, to the router on the cutover bridge', () => {
    const s = load(true);
    const r = chooseOpnsenseRoute(s, false);
    expect(r).toEqual({ kind: 'proxmox-host', host: '10.10.99.1', port: s.opnsense!.port, ssh: { host: s.proxmox!.host, port: 2222, user: 'root' }, lanAddress: s.opnsense!.host });
    expect(routeText(r)).toBe(`through the Proxmox host root@${s.proxmox!.host} (SSH) — the LAN port is the host's until the cutover`);
  });

  it('after the cutover, and without the opt-in: directly at opnsense.host', () => {
    const s = load(true);
    expect(chooseOpnsenseRoute(s, true)).toEqual({ kind: 'direct', host: s.opnsense!.host, port: s.opnsense!.port });
    const plain = load(false);
    expect(chooseOpnsenseRoute(plain, false)).toEqual({ kind: 'direct', host: plain.opnsense!.host, port: plain.opnsense!.port });
    expect(routeText(chooseOpnsenseRoute(plain, false))).toBe('');
  });

  it('the cutover is done when the running config has the address and the gateway on the cutover bridge, nothing staged', () => {
    const vmbr0 = iface({ iface: 'vmbr0', cidr: '192.168.1.10/24', gateway: '192.168.1.1', bridge_ports: 'enp1s0' });
    // the Proxmox stage made the bridge: address, no gateway
    expect(cutoverDoneIn({ ifaces: [vmbr0, iface({ iface: 'vmbr1', cidr: C.hostAddress })] }, C)).toBe(false);
    // no bridge at all yet
    expect(cutoverDoneIn({ ifaces: [vmbr0] }, C)).toBe(false);
    // done
    const after = [iface({ iface: 'vmbr0' }), iface({ iface: 'vmbr1', cidr: C.hostAddress, gateway: C.gateway })];
    expect(cutoverDoneIn({ ifaces: after }, C)).toBe(true);
    // staged, not applied (the cutover's own first step, or someone else's change): not done
    expect(cutoverDoneIn({ ifaces: after, pending: '--- /etc/network/interfaces\n+++ /etc/network/interfaces.new\n' }, C)).toBe(false);
    // another gateway on the bridge is not the cutover's
    expect(cutoverDoneIn({ ifaces: [iface({ iface: 'vmbr1', cidr: C.hostAddress, gateway: '10.10.99.254' })] }, C)).toBe(false);
  });

  it('proxmox.host at the cutover address (dualwan writes it when it confirms the cutover) says done without asking the host', async () => {
    const s = load(true);
    const moved: DesiredState = { ...s, proxmox: { ...s.proxmox!, host: '10.10.99.2' } };
    // no token and no pin: asking the host would throw
    await expect(isCutoverDone({ state: moved, ui: new TestUi(), env: {}, credentialsFile: '/nonexistent/credentials', trustOnFirstUse: false })).resolves.toBe(true);
    await expect(isCutoverDone({ state: s, ui: new TestUi(), env: {}, credentialsFile: '/nonexistent/credentials', trustOnFirstUse: false })).rejects.toThrow(/DUALWAN_PROXMOX_TOKEN_SECRET/);
  });
});
