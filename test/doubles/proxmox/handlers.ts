// Endpoint implementations. Each follows the upstream handler named in its comment; messages are
// the upstream texts. A handler gets validated parameters and throws PerlDie (500),
// PermissionDenied (403), ParamError (400) or HttpError.
import { createHash, randomUUID } from 'node:crypto';
import { HttpError, ParamError, perlErrorText, type DoubleCore, type TaskContext } from './core';
import { loadPropertyFormats } from './data';
import { isValidDriveName, parsePropertyString, perlDieAt, PerlDie, printPropertyString, splitList, type InlineFormat } from './jsonschema';
import { PermissionDenied, ROOT } from './perms';
import { notImplemented, type Params } from './schema';
import { consoleHubOf } from './console';
import { spoolOf } from './upload';
import { applyNetwork, createIface, deleteIface, networkView, nicsTakenByVm, readIface, revertNetwork, updateIface } from './network';
import {
  configDigest,
  isConfigOption,
  parseSize,
  remoteFileDigest,
  typedConfigValue,
  versionData,
  vmConfigSchema,
  type Mapping,
  type PciDevice,
  type StorageDef,
  type UsbDevice,
  type Vm,
  type Volume,
} from './state';

export interface Ctx {
  core: DoubleCore;
  user: string;
  params: Params;
  method: string;
  template: string;
  result: { total?: number; changes?: string };
}

export type Handler = (c: Ctx) => unknown;

const die = (text: string): never => {
  throw new PerlDie(text.endsWith('\n') ? text : `${text}\n`);
};
const str = (v: unknown): string | undefined => (v === undefined ? undefined : typeof v === 'boolean' ? (v ? '1' : '0') : Array.isArray(v) ? v.join(',') : String(v));
const isTrue = (v: unknown): boolean => v === true || v === '1';

const DRIVE_ORDER = [
  ...Array.from({ length: 4 }, (_, i) => `ide${i}`),
  ...Array.from({ length: 31 }, (_, i) => `scsi${i}`),
  ...Array.from({ length: 16 }, (_, i) => `virtio${i}`),
  ...Array.from({ length: 6 }, (_, i) => `sata${i}`),
  'efidisk0',
  'tpmstate0',
];
const NEW_DISK_RE = /^(([^/:\s]+):)?(\d+(\.\d+)?)$/;
const QEMU_VERSION = '10.1.2';

// ---- small helpers -----------------------------------------------------------------------------

function storageOf(core: DoubleCore, id: string): StorageDef {
  const s = core.inv.storages.find((x) => x.storage === id);
  if (!s) die(`storage '${id}' does not exist`);
  return s!;
}

function findVolume(core: DoubleCore, volid: string): Volume | undefined {
  return core.inv.volumes.find((v) => v.volid === volid);
}

/** PVE::Storage::parse_volname, enough for the layouts the double creates */
function volumeType(volid: string): { storage: string; vtype: string; name: string } | undefined {
  const m = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/i.exec(volid);
  if (!m) return undefined;
  const [, storage, name] = m as unknown as [string, string, string];
  const sub = /^(iso|vztmpl|import|snippets|backup)\//.exec(name);
  if (sub) return { storage, vtype: sub[1]!, name };
  if (/^(\d+\/)?(vm|base)-\d+-/.test(name)) return { storage, vtype: 'images', name };
  return { storage, vtype: 'images', name };
}

function fmtOf(core: DoubleCore, key: string): InlineFormat {
  const s = vmConfigSchema(core.version)[key];
  if (!s || typeof s.format !== 'object') throw new Error(`proxmox double: no inline format for '${key}'`);
  return s.format as InlineFormat;
}

function parseDrive(core: DoubleCore, key: string, value: string): Record<string, string> {
  return parsePropertyString({ keys: fmtOf(core, key) }, value, key);
}

function printDrive(core: DoubleCore, key: string, d: Record<string, string>): string {
  return printPropertyString(d, fmtOf(core, key), ['index', 'interface']);
}

function isCdrom(d: Record<string, string>): boolean {
  return d.media === 'cdrom' || d.file === 'cdrom';
}

function parseMachine(conf: Record<string, string>): { q35: boolean; version: [number, number] | undefined; type: string } {
  const raw = conf.machine ?? '';
  const type = (raw.split(',').find((p) => !p.includes('=')) ?? raw.split(',').find((p) => p.startsWith('type='))?.slice(5) ?? '').trim();
  const q35 = /^(q35|pc-q35-)/.test(type);
  const m = /-(\d+)\.(\d+)/.exec(type);
  return { q35, version: m ? [Number(m[1]), Number(m[2])] : undefined, type };
}

