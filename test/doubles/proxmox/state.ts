// The simulated node: hardware, network, storages and volumes, VMs, resource mappings, tasks.
// Seeded from the recorded samples in test/fixtures/upstream/pve-samples (see BEHAVIOR.md).
import { createHash } from 'node:crypto';
import { loadSample, loadSubset, type PropSchema, type PveVersion } from './data';
import { expandedProperties } from './schema';

export interface PciDevice {
  id: string;
  class: string;
  vendor: string;
  device: string;
  /** the group when the IOMMU is on; reported as -1 while it is off */
  iommugroup: number;
  vendor_name?: string;
  device_name?: string;
  subsystem_vendor?: string;
  subsystem_device?: string;
  subsystem_vendor_name?: string;
  subsystem_device_name?: string;
  mdev?: number;
}

export interface UsbDevice {
  port: number;
  level: number;
  busnum: number;
  devnum: number;
  speed: string;
  class: number;
  vendid: string;
  prodid: string;
  usbpath?: string;
  product?: string;
  manufacturer?: string;
}

export interface NetIface {
  iface: string;
  type: string;
  [k: string]: unknown;
}

export interface StorageDef {
  storage: string;
  type: 'dir' | 'lvmthin' | string;
  content: string[];
  /** directory of file based storages */
  path?: string;
  shared: 0 | 1;
  total: number;
  used: number;
  avail: number;
  enabled?: 0 | 1;
}

export interface Volume {
  volid: string;
  storage: string;
  /** vtype: images, rootdir, iso, vztmpl, import, backup, snippets */
  content: string;
  format: string;
  size: number;
  ctime: number;
  vmid?: number;
  /** digests of a downloaded file (lets download-url skip a matching existing file) */
  checksums?: Record<string, string>;
  /** the content of an uploaded file (POST …/upload), kept so a simulated guest can read it */
  bytes?: Buffer;
  /** a VM disk made with `import-from`: the source volume (its `bytes` are carried over) */
  importedFrom?: string;
}

export interface Mapping {
  id: string;
  type: 'pci' | 'usb';
  description?: string;
  map: string[];
  mdev?: 0 | 1;
  'live-migration-capable'?: 0 | 1;
}

export interface RemoteFile {
  /** the file's bytes (digests are computed from them); default: a short marker text */
  bytes?: Buffer | string;
  /** the size to report when the real file would be larger than `bytes` */
  size?: number;
  /** size after decompression (content=iso with compression=...) */
  decompressedSize?: number;
  /** explicit digests (lower-case hex) when there are no bytes */
  md5?: string;
  sha1?: string;
  sha224?: string;
  sha256?: string;
  sha384?: string;
  sha512?: string;
}

export interface Vm {
  vmid: number;
  conf: Record<string, string>;
  pending: Record<string, string>;
  /** key -> force flag */
  pendingDelete: Map<string, boolean>;
  status: 'running' | 'stopped';
  pid?: number;
  startedAt?: number;
  runningMachine?: string;
}

export interface Task {
  upid: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
  status: 'running' | 'stopped';
  exitstatus?: string;
  log: string[];
}

export interface Inventory {
  node: string;
  pci: PciDevice[];
  usb: UsbDevice[];
  network: NetIface[];
  /** /etc/network/interfaces.new: staged changes not applied yet (network.ts). */
  networkPending?: NetIface[];
  storages: StorageDef[];
  volumes: Volume[];
  vms: Vm[];
  mappings: Mapping[];
  remoteFiles: Record<string, RemoteFile>;
  iommu: boolean;
}

export type InventoryOverrides = Partial<Omit<Inventory, 'vms'>> & {
  /** VMs given as config maps, e.g. { 100: { name: 'router', memory: '2048' } } */
  vms?: Record<number, Record<string, string>>;
};

function sampleBody<T>(name: string, example = 0): T {
  const s = loadSample(name);
  const ex = s.examples ? s.examples[example] : s;
  return (ex as { response: { body: { data: T } } }).response.body.data;
}

/** Bridges and host bridge of the N100 (class 06), not in the sample (which uses the default class blacklist). */
const SYNTH_BRIDGES: PciDevice[] = [
  { id: '0000:00:00.0', class: '0x060000', vendor: '0x8086', device: '0x461c', iommugroup: 6, vendor_name: 'Intel Corporation', subsystem_vendor: '0x8086', subsystem_device: '0x7270', subsystem_vendor_name: 'Intel Corporation' },
  { id: '0000:00:1c.0', class: '0x060400', vendor: '0x8086', device: '0x54b8', iommugroup: 7, vendor_name: 'Intel Corporation', subsystem_vendor: '0x8086', subsystem_device: '0x7270', subsystem_vendor_name: 'Intel Corporation' },
  { id: '0000:00:1c.6', class: '0x060400', vendor: '0x8086', device: '0x54be', iommugroup: 8, vendor_name: 'Intel Corporation', subsystem_vendor: '0x8086', subsystem_device: '0x7270', subsystem_vendor_name: 'Intel Corporation' },
  { id: '0000:00:1d.0', class: '0x060400', vendor: '0x8086', device: '0x54b0', iommugroup: 9, vendor_name: 'Intel Corporation', subsystem_vendor: '0x8086', subsystem_device: '0x7270', subsystem_vendor_name: 'Intel Corporation' },
  { id: '0000:00:1f.0', class: '0x060100', vendor: '0x8086', device: '0x5481', iommugroup: 12, vendor_name: 'Intel Corporation', subsystem_vendor: '0x8086', subsystem_device: '0x7270', subsystem_vendor_name: 'Intel Corporation' },
];

