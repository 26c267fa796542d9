/**
 * What the setup wizard offers, derived from a read-only discovery of the Proxmox host: the NICs
 * with their IOMMU group and link state (the one carrying the management address marked and never
 * offered for passthrough), the bridges, the USB devices that can tether, the storages, the first
 * free VM id. Pure functions of the `Discovery`, so they are tested without a host.
 */
import type { WanUplink } from '../core/desired';
import { formatCidr, parseCidr, rangesOverlap } from '../config/net';
import { COMMON_UPSTREAM_RANGES, CGNAT_RANGE } from '../config/rules';
import type { Discovery } from '../providers/proxmox/discovery';
import { isOwnedVm } from '../providers/proxmox/naming';
import { pciFromPredictableName } from '../providers/proxmox/propstring';

export type Uplink = Exclude<WanUplink, { type: 'interface' }>;

export interface NicFact {
  readonly pci: string;
  readonly label: string;
  /** Host interface names of this NIC (enp2s0, or a PVE 9 altname), when the name tells it. */
  readonly ifaces: readonly string[];
  readonly iommuGroup: number;
  /** Other devices (bridges left out) in the same IOMMU group. */
  readonly groupPeers: readonly string[];
  /** 'up' when the host has the interface up (IFF_UP), 'down' when not, 'unknown' when no interface name maps to it. */
  readonly link: 'up' | 'down' | 'unknown';
  /** Carries the host's management bridge: passing it through would cut the host off. */
  readonly management: boolean;
}

export interface BridgeFact {
  readonly name: string;
  readonly cidr?: string;
  readonly ports: readonly string[];
  readonly management: boolean;
}

export interface UsbFact {
  readonly vendorId: string;
  readonly productId: string;
  readonly label: string;
  /** A phone or mobile modem, by its vendor: the likely tethering device. */
  readonly likelyTether: boolean;
}

export interface StorageFact {
  readonly name: string;
  readonly content: readonly string[];
  readonly availGiB?: number;
}

export interface HostFacts {
  readonly node: string;
  readonly nodes: readonly string[];
  readonly nics: readonly NicFact[];
  readonly bridges: readonly BridgeFact[];
  readonly usb: readonly UsbFact[];
  readonly storages: readonly StorageFact[];
  /** VM ids in use, with whether dualwan created the VM. */
  readonly vms: readonly { readonly vmid: number; readonly name?: string; readonly owned: boolean }[];
  readonly management: { readonly bridge?: string; readonly address?: string; readonly how: string };
}

/**
 * USB vendors whose devices are phones or mobile modems (the usb.ids names). A device of another
 * vendor can still be chosen; it is just not the obvious choice.
 */
const TETHER_VENDORS: Readonly<Record<string, string>> = {
  '18d1': 'Google',
  '04e8': 'Samsung',
  '05ac': 'Apple',
  '22b8': 'Motorola',
  '2717': 'Xiaomi',
  '12d1': 'Huawei',
  '19d2': 'ZTE',
  '2a70': 'OnePlus',
  '0fce': 'Sony Mobile',
  '1004': 'LG',
  '0bb4': 'HTC',
  '1bbb': 'TCL/Alcatel',
  '2c7c': 'Quectel',
  '1199': 'Sierra Wireless',
  '2cb7': 'Fibocom',
  '1e0e': 'Simcom',
  '05c6': 'Qualcomm',
};

const slotOf = (pci: string) => pci.replace(/\.[0-9a-f]$/, '');

export function hostFacts(d: Discovery): HostFacts {
  const mgmtPci = new Set(d.management.ports.map((p) => p.pci).filter((x): x is string => !!x));
  const ethByPci = new Map<string, { names: string[]; active: boolean }>();
  for (const i of d.network) {
    if (i.type !== 'eth') continue;
    const pci = [i.iface, ...(i.altnames ?? [])].map(pciFromPredictableName).find(Boolean);
    if (!pci) continue;
    const e = ethByPci.get(pci) ?? { names: [], active: false };
    e.names.push(i.iface);
    e.active = e.active || !!i.active;
    ethByPci.set(pci, e);
  }
  const nics: NicFact[] = d.pci
    .filter((p) => p.class.startsWith('0x02'))
    .map((p) => {
      const eth = ethByPci.get(p.id);
      const peers = d.pci.filter((q) => q.iommugroup === p.iommugroup && p.iommugroup !== -1 && q.id !== p.id && slotOf(q.id) !== slotOf(p.id) && !q.class.startsWith('0x0604')).map((q) => q.id);
      return {
        pci: p.id,
        label: p.device_name ?? p.vendor_name ?? `${p.vendor}:${p.device}`,
        ifaces: eth?.names ?? [],
        iommuGroup: p.iommugroup,
        groupPeers: peers,
        link: eth ? (eth.active ? 'up' : 'down') : 'unknown',
        management: mgmtPci.has(p.id) || mgmtPci.has(`${slotOf(p.id)}.0`),
      } as NicFact;
    });
  const bridges: BridgeFact[] = d.network
    .filter((i) => i.type === 'bridge' || i.type === 'OVSBridge')
    .map((i) => ({ name: i.iface, cidr: i.cidr, ports: (i.bridge_ports ?? '').split(/\s+/).filter(Boolean), management: i.iface === d.management.bridge }));
  const usb: UsbFact[] = d.usb
    .filter((u) => u.class !== 9)
    .map((u) => {
      const vendor = TETHER_VENDORS[u.vendid.toLowerCase()];
      const name = [u.manufacturer ?? vendor, u.product].filter(Boolean).join(' ') || 'unnamed device';
      return { vendorId: u.vendid.toLowerCase(), productId: u.prodid.toLowerCase(), label: `${name} (${u.vendid}:${u.prodid})`, likelyTether: vendor !== undefined };
    });
  const storages: StorageFact[] = d.storages
    .filter((s) => s.enabled !== false && s.active !== false)
    .map((s) => ({ name: s.storage, content: s.content.split(',').map((c) => c.trim()), availGiB: s.avail === undefined ? undefined : s.avail / 1024 ** 3 }));
  return {
    node: d.node,
    nodes: d.nodes,
    nics,
    bridges,
    usb,
    storages,
    vms: d.vms.map((v) => ({ vmid: v.vmid, name: v.name, owned: isOwnedVm(v.tags) })),
    management: { bridge: d.management.bridge, address: d.management.address, how: d.management.how },
  };
}