function minVersion(v: [number, number] | undefined, major: number, minor: number): boolean {
  if (!v) return true; // unpinned: the installed QEMU (10.x)
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

/** qemu-server Helpers.pm windows_version */
function windowsVersion(ostype: string | undefined): number {
  if (!ostype) return 0;
  if (['wxp', 'w2k3', 'w2k'].includes(ostype)) return 5;
  if (['w2k8', 'wvista'].includes(ostype)) return 6;
  const m = /^win(\d+)$/.exec(ostype);
  return m ? Number(m[1]) : 0;
}

function useQemuXhci(conf: Record<string, string>): boolean {
  const { version } = parseMachine(conf);
  const ostype = conf.ostype;
  return minVersion(version, 7, 1) && ostype !== undefined && (ostype === 'l26' || windowsVersion(ostype) > 7);
}

function stripHex(s: string | undefined): string | undefined {
  return s?.replace(/0x/g, '');
}

function parseMapEntry(core: DoubleCore, type: 'pci' | 'usb', entry: string): Record<string, string> | undefined {
  const keys: InlineFormat =
    type === 'pci'
      ? { node: { type: 'string' }, path: { type: 'string' }, id: { type: 'string' }, 'subsystem-id': { type: 'string', optional: 1 }, iommugroup: { type: 'integer', optional: 1 }, description: { type: 'string', optional: 1 } }
      : { node: { type: 'string' }, id: { type: 'string' }, path: { type: 'string', optional: 1 }, description: { type: 'string', optional: 1 } };
  try {
    return parsePropertyString({ keys }, entry, 'map');
  } catch {
    return undefined;
  }
}

function nodeMappings(core: DoubleCore, type: 'pci' | 'usb', id: string): Record<string, string>[] | undefined {
  const m = core.inv.mappings.find((x) => x.type === type && x.id === id);
  if (!m) return undefined;
  return m.map.map((e) => parseMapEntry(core, type, e)).filter((e): e is Record<string, string> => !!e && e.node === core.node);
}

/** live PCI device info as pci_device_info($path, 1) sees it */
function pciInfo(core: DoubleCore, path: string): PciDevice | undefined {
  return core.inv.pci.find((d) => d.id === path);
}

/** PVE::Mapping::PCI::assert_valid */
function assertPciMappingValid(core: DoubleCore, name: string, entry: Record<string, string>, mapping: Mapping | undefined): void {
  const paths = (entry.path ?? '').split(';').filter(Boolean);
  paths.forEach((p, idx) => {
    const path = /\.[a-f0-9]$/i.test(p) ? p : `${p}.0`;
    const info = pciInfo(core, path);
    if (!info) die(`pci device '${path}' not found`);
    const expected: Record<string, string | undefined> = {
      id: `${info!.vendor}:${info!.device}`,
      iommugroup: core.inv.iommu ? String(info!.iommugroup) : undefined,
      'subsystem-id': info!.subsystem_vendor !== undefined && info!.subsystem_device !== undefined ? `${info!.subsystem_vendor}:${info!.subsystem_device}` : undefined,
    };
    const configured: Record<string, string | undefined> = { id: entry.id, iommugroup: entry.iommugroup, 'subsystem-id': entry['subsystem-id'] };
    if (mapping) {
      expected.mdev = info!.mdev ? '1' : '0';
      configured.mdev = mapping.mdev ? '1' : '0';
    }
    for (const prop of Object.keys(expected).sort()) {
      if (prop === 'iommugroup' && idx > 0) continue;
      const e = expected[prop];
      const c = configured[prop];
      if (e === undefined && c === undefined) continue;
      if (e !== undefined && c === undefined) die(`missing expected property '${prop}' for device '${path}'`);
      if (e === undefined && c !== undefined) die(`unexpected property '${prop}' configured for device '${path}'`);
      if (stripHex(e) !== stripHex(c)) die(`'${prop}' does not match for '${name}' (${stripHex(e)} != ${stripHex(c)})`);
    }
  });
}

/** PVE::Mapping::USB::assert_valid */
function assertUsbMappingValid(core: DoubleCore, name: string, entry: Record<string, string>): void {
  const id = entry.id;
  if (entry.path) {
    let info: UsbDevice | undefined;
    for (const d of core.inv.usb) if (d.usbpath && d.busnum && `${d.busnum}-${d.usbpath}` === entry.path) info = d;
    if (!info) die(`usb device '${entry.path}' not found`);
    const realId = `${info!.vendid}:${info!.prodid}`;
    if (realId !== id) die(`'id' does not match for '${name}' (${realId} != ${id})`);
  } else if (!core.inv.usb.some((d) => `${d.vendid}:${d.prodid}` === id)) {
    die(`usb device '${id}' not found`);
  }
}

function perlErr(e: unknown): string {
  if (e instanceof PerlDie) return e.text;
  throw e;
}

// ---- permission helpers (qemu-server API2/Qemu.pm) ---------------------------------------------

const CPU_OPTS = new Set(['cores', 'cpu', 'runningcpu', 'cpulimit', 'cpuunits', 'numa', 'smp', 'sockets', 'vcpus']);
const MEMORY_OPTS = new Set(['memory', 'balloon', 'shares', 'allow-ksm']);
const HWTYPE_OPTS = new Set(['acpi', 'hotplug', 'kvm', 'machine', 'runningmachine', 'scsihw', 'smbios1', 'tablet', 'vga', 'watchdog', 'audio0', 'rng0']);
const GENERAL_OPTS = new Set(['agent', 'autostart', 'bios', 'description', 'keyboard', 'localtime', 'migrate_downtime', 'migrate_speed', 'name', 'onboot', 'ostype', 'protection', 'reboot', 'startdate', 'startup', 'tdf', 'template']);
const DISK_OPTS = new Set(['boot', 'bootdisk', 'vmstatestorage']);
const CLOUDINIT_OPTS = new Set(['cicustom', 'cipassword', 'citype', 'ciuser', 'ciupgrade', 'nameserver', 'searchdomain', 'sshkeys']);
const FAST_PLUG = new Set(['description', 'hookscript', 'lock', 'migrate_downtime', 'migrate_speed', 'name', 'onboot', 'protection', 'shares', 'startup', 'tags', 'vmstatestorage', ...CLOUDINIT_OPTS]);

function checkVmModifyConfigPerm(c: Ctx, vmid: string, keys: string[]): void {
  const { core, user } = c;
  if (user === ROOT) return;
  const vmPerm = (privs: string[], any = false) => core.acl.checkFull(user, `/vms/${vmid}`, privs, any);
  for (const opt of keys) {
    if (isValidDriveName(opt) || opt === 'cdrom' || /^(?:unused|serial|usb|hostpci|virtiofs)\d+$/.test(opt) || opt === 'tags') continue;
    if (CPU_OPTS.has(opt) || /^numa\d+$/.test(opt)) vmPerm(['VM.Config.CPU']);
    else if (MEMORY_OPTS.has(opt)) vmPerm(['VM.Config.Memory']);
    else if (HWTYPE_OPTS.has(opt)) vmPerm(['VM.Config.HWType']);
    else if (GENERAL_OPTS.has(opt)) {
      vmPerm(['VM.Config.Options']);
      if (opt === 'startup') core.acl.check(user, '/', ['Sys.Modify']);
    } else if (opt === 'freeze') vmPerm(['VM.PowerMgmt']);
    else if (DISK_OPTS.has(opt)) vmPerm(['VM.Config.Disk']);
    else if (/^net\d+$/.test(opt)) vmPerm(['VM.Config.Network']);
    else if (CLOUDINIT_OPTS.has(opt) || /^ipconfig\d+$/.test(opt)) vmPerm(['VM.Config.Cloudinit', 'VM.Config.Network'], true);
    else die(`only root can set '${opt}' config`);
  }
}

function checkSerialPerm(c: Ctx, vmid: string, params: Params): void {
  if (c.user === ROOT) return;
  for (const opt of Object.keys(params)) {
    if (!/^serial\d+$/.test(opt)) continue;
    if (str(params[opt]) === 'socket') c.core.acl.check(c.user, `/vms/${vmid}`, ['VM.Config.HWType']);
    else die(`only root can set '${opt}' config for real devices`);
  }
}

function checkUsbPerm(c: Ctx, vmid: string, opt: string, value: string): void {
  if (c.user === ROOT) return;
  c.core.acl.check(c.user, `/vms/${vmid}`, ['VM.Config.HWType']);
  const d = parsePropertyString({ keys: fmtOf(c.core, opt) }, value, opt);
  if (d.host) {
    if (!/^spice$/i.test(d.host)) die(`only root can set '${opt}' config for real devices`);
  } else if (d.mapping) c.core.acl.check(c.user, `/mapping/usb/${d.mapping}`, ['Mapping.Use']);
  else die("either 'host' or 'mapping' must be set.");
}

function checkHostpciPerm(c: Ctx, vmid: string, opt: string, value: string): void {
  if (c.user === ROOT) return;
  const d = parsePropertyString({ keys: hostpciKeys() }, value, opt);
  if (d.host) die(`only root can set '${opt}' config for non-mapped devices`);
  else if (d.mapping) {
    c.core.acl.check(c.user, `/mapping/pci/${d.mapping}`, ['Mapping.Use']);
    c.core.acl.check(c.user, `/vms/${vmid}`, ['VM.Config.HWType']);
  } else die("either 'host' or 'mapping' must be set.");
  if (d.romfile !== undefined) throw new ParamError({ [opt]: "only root@pam can set 'romfile' option" });
}

let hostpciKeysCache: InlineFormat | undefined;
function hostpciKeys(): InlineFormat {
  if (!hostpciKeysCache) {
    hostpciKeysCache = loadPropertyFormats().formats['pve-qm-hostpci']!.keys as InlineFormat;
  }
  return hostpciKeysCache;
}

function checkBridgeAccess(c: Ctx, params: Record<string, string>): void {
  if (c.user === ROOT) return;
  for (const opt of Object.keys(params).sort()) {
    if (!/^net\d+$/.test(opt)) continue;
    const net = parsePropertyString({ keys: fmtOf(c.core, opt) }, params[opt]!, opt);
    if (net.bridge === undefined) continue;
    c.core.acl.checkAny(c.user, `/sdn/zones/localnetwork/${net.bridge}`, ['SDN.Use']);
  }
}

/** $check_storage_access + PVE::Storage::check_volume_access */
function checkStorageAccess(c: Ctx, vmid: string, params: Record<string, string>, defaultStorage?: string): void {
  const { core, user } = c;
  for (const key of DRIVE_ORDER) {
    const v = params[key];
    if (v === undefined) continue;
    const d = parseDrive(core, key, v);
    const volid = d.file ?? '';
    const vt = volumeType(volid);
    if (!volid || volid === 'none' || volid === 'cloudinit' || vt?.name === 'cloudinit') {
      // nothing to check
    } else if (isCdrom(d) && volid === 'cdrom') {
      core.acl.check(user, '/', ['Sys.Console']);
    } else if (!isCdrom(d) && NEW_DISK_RE.test(volid)) {
      const storeid = NEW_DISK_RE.exec(volid)![2] ?? defaultStorage;
      if (!storeid) die('no storage ID specified (and no default storage)');
      core.acl.check(user, `/storage/${storeid}`, ['Datastore.AllocateSpace']);
      const scfg = storageOf(core, storeid!);
      if (!scfg.content.includes('images')) throw new ParamError({ storage: `storage '${storeid}' does not support vm images` });
    } else {
      checkVolumeAccess(c, vmid, volid);
      if (vt && vt.vtype !== 'images' && vt.vtype !== 'iso') throw new ParamError({ [key]: "content type needs to be 'images' or 'iso'" });
    }
    const src = d['import-from'];
    if (src) {
      const svt = volumeType(src);
      if (svt) {
        storageOf(core, svt.storage);
        if (svt.vtype !== 'images' && svt.vtype !== 'import') throw new ParamError({ [key]: `${src} has wrong type '${svt.vtype}' - needs to be 'images' or 'import'` });
        checkVolumeAccess(c, vmid, src);
      } else if (user !== ROOT) {
        throw perlDieAt('Only root can pass arbitrary filesystem paths.', '/usr/share/perl5/PVE/Storage.pm', 651);
      }
    }
  }
}

function checkVolumeAccess(c: Ctx, vmid: string, volid: string): void {
  const vt = volumeType(volid);
  if (!vt) {
    if (c.user !== ROOT) throw perlDieAt('Only root can pass arbitrary filesystem paths.', '/usr/share/perl5/PVE/Storage.pm', 651);
    return;
  }
  if (c.user === ROOT) return;
  storageOf(c.core, vt.storage);
  if (c.core.acl.check(c.user, `/storage/${vt.storage}`, ['Datastore.Allocate'], true)) return;
  if (['iso', 'vztmpl', 'import', 'snippets'].includes(vt.vtype)) {
    c.core.acl.checkAny(c.user, `/storage/${vt.storage}`, ['Datastore.AllocateSpace', 'Datastore.Audit']);
  } else {
    const owner = /(?:vm|base)-(\d+)-/.exec(vt.name)?.[1];
    if (owner && owner === vmid) c.core.acl.check(c.user, `/storage/${vt.storage}`, ['Datastore.AllocateSpace']);
    else c.core.acl.check(c.user, `/storage/${vt.storage}`, ['Datastore.Allocate']);
  }
}

/** $check_drive_param: drive syntax checks, then the drive in canonical form */
function checkDriveParams(core: DoubleCore, params: Record<string, string>): void {
  for (const key of Object.keys(params).sort()) {
    if (!isValidDriveName(key)) continue;
    const d = parseDrive(core, key, params[key]!);
    if (d['import-from']) {
      const m = NEW_DISK_RE.exec(d.file ?? '');
      if (!m || Number(m[3]) !== 0) throw new ParamError({ [key]: "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>" });
      if (key === 'efidisk0') {
        for (const req of ['efitype', 'pre-enrolled-keys']) if (d[req] === undefined) throw new ParamError({ [key]: `need to specify '${req}' when using 'import-from'` });
      }
    }
    const vt = volumeType(d.file ?? '');
    if (vt && !NEW_DISK_RE.test(d.file ?? '') && vt.name !== 'cloudinit' && vt.vtype === 'iso' && d.media !== 'cdrom') {
      throw new ParamError({ [key]: "explicit 'media=cdrom' is required for iso images" });
    }
    params[key] = printDrive(core, key, d);
  }
}

function addRandomMacs(core: DoubleCore, params: Record<string, string>): void {
  for (const key of Object.keys(params)) {
    if (!/^net\d+$/.test(key)) continue;
    const net = parsePropertyString({ keys: fmtOf(core, key) }, params[key]!, key);
    net.macaddr ??= core.randomMac();
    params[key] = printPropertyString(net, fmtOf(core, key));
  }
}

// ---- disks ------------------------------------------------------------------------------------

function freeDiskName(core: DoubleCore, storage: string, vmid: number): string {
  for (let n = 0; ; n++) {
    const name = `vm-${vmid}-disk-${n}`;
    if (!core.inv.volumes.some((v) => v.storage === storage && v.volid.includes(`${name}`))) return name;
  }
}

function allocVolume(core: DoubleCore, t: TaskContext | undefined, storage: string, vmid: number, size: number, name?: string): Volume {
  const scfg = storageOf(core, storage);
  const n = name ?? freeDiskName(core, storage, vmid);
  const file = scfg.path !== undefined;
  const volid = file ? `${storage}:${vmid}/${n}.qcow2` : `${storage}:${n}`;
  if (file) t?.log(`Formatting '${scfg.path}/images/${vmid}/${n}.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=off preallocation=metadata compression_type=zlib size=${size} lazy_refcounts=off refcount_bits=16`);
  else t?.log(`  Logical volume "${n}" created.`);
  const vol: Volume = { volid, storage, content: 'images', format: file ? 'qcow2' : 'raw', size, ctime: Math.floor(Date.now() / 1000), vmid };
  core.inv.volumes.push(vol);
  if (file) {
    scfg.used += size;
    scfg.avail -= size;
  }
  return vol;
}

function freeVolume(core: DoubleCore, volid: string): void {
  const i = core.inv.volumes.findIndex((v) => v.volid === volid);
  if (i < 0) return;
  const [vol] = core.inv.volumes.splice(i, 1);
  const scfg = core.inv.storages.find((s) => s.storage === vol!.storage);
  if (scfg?.path !== undefined) {
    scfg.used -= vol!.size;
    scfg.avail += vol!.size;
  }
}

/** create_disks: allocates new disks (STORAGE:SIZE, import-from) and returns the canonical drive strings */
function createDisks(core: DoubleCore, t: TaskContext | undefined, vm: Vm, settings: Record<string, string>, created: string[]): Record<string, string> {
  const res: Record<string, string> = {};
  for (const key of DRIVE_ORDER) {
    const value = settings[key];
    if (value === undefined) continue;
    const d = parseDrive(core, key, value);
    const volid = d.file ?? '';
    const vt = volumeType(volid);
    if (!volid || volid === 'none' || volid === 'cdrom') {
      delete d.size;
      res[key] = printDrive(core, key, d);
    } else if (vt?.name === 'cloudinit') {
      const vol = allocVolume(core, t, vt.storage, vm.vmid, 4 * 1024 * 1024, `vm-${vm.vmid}-cloudinit`);
      created.push(vol.volid);
      d.file = vol.volid;
      d.media = 'cdrom';
      delete d.format;
      res[key] = printDrive(core, key, d);
      t?.log(`${key}: successfully created disk '${res[key]}'`);
    } else if (NEW_DISK_RE.test(volid)) {
      const m = NEW_DISK_RE.exec(volid)!;
      const storeid = m[2]!;
      let size = Math.round(Number(m[3]) * 1024 ** 3);
      const src = d['import-from'];
      delete d['import-from'];
      if (src) {
        const sv = findVolume(core, src);
        if (!sv) die(`cannot import from '${src}' - volume '${src}' does not exist`);
        size = sv!.size;
        t?.log(`transferred 0.0 B of ${humanBytes(size)} (0.00%)`);
        t?.log(`transferred ${humanBytes(size)} of ${humanBytes(size)} (100.00%)`);
      }
      if (key === 'efidisk0') size = storageOf(core, storeid).path !== undefined ? (d.efitype === '4m' ? 540672 : 131072) : 4 * 1024 * 1024;
      if (key === 'tpmstate0') size = 4 * 1024 * 1024;
      const vol = allocVolume(core, t, storeid, vm.vmid, size);
      if (src) {
        // the disk now holds what the source held (a simulated guest boots from these bytes)
        const sv = findVolume(core, src)!;
        vol.importedFrom = src;
        if (sv.bytes) vol.bytes = sv.bytes;
      }
      created.push(vol.volid);
      d.file = vol.volid;
      d.size = String(size);
      delete d.format;
      res[key] = printDrive(core, key, d);
      t?.log(`${key}: successfully created disk '${res[key]}'`);
    } else {
      const vol = findVolume(core, volid);
      if (!vol) die(`volume '${volid}' does not exist`);
      d.size = String(vol!.size);
      res[key] = printDrive(core, key, d);
    }
  }
  return res;
}

function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

// ---- pending config ---------------------------------------------------------------------------

function firstFreeUnused(vm: Vm): string {
  for (let i = 0; ; i++) if (vm.conf[`unused${i}`] === undefined && vm.pending[`unused${i}`] === undefined) return `unused${i}`;
}

function detachDrive(core: DoubleCore, vm: Vm, key: string, value: string, force: boolean): void {
  if (!isValidDriveName(key)) return;
  const d = parseDrive(core, key, value);
  if (isCdrom(d) || !d.file || !findVolume(core, d.file)) return;
  if (force) freeVolume(core, d.file);
  else vm.conf[firstFreeUnused(vm)] = d.file;
}

/** vmconfig_apply_pending (VM not running) */
function applyPending(core: DoubleCore, vm: Vm): void {
  for (const [key, force] of [...vm.pendingDelete]) {
    const old = vm.conf[key];
    if (old !== undefined) {
      delete vm.conf[key];
      detachDrive(core, vm, key, old, force);
    }
  }
  vm.pendingDelete.clear();
  for (const [key, value] of Object.entries(vm.pending)) {
    const old = vm.conf[key];
    if (old !== undefined && old !== value) detachDrive(core, vm, key, old, false);
    vm.conf[key] = value;
  }
  vm.pending = {};
}

/** vmconfig_hotplug_pending, reduced to which keys a running VM takes at once */
function hotplugPending(core: DoubleCore, vm: Vm): void {
  const hotplug = vm.conf.hotplug ?? '1';
  const feats = hotplug === '0' ? new Set<string>() : new Set(hotplug === '1' ? ['network', 'disk', 'usb'] : splitList(hotplug));
  const usbOk = feats.has('usb') && useQemuXhci(vm.conf);
  const canPlug = (key: string, deleting: boolean): boolean => {
    if (FAST_PLUG.has(key) || /^ipconfig\d+$/.test(key)) return true;
    if (/^usb\d+$/.test(key)) return usbOk;
    if (/^net\d+$/.test(key)) return feats.has('network');
    if (key === 'cpuunits' || key === 'cpulimit') return true;
    if (key === 'memory') return feats.has('memory');
    if (key === 'balloon') return (vm.conf.balloon ?? '') !== '0' && (deleting || vm.pending.balloon !== '0');
    if (isValidDriveName(key)) {
      if (/^(efidisk|tpmstate)/.test(key)) return false;
      if (deleting && /^(ide|sata)/.test(key)) return false;
      return feats.has('disk');
    }
    return false;
  };
  for (const [key, force] of [...vm.pendingDelete]) {
    if (!canPlug(key, true)) continue;
    const old = vm.conf[key];
    delete vm.conf[key];
    vm.pendingDelete.delete(key);
    if (old !== undefined) detachDrive(core, vm, key, old, force);
  }
  for (const [key, value] of Object.entries(vm.pending)) {
    if (!canPlug(key, false)) continue;
    vm.conf[key] = value;
    delete vm.pending[key];
  }
}

/** cleanup_pending: drop pending values equal to the current ones and deletes of unset keys */
function cleanupPending(vm: Vm): void {
  for (const [k, v] of Object.entries(vm.pending)) if (vm.conf[k] === v) delete vm.pending[k];
  for (const k of [...vm.pendingDelete.keys()]) if (vm.conf[k] === undefined) vm.pendingDelete.delete(k);
}

function configWithPending(vm: Vm): Record<string, string> {
  const conf = { ...vm.conf, ...vm.pending };
  for (const k of vm.pendingDelete.keys()) delete conf[k];
  return conf;
}

function typedConfig(core: DoubleCore, conf: Record<string, string>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const k of Object.keys(conf).sort()) out[k] = typedConfigValue(core.version, k, conf[k]!);
  return out;
}

