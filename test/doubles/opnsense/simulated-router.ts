import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument, type Document } from 'yaml';
import { loadConfigFile } from '../../../src/config/load';
import type { DesiredState } from '../../../src/core/desired';
import { layoutOf } from '../../../src/providers/opnsense/layout';
import { startOpnsenseDouble, type OpnsenseDouble, type OpnsenseDoubleOptions, type RouterSeed } from './server';
import type { IfaceConf, Lease } from './state';
import { packageRoot } from '../proxmox/simulated-host';
import { hostOutRuleDescription } from '../../../src/providers/opnsense/resources/filter-rules';

/**
 * The simulated OPNsense router used by `dualwan demo`, the component tests and the bench: the
 * double, seeded as the dualwan bootstrap leaves a router — interfaces assigned to the devices the
 * VM has (igcN for passed-through NICs, vtnetN for virtio, ue0 for a tethered phone), WANs on
 * DHCP with leases from their upstream subnets, the LAN at its router address, default gateway
 * switching on — and nothing else: no stored gateways, no group, automatic outbound NAT, the
 * factory LAN rules.
 */
export interface SimulatedRouterOptions extends Omit<OpnsenseDoubleOptions, 'seed'> {
  /** The desired state the router was bootstrapped from (default: playbooks/hotspot-failover.yaml). */
  readonly state?: DesiredState;
  /** Changes the bootstrap's result before the router starts (e.g. a device assigned elsewhere). */
  readonly editSeed?: (seed: RouterSeed) => RouterSeed;
}

export interface SimulatedRouter {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** SHA-256 of the served certificate, "AA:BB:…" */
  readonly fingerprint: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Test controls and records: failNextWrite, stopAnswering, setLinkHealth, requests, writeCount, … */
  readonly controls: OpnsenseDouble;
  /** The environment variables a run needs to reach it. */
  readonly env: { readonly DUALWAN_OPNSENSE_API_KEY: string; readonly DUALWAN_OPNSENSE_API_SECRET: string };
  close(): Promise<void>;
}

export { packageRoot };

export function loadPlaybookState(name = 'hotspot-failover.yaml'): DesiredState {
  const r = loadConfigFile(path.join(packageRoot(), 'playbooks', name));
  if (!r.state) throw new Error(`playbook ${name} does not load: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return r.state;
}

function ipToInt(a: string): number {
  return a.split('.').reduce((n, p) => n * 256 + Number(p), 0) >>> 0;
}
function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

/** What the bootstrap writes for a desired state (interfaces, addresses) and what DHCP then hands out. */
export function seedFromState(state: DesiredState): RouterSeed {
  const layout = layoutOf(state);
  const interfaces: Record<string, IfaceConf> = {};
  const leases: Record<string, Lease> = {};
  layout.wans.forEach((w, i) => {
    const dev = layout.interfaces.find((x) => x.identifier === w.identifier)!.device;
    const a = w.wan.addressing;
    if (a.mode === 'static') {
      const [addr, prefix] = a.address.split('/');
      interfaces[w.identifier] = { if: dev, descr: w.descr, enable: true, ipaddr: addr!, subnet: prefix ?? '24', ipaddrv6: '', lock: false };
      return;
    }
    interfaces[w.identifier] = { if: dev, descr: w.descr, enable: true, ipaddr: 'dhcp', subnet: '', ipaddrv6: i === 0 ? 'dhcp6' : '', lock: false };
    const [base, p] = (w.wan.upstreamSubnet ?? `192.168.${i === 0 ? 1 : 100 + i}.0/24`).split('/');
    const net = ipToInt(base!);
    leases[w.identifier] = { address: intToIp(net + 100 + i), prefix: Number(p ?? 24), router: intToIp(net + 1) };
  });
  const lanDev = layout.interfaces.find((x) => x.identifier === 'lan')!.device;
  interfaces.lan = { if: lanDev, descr: 'LAN', enable: true, ipaddr: state.lan.routerAddress, subnet: state.lan.subnet.split('/')[1] ?? '24', ipaddrv6: '', lock: false };
  // with proxmox.cutover the seed also gives the VM's NIC on the cutover bridge its address
  const link = layout.hostLink;
  if (link) interfaces[link.identifier] = { if: link.device, descr: link.descr, enable: true, ipaddr: link.address, subnet: String(link.prefix), ipaddrv6: '', lock: false };
  const devices = [...new Set([...layout.interfaces.map((x) => x.device), ...(link ? [link.device] : [])])];
  // the bootstrap binds each WAN's DNS servers to its gateway (system_general.php: dnsserver + dnsNgw)
  const dns = layout.wans.flatMap((w) => w.wan.dnsServers.map((server) => ({ server, gateway: w.gatewayName })));
  // and, for load balancing, turns shared forwarding off (src/bootstrap/seed-config.ts)
  // with proxmox.cutover the seed passes the host's traffic out of that link (its one extra rule)
  const extraRules = link
    ? [{ sequence: '12', interface: link.identifier, ipprotocol: 'inet', source_net: link.identifier, destination_net: 'any', description: hostOutRuleDescription(link.descr) }]
    : [];
  return { interfaces, leases, devices, dns, extraRules, ...(state.policy.mode === 'loadbalance' ? { sharedForwarding: false } : {}) };
}

export async function startSimulatedRouter(opts: SimulatedRouterOptions = {}): Promise<SimulatedRouter> {
  const { state, editSeed, ...rest } = opts;
  let seed = seedFromState(state ?? loadPlaybookState());
  if (editSeed) seed = editSeed(structuredClone(seed));
  const d = await startOpnsenseDouble({ ...rest, seed });
  return {
    url: d.url,
    host: d.host,
    port: d.port,
    fingerprint: d.fingerprint,
    apiKey: d.apiKey,
    apiSecret: d.apiSecret,
    controls: d,
    env: { DUALWAN_OPNSENSE_API_KEY: d.apiKey, DUALWAN_OPNSENSE_API_SECRET: d.apiSecret },
    close: () => d.close(),
  };
}

/** Points a playbook document at the simulated router (usable as the `edit` of writePlaybookFor). */
export function pointAtRouter(doc: Document, router: Pick<SimulatedRouter, 'host' | 'port'>): void {
  doc.setIn(['opnsense', 'host'], router.host);
  doc.setIn(['opnsense', 'port'], router.port);
  // The double speaks no SSH: its SSH port is a closed loopback port, never this machine's own
  // sshd (the revert timer around an apply then says it could not be armed, and the apply goes on).
  doc.setIn(['opnsense', 'sshPort'], 1);
}

/** Copies a playbook into `dir` as dualwan.yaml, pointed at the simulated router; the comments stay. */
export function writeRouterPlaybook(router: Pick<SimulatedRouter, 'host' | 'port'>, dir: string, playbook = 'hotspot-failover.yaml', edit?: (doc: Document) => void): string {
  const doc = parseDocument(fs.readFileSync(path.join(packageRoot(), 'playbooks', playbook), 'utf8'));
  pointAtRouter(doc, router);
  edit?.(doc);
  const file = path.join(dir, 'dualwan.yaml');
  fs.writeFileSync(file, doc.toString());
  return file;
}