// ---------------------------------------------------------------------------------------------
// Choices. Values are strings ("pci:0000:02:00.0", "usb:18d1:4ee3", "bridge:vmbr0") so they fit a
// select prompt and the saved answers.

export interface Choice {
  readonly value: string;
  readonly name: string;
  readonly description?: string;
  /** Shown but not selectable, with the reason. */
  readonly disabled?: string;
}

export function uplinkKey(u: Uplink): string {
  if (u.type === 'pci-nic') return `pci:${u.pci}`;
  if (u.type === 'usb-tether') return `usb:${u.vendorId.toLowerCase()}:${u.productId.toLowerCase()}`;
  return `bridge:${u.bridge}`;
}

export function uplinkFromKey(key: string): Uplink | undefined {
  const [kind, ...rest] = key.split(':');
  if (kind === 'pci' && rest.length === 3) return { type: 'pci-nic', pci: rest.join(':') };
  if (kind === 'usb' && rest.length === 2) return { type: 'usb-tether', vendorId: rest[0]!, productId: rest[1]! };
  if (kind === 'bridge' && rest.length === 1 && rest[0]) return { type: 'bridge', bridge: rest[0] };
  return undefined;
}

export function describeNic(n: NicFact): string {
  const group = n.iommuGroup === -1 ? 'no IOMMU group (IOMMU off)' : `IOMMU group ${n.iommuGroup}${n.groupPeers.length ? ` shared with ${n.groupPeers.join(', ')}` : ' (alone)'}`;
  const link = n.link === 'unknown' ? 'link state unknown' : n.link === 'up' ? 'link up' : 'link down';
  return `${n.pci}  ${n.label}${n.ifaces.length ? `  ${n.ifaces.join('/')}` : ''}  ·  ${group}  ·  ${link}`;
}

function describeBridge(b: BridgeFact): string {
  return `bridge ${b.name}${b.cidr ? ` (${b.cidr})` : ''}${b.ports.length ? ` on ${b.ports.join(' ')}` : ''}${b.management ? ' — the management bridge: the host stays reachable on it' : ''}`;
}

/** Why a NIC cannot be passed through, or undefined when it can. */
export function nicRefusal(n: NicFact, opts: { cutover: boolean }): string | undefined {
  if (n.management && !opts.cutover) return 'carries the management address: passing it through would lock you out';
  if (n.iommuGroup === -1) return 'IOMMU is off on the host';
  return undefined;
}

/** The choices for one side: NICs (those in `taken` left out), bridges, and USB devices when `usb`. */
export function uplinkChoices(f: HostFacts, o: { taken: readonly string[]; usb: boolean; cutover: boolean }): Choice[] {
  const out: Choice[] = [];
  if (o.usb) {
    for (const u of [...f.usb].sort((a, b) => Number(b.likelyTether) - Number(a.likelyTether))) {
      const value = uplinkKey({ type: 'usb-tether', vendorId: u.vendorId, productId: u.productId });
      if (o.taken.includes(value)) continue;
      out.push({ value, name: `USB ${u.label}${u.likelyTether ? ' — phone/modem, tethering' : ''}`, description: 'Switch USB tethering on before choosing it: phones change their USB id with the mode.' });
    }
  }
  for (const n of f.nics) {
    const value = uplinkKey({ type: 'pci-nic', pci: n.pci });
    if (o.taken.includes(value)) continue;
    const refusal = nicRefusal(n, o);
    out.push({ value, name: `NIC ${describeNic(n)}${n.management ? (o.cutover ? '  [management: moves with the guarded cutover]' : '  [management]') : ''}`, ...(refusal ? { disabled: refusal } : {}) });
  }
  for (const b of f.bridges) {
    const value = uplinkKey({ type: 'bridge', bridge: b.name });
    if (o.taken.includes(value)) continue;
    out.push({ value, name: describeBridge(b) });
  }
  return out;
}