// ---- VM start checks (qemu-server QemuServer.pm vm_start -> config_to_command, PCI.pm, USB.pm) --

function startVm(core: DoubleCore, vmid: number): void {
  const vm = core.loadVm(vmid);
  if (vm.conf.lock) die(`VM is locked (${vm.conf.lock})`);
  if (vm.status === 'running') die(`VM ${vmid} already running`);
  if (Object.keys(vm.pending).length || vm.pendingDelete.size) applyPending(core, vm);
  const conf = vm.conf;

  for (const key of DRIVE_ORDER) {
    if (!conf[key]) continue;
    const d = parseDrive(core, key, conf[key]!);
    const volid = d.file ?? '';
    if (!volid || volid === 'none' || volid === 'cdrom' || volid.startsWith('/')) continue;
    if (!findVolume(core, volid)) die(`volume '${volid}' does not exist`);
  }

  const machine = parseMachine(conf);
  const xhci = useQemuXhci(conf);
  for (let i = 5; i < 14; i++) {
    if (conf[`usb${i}`] && !xhci) die(`using usb${i} is only possible with machine type >= 7.1 and ostype l26 or windows > 7`);
  }

  // hostpci: parse_hostpci_devices -> choose_hostpci_devices
  const chosen: { key: string; ids: string[] }[] = [];
  const used = new Set<string>();
  for (let i = 0; i < 16; i++) {
    const key = `hostpci${i}`;
    if (!conf[key]) continue;
    const d = parsePropertyString({ keys: hostpciKeys() }, conf[key]!, key);
    const alternatives: string[][] = [];
    if (d.host !== undefined && d.mapping !== undefined) die("Cannot set both 'host' and 'mapping'.");
    if (d.mapping) {
      const entries = nodeMappings(core, 'pci', d.mapping);
      if (!entries || !entries.length) die(`PCI device mapping not found for '${d.mapping}'`);
      const mcfg = core.inv.mappings.find((m) => m.type === 'pci' && m.id === d.mapping);
      for (const e of entries!) {
        try {
          assertPciMappingValid(core, d.mapping, e, mcfg);
        } catch (err) {
          throw new PerlDie(`PCI device mapping invalid (hardware probably changed): ${perlErr(err)}\n`);
        }
        alternatives.push(e.path!.split(';'));
      }
    } else if (d.host) alternatives.push(d.host.split(';'));
    else die("Either 'host' or 'mapping' must be set.");
    const resolved = alternatives.map((alt) =>
      alt.flatMap((id) => {
        const full = id.split(':').length === 2 ? `0000:${id}` : id;
        const devs = core.inv.pci.filter((p) => (/\.[0-9a-f]$/i.test(full) ? p.id === full : p.id.startsWith(`${full}.`)));
        if (!devs.length) die(`no PCI device found for '${id}'`);
        return devs.map((p) => p.id);
      }),
    );
    if (!machine.q35 && d.pcie === '1') throw perlDieAt('q35 machine model is not enabled', '/usr/share/perl5/PVE/QemuServer/PCI.pm', 510);
    chosen.push({ key, ids: resolved.length === 1 ? resolved[0]! : (resolved.find((ids) => !ids.some((x) => used.has(x) || inUseBy(core, vmid, x))) ?? die(`could not find a free device for '${key}'`)) });
    for (const id of chosen[chosen.length - 1]!.ids) {
      if (used.has(id)) die(`device '${id}' assigned more than once`);
      used.add(id);
    }
  }

  // usb devices (parse_usb_device for mappings)
  for (let i = 0; i < 14; i++) {
    const key = `usb${i}`;
    if (!conf[key]) continue;
    const d = parsePropertyString({ keys: fmtOf(core, key) }, conf[key]!, key);
    if (d.mapping && d.host === undefined) {
      const entries = nodeMappings(core, 'usb', d.mapping);
      if (!entries || !entries.length) die(`USB device mapping not found for '${d.mapping}'`);
      if (entries!.length > 1) die('More than one USB mapping per host not supported');
      try {
        assertUsbMappingValid(core, d.mapping, entries![0]!);
      } catch (err) {
        throw new PerlDie(`USB Mapping invalid (hardware probably changed): ${perlErr(err)}\n`);
      }
    }
  }

  // reserve_pci_usage + prepare_pci_device
  for (const c of chosen) {
    for (const id of c.ids) {
      const other = inUseBy(core, vmid, id);
      if (other) die(`PCI device '${id}' already in use by VMID '${other}'`);
    }
  }
  for (const c of chosen) {
    for (const id of c.ids) {
      if (!core.inv.iommu) die('cannot prepare PCI pass-through, IOMMU not present');
      if (!pciInfo(core, id)) die(`no pci device info for device '${id}'`);
    }
  }

  // tap devices join their bridges (qemu-server pve-bridge hook)
  for (let i = 0; i < 32; i++) {
    const key = `net${i}`;
    if (!conf[key]) continue;
    const net = parsePropertyString({ keys: fmtOf(core, key) }, conf[key]!, key);
    if (net.bridge && !core.inv.network.some((n) => n.iface === net.bridge && /bridge/i.test(String(n.type)))) die(`bridge '${net.bridge}' does not exist`);
  }

  vm.status = 'running';
  vm.pid = core.nextPid() + 10000;
  vm.startedAt = Date.now();
  vm.runningMachine = machine.q35 ? 'pc-q35-10.1+pve1' : 'pc-i440fx-10.1+pve1';
  vmPciInUse.set(vm, chosen.flatMap((c) => c.ids));
  nicsTakenByVm(core, vmid, chosen.flatMap((c) => c.ids));
  // a simulated guest on the serial socket boots (console.ts); nothing happens without one
  consoleHubOf(core)?.power(vmid, true);
}

const vmPciInUse = new WeakMap<Vm, string[]>();
function inUseBy(core: DoubleCore, self: number, pciId: string): number | undefined {
  for (const vm of core.inv.vms) if (vm.vmid !== self && vm.status === 'running' && (vmPciInUse.get(vm) ?? []).includes(pciId)) return vm.vmid;
  return undefined;
}

