// Staged host network changes (pve-manager PVE/API2/Network.pm, pve-common PVE/INotify.pm):
// every write goes to /etc/network/interfaces.new; GET lists that pending file (with a `changes`
// diff) while it exists; PUT /nodes/{node}/network applies it (task srvreload: rename + ifreload);
// DELETE /nodes/{node}/network drops it. The running config is `inv.network`, which is what VM start
// checks bridges against.
import type { DoubleCore } from './core';
import { ParamError } from './core';
import type { Ctx } from './handlers';
import type { NetIface } from './state';

type Iface = NetIface & Record<string, unknown>;

const str = (v: unknown): string | undefined => (v === undefined ? undefined : typeof v === 'boolean' ? (v ? '1' : '0') : Array.isArray(v) ? v.join(',') : String(v));
const splitList = (s: string | undefined): string[] => (s ?? '').split(/[\s,;]+/).filter(Boolean);

/** The config read_file('interfaces') returns: the pending file when there is one. */
function current(core: DoubleCore): Iface[] {
  return (core.inv.networkPending ?? core.inv.network) as Iface[];
}

/** A writable copy: the pending file, created from the running one on the first write. */
function staged(core: DoubleCore): Iface[] {
  if (!core.inv.networkPending) core.inv.networkPending = structuredClone(core.inv.network);
  return core.inv.networkPending as Iface[];
}

/** Listeners the tests attach (a lab that mirrors the host network, e.g. in namespaces). */
export type NetworkEvent = { type: 'network-applied'; network: readonly NetIface[] } | { type: 'vm-started'; vmid: number; pci: readonly string[] };
const listeners = new WeakMap<DoubleCore, ((e: NetworkEvent) => void)[]>();
export function onNetworkEvent(core: DoubleCore, fn: (e: NetworkEvent) => void): void {
  listeners.set(core, [...(listeners.get(core) ?? []), fn]);
}
export function emitNetworkEvent(core: DoubleCore, e: NetworkEvent): void {
  for (const fn of listeners.get(core) ?? []) fn(e);
}

// ---- /etc/network/interfaces text (PVE::INotify __write_etc_network_interfaces, simplified) ----

export function renderInterfaces(ifaces: readonly NetIface[]): string {
  const out = ['auto lo', 'iface lo inet loopback', ''];
  const sorted = [...ifaces].sort((a, b) => Number(a.priority ?? 99) - Number(b.priority ?? 99) || a.iface.localeCompare(b.iface));
  for (const i of sorted) {
    if (i.autostart) out.push(`auto ${i.iface}`);
    const method = String(i.method ?? 'manual');
    out.push(`iface ${i.iface} inet ${method}`);
    if (method === 'static' && i.address) out.push(`\taddress ${String(i.address)}/${String(i.netmask ?? '32')}`);
    if (method === 'static' && i.gateway) out.push(`\tgateway ${String(i.gateway)}`);
    if (i.type === 'bridge') {
      out.push(`\tbridge-ports ${String(i.bridge_ports ?? '') || 'none'}`, `\tbridge-stp ${String(i.bridge_stp ?? 'off')}`, `\tbridge-fd ${String(i.bridge_fd ?? '0')}`);
      if (i.bridge_vlan_aware) out.push('\tbridge-vlan-aware yes');
    }
    if (i.comments) for (const l of String(i.comments).split('\n')) out.push(`#${l}`);
    out.push('');
  }
  out.push('source /etc/network/interfaces.d/*', '');
  return out.join('\n');
}

/** `diff -b -N -u old new` (three lines of context), each output line followed by "\n" as INotify collects it. */
export function unifiedDiff(oldText: string, newText: string, oldName: string, newName: string): string | undefined {
  const a = oldText.split('\n');
  const b = newText.split('\n');
  if (a[a.length - 1] === '') a.pop();
  if (b[b.length - 1] === '') b.pop();
  const norm = (s: string) => s.replace(/\s+/g, ' ').trim(); // -b
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = norm(a[i]!) === norm(b[j]!) ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: { op: ' ' | '-' | '+'; text: string; ai: number; bi: number }[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && norm(a[i]!) === norm(b[j]!)) ops.push({ op: ' ', text: a[i]!, ai: i++, bi: j++ });
    else if (j < m && (i >= n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) ops.push({ op: '+', text: b[j]!, ai: i, bi: j++ });
    else ops.push({ op: '-', text: a[i]!, ai: i++, bi: j });
  }
  const changed = ops.map((o, k) => (o.op !== ' ' ? k : -1)).filter((k) => k >= 0);
  if (!changed.length) return undefined;
  const lines = [`--- ${oldName}\t2026-01-01 00:00:00.000000000 +0000`, `+++ ${newName}\t2026-01-01 00:00:00.000000000 +0000`];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - 3);
    let end = Math.min(ops.length - 1, changed[k]! + 3);
    while (k + 1 < changed.length && changed[k + 1]! - 3 <= end + 1) {
      k++;
      end = Math.min(ops.length - 1, changed[k]! + 3);
    }
    const hunk = ops.slice(start, end + 1);
    const aLen = hunk.filter((o) => o.op !== '+').length;
    const bLen = hunk.filter((o) => o.op !== '-').length;
    const aStart = aLen ? hunk.find((o) => o.op !== '+')!.ai + 1 : hunk[0]!.ai;
    const bStart = bLen ? hunk.find((o) => o.op !== '-')!.bi + 1 : hunk[0]!.bi;
    lines.push(`@@ -${aStart},${aLen} +${bStart},${bLen} @@`, ...hunk.map((o) => `${o.op}${o.text}`));
    k++;
  }
  return lines.map((l) => `${l}\n`).join('');
}