export const DEFAULT_REMOTE_FILES: Record<string, RemoteFile> = {
  'https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2': { size: 338755584 },
  'https://pkg.opnsense.org/releases/25.7/OPNsense-25.7-dvd-amd64.iso.bz2': { size: 512363824, decompressedSize: 2254438400 },
  'https://pkg.opnsense.org/releases/25.7/OPNsense-25.7-dvd-amd64.iso': { size: 2254438400 },
};

export function remoteFileBytes(url: string, f: RemoteFile): Buffer {
  if (f.bytes !== undefined) return Buffer.isBuffer(f.bytes) ? f.bytes : Buffer.from(f.bytes);
  return Buffer.from(`dualwan proxmox double remote file: ${url}\n`);
}

/** The digest the double computes for the downloaded file. */
export function remoteFileDigest(url: string, f: RemoteFile, algo: 'md5' | 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512'): string {
  const explicit = f[algo];
  if (explicit) return explicit.toLowerCase();
  if (f.bytes === undefined && (f.md5 || f.sha1 || f.sha224 || f.sha256 || f.sha384 || f.sha512)) {
    // only other digests are known: the file's content is unknown, derive a stable but different value
    return createHash(algo).update(`unknown-${algo}:${url}`).digest('hex');
  }
  return createHash(algo).update(remoteFileBytes(url, f)).digest('hex');
}

export function seedInventory(o: InventoryOverrides = {}): Inventory {
  const pci = o.pci ?? [...sampleBody<PciDevice[]>('hardware-pci-n100-2x-i226'), ...structuredClone(SYNTH_BRIDGES)].sort((a, b) => (a.id < b.id ? -1 : 1));
  const storageSample = sampleBody<Array<Record<string, unknown>>>('storage-list-and-import-content');
  const storages: StorageDef[] =
    o.storages ??
    storageSample.map((s) => ({
      storage: String(s.storage),
      type: String(s.type),
      content: String(s.content).split(','),
      path: s.type === 'dir' ? '/var/lib/vz' : undefined,
      shared: 0,
      total: Number(s.total),
      used: Number(s.used),
      avail: Number(s.avail),
      enabled: 1,
    }));
  const inv: Inventory = {
    node: o.node ?? 'pve',
    pci,
    usb: o.usb ?? sampleBody<UsbDevice[]>('hardware-usb-with-tethered-phone'),
    network: o.network ?? sampleBody<NetIface[]>('network-n100-default-install'),
    storages,
    volumes: o.volumes ?? [],
    vms: [],
    mappings: o.mappings ?? [],
    remoteFiles: { ...DEFAULT_REMOTE_FILES, ...(o.remoteFiles ?? {}) },
    iommu: o.iommu ?? true,
  };
  for (const [id, conf] of Object.entries(o.vms ?? {})) {
    inv.vms.push({ vmid: Number(id), conf: { ...conf }, pending: {}, pendingDelete: new Map(), status: 'stopped' });
  }
  return inv;
}

// ---- helpers on the state ----------------------------------------------------------------------

export function versionData(v: PveVersion): { version: string; release: string; repoid: string } {
  if (v === '8.4') return { version: '8.4.14', release: '8.4', repoid: 'b502d23c55afcba1' };
  const s = sampleBody<{ version: string; release: string; repoid: string }>('version');
  return { ...s };
}

/** VM config keys and their schema (from POST /nodes/{node}/qemu). */
export function vmConfigSchema(v: PveVersion): Record<string, PropSchema> {
  const info = loadSubset(v)['/nodes/{node}/qemu']!['POST']!;
  return expandedProperties(info);
}

const NON_CONFIG_CREATE_PARAMS = new Set(['node', 'vmid', 'archive', 'force', 'pool', 'start', 'storage', 'unique', 'bwlimit', 'live-restore', 'import-working-storage', 'ha-managed']);

export function isConfigOption(v: PveVersion, key: string): boolean {
  return !NON_CONFIG_CREATE_PARAMS.has(key) && (key in vmConfigSchema(v) || /^unused\d+$/.test(key));
}

/** What GET config returns for one value: integers and booleans as JSON numbers, everything else as strings. */
export function typedConfigValue(v: PveVersion, key: string, value: string): string | number {
  const s = vmConfigSchema(v)[key];
  if (s && (s.type === 'integer' || s.type === 'boolean') && /^[+-]?\d+$/.test(value)) return Number(value);
  return value;
}

export function configDigest(vm: Vm): string {
  const lines = Object.keys(vm.conf)
    .sort()
    .map((k) => `${k}: ${vm.conf[k]}\n`);
  if (Object.keys(vm.pending).length || vm.pendingDelete.size) {
    lines.push('\n[PENDING]\n');
    for (const k of Object.keys(vm.pending).sort()) lines.push(`${k}: ${vm.pending[k]}\n`);
    if (vm.pendingDelete.size) lines.push(`delete: ${[...vm.pendingDelete].map(([k, f]) => (f ? `!${k}` : k)).join(',')}\n`);
  }
  return createHash('sha1').update(lines.join('')).digest('hex');
}

/** PVE::JSONSchema::parse_size */
export function parseSize(v: string): number | undefined {
  const m = /^(\d+(\.\d+)?)([KMGT](?:iB)?)?$/.exec(v);
  if (!m) return undefined;
  const mult: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
  return Number(m[1]) * (m[3] ? mult[m[3][0]!]! : 1);
}