function stopVm(core: DoubleCore, vmid: number): void {
  const vm = core.loadVm(vmid);
  if (vm.status !== 'running') return;
  vm.status = 'stopped';
  vm.pid = undefined;
  vm.startedAt = undefined;
  vm.runningMachine = undefined;
  vmPciInUse.delete(vm);
  consoleHubOf(core)?.power(vmid, false);
  // vm_stop_cleanup applies pending changes
  if (Object.keys(vm.pending).length || vm.pendingDelete.size) applyPending(core, vm);
}

// ---- VM status --------------------------------------------------------------------------------

function vmMaxmem(conf: Record<string, string>): number {
  const mem = (conf.memory ?? '512').split(',')[0]!.replace(/^current=/, '');
  return Number(mem) * 1024 * 1024;
}

function vmMaxdisk(core: DoubleCore, conf: Record<string, string>): number {
  for (const key of DRIVE_ORDER) {
    if (!conf[key] || /^(efidisk|tpmstate)/.test(key)) continue;
    const d = parseDrive(core, key, conf[key]!);
    if (isCdrom(d)) continue;
    return d.size ? (parseSize(d.size) ?? 0) : 0;
  }
  return 0;
}

function vmStatus(core: DoubleCore, vm: Vm, full = true): Record<string, unknown> {
  const conf = vm.conf;
  const running = vm.status === 'running';
  const cpus = Number(conf.cores ?? 1) * Number(conf.sockets ?? 1);
  const maxmem = vmMaxmem(conf);
  const uptime = running ? Math.floor((Date.now() - (vm.startedAt ?? Date.now())) / 1000) : 0;
  const s: Record<string, unknown> = {
    vmid: vm.vmid,
    name: conf.name ?? `VM ${vm.vmid}`,
    status: vm.status,
    cpus,
    cpu: running ? 0.0141 : 0,
    maxmem,
    mem: running ? Math.floor(maxmem * 0.38) : 0,
    maxdisk: vmMaxdisk(core, conf),
    disk: 0,
    diskread: running ? 301465600 : 0,
    diskwrite: running ? 48234496 : 0,
    netin: running ? 5120384 : 0,
    netout: running ? 9876543 : 0,
    uptime,
  };
  if (core.version === '9.1') s.memhost = running ? Math.floor(maxmem * 0.4) : 0;
  if (running) s.pid = vm.pid;
  if (Object.keys(conf).some((k) => /^serial\d+$/.test(k))) s.serial = 1;
  if (conf.lock) s.lock = conf.lock;
  if (conf.tags) s.tags = conf.tags;
  if (conf.template === '1') s.template = 1;
  if (full) {
    s.qmpstatus = running ? 'running' : 'stopped';
    if (running) {
      s['running-machine'] = vm.runningMachine;
      s['running-qemu'] = QEMU_VERSION;
      if (conf.balloon !== '0') {
        s.balloon = maxmem;
        s.freemem = Math.floor(maxmem * 0.47);
      }
    }
  }
  return s;
}

// ---- handlers ---------------------------------------------------------------------------------

function vmidParam(c: Ctx): string {
  return String(c.params.vmid);
}