// ---- handlers ----------------------------------------------------------------------------------

function withCidr(i: Iface): Iface {
  if (i.address && i.netmask) i.cidr = `${String(i.address)}/${String(i.netmask)}`;
  else delete i.cidr;
  return i;
}

/** GET /nodes/{node}/network: lo dropped, `changes` while interfaces.new exists. */
export function networkView(c: Ctx): Iface[] {
  if (c.core.inv.networkPending) {
    const changes = unifiedDiff(renderInterfaces(c.core.inv.network), renderInterfaces(c.core.inv.networkPending), '/etc/network/interfaces', '/etc/network/interfaces.new');
    if (changes) c.result.changes = changes;
  }
  return structuredClone(current(c.core));
}

/** $map_cidr_to_address_netmask */
function mapCidr(p: Record<string, unknown>): void {
  if (p.cidr) {
    if (p.address) throw new ParamError({ address: 'address conflicts with cidr' });
    if (p.netmask) throw new ParamError({ netmask: 'netmask conflicts with cidr' });
    const m = /^(.*)\/(\d+)$/.exec(String(p.cidr));
    p.address = m?.[1];
    p.netmask = m?.[2];
    delete p.cidr;
  }
}

function checkDuplicateGateway(ifaces: Iface[], self: string): void {
  for (const i of ifaces) if (i.iface !== self && i.gateway) throw new ParamError({ gateway: `Default gateway already exists on interface '${i.iface}'.` });
}

function checkDuplicatePorts(ifaces: Iface[], self: string, p: Record<string, unknown>): void {
  let name: string | undefined;
  const ports = new Set<string>();
  for (const k of ['bridge_ports', 'ovs_ports', 'slaves', 'ovs_bonds']) {
    if (!p[k]) continue;
    name ??= k;
    for (const x of splitList(str(p[k]))) ports.add(x);
  }
  if (!ports.size) return;
  for (const i of ifaces) {
    if (i.iface === self) continue;
    for (const k of ['bridge_ports', 'ovs_ports', 'slaves', 'ovs_bonds']) for (const x of splitList(str(i[k]))) if (ports.has(x)) throw new ParamError({ [name!]: `${x} is already used on interface '${i.iface}'.` });
  }
}

const NOT_STORED = new Set(['node', 'iface', 'delete']);

function store(target: Iface, p: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(p)) {
    if (NOT_STORED.has(k) || v === undefined) continue;
    if (k === 'autostart' || k === 'bridge_vlan_aware') target[k] = v === true || v === '1' ? 1 : 0;
    else if (k === 'bridge_ports' || k === 'bridge_vids') target[k] = splitList(str(v)).join(' ');
    else target[k] = str(v);
  }
  if (target.type === 'bridge') {
    target.bridge_stp ??= 'off';
    target.bridge_fd ??= '0';
  }
  withCidr(target);
}

/** POST /nodes/{node}/network (create_network) */
export function createIface(c: Ctx): null {
  const p: Record<string, unknown> = { ...c.params };
  const iface = String(p.iface);
  const ifaces = current(c.core);
  if (ifaces.some((i) => i.iface === iface)) throw new ParamError({ iface: 'interface already exists' });
  if (p.gateway) checkDuplicateGateway(ifaces, iface);
  checkDuplicatePorts(ifaces, iface, p);
  mapCidr(p);
  if (p.bridge_vids !== undefined && !splitList(str(p.bridge_vids)).length) throw new ParamError({ bridge_vids: 'VLAN list items are empty' });
  const families = [p.address ? 'inet' : undefined, p.address6 ? 'inet6' : undefined].filter((x): x is string => !!x);
  const entry: Iface = { iface, type: String(p.type), method: p.address ? 'static' : 'manual', method6: p.address6 ? 'static' : 'manual', families: families.length ? families : ['inet'] };
  store(entry, p);
  const list = staged(c.core);
  entry.priority = Math.max(0, ...list.map((i) => Number(i.priority ?? 0))) + 1;
  list.push(entry);
  return null;
}

