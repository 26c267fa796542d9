/**
 * The opt-in cutover as the plan shows it (no root needed: the Proxmox double only; only the
 * Proxmox stage is applied): preflight allows the management NIC only with proxmox.cutover; the
 * Proxmox stage makes and starts the VM without that NIC; the cutover stage's step adds it,
 * disruptive, with the re-cabling spelled out.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { parseDocument } from 'yaml';
import { loadConfigFile } from '../../../src/config/load';
import { PreflightError } from '../../../src/core/errors';
import { prepareProxmox } from '../../../src/flows/router-vm';
import { applyStagePlan, planStage, stagesFor } from '../../../src/flows/stages';
import { connectProxmox, proxmoxHandlers, type ProxmoxConnection, type ProxmoxContext } from '../../../src/providers/proxmox/provider';
import { cutoverHandler } from '../../../src/providers/proxmox/resources/cutover';
import { heldBackForCutover } from '../../../src/providers/proxmox/resources/vm';
import type { ProxmoxDouble } from '../../doubles/proxmox/server';
import { packageRoot, startSimulatedHost, writePlaybookFor } from '../../doubles/proxmox/simulated-host';
import { TestUi } from '../../helpers/test-ui';

let host: ProxmoxDouble;
let dir: string;
const conns: ProxmoxConnection[] = [];

beforeAll(async () => {
  const image = loadConfigFile(path.join(packageRoot(), 'playbooks', 'hotspot-failover.yaml')).state?.vm?.image;
  host = await startSimulatedHost({ image, authFailDelayMs: 0, taskDurationMs: 5 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-cutover-plan-'));
});
afterAll(async () => {
  for (const c of conns) await c.close();
  await host.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

type Doc = ReturnType<typeof parseDocument>;
const managementNicToVm = (doc: Doc) => doc.setIn(['lan', 'uplink'], doc.createNode({ type: 'pci-nic', pci: '0000:01:00.0' }));
const optIn = (doc: Doc, cutover: Record<string, unknown> = { hostAddress: '10.10.99.2/24', gateway: '10.10.99.1' }, bridge = 'vmbr1') => {
  doc.setIn(['vm', 'bridgeNic'], doc.createNode({ bridge }));
  doc.setIn(['proxmox', 'cutover'], doc.createNode(cutover));
};

function load(edit: (doc: Doc) => void) {
  const file = writePlaybookFor(host, dir, 'hotspot-failover.yaml', edit);
  return loadConfigFile(file);
}

async function open(edit: (doc: Doc) => void) {
  const r = load(edit);
  if (!r.state) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  const conn = connectProxmox(r.state, host.tokenSecret, host.fingerprint);
  conns.push(conn);
  const ui = new TestUi();
  const ctx = await prepareProxmox(r.state, conn.client, ui).catch((e: unknown) => e);
  return { state: r.state, ctx, conn };
}

describe('preflight and the cutover opt-in', () => {
  it('without proxmox.cutover the management NIC is refused, and the remedy names the opt-in', async () => {
    const { ctx } = await open(managementNicToVm);
    expect(ctx).toBeInstanceOf(PreflightError);
    const f = (ctx as PreflightError).diagnostics.find((x) => x.code === 'PREFLIGHT_MANAGEMENT_NIC')!;
    expect(f.message).toMatch(/0000:01:00\.0 .*carries the Proxmox management bridge vmbr0/);
    expect(f.remedy).toMatch(/opt in to the guarded cutover: add proxmox\.cutover/);
    expect(f.path).toBe('lan.uplink.pci');
  });

  it('with proxmox.cutover it passes; a cutover onto the management bridge itself is refused', async () => {
    const ok = await open((d) => {
      managementNicToVm(d);
      optIn(d);
    });
    expect(ok.ctx).not.toBeInstanceOf(Error);
    const same = await open((d) => {
      managementNicToVm(d);
      optIn(d, { bridge: 'vmbr0', hostAddress: '10.10.99.2/24', gateway: '10.10.99.1' }, 'vmbr0');
    });
    expect((same.ctx as PreflightError).diagnostics.map((x) => x.code)).toEqual(['PREFLIGHT_CUTOVER_BRIDGE']);
    const subnet = await open((d) => {
      managementNicToVm(d);
      optIn(d, { hostAddress: '192.168.1.20/24', gateway: '192.168.1.1' });
    });
    expect((subnet.ctx as PreflightError).diagnostics.map((x) => x.code)).toEqual(['PREFLIGHT_CUTOVER_SUBNET']);
  });
});

describe('config rules of proxmox.cutover', () => {
  it('the VM must join the cutover bridge, the gateway must be in its subnet, the subnet not the LAN; each at file:line:col', () => {
    const r = load((d) => {
      managementNicToVm(d);
      d.setIn(['proxmox', 'cutover'], d.createNode({ hostAddress: '192.168.10.5/24', gateway: '10.0.0.1' }));
    });
    const codes = r.diagnostics.filter((x) => x.severity === 'error').map((x) => x.code);
    expect(codes).toEqual(expect.arrayContaining(['RULE_CUTOVER_BRIDGE_NOT_JOINED', 'RULE_CUTOVER_GATEWAY', 'RULE_CUTOVER_ADDRESS']));
    const bridge = r.diagnostics.find((x) => x.code === 'RULE_CUTOVER_BRIDGE_NOT_JOINED')!;
    expect(bridge.remedy).toMatch(/vm\.bridgeNic: \{bridge: vmbr1\}/);
    // a default (bridge) points at the nearest written place: the cutover section
    expect(bridge.location).toMatchObject({ file: expect.stringContaining('dualwan.yaml'), line: expect.any(Number), column: expect.any(Number) });
    const gw = r.diagnostics.find((x) => x.code === 'RULE_CUTOVER_GATEWAY')!;
    const text = fs.readFileSync(gw.location!.file, 'utf8').split('\n')[gw.location!.line - 1]!;
    expect(text.slice(gw.location!.column - 1)).toMatch(/^10\.0\.0\.1/);
  });

  it('timeoutSeconds defaults to 300 and is bounded', () => {
    const r = load((d) => {
      managementNicToVm(d);
      optIn(d);
    });
    expect(r.state?.proxmox?.cutover).toMatchObject({ bridge: 'vmbr1', timeoutSeconds: 300, ssh: { user: 'root', port: 22 } });
    const bad = load((d) => {
      managementNicToVm(d);
      optIn(d, { hostAddress: '10.10.99.2/24', gateway: '10.10.99.1', timeoutSeconds: 5 });
    });
    expect(bad.diagnostics.some((x) => x.path === 'proxmox.cutover.timeoutSeconds' && x.severity === 'error')).toBe(true);
  });
});

describe('the plan', () => {
  it('the Proxmox stage makes and starts the VM without the management NIC, and has no cutover step', async () => {
    const { state, ctx } = await open((d) => {
      managementNicToVm(d);
      optIn(d);
    });
    if (ctx instanceof Error) throw ctx;
    const plan = await planStage({ ctx, handlers: proxmoxHandlers(), writeCalls: () => 0, close: async () => undefined }, state);
    expect(plan.changes.some((c) => c.kind === 'proxmox.network-cutover')).toBe(false);
    const vm = plan.changes.find((c) => c.address === 'proxmox.vm/100')!;
    expect(vm.action).toBe('create');
    // the ISP NIC keeps hostpci0; the LAN (management) NIC's hostpci1 is left to the cutover stage
    const keys = vm.properties.map((p) => p.path);
    expect(keys).toContain('hostpci0');
    expect(keys).not.toContain('hostpci1');
    expect(vm.properties.find((p) => p.path === 'hostpci0')?.after).toBe('mapping=dualwan-isp,pcie=1');
    // its mapping is still made, so the cutover can add it later
    expect(plan.changes.some((c) => c.address === 'proxmox.pci-mapping/dualwan-lan' && c.action === 'create')).toBe(true);
    const start = plan.changes.find((c) => c.address === 'proxmox.vm-state/100')!;
    expect(start.action).toBe('update');
    expect(start.dependsOn).not.toContain('proxmox.network-cutover/pve');
    // the VM joins the cutover bridge from its first start: the bridge is made first, port-less, without disruption
    const bridge = plan.changes.find((c) => c.address === 'proxmox.bridge/vmbr1')!;
    expect(bridge).toMatchObject({ action: 'create', disruption: ['none'] });
    expect(start.dependsOn).toContain('proxmox.bridge/vmbr1');
    expect(plan.changes.indexOf(bridge)).toBeLessThan(plan.changes.indexOf(start));
  });

  it('the cutover stage adds the NIC and restarts the VM: disruptive, re-cabling explained; the Proxmox stage stays content', async () => {
    const { state, ctx, conn } = await open((d) => {
      managementNicToVm(d);
      optIn(d);
    });
    if (ctx instanceof Error) throw ctx;
    const session = { ctx, handlers: proxmoxHandlers(), writeCalls: () => conn.transport.writeCalls, close: async () => undefined };
    const ui = new TestUi();
    await applyStagePlan(session, await planStage(session, state), { state, ui, trustOnFirstUse: false, env: {}, earlier: [] });
    expect(host.state.vms.find((v) => v.vmid === 100)).toMatchObject({ status: 'running' });
    expect(host.state.vms.find((v) => v.vmid === 100)!.conf.hostpci1).toBeUndefined();
    // the bridge is in the running config, port-less, with the host's new address but no gateway
    // (how dualwan reaches OPNsense until the cutover); vmbr0 is untouched
    expect(host.state.network.find((i) => i.iface === 'vmbr1')).toMatchObject({ type: 'bridge', active: 1, cidr: '10.10.99.2/24' });
    expect(host.state.network.find((i) => i.iface === 'vmbr1')!.bridge_ports).toBeUndefined();
    expect(host.state.network.find((i) => i.iface === 'vmbr1')!.gateway).toBeUndefined();
    expect(host.state.network.find((i) => i.iface === 'vmbr0')).toMatchObject({ cidr: '192.168.1.10/24', gateway: '192.168.1.1', bridge_ports: 'enp1s0' });
    // the management NIC is still the host's: the Proxmox stage plans nothing more
    const again = await planStage(session, state);
    expect(again.changes.filter((c) => c.action !== 'noop').map((c) => c.address)).toEqual([]);

    const plan = await planStage({ ctx, handlers: [cutoverHandler], writeCalls: () => 0, close: async () => undefined }, state);
    expect(plan.changes.map((c) => c.address)).toEqual(['proxmox.network-cutover/pve']);
    const cut = plan.changes[0]!;
    expect(cut.action).toBe('update');
    expect(cut.dependsOn).toEqual([]);
    expect(cut.disruption).toEqual(['drops-management-session', 'restarts-router-vm']);
    expect(cut.reason).toMatch(/enp1s0 \(PCI 0000:01:00\.0\) becomes the router's LAN port: plug the access point/);
    expect(cut.reason).toMatch(/leaves vmbr0 \(192\.168\.1\.10\/24\) for the router VM 100 \(added as hostpci1 \(lan\); the VM restarts to take it\)/);
    expect(cut.reason).toMatch(/where the router already answers at 10\.10\.99\.1/);
    expect(cut.reason).toMatch(/answers only through the router, at 10\.10\.99\.2 \(API https:\/\/10\.10\.99\.2:\d+, SSH port 22\)/);
    expect(cut.reason).toMatch(/within 300 s, the host restores its network config, stops the router VM/);
    // the address is there since the Proxmox stage: the cutover adds the gateway only
    expect(cut.properties.map((p) => p.path)).not.toContain('bridgeCidr');
    expect(cut.properties).toEqual(
      expect.arrayContaining([
        { path: 'bridgeGateway', before: null, after: '10.10.99.1' },
        { path: 'otherGateways', before: ['vmbr0 192.168.1.1'], after: [] },
        { path: 'nicsOnBridges', before: ['vmbr0:enp1s0'], after: [] },
        { path: 'vmMissing', before: ['hostpci1 (lan)'], after: [] },
      ]),
    );
  });

  it('without the opt-in there is no cutover step, and the management NIC is not held back', async () => {
    const { state, ctx } = await open(() => undefined);
    if (ctx instanceof Error) throw ctx;
    const plan = await planStage({ ctx, handlers: proxmoxHandlers(), writeCalls: () => 0, close: async () => undefined }, state);
    expect(plan.changes.some((c) => c.kind === 'proxmox.network-cutover')).toBe(false);
    expect(heldBackForCutover(state, (ctx as ProxmoxContext).discovery.management)).toEqual([]);
    expect(stagesFor(state).map((s) => s.name)).toEqual(['proxmox', 'bootstrap', 'opnsense']);
  });
});