function nodeStatus(c: Ctx): unknown {
  const is9 = c.core.version === '9.1';
  const v = versionData(c.core.version);
  const total = 16603537408;
  const used = 2684354560;
  return {
    uptime: c.core.uptimeSeconds(),
    idle: 0,
    wait: 0.0009,
    cpu: 0.0213,
    loadavg: ['0.08', '0.05', '0.01'],
    kversion: is9 ? 'Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z) x86_64' : 'Linux 6.8.12-11-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-11 (2025-05-22T09:39Z) x86_64',
    'current-kernel': { sysname: 'Linux', release: is9 ? '6.17.2-1-pve' : '6.8.12-11-pve', version: is9 ? '#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)' : '#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-11 (2025-05-22T09:39Z)', machine: 'x86_64' },
    'boot-info': { mode: 'efi', secureboot: 0 },
    pveversion: `pve-manager/${v.version}/${v.repoid}`,
    cpuinfo: { model: 'Intel(R) N100', cpus: 4, cores: 4, sockets: 1, mhz: '806.000', hvm: '1', user_hz: 100, flags: 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx est tm2 ssse3 sdbg fma cx16 xtpr pdcm sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb intel_pt ssbd ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves split_lock_detect avx_vnni dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp hwp_pkg_req vnmi umip pku ospke waitpkg gfni vaes vpclmulqdq rdpid movdiri movdir64b fsrm md_clear serialize arch_lbr ibt flush_l1d arch_capabilities' },
    memory: { total, used, free: total - used, available: total - used },
    swap: { total: 8589930496, used: 0, free: 8589930496 },
    rootfs: { total: 100861726720, used: 9663676416, free: 91198050304, avail: 86032605184 },
    ksm: { shared: 0 },
  };
}

function listPci(c: Ctx): unknown {
  const bl = str(c.params['pci-class-blacklist']) ?? '05;06;0b';
  const classes = splitList(bl);
  const verbose = c.params.verbose === undefined ? true : isTrue(c.params.verbose);
  return c.core.inv.pci
    .filter((d) => !classes.length || !classes.some((cl) => d.class.replace(/^0x/, '').startsWith(cl)))
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((d) => {
      const group = c.core.inv.iommu ? d.iommugroup : -1;
      if (!verbose) {
        const r: Record<string, unknown> = { id: d.id, vendor: d.vendor, device: d.device, class: d.class, iommugroup: group };
        if (d.mdev) r.mdev = 1;
        return r;
      }
      return { ...d, iommugroup: group };
    });
}

function listNetwork(c: Ctx): unknown {
  const type = str(c.params.type);
  return networkView(c).filter((n) => {
    if (type) {
      if (type === 'any_bridge' || type === 'any_local_bridge') {
        if (n.type !== 'bridge' && n.type !== 'OVSBridge') return false;
      } else if (n.type !== type) return false;
    }
    if (c.user !== ROOT && (n.type === 'bridge' || n.type === 'OVSBridge')) {
      return c.core.acl.checkAny(c.user, `/sdn/zones/localnetwork/${n.iface}`, ['SDN.Audit', 'SDN.Use'], true);
    }
    return true;
  });
}

function storageEntry(s: StorageDef, withStatus = true): Record<string, unknown> {
  const r: Record<string, unknown> = { storage: s.storage, type: s.type, content: s.content.join(','), active: 1, enabled: s.enabled ?? 1, shared: s.shared };
  if (withStatus) {
    r.total = s.total;
    r.used = s.used;
    r.avail = s.avail;
    r.used_fraction = Math.round((s.used / s.total) * 10000) / 10000;
  }
  return r;
}

function listStorage(c: Ctx): unknown {
  const want = str(c.params.content) ? splitList(str(c.params.content)!) : undefined;
  const only = str(c.params.storage);
  const enabled = isTrue(c.params.enabled);
  return c.core.inv.storages
    .filter((s) => c.user === ROOT || c.core.acl.checkAny(c.user, `/storage/${s.storage}`, ['Datastore.Audit', 'Datastore.AllocateSpace'], true))
    .filter((s) => !only || s.storage === only)
    .filter((s) => !want || want.some((ct) => s.content.includes(ct)))
    .filter((s) => !enabled || (s.enabled ?? 1) === 1)
    .map((s) => {
      const e = storageEntry(s);
      if (isTrue(c.params.format)) {
        e.formats = s.path !== undefined ? { default: 'qcow2', supported: ['raw', 'qcow2', 'vmdk'] } : { default: 'raw', supported: ['raw'] };
      }
      return e;
    });
}

function storageStatus(c: Ctx): unknown {
  const s = storageOf(c.core, String(c.params.storage));
  const e = storageEntry(s);
  delete e.storage;
  delete e.used_fraction;
  return e;
}

function storageContent(c: Ctx): unknown {
  const s = storageOf(c.core, String(c.params.storage));
  const ct = str(c.params.content);
  const vmid = c.params.vmid !== undefined ? Number(c.params.vmid) : undefined;
  return c.core.inv.volumes
    .filter((v) => v.storage === s.storage)
    .filter((v) => !ct || v.content === ct)
    .filter((v) => vmid === undefined || v.vmid === vmid)
    .sort((a, b) => (a.volid < b.volid ? -1 : 1))
    .map((v) => {
      const r: Record<string, unknown> = { volid: v.volid, content: v.content, format: v.format, size: v.size, ctime: v.ctime };
      if (v.vmid !== undefined) r.vmid = v.vmid;
      if (v.content === 'images') r.used = v.size;
      return r;
    });
}

const DIRS: Record<string, string> = { iso: 'template/iso', vztmpl: 'template/cache', import: 'import' };

/**
 * pve-storage API2/Storage/Content.pm `delete`: the volume id from {storage} and {volume}
 * (real_volume_id: a full volid must name the same storage), the ACL check in the code (the schema
 * says only `user: all`): Datastore.Allocate on /storage/<id> (backups of a VM: AllocateSpace +
 * VM.Backup, not simulated), then an `imgdel` task running vdisk_free. A file that is not there is
 * a warning of the task (Plugin.pm free_image), not an error. Nothing checks whether a VM still
 * has the volume attached as its CD.
 */
function deleteVolume(c: Ctx): unknown {
  const { core } = c;
  const storeParam = str(c.params.storage);
  const volume = String(c.params.volume);
  let volid: string;
  let storeid: string;
  if (volume.includes(':')) {
    const vt = volumeType(volume);
    if (!vt) throw new ParamError({ volume: `unable to parse volume ID '${volume}'` });
    if (storeParam && vt.storage !== storeParam) throw new ParamError({ volume: `storage ID mismatch (${vt.storage} != ${storeParam})` });
    volid = volume;
    storeid = vt.storage;
  } else {
    if (!storeParam) throw new ParamError({ volume: 'no storage specified - incomplete volume ID' });
    volid = `${storeParam}:${volume}`;
    storeid = storeParam;
  }
  const scfg = storageOf(core, storeid);
  const vt = volumeType(volid)!;
  if (vt.vtype === 'backup') die('the proxmox test double does not simulate deleting backups');
  core.acl.check(c.user, `/storage/${storeid}`, ['Datastore.Allocate']);
  return core.startTask('imgdel', storeid, c.user, (t) => {
    const v = findVolume(core, volid);
    if (!v) {
      if (scfg.path === undefined) die(`volume '${volid}' does not exist`); // (inferred) lvremove/zfs destroy fail
      const rel = vt.vtype === 'images' ? `images/${vt.name}` : `${DIRS[vt.vtype] ?? vt.vtype}/${vt.name.replace(/^[^/]+\//, '')}`;
      t.warn(`disk image '${scfg.path}/${rel}' does not exist`);
    } else {
      core.inv.volumes = core.inv.volumes.filter((x) => x !== v);
      scfg.used -= v.size;
      scfg.avail += v.size;
    }
    t.log(`Removed volume '${volid}'`);
  });
}

/** pve-storage API2/Storage/Status.pm download_url + pve-common Tools.pm download_file_from_url */
function downloadUrl(c: Ctx): unknown {
  const { core } = c;
  const storage = String(c.params.storage);
  const scfg = storageOf(core, storage);
  if (scfg.enabled === 0) die(`storage '${storage}' is disabled`);
  if (scfg.path === undefined) die(`can't upload to storage type '${scfg.type}', not a file based storage!`);
  const content = String(c.params.content);
  const url = String(c.params.url);
  if (!scfg.content.includes(content)) die(`storage '${storage}' is not configured for content-type '${content}'`);
  const filename = String(c.params.filename).replace(/\n$/, '').replace(/^.*[/\\]/, '').replace(/[^a-zA-Z0-9_.-]/g, '_');
  let format: string;
  if (content === 'iso') {
    if (!/[^/]+\.(?:iso|img)$/i.test(filename)) throw new ParamError({ filename: 'wrong file extension' });
    format = 'iso';
  } else if (content === 'vztmpl') {
    const m = /[^/]+\.(tar(?!\.)|tar\.(gz|xz|zst|bz2))$/i.exec(filename);
    if (!m) throw new ParamError({ filename: 'wrong file extension' });
    format = m[2] ? `t${m[2].replace('gz', 'gz')}` : 'tar';
  } else if (content === 'import') {
    const m = /[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$/.exec(filename);
    if (!m) throw new ParamError({ filename: 'invalid filename or wrong extension' });
    format = m[1]!;
  } else {
    throw new ParamError({ content: `upload content-type '${content}' is not allowed` });
  }
  const dest = `${scfg.path}/${DIRS[content]}/${filename}`;
  const volid = `${storage}:${content}/${filename}`;
  const checksum = str(c.params.checksum);
  const algo = str(c.params['checksum-algorithm']) as 'md5' | 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512' | undefined;
  const compression = str(c.params.compression);
  return core.startTask('download', encodeTaskId(filename), c.user, (t) => {
    if (compression) {
      if (content !== 'iso') die(`decompression not supported for ${content}`);
      if (!['gz', 'lzo', 'zst', 'bz2'].includes(compression)) die('no decompression method found');
    }
    t.log(`downloading ${url} to ${dest}`);
    const remote = core.inv.remoteFiles[url];
    const existing = findVolume(core, volid);
    if (existing) {
      if (algo && checksum) {
        const got = existing.checksums?.[algo] ?? 'unknown';
        if (got.toLowerCase() === checksum.toLowerCase()) {
          t.log('calculating checksum of existing file...OK, got correct file already, no need to download');
          return;
        }
        t.log('calculating checksum of existing file...');
        die(`checksum mismatch: got '${got}' != expect '${checksum}', aborting`);
      }
      die(`refusing to override existing file '${dest}'`);
    }
    const tmp = `${dest}.tmp_dwnl.${t.task.pid}`;
    if (!remote) die(`download failed: command 'wget --progress=dot:giga -O ${tmp} ${url}' failed: exit code 8`);
    const size = remote!.size ?? (remote!.bytes !== undefined ? Buffer.byteLength(remote!.bytes) : 0);
    t.log(`    ${Math.ceil(size / 1048576)}M ...`);
    const digests: Partial<Record<string, string>> = {};
    for (const a of ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'] as const) digests[a] = remoteFileDigest(url, remote!, a);
    if (algo && checksum) {
      const got = digests[algo]!;
      if (got.toLowerCase() !== checksum.toLowerCase()) {
        t.log('calculating checksum...');
        die(`checksum mismatch: got '${got}' != expect '${checksum}'`);
      }
      t.log('calculating checksum...OK, checksum verified');
    }
    let finalSize = size;
    if (compression) {
      t.log(`decompressing ${tmp} to ${dest}.tmp_dcom.${t.task.pid}`);
      finalSize = remote!.decompressedSize ?? size;
    }
    const vol: Volume & { checksums?: Record<string, string> } = { volid, storage, content, format, size: finalSize, ctime: Math.floor(Date.now() / 1000) };
    if (!compression) vol.checksums = digests as Record<string, string>;
    core.inv.volumes.push(vol);
    scfg.used += finalSize;
    scfg.avail -= finalSize;
    t.log(`download of '${url}' to '${dest}' finished`);
  });
}

/** PVE::Tools::encode_text: control/hi-bit characters, ':' and '%' escaped */
function encodeTaskId(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => (b < 0x20 || b > 0x7e || b === 0x3a || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b))).join('');
}

function accessPermissions(c: Ctx): unknown {
  const userid = str(c.params.userid) ?? c.user;
  const owner = userid.split('!')[0];
  if (userid !== c.user && owner !== c.user) c.core.acl.check(c.user, '/access', ['Sys.Audit']);
  const path = str(c.params.path);
  if (path) {
    const perms = c.core.acl.permissions(userid, path);
    return { [path]: perms };
  }
  return c.core.acl.effectivePermissions(userid);
}

function nextId(c: Ctx): unknown {
  const v = str(c.params.vmid);
  if (v) {
    if (!c.core.findVm(v)) return v;
    throw new ParamError({ vmid: `VM ${v} already exists` });
  }
  for (let i = 100; i < 1000000; i++) if (!c.core.findVm(i)) return String(i);
  return die('unable to get any free VMID in range [100, 1000000]');
}

function clusterResources(c: Ctx): unknown {
  const { core, user } = c;
  const type = str(c.params.type);
  const out: Record<string, unknown>[] = [];
  if (!type || type === 'vm') {
    for (const vm of [...core.inv.vms].sort((a, b) => a.vmid - b.vmid)) {
      if (user !== ROOT && !core.acl.check(user, `/vms/${vm.vmid}`, ['VM.Audit'], true)) continue;
      const s = vmStatus(core, vm, false);
      const r: Record<string, unknown> = { id: `qemu/${vm.vmid}`, type: 'qemu', vmid: vm.vmid, name: s.name, node: core.node, status: vm.status, template: vm.conf.template === '1' ? 1 : 0, uptime: s.uptime, cpu: s.cpu, maxcpu: s.cpus, mem: s.mem, maxmem: s.maxmem, disk: 0, maxdisk: s.maxdisk, diskread: s.diskread, diskwrite: s.diskwrite, netin: s.netin, netout: s.netout };
      if (vm.conf.lock) r.lock = vm.conf.lock;
      if (vm.conf.tags) r.tags = vm.conf.tags;
      out.push(r);
    }
  }
  if (!type || type === 'node') {
    out.push({ id: `node/${core.node}`, type: 'node', node: core.node, status: 'online', level: '', cpu: 0.0213, maxcpu: 4, mem: 2684354560, maxmem: 16603537408, disk: 9663676416, maxdisk: 100861726720, uptime: core.uptimeSeconds(), 'cgroup-mode': 2 });
  }
  if (!type || type === 'storage') {
    for (const s of core.inv.storages) {
      if (user !== ROOT && !core.acl.checkAny(user, `/storage/${s.storage}`, ['Datastore.Audit', 'Datastore.AllocateSpace'], true)) continue;
      out.push({ id: `storage/${core.node}/${s.storage}`, type: 'storage', storage: s.storage, node: core.node, status: 'available', plugintype: s.type, content: s.content.join(','), shared: s.shared, disk: s.used, maxdisk: s.total });
    }
  }
  return out;
}

// ---- resource mappings (pve-manager API2/Cluster/Mapping/{PCI,USB}.pm) -------------------------

function mappingDigest(core: DoubleCore, type: 'pci' | 'usb'): string {
  const text = core.inv.mappings
    .filter((m) => m.type === type)
    .map((m) => `${m.id}\n${m.description ? `\tdescription ${m.description}\n` : ''}${m.map.map((e) => `\tmap ${e}\n`).join('')}`)
    .join('\n');
  return createHash('sha1').update(text).digest('hex');
}

function mappingIndex(type: 'pci' | 'usb'): Handler {
  return (c) => {
    const { core, user } = c;
    const checkNode = str(c.params['check-node']);
    if (checkNode !== undefined && checkNode !== 'localhost' && checkNode !== core.node) die(type === 'pci' ? `wrong node to check - ${checkNode} != ${core.node}` : 'Wrong node to check');
    const digest = mappingDigest(core, type);
    return core.inv.mappings
      .filter((m) => m.type === type)
      .filter((m) => user === ROOT || core.acl.checkAny(user, `/mapping/${type}/${m.id}`, ['Mapping.Modify', 'Mapping.Use', 'Mapping.Audit'], true))
      .map((m) => {
        const entry: Record<string, unknown> = { ...structuredClone(m), digest };
        if (checkNode !== undefined) {
          const key = type === 'pci' ? 'checks' : 'errors';
          const list: { severity: string; message: string }[] = [];
          const entries = m.map.map((e) => parseMapEntry(core, type, e)).filter((e): e is Record<string, string> => !!e && e.node === (checkNode === 'localhost' ? core.node : checkNode));
          if (!entries.length) list.push({ severity: 'warning', message: `No mapping for node ${checkNode}.` });
          for (const e of entries) {
            try {
              if (type === 'pci') assertPciMappingValid(core, m.id, e, m);
              else assertUsbMappingValid(core, m.id, e);
            } catch (err) {
              list.push({ severity: 'error', message: `Invalid configuration: ${perlErr(err)}` });
            }
          }
          entry[key] = list;
        }
        return entry;
      });
  };
}

function mappingGet(type: 'pci' | 'usb'): Handler {
  return (c) => {
    const m = c.core.inv.mappings.find((x) => x.type === type && x.id === c.params.id);
    if (!m) die(`mapping '${String(c.params.id)}' not found`);
    const { id: _id, ...rest } = structuredClone(m!);
    return { ...rest, digest: mappingDigest(c.core, type) };
  };
}

function mappingCreate(type: 'pci' | 'usb'): Handler {
  return (c) => {
    const id = String(c.params.id);
    if (c.core.inv.mappings.some((m) => m.type === type && m.id === id)) die(`create hardware mapping failed: ${type} ID '${id}' already defined`);
    const m: Mapping = { id, type, map: (c.params.map as string[] | undefined) ?? [] };
    if (c.params.description !== undefined) m.description = String(c.params.description);
    if (type === 'pci') {
      if (c.params.mdev !== undefined) m.mdev = isTrue(c.params.mdev) ? 1 : 0;
      if (c.params['live-migration-capable'] !== undefined) m['live-migration-capable'] = isTrue(c.params['live-migration-capable']) ? 1 : 0;
    }
    c.core.inv.mappings.push(m);
    return null;
  };
}

function mappingUpdate(type: 'pci' | 'usb'): Handler {
  return (c) => {
    const id = String(c.params.id);
    const digest = str(c.params.digest);
    if (digest !== undefined && digest !== mappingDigest(c.core, type)) die('update hardware mapping failed: detected modified configuration - file changed by other user? Try again.');
    const m = c.core.inv.mappings.find((x) => x.type === type && x.id === id);
    if (!m) die(`update hardware mapping failed: ${type} ID '${id}' does not exist`);
    for (const k of splitList(str(c.params.delete) ?? '')) {
      if (k === 'map') die(`update hardware mapping failed: cannot delete required option '${k}'`);
      delete (m as unknown as Record<string, unknown>)[k];
    }
    if (c.params.map !== undefined) m!.map = c.params.map as string[];
    if (c.params.description !== undefined) m!.description = String(c.params.description);
    if (type === 'pci') {
      if (c.params.mdev !== undefined) m!.mdev = isTrue(c.params.mdev) ? 1 : 0;
      if (c.params['live-migration-capable'] !== undefined) m!['live-migration-capable'] = isTrue(c.params['live-migration-capable']) ? 1 : 0;
    }
    return null;
  };
}

function mappingDelete(type: 'pci' | 'usb'): Handler {
  return (c) => {
    c.core.inv.mappings = c.core.inv.mappings.filter((m) => !(m.type === type && m.id === c.params.id));
    return null;
  };
}

// ---- qemu -------------------------------------------------------------------------------------

function configParams(c: Ctx, exclude: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.params)) if (!exclude.includes(k) && v !== undefined) out[k] = str(v)!;
  return out;
}