/** PUT /nodes/{node}/network/{iface} (update_network): the given keys replace, method follows `address`. */
export function updateIface(c: Ctx): null {
  const p: Record<string, unknown> = { ...c.params };
  const iface = String(p.iface);
  if (!current(c.core).some((i) => i.iface === iface)) throw new ParamError({ iface: 'interface does not exist' });
  const list = staged(c.core);
  const target = list.find((i) => i.iface === iface)!;
  // $param->{families} starts empty: the families follow what this request sends
  let families: string[] = [];
  for (const k of splitList(str(p.delete))) {
    delete target[k];
    if (k === 'address') families = families.filter((f) => f !== 'inet');
    if (k === 'address6') families = families.filter((f) => f !== 'inet6');
    if (k === 'cidr') {
      delete target.netmask;
      delete target.address;
    } else if (k === 'cidr6') {
      delete target.netmask6;
      delete target.address6;
    }
  }
  mapCidr(p);
  if (p.gateway) checkDuplicateGateway(list, iface);
  checkDuplicatePorts(list, iface, p);
  if (p.address) families.push('inet');
  if (p.address6) families.push('inet6');
  p.families = families.length ? families : ['inet'];
  p.method = p.address ? 'static' : 'manual';
  p.method6 = p.address6 ? 'static' : 'manual';
  if (p.bridge_vids !== undefined && !splitList(str(p.bridge_vids)).length) throw new ParamError({ bridge_vids: 'VLAN list items are empty' });
  target.families = p.families;
  store(target, Object.fromEntries(Object.entries(p).filter(([k]) => k !== 'families')));
  return null;
}

/** GET /nodes/{node}/network/{iface} (network_config) */
export function readIface(c: Ctx): Iface {
  const hit = current(c.core).find((i) => i.iface === String(c.params.iface));
  if (!hit) throw new ParamError({ iface: 'interface does not exist' });
  return structuredClone(hit);
}

/** DELETE /nodes/{node}/network/{iface} (delete_network) */
export function deleteIface(c: Ctx): null {
  const iface = String(c.params.iface);
  if (!current(c.core).some((i) => i.iface === iface)) throw new ParamError({ iface: 'interface does not exist' });
  c.core.inv.networkPending = staged(c.core).filter((i) => i.iface !== iface);
  return null;
}

/** DELETE /nodes/{node}/network (revert_network_changes): unlink interfaces.new. */
export function revertNetwork(c: Ctx): null {
  c.core.inv.networkPending = undefined;
  return null;
}

/** PUT /nodes/{node}/network (reload_network_config): task srvreload, rename interfaces.new, ifreload -a. */
export function applyNetwork(c: Ctx): string {
  return c.core.startTask('srvreload', 'networking', c.user, () => {
    const next = c.core.inv.networkPending;
    if (!next) return;
    // ifreload -a: interfaces marked auto come up; a NIC given to a VM stays gone
    for (const i of next) {
      if (i.type === 'bridge' && i.autostart) i.active = 1;
      if (i.type === 'eth' && !i.exists) delete i.active;
    }
    c.core.inv.network = next;
    c.core.inv.networkPending = undefined;
    emitNetworkEvent(c.core, { type: 'network-applied', network: structuredClone(next) });
  });
}

/**
 * A passed-through NIC leaves the host at VM start (vfio-pci takes the whole function): it no longer
 * shows in `ip link`, so the listing loses `exists`/`active` for the netdev whose predictable name
 * (enp<bus>s<slot>[f<fn>], decimal) is that PCI address.
 */
export function nicsTakenByVm(core: DoubleCore, vmid: number, pciIds: readonly string[]): void {
  const names = new Set(
    pciIds.map((id) => {
      const m = /^[0-9a-f]{4}:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(id);
      return m ? `enp${parseInt(m[1]!, 16)}s${parseInt(m[2]!, 16)}${m[3] === '0' ? '' : `f${m[3]}`}` : id;
    }),
  );
  for (const list of [core.inv.network, core.inv.networkPending ?? []]) {
    for (const i of list as Iface[]) {
      if (i.type === 'eth' && names.has(i.iface)) {
        delete i.exists;
        delete i.active;
      }
    }
  }
  emitNetworkEvent(core, { type: 'vm-started', vmid, pci: [...pciIds] });
}