export const selectable = (cs: readonly Choice[]) => cs.filter((c) => !c.disabled);

/** The NIC for the ISP: the one selectable NIC alone in its group, when there is exactly one. */
export function obviousIsp(f: HostFacts, cutover: boolean): string | undefined {
  const nics = f.nics.filter((n) => !nicRefusal(n, { cutover }) && !n.management && n.groupPeers.length === 0);
  return nics.length === 1 ? uplinkKey({ type: 'pci-nic', pci: nics[0]!.pci }) : undefined;
}

/** The TP-Link side: the management bridge (the host stays reachable on it), else the one NIC left. */
export function obviousLan(f: HostFacts, taken: readonly string[], cutover: boolean): string | undefined {
  const mgmt = f.bridges.find((b) => b.management);
  if (mgmt) return uplinkKey({ type: 'bridge', bridge: mgmt.name });
  const nics = f.nics.filter((n) => !nicRefusal(n, { cutover }) && !taken.includes(uplinkKey({ type: 'pci-nic', pci: n.pci })));
  return nics.length === 1 ? uplinkKey({ type: 'pci-nic', pci: nics[0]!.pci }) : undefined;
}

/** The backup WAN: the one phone or modem on USB, else the one NIC left. */
export function obviousBackup(f: HostFacts, taken: readonly string[], cutover: boolean): string | undefined {
  const phones = f.usb.filter((u) => u.likelyTether);
  if (phones.length === 1) return uplinkKey({ type: 'usb-tether', vendorId: phones[0]!.vendorId, productId: phones[0]!.productId });
  if (phones.length > 1) return undefined;
  const nics = f.nics.filter((n) => !nicRefusal(n, { cutover }) && !taken.includes(uplinkKey({ type: 'pci-nic', pci: n.pci })));
  return nics.length === 1 ? uplinkKey({ type: 'pci-nic', pci: nics[0]!.pci }) : undefined;
}

/**
 * Storages for the VM disk (content "images"), or for the router image and the seed CD (content
 * "iso" for the CD; the image is uploaded as content "import", which a storage without it is
 * marked as lacking — preflight then gives the `pvesm set` command).
 */
export function storageChoices(f: HostFacts, content: 'images' | 'iso'): Choice[] {
  return f.storages
    .filter((s) => s.content.includes(content))
    .map((s) => {
      const free = s.availGiB === undefined ? '' : `  (${s.availGiB.toFixed(0)} GiB free)`;
      const lacks = content === 'iso' && !s.content.includes('import') ? '  — needs "import" content enabled first' : '';
      return { value: s.name, name: `${s.name}${free}${lacks}` };
    });
}

/** The schema default (local-lvm / local) when it qualifies, else the only qualifying storage; for the image, one with "import" first. */
export function obviousStorage(f: HostFacts, content: 'images' | 'iso'): string | undefined {
  let names = storageChoices(f, content).map((c) => c.value);
  if (content === 'iso') {
    const ready = names.filter((n) => f.storages.find((s) => s.name === n)?.content.includes('import'));
    if (ready.length) names = ready;
  }
  const dflt = content === 'images' ? 'local-lvm' : 'local';
  if (names.includes(dflt)) return dflt;
  return names.length === 1 ? names[0] : undefined;
}

/** The VM dualwan created earlier (a re-run), else the first free id from 100. */
export function suggestVmid(f: HostFacts): number {
  const owned = f.vms.find((v) => v.owned);
  if (owned) return owned.vmid;
  const used = new Set(f.vms.map((v) => v.vmid));
  let id = 100;
  while (used.has(id) && id < 999_999_999) id += 1;
  return id;
}

const LAN_CANDIDATES = ['192.168.10.0/24', '192.168.20.0/24', '192.168.50.0/24', '192.168.77.0/24', '10.10.10.0/24', '172.16.10.0/24'];

/** A LAN subnet clear of the host's own networks, the common phone/modem/TP-Link ranges and CGNAT. */
export function suggestLan(f: HostFacts): string {
  const taken = [...f.bridges.map((b) => (b.cidr ? parseCidr(b.cidr) : undefined)), ...COMMON_UPSTREAM_RANGES.map((c) => parseCidr(c.cidr)), parseCidr(CGNAT_RANGE)].filter(
    (r): r is NonNullable<typeof r> => r !== undefined,
  );
  return LAN_CANDIDATES.find((c) => !taken.some((t) => rangesOverlap(parseCidr(c)!, t))) ?? '10.123.45.0/24';
}

/** The host's networks the LAN overlaps (its bridges' subnets), for a warning beside the config rules. */
export function lanOverlapsHost(f: HostFacts, lan: string): string[] {
  const r = parseCidr(lan);
  if (!r) return [];
  return f.bridges
    .filter((b) => b.cidr && parseCidr(b.cidr) && rangesOverlap(parseCidr(b.cidr)!, r))
    .map((b) => `${b.name} ${formatCidr(parseCidr(b.cidr!)!)}`);
}