/** qemu-server API2/Qemu.pm create_vm (no restore) */
function createVm(c: Ctx): unknown {
  const { core, user } = c;
  const vmid = vmidParam(c);
  const storage = str(c.params.storage);
  const pool = str(c.params.pool);
  const start = isTrue(c.params.start);
  if (c.params.archive !== undefined) throw new HttpError(501, "Method 'POST /nodes/{node}/qemu' with 'archive' (restore) is not implemented by the proxmox test double\n");
  const param = configParams(c, ['node', 'vmid', 'storage', 'pool', 'start', 'force', 'unique', 'bwlimit', 'live-restore', 'import-working-storage', 'ha-managed', 'archive']);
  if (param.cdrom !== undefined) {
    param.ide2 = `${param.cdrom},media=cdrom`;
    delete param.cdrom;
  }
  if (pool) die(`pool '${pool}' does not exist`);
  if (storage) core.acl.check(user, `/storage/${storage}`, ['Datastore.AllocateSpace']);
  if (isTrue(c.params['ha-managed'])) core.acl.check(user, '/', ['Sys.Console']);
  if (start) core.acl.check(user, `/vms/${vmid}`, ['VM.PowerMgmt']);
  if (user !== ROOT && !core.acl.check(user, `/vms/${vmid}`, ['VM.Allocate'], true)) throw new PermissionDenied();
  if (Object.keys(param).length) {
    checkStorageAccess(c, vmid, param, storage);
    checkVmModifyConfigPerm(c, vmid, Object.keys(param));
    checkSerialPerm(c, vmid, param);
    if (user !== ROOT) {
      for (const k of Object.keys(param)) if (/^usb\d+$/.test(k)) checkUsbPerm(c, vmid, k, param[k]!);
      for (const k of Object.keys(param)) if (/^hostpci\d+$/.test(k)) checkHostpciPerm(c, vmid, k, param[k]!);
    }
    checkBridgeAccess(c, param);
    checkDriveParams(core, param);
    addRandomMacs(core, param);
  }
  if (core.findVm(vmid)) die(`unable to create VM ${vmid} - VM ${vmid} already exists on node '${core.node}'`);
  const vm: Vm = { vmid: Number(vmid), conf: { lock: 'create' }, pending: {}, pendingDelete: new Map(), status: 'stopped' };
  core.inv.vms.push(vm);
  return core.startTask('qmcreate', vmid, user, (t) => {
    const createdVols: string[] = [];
    try {
      t.checkpoint();
      const conf: Record<string, string> = { ...param };
      conf.meta = `creation-qemu=${QEMU_VERSION},ctime=${Math.floor(Date.now() / 1000)}`;
      const created = createDisks(core, t, vm, param, createdVols);
      Object.assign(conf, created);
      if (!conf.boot) {
        const devs: string[] = [];
        const disk = DRIVE_ORDER.find((k) => conf[k] && !/^(efidisk|tpmstate)/.test(k) && !isCdrom(parseDrive(core, k, conf[k]!)));
        if (disk) devs.push(disk);
        const cd = DRIVE_ORDER.find((k) => conf[k] && !/^(efidisk|tpmstate)/.test(k) && isCdrom(parseDrive(core, k, conf[k]!)));
        if (cd) devs.push(cd);
        const net = Array.from({ length: 32 }, (_, i) => `net${i}`).find((k) => conf[k]);
        if (net) devs.push(net);
        conf.boot = devs.length ? `order=${devs.join(';')}` : '';
      }
      if (!conf.smbios1) conf.smbios1 = `uuid=${uuid()}`;
      if (!conf.vmgenid || conf.vmgenid === '1') conf.vmgenid = uuid();
      vm.conf = conf;
    } catch (e) {
      for (const v of createdVols) freeVolume(core, v);
      core.inv.vms = core.inv.vms.filter((x) => x !== vm);
      throw new PerlDie(`unable to create VM ${vmid} - ${perlErrorText(e)}`);
    }
    if (start) {
      t.log('Execute autostart');
      try {
        startVm(core, vm.vmid);
      } catch (e) {
        t.warn(perlErrorText(e));
      }
    }
  }, { checkpointInside: true });
}

function uuid(): string {
  return randomUUID();
}

function listVms(c: Ctx): unknown {
  return c.core.inv.vms.filter((vm) => c.user === ROOT || c.core.acl.check(c.user, `/vms/${vm.vmid}`, ['VM.Audit'], true)).map((vm) => vmStatus(c.core, vm, isTrue(c.params.full)));
}

/** $update_vm_api (POST async, PUT sync) */
function updateVm(sync: boolean): Handler {
  return (c) => {
    const { core, user } = c;
    const vmid = vmidParam(c);
    const digest = str(c.params.digest);
    if (isTrue(c.params.skiplock) && user !== ROOT) throw new ParamError({ skiplock: 'Only root may use this option.' });
    const deleteStr = str(c.params.delete);
    const revertStr = str(c.params.revert);
    const force = isTrue(c.params.force);
    const param = configParams(c, ['node', 'vmid', 'digest', 'background_delay', 'skip_cloud_init', 'import-working-storage', 'skiplock', 'delete', 'revert', 'force']);
    if (!deleteStr && !revertStr && !Object.keys(param).length) die('no options specified');
    if (param.cdrom !== undefined) {
      param.ide2 = `${param.cdrom},media=cdrom`;
      delete param.cdrom;
    }
    const revert = new Set<string>();
    for (const opt of splitList(revertStr ?? '')) {
      if (!isConfigOption(core.version, opt)) throw new ParamError({ revert: `unknown option '${opt}'` });
      if (param[opt] !== undefined) throw new ParamError({ delete: `you can't use '-${opt}' and -revert ${opt}' at the same time` });
      revert.add(opt);
    }
    const del: string[] = [];
    for (let opt of splitList(deleteStr ?? '')) {
      if (opt === 'cdrom') opt = 'ide2';
      if (param[opt] !== undefined) throw new ParamError({ delete: `you can't use '-${opt}' and -delete ${opt}' at the same time` });
      if (revert.has(opt)) throw new ParamError({ revert: `you can't use '-delete ${opt}' and -revert ${opt}' at the same time` });
      if (!isConfigOption(core.version, opt)) throw new ParamError({ delete: `unknown option '${opt}'` });
      del.push(opt);
    }
    checkDriveParams(core, param);
    for (const k of Object.keys(param)) {
      if (/^net\d+$/.test(k)) {
        const one: Record<string, string> = { [k]: param[k]! };
        addRandomMacs(core, one);
        param[k] = one[k]!;
      } else if (k === 'vmgenid' && param[k] === '1') param[k] = uuid();
    }
    checkVmModifyConfigPerm(c, vmid, del);
    checkVmModifyConfigPerm(c, vmid, Object.keys(param));
    checkStorageAccess(c, vmid, param);
    checkBridgeAccess(c, param);

    const loadAndCheck = (): Vm => {
      const vm = core.loadVm(vmid);
      if (digest && digest !== configDigest(vm)) die('checksum mismatch (file change by other user?)');
      if (vm.conf.lock && !isTrue(c.params.skiplock)) die(`VM is locked (${vm.conf.lock})`);
      if (param.memory || param.balloon !== undefined) {
        const memory = param.memory ?? vm.pending.memory ?? vm.conf.memory ?? '512';
        const maxmem = Number(memory.split(',')[0]!.replace(/^current=/, ''));
        const balloon = param.balloon !== undefined ? Number(param.balloon) : Number(vm.pending.balloon ?? vm.conf.balloon ?? 0);
        if (balloon && balloon > maxmem) die('balloon value too large (must be smaller than assigned memory)');
      }
      return vm;
    };

    const updatefn = (t?: TaskContext): void => {
      const vm = loadAndCheck();
      const paramarr = Object.keys(c.params)
        .filter((k) => !['node', 'vmid', 'digest', 'background_delay', 'skip_cloud_init', 'import-working-storage'].includes(k))
        .sort()
        .map((k) => `-${k} ${k === 'cipassword' ? '<hidden>' : str(c.params[k])}`);
      t?.log(`update VM ${vmid}: ${paramarr.join(' ')}`);
      for (const opt of revert) {
        if (vm.conf[opt] !== undefined) param[opt] = vm.conf[opt]!;
        else if (vm.pending[opt] !== undefined) del.push(opt);
      }
      for (const opt of del) {
        const val = vm.conf[opt] ?? vm.pending[opt];
        if (val === undefined) {
          const msg = `cannot delete '${opt}' - not set in current configuration!`;
          if (t) t.warn(msg);
          continue;
        }
        const isPendingVal = vm.pending[opt] !== undefined;
        delete vm.pending[opt];
        if (/^serial\d+$/.test(opt)) {
          if (val === 'socket') {
            if (user !== ROOT) core.acl.check(user, `/vms/${vmid}`, ['VM.Config.HWType']);
          } else if (user !== ROOT) die(`only root can delete '${opt}' config for real devices`);
        } else if (/^usb\d+$/.test(opt)) checkUsbPerm(c, vmid, opt, val);
        else if (/^hostpci\d+$/.test(opt)) checkHostpciPerm(c, vmid, opt, val);
        else if (isValidDriveName(opt) && user !== ROOT) {
          const d = parseDrive(core, opt, val);
          core.acl.check(user, `/vms/${vmid}`, [isCdrom(d) ? 'VM.Config.CDROM' : 'VM.Config.Disk']);
        }
        if (opt === 'tags' || /^unused\d+$/.test(opt)) {
          if (/^unused\d+$/.test(opt)) freeVolume(core, val);
          delete vm.conf[opt];
          continue;
        }
        if (isPendingVal && vm.conf[opt] === undefined) continue;
        vm.pendingDelete.set(opt, force);
      }
      for (const [opt, value] of Object.entries(param)) {
        if (vm.pending[opt] !== undefined && vm.pending[opt] === value) continue;
        if (isValidDriveName(opt)) {
          if (user !== ROOT) {
            for (const v of [vm.conf[opt], value]) {
              if (v === undefined) continue;
              const d = parseDrive(core, opt, v);
              core.acl.check(user, `/vms/${vmid}`, [isCdrom(d) ? 'VM.Config.CDROM' : 'VM.Config.Disk']);
            }
          }
          const created = createDisks(core, t, vm, { [opt]: value }, []);
          vm.pending[opt] = created[opt]!;
        } else if (/^serial\d+$/.test(opt)) {
          if ((vm.conf[opt] === undefined || vm.conf[opt] === 'socket') && value === 'socket') {
            if (user !== ROOT) core.acl.check(user, `/vms/${vmid}`, ['VM.Config.HWType']);
          } else if (user !== ROOT) die(`only root can modify '${opt}' config for real devices`);
          vm.pending[opt] = value;
        } else if (/^usb\d+$/.test(opt)) {
          if (vm.conf[opt]) checkUsbPerm(c, vmid, opt, vm.conf[opt]!);
          checkUsbPerm(c, vmid, opt, value);
          vm.pending[opt] = value;
        } else if (/^hostpci\d+$/.test(opt)) {
          if (vm.conf[opt]) checkHostpciPerm(c, vmid, opt, vm.conf[opt]!);
          checkHostpciPerm(c, vmid, opt, value);
          vm.pending[opt] = value;
        } else if (opt === 'boot') {
          const b = parsePropertyString({ keys: { legacy: { type: 'string', optional: 1, default_key: 1 }, order: { type: 'string', optional: 1 } } }, value, opt);
          if (b.order) {
            const devs = splitList(b.order);
            for (const dev of devs) {
              const exists = vm.conf[dev] ?? vm.pending[dev] ?? param[dev];
              if (!exists || del.includes(dev)) die(`invalid bootorder: device '${dev}' does not exist'`);
            }
            vm.pending[opt] = `order=${devs.join(';')}`;
          } else vm.pending[opt] = value;
        } else {
          vm.pending[opt] = value;
        }
        vm.pendingDelete.delete(opt);
      }
      cleanupPending(vm);
      if (!Object.keys(vm.pending).length && !vm.pendingDelete.size) return;
      if (vm.status === 'running') hotplugPending(core, vm);
      else applyPending(core, vm);
    };

    loadAndCheck();
    if (sync) {
      updatefn(undefined);
      return null;
    }
    return core.startTask('qmconfig', vmid, user, (t) => updatefn(t));
  };
}

function vmConfig(c: Ctx): unknown {
  const vm = c.core.loadVm(vmidParam(c));
  if (str(c.params.snapshot)) die(`snapshot '${str(c.params.snapshot)}' does not exist`);
  const conf = isTrue(c.params.current) ? { ...vm.conf } : configWithPending(vm);
  if (conf.cipassword) conf.cipassword = '**********';
  const out = typedConfig(c.core, conf);
  out.digest = configDigest(vm);
  return out;
}

function vmPending(c: Ctx): unknown {
  const { core } = c;
  const vm = core.loadVm(vmidParam(c));
  const res: Record<string, unknown>[] = [];
  const conf: Record<string, string> = { ...vm.conf, digest: configDigest(vm) };
  if (conf.cipassword) conf.cipassword = '**********';
  for (const k of Object.keys(conf).sort()) {
    const item: Record<string, unknown> = { key: k, value: k === 'digest' ? conf[k] : typedConfigValue(core.version, k, conf[k]!) };
    if (vm.pending[k] !== undefined) item.pending = k === 'cipassword' ? '********** ' : typedConfigValue(core.version, k, vm.pending[k]!);
    if (vm.pendingDelete.has(k)) item.delete = vm.pendingDelete.get(k) ? 2 : 1;
    res.push(item);
  }
  for (const k of Object.keys(vm.pending).sort()) {
    if (conf[k] !== undefined) continue;
    res.push({ key: k, pending: typedConfigValue(core.version, k, vm.pending[k]!) });
  }
  for (const [k, f] of vm.pendingDelete) if (conf[k] === undefined) res.push({ key: k, delete: f ? 2 : 1 });
  return res;
}

function vmStatusCurrent(c: Ctx): unknown {
  const vm = c.core.loadVm(vmidParam(c));
  const s = vmStatus(c.core, vm, true);
  const agent = vm.conf.agent ? parsePropertyString({ keys: fmtOf(c.core, 'agent') }, vm.conf.agent, 'agent') : undefined;
  if (agent?.enabled === '1') s.agent = 1;
  s.ha = { managed: 0 };
  return s;
}

function rootOnlyParams(c: Ctx, names: string[]): void {
  for (const n of names) if (c.params[n] !== undefined && str(c.params[n]) && str(c.params[n]) !== '0' && c.user !== ROOT) throw new ParamError({ [n]: 'Only root may use this option.' });
}

function vmStart(c: Ctx): unknown {
  rootOnlyParams(c, ['stateuri', 'skiplock', 'migratedfrom', 'migration_type', 'migration_network', 'targetstorage', 'force-cpu', 'with-conntrack-state', 'nets-host-mtu']);
  if (str(c.params.targetstorage) && !str(c.params.migratedfrom)) throw new ParamError({ targetstorage: 'targetstorage can only by used with migratedfrom.' });
  const vmid = Number(vmidParam(c));
  return c.core.startTask('qmstart', String(vmid), c.user, () => startVm(c.core, vmid));
}

function vmStop(type: 'qmstop' | 'qmshutdown'): Handler {
  return (c) => {
    rootOnlyParams(c, ['skiplock', 'keepActive', ...(type === 'qmstop' ? ['migratedfrom'] : [])]);
    const vmid = Number(vmidParam(c));
    if (type === 'qmshutdown') {
      const vm = c.core.findVm(vmid);
      if (vm?.conf.lock === 'suspended' && !isTrue(c.params.forceStop)) die('VM is paused - cannot shutdown');
    }
    return c.core.startTask(type, String(vmid), c.user, () => stopVm(c.core, vmid));
  };
}

function vmReboot(c: Ctx): unknown {
  const vmid = Number(vmidParam(c));
  const vm = c.core.loadVm(vmid);
  if (vm.status !== 'running') die(`VM ${vmid} not running`);
  return c.core.startTask('qmreboot', String(vmid), c.user, () => {
    stopVm(c.core, vmid);
    startVm(c.core, vmid);
  });
}

function vmDestroy(c: Ctx): unknown {
  const { core } = c;
  const vmid = Number(vmidParam(c));
  if (isTrue(c.params.skiplock) && c.user !== ROOT) throw new ParamError({ skiplock: 'Only root may use this option.' });
  const early = (): Vm => {
    const vm = core.loadVm(vmid);
    if (vm.conf.protection === '1') die(`can't remove VM ${vmid} - protection mode enabled`);
    if (vm.status === 'running') die(`VM ${vmid} is running - destroy failed`);
    return vm;
  };
  early();
  return core.startTask('qmdestroy', String(vmid), c.user, (t) => {
    const vm = early();
    if (vm.conf.lock && !isTrue(c.params.skiplock)) die(`VM is locked (${vm.conf.lock})`);
    for (const v of core.inv.volumes.filter((x) => x.vmid === vmid)) {
      freeVolume(core, v.volid);
      t.log(`  Logical volume "${v.volid.split(':')[1]}" successfully removed.`);
    }
    core.inv.vms = core.inv.vms.filter((x) => x !== vm);
    t.log(`purging VM ${vmid} from related configurations..`);
  });
}

function agentCall(c: Ctx): unknown {
  const vm = c.core.loadVm(vmidParam(c));
  if (vm.conf.agent === undefined) die('No QEMU guest agent configured');
  if (vm.status !== 'running') die(`VM ${vm.vmid} is not running`);
  return die('QEMU guest agent is not running');
}

// ---- tasks (pve-manager API2/Tasks.pm) ---------------------------------------------------------

const UPID_RE = /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

function taskUserCheck(c: Ctx, taskUser: string): void {
  if (c.user === ROOT) return;
  const owner = taskUser.includes('!') ? taskUser.split('!')[0] : undefined;
  if (c.user === taskUser || (owner && c.user === owner)) return;
  c.core.acl.check(c.user, `/nodes/${String(c.params.node)}`, ['Sys.Audit']);
}

function taskStatus(c: Ctx): unknown {
  const upid = String(c.params.upid);
  if (!UPID_RE.test(upid)) throw new ParamError({ upid: 'unable to parse worker upid' });
  const rt = c.core.tasks.get(upid);
  if (!rt) throw new ParamError({ upid: 'no such task' });
  const t = rt.task;
  taskUserCheck(c, t.user);
  const [user, tokenid] = t.user.split('!') as [string, string | undefined];
  const out: Record<string, unknown> = { upid, node: t.node, pid: t.pid, pstart: t.pstart, starttime: t.starttime, type: t.type, id: t.id, user };
  if (tokenid) out.tokenid = tokenid;
  out.status = t.status;
  if (t.status === 'stopped') out.exitstatus = t.exitstatus;
  return out;
}

function taskLog(c: Ctx): unknown {
  const upid = String(c.params.upid);
  if (!UPID_RE.test(upid)) throw new ParamError({ upid: 'unable to parse worker upid' });
  const rt = c.core.tasks.get(upid);
  if (rt) taskUserCheck(c, rt.task.user);
  else {
    const user = UPID_RE.exec(upid)![8]!;
    taskUserCheck(c, user);
  }
  if (isTrue(c.params.download)) {
    if (c.params.start !== undefined || c.params.limit !== undefined) die("'download' cannot be used together with 'start' or 'limit' parameters");
    throw new HttpError(501, 'task log download is not implemented by the proxmox test double\n');
  }
  const start = c.params.start !== undefined ? Number(c.params.start) : 0;
  const limit = c.params.limit !== undefined ? Number(c.params.limit) : 50;
  if (!rt) {
    c.result.total = 1;
    return [{ n: 1, t: 'unable to open file - No such file or directory' }];
  }
  const lines = rt.task.log;
  const out: { n: number; t: string }[] = [];
  let left = limit;
  lines.forEach((t, i) => {
    if (i < start) return;
    if (limit !== 0) {
      if (left <= 0) return;
      left--;
    }
    out.push({ n: i + 1, t });
  });
  let count = lines.length;
  if (!count) {
    count = 1;
    out.push({ n: 1, t: 'no content' });
  }
  c.result.total = count;
  return out;
}

// ---- upload, termproxy, vncwebsocket -----------------------------------------------------------

/** pve-storage API2/Storage/Status.pm upload (the file arrives spooled by the HTTP server, upload.ts) */
function uploadFile(c: Ctx): unknown {
  const { core } = c;
  const storage = String(c.params.storage);
  const scfg = storageOf(core, storage);
  if (scfg.enabled === 0) die(`storage '${storage}' is disabled`);
  if (scfg.path === undefined) die(`can't upload to storage type '${scfg.type}'`);
  const content = String(c.params.content);
  const tmp = str(c.params.tmpfilename);
  if (!tmp) die('missing temporary file name');
  const data = spoolOf(core).get(tmp!);
  if (!data) die(`temporary file '${tmp}' does not exist`);
  // normalize_content_filename
  const filename = String(c.params.filename).replace(/\n$/, '').replace(/^.*[/\\]/, '').replace(/[^a-zA-Z0-9_.-]/g, '_');
  let format: string;
  if (content === 'iso') {
    if (!/[^/]+\.(?:iso|img)$/i.test(filename)) throw new ParamError({ filename: 'wrong file extension' });
    format = 'iso';
  } else if (content === 'vztmpl') {
    const m = /[^/]+\.(tar\.(gz|xz|zst|bz2))$/i.exec(filename);
    if (!m) throw new ParamError({ filename: 'wrong file extension' });
    format = `t${m[2]}`;
  } else if (content === 'import') {
    const m = /[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$/.exec(filename);
    if (!m) throw new ParamError({ filename: 'invalid filename or wrong extension' });
    format = m[1]!;
  } else {
    throw new ParamError({ content: `upload content type '${content}' not allowed` });
  }
  if (!scfg.content.includes(content)) die(`storage '${storage}' does not support '${content}' content`);
  const dest = `${scfg.path}/${DIRS[content]}/${filename}`;
  const volid = `${storage}:${content}/${filename}`;
  const checksum = str(c.params.checksum);
  const algo = str(c.params['checksum-algorithm']);
  return core.startTask('imgcopy', '', c.user, (t) => {
    t.log(`starting file import from: ${tmp}`);
    if (algo && checksum) {
      const got = createHash(algo).update(data!).digest('hex');
      if (got.toLowerCase() !== checksum.toLowerCase()) {
        t.log('calculating checksum...');
        spoolOf(core).delete(tmp!);
        die(`checksum mismatch: got '${got}' != expect '${checksum}'`);
      }
      t.log('calculating checksum...OK, checksum verified');
    }
    t.log(`target node: ${core.node}`);
    t.log(`target file: ${dest}`);
    t.log(`file size is: ${data!.length}`);
    t.log(`command: cp -- ${tmp} ${dest}`);
    spoolOf(core).delete(tmp!);
    // "we simply overwrite the destination file if it already exists"
    const old = findVolume(core, volid);
    if (old) {
      core.inv.volumes = core.inv.volumes.filter((v) => v !== old);
      scfg.used -= old.size;
      scfg.avail += old.size;
    }
    core.inv.volumes.push({ volid, storage, content, format, size: data!.length, ctime: Math.floor(Date.now() / 1000), bytes: Buffer.from(data!) });
    scfg.used += data!.length;
    scfg.avail -= data!.length;
    t.log('finished file import successfully');
  });
}

/** qemu-server API2/Qemu.pm resize_vm: a `resize` task; the checks run in the worker, under the config lock. */
function vmResize(c: Ctx): unknown {
  const { core, user } = c;
  const vmid = vmidParam(c);
  if (isTrue(c.params.skiplock) && user !== ROOT) throw new ParamError({ skiplock: 'Only root may use this option.' });
  const digest = str(c.params.digest);
  const disk = String(c.params.disk);
  const sizeStr = String(c.params.size);
  return core.startTask('resize', vmid, user, () => {
    const vm = core.loadVm(vmid);
    if (digest && digest !== configDigest(vm)) die('checksum mismatch (file change by other user?)');
    if (vm.conf.lock && !isTrue(c.params.skiplock)) die(`VM is locked (${vm.conf.lock})`);
    if (!vm.conf[disk]) die(`disk '${disk}' does not exist`);
    const d = parseDrive(core, disk, vm.conf[disk]!);
    const volid = d.file;
    if (!volid) die(`disk '${disk}' has no associated volume`);
    if (isCdrom(d)) die("you can't resize a cdrom");
    const vt = volumeType(volid!);
    const storeid = vt?.storage ?? volid!.split(':')[0]!;
    core.acl.check(user, `/storage/${storeid}`, ['Datastore.AllocateSpace']);
    const vol = findVolume(core, volid!);
    if (!vol) die(`Could not determine current size of volume '${volid}'`);
    const m = /^(\+)?(\d+(\.\d+)?)([KMGT])?$/.exec(sizeStr);
    if (!m) die('internal error');
    const unit: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
    let newSize = Number(m![2]) * (m![4] ? unit[m![4]]! : 1);
    if (m![1]) newSize += vol!.size;
    newSize = Math.floor(newSize);
    if (newSize < vol!.size) die('shrinking disks is not supported');
    if (newSize === vol!.size) return;
    const scfg = storageOf(core, vol!.storage);
    if (scfg.path !== undefined) {
      scfg.used += newSize - vol!.size;
      scfg.avail -= newSize - vol!.size;
    }
    vol!.size = newSize;
    d.size = String(newSize);
    vm.conf[disk] = printDrive(core, disk, d);
  });
}

/** termproxy and vncwebsocket answer 501 as before unless the double simulates consoles. */
function consoleNotSimulated(c: Ctx, what: string): never {
  const msg = `${notImplemented(c.method, `/nodes/${String(c.params.node)}/qemu/${String(c.params.vmid)}/${what}`)} by the proxmox test double`;
  throw new HttpError(501, msg);
}

function termproxy(c: Ctx): unknown {
  const hub = consoleHubOf(c.core);
  if (!hub) return consoleNotSimulated(c, 'termproxy');
  return hub.termproxy(c.user, Number(vmidParam(c)), str(c.params.serial));
}

/** The plain GET (no websocket upgrade): verify_vnc_ticket, then { port }. */
function vncwebsocket(c: Ctx): unknown {
  const hub = consoleHubOf(c.core);
  if (!hub) return consoleNotSimulated(c, 'vncwebsocket');
  const vmid = Number(vmidParam(c));
  c.core.loadVm(vmid);
  if (!hub.verify(c.user, vmid, Number(c.params.port), String(c.params.vncticket))) throw new HttpError(401, 'permission denied - invalid vnc ticket\n');
  return { port: String(c.params.port) };
}

// ---- routing table ----------------------------------------------------------------------------

export const handlers: Record<string, Record<string, Handler>> = {
  '/version': { GET: (c) => versionData(c.core.version) },
  '/nodes': {
    GET: (c) => {
      const audit = c.user === ROOT || c.core.acl.check(c.user, `/nodes/${c.core.node}`, ['Sys.Audit'], true);
      const base: Record<string, unknown> = { node: c.core.node, status: 'online', id: `node/${c.core.node}`, type: 'node', level: '', ssl_fingerprint: c.core.tls.fingerprint };
      if (audit) Object.assign(base, { cpu: 0.0213, maxcpu: 4, mem: 2684354560, maxmem: 16603537408, disk: 9663676416, maxdisk: 100861726720, uptime: c.core.uptimeSeconds() });
      return [base];
    },
  },
  '/nodes/{node}/status': { GET: nodeStatus },
  '/nodes/{node}/version': { GET: (c) => versionData(c.core.version) },
  '/nodes/{node}/hardware': { GET: () => [{ type: 'pci' }, { type: 'usb' }] },
  '/nodes/{node}/hardware/pci': { GET: listPci },
  '/nodes/{node}/hardware/usb': { GET: (c) => structuredClone(c.core.inv.usb) },
  '/nodes/{node}/network': { GET: listNetwork, POST: createIface, PUT: applyNetwork, DELETE: revertNetwork },
  '/nodes/{node}/network/{iface}': { GET: readIface, PUT: updateIface, DELETE: deleteIface },
  '/nodes/{node}/storage': { GET: listStorage },
  '/nodes/{node}/storage/{storage}/status': { GET: storageStatus },
  '/nodes/{node}/storage/{storage}/content': { GET: storageContent },
  '/nodes/{node}/storage/{storage}/content/{volume}': { DELETE: deleteVolume },
  '/nodes/{node}/storage/{storage}/download-url': { POST: downloadUrl },
  '/nodes/{node}/storage/{storage}/upload': { POST: uploadFile },
  '/nodes/{node}/qemu/{vmid}/termproxy': { POST: termproxy },
  '/nodes/{node}/qemu/{vmid}/vncwebsocket': { GET: vncwebsocket },
  '/nodes/{node}/certificates/info': { GET: (c) => structuredClone(c.core.tls.infos) },
  '/access/permissions': { GET: accessPermissions },
  '/cluster/nextid': { GET: nextId },
  '/cluster/resources': { GET: clusterResources },
  '/cluster/mapping': { GET: () => [{ name: 'dir' }, { name: 'pci' }, { name: 'usb' }] },
  '/cluster/mapping/pci': { GET: mappingIndex('pci'), POST: mappingCreate('pci') },
  '/cluster/mapping/usb': { GET: mappingIndex('usb'), POST: mappingCreate('usb') },
  '/cluster/mapping/pci/{id}': { GET: mappingGet('pci'), PUT: mappingUpdate('pci'), DELETE: mappingDelete('pci') },
  '/cluster/mapping/usb/{id}': { GET: mappingGet('usb'), PUT: mappingUpdate('usb'), DELETE: mappingDelete('usb') },
  '/nodes/{node}/qemu': { GET: listVms, POST: createVm },
  '/nodes/{node}/qemu/{vmid}': {
    GET: () => ['config', 'cloudinit', 'pending', 'status', 'unlink', 'vncproxy', 'termproxy', 'migrate', 'resize', 'move', 'rrd', 'rrddata', 'monitor', 'agent', 'snapshot', 'spiceproxy', 'sendkey', 'firewall', 'mtunnel', 'remote_migrate'].map((subdir) => ({ subdir })),
    DELETE: vmDestroy,
  },
  '/nodes/{node}/qemu/{vmid}/config': { GET: vmConfig, POST: updateVm(false), PUT: updateVm(true) },
  '/nodes/{node}/qemu/{vmid}/pending': { GET: vmPending },
  '/nodes/{node}/qemu/{vmid}/resize': { PUT: vmResize },
  '/nodes/{node}/qemu/{vmid}/status': { GET: () => [{ subdir: 'current' }, { subdir: 'start' }, { subdir: 'stop' }, { subdir: 'reset' }, { subdir: 'shutdown' }, { subdir: 'suspend' }, { subdir: 'reboot' }] },
  '/nodes/{node}/qemu/{vmid}/status/current': { GET: vmStatusCurrent },
  '/nodes/{node}/qemu/{vmid}/status/start': { POST: vmStart },
  '/nodes/{node}/qemu/{vmid}/status/stop': { POST: vmStop('qmstop') },
  '/nodes/{node}/qemu/{vmid}/status/shutdown': { POST: vmStop('qmshutdown') },
  '/nodes/{node}/qemu/{vmid}/status/reboot': { POST: vmReboot },
  '/nodes/{node}/tasks/{upid}/status': { GET: taskStatus },
  '/nodes/{node}/tasks/{upid}/log': { GET: taskLog },
};

for (const p of ['ping', 'network-get-interfaces', 'get-osinfo', 'get-host-name', 'info', 'get-fsinfo', 'get-time', 'get-timezone', 'get-users', 'get-vcpus', 'get-memory-blocks', 'get-memory-block-info', 'fsfreeze-status', 'exec', 'exec-status', 'file-read', 'file-write', 'shutdown', 'fstrim', 'fsfreeze-freeze', 'fsfreeze-thaw', 'suspend-disk', 'suspend-ram', 'suspend-hybrid', 'set-user-password']) {
  const path = `/nodes/{node}/qemu/{vmid}/agent/${p}`;
  handlers[path] = { GET: agentCall, POST: agentCall };
}

