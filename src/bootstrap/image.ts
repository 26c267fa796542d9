/**
 * A small ISO 9660 image writer: the seed medium that OPNsense's importer mounts as `cd0`
 * (`opnsense-importer`: a whole device with no partitions is tried as `cd9660`).
 *
 * No kept npm package writes ISO 9660 or a partitioned FAT image (checked in the registry's package
 * list: only `fatfs`, which needs an already formatted volume), so this is written from ECMA-119
 * (ISO 9660), SUSP 1.12 and RRIP 1.12, with only what a handful of small files need:
 * - ISO level 1 names (`CONF`, `CONFIG.XML;1`) for any reader, plus Rock Ridge `NM` names so the
 *   files read back as `conf/config.xml` exactly, and `PX` modes;
 * - Rock Ridge is announced the way FreeBSD's cd9660 looks for it (`cd9660_rrip_offset`): an `SP`
 *   entry first in the root's "." record and an `ER` entry naming `RRIP_1991A` in the same record;
 * - primary volume descriptor, terminator, both path tables, one extent per directory and file.
 * Output is deterministic for a given date (the tests compare bytes).
 */
export interface IsoFile {
  /** Slash-separated, e.g. `conf/config.xml`. */
  readonly path: string;
  readonly data: Buffer;
}

export interface IsoOptions {
  /** Up to 32 characters of A–Z, 0–9 and `_`. */
  readonly volumeId?: string;
  /** Recorded as the creation time of the volume and of every entry. */
  readonly date?: Date;
}

const SECTOR = 2048;

export class IsoWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IsoWriteError';
  }
}

interface DirNode {
  kind: 'dir';
  name: string;
  isoName: string;
  children: Node[];
  parent?: DirNode;
  sector: number;
  size: number;
  /** Number in the path table (root = 1). */
  number: number;
}
interface FileNode {
  kind: 'file';
  name: string;
  isoName: string;
  data: Buffer;
  sector: number;
}
type Node = DirNode | FileNode;

// ---- number and text encodings (ECMA-119 §7) ------------------------------------------------------

function both16(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(n, 0);
  b.writeUInt16BE(n, 2);
  return b;
}
function both32(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(n, 0);
  b.writeUInt32BE(n, 4);
  return b;
}
function padded(text: string, length: number): Buffer {
  const b = Buffer.alloc(length, 0x20);
  b.write(text.slice(0, length), 'ascii');
  return b;
}
/** §9.1.5: seven bytes, years since 1900, GMT offset 0. */
function recordDate(d: Date): Buffer {
  return Buffer.from([d.getUTCFullYear() - 1900, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), 0]);
}
/** §8.4.26.1: "YYYYMMDDHHMMSScc" plus the GMT offset byte. */
function volumeDate(d: Date | undefined): Buffer {
  if (!d) return Buffer.concat([Buffer.from('0000000000000000', 'ascii'), Buffer.from([0])]);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const s = `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}00`;
  return Buffer.concat([Buffer.from(s, 'ascii'), Buffer.from([0])]);
}

/** ISO level 1 name: 8.3, upper case d-characters; files get the `;1` version. */
function isoName(name: string, isDir: boolean): string {
  const upper = name.toUpperCase().replace(/[^A-Z0-9_.]/g, '_');
  if (isDir) {
    if (upper.includes('.') || upper.length > 8) throw new IsoWriteError(`directory name '${name}' does not fit ISO level 1 (8 characters, no dot)`);
    return upper;
  }
  const dot = upper.lastIndexOf('.');
  const base = dot < 0 ? upper : upper.slice(0, dot);
  const ext = dot < 0 ? '' : upper.slice(dot + 1);
  if (!base.length || base.length > 8 || ext.length > 3 || base.includes('.')) throw new IsoWriteError(`file name '${name}' does not fit ISO level 1 (8.3)`);
  return `${base}.${ext};1`;
}

// ---- SUSP / Rock Ridge entries ------------------------------------------------------------------

function susp(sig: string, version: number, body: Buffer): Buffer {
  const head = Buffer.from([sig.charCodeAt(0), sig.charCodeAt(1), 4 + body.length, version]);
  return Buffer.concat([head, body]);
}
/** SUSP SP: "the system use sharing protocol is in use", check bytes BE EF, nothing skipped. */
const SP = susp('SP', 1, Buffer.from([0xbe, 0xef, 0]));
/** SUSP ER naming the Rock Ridge extension. */
function er(): Buffer {
  const id = Buffer.from('RRIP_1991A', 'ascii');
  const des = Buffer.from('ROCK RIDGE POSIX NAMES AND MODES', 'ascii');
  const src = Buffer.from('SEE RRIP 1.12', 'ascii');
  return susp('ER', 1, Buffer.concat([Buffer.from([id.length, des.length, src.length, 1]), id, des, src]));
}
/** RRIP PX (the 36-byte form of RRIP 1.10/1991A): mode, links, uid, gid. */
function px(mode: number, links: number): Buffer {
  return susp('PX', 1, Buffer.concat([both32(mode), both32(links), both32(0), both32(0)]));
}
function nm(name: string): Buffer {
  return susp('NM', 1, Buffer.concat([Buffer.from([0]), Buffer.from(name, 'utf8')]));
}

const DIR_MODE = 0o040555;
const FILE_MODE = 0o100444;

// ---- directory records (§9.1) ---------------------------------------------------------------------

function dirRecord(id: Buffer, sector: number, size: number, isDir: boolean, date: Date, systemUse: Buffer): Buffer {
  const idPad = id.length % 2 === 0 ? 1 : 0;
  let len = 33 + id.length + idPad + systemUse.length;
  const tail = len % 2;
  len += tail;
  if (len > 255) throw new IsoWriteError('directory record too long');
  const r = Buffer.alloc(len);
  r[0] = len;
  r[1] = 0;
  both32(sector).copy(r, 2);
  both32(size).copy(r, 10);
  recordDate(date).copy(r, 18);
  r[25] = isDir ? 2 : 0;
  both16(1).copy(r, 28);
  r[32] = id.length;
  id.copy(r, 33);
  systemUse.copy(r, 33 + id.length + idPad);
  return r;
}

function buildTree(files: readonly IsoFile[]): DirNode {
  const root: DirNode = { kind: 'dir', name: '', isoName: '', children: [], sector: 0, size: 0, number: 1 };
  for (const f of files) {
    const parts = f.path.split('/').filter(Boolean);
    if (!parts.length) throw new IsoWriteError(`empty path '${f.path}'`);
    let dir = root;
    parts.slice(0, -1).forEach((p) => {
      let next = dir.children.find((c): c is DirNode => c.kind === 'dir' && c.name === p);
      if (!next) {
        next = { kind: 'dir', name: p, isoName: isoName(p, true), children: [], parent: dir, sector: 0, size: 0, number: 0 };
        dir.children.push(next);
      }
      dir = next;
    });
    const name = parts[parts.length - 1]!;
    if (dir.children.some((c) => c.name === name)) throw new IsoWriteError(`two entries named '${f.path}'`);
    dir.children.push({ kind: 'file', name, isoName: isoName(name, false), data: f.data, sector: 0 });
  }
  const sortTree = (d: DirNode) => {
    d.children.sort((a, b) => (a.isoName < b.isoName ? -1 : a.isoName > b.isoName ? 1 : 0));
    const iso = new Set<string>();
    for (const c of d.children) {
      if (iso.has(c.isoName)) throw new IsoWriteError(`two names map to the ISO name '${c.isoName}' in '${d.name || '/'}'`);
      iso.add(c.isoName);
      if (c.kind === 'dir') sortTree(c);
    }
  };
  sortTree(root);
  return root;
}

/** Directories in path-table order: breadth first, by parent number then name (§9.4). */
function directoriesInOrder(root: DirNode): DirNode[] {
  const out: DirNode[] = [root];
  for (let i = 0; i < out.length; i++) {
    for (const c of out[i]!.children) if (c.kind === 'dir') out.push(c);
  }
  out.forEach((d, i) => (d.number = i + 1));
  return out;
}

function recordsOf(dir: DirNode, root: DirNode, date: Date): Buffer[] {
  const isRoot = dir === root;
  const parent = dir.parent ?? dir;
  const subdirs = (d: DirNode) => d.children.filter((c) => c.kind === 'dir').length;
  const selfUse = isRoot ? Buffer.concat([SP, px(DIR_MODE, 2 + subdirs(dir)), er()]) : px(DIR_MODE, 2 + subdirs(dir));
  const out = [dirRecord(Buffer.from([0]), dir.sector, dir.size, true, date, selfUse), dirRecord(Buffer.from([1]), parent.sector, parent.size, true, date, px(DIR_MODE, 2 + subdirs(parent)))];
  for (const c of dir.children) {
    const id = Buffer.from(c.isoName, 'ascii');
    if (c.kind === 'dir') out.push(dirRecord(id, c.sector, c.size, true, date, Buffer.concat([px(DIR_MODE, 2 + subdirs(c)), nm(c.name)])));
    else out.push(dirRecord(id, c.sector, c.data.length, false, date, Buffer.concat([px(FILE_MODE, 1), nm(c.name)])));
  }
  return out;
}

/** Bytes a directory's records take, none crossing a sector boundary (§6.8.1.1). */
function extentSize(records: readonly Buffer[]): number {
  let used = 0;
  for (const r of records) {
    if ((used % SECTOR) + r.length > SECTOR) used += SECTOR - (used % SECTOR);
    used += r.length;
  }
  return Math.ceil(used / SECTOR) * SECTOR;
}

function pathTable(dirs: readonly DirNode[], bigEndian: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const d of dirs) {
    const id = d.number === 1 ? Buffer.from([0]) : Buffer.from(d.isoName, 'ascii');
    const r = Buffer.alloc(8 + id.length + (id.length % 2));
    r[0] = id.length;
    if (bigEndian) {
      r.writeUInt32BE(d.sector, 2);
      r.writeUInt16BE((d.parent ?? d).number, 6);
    } else {
      r.writeUInt32LE(d.sector, 2);
      r.writeUInt16LE((d.parent ?? d).number, 6);
    }
    id.copy(r, 8);
    parts.push(r);
  }
  return Buffer.concat(parts);
}

export function buildIso9660(files: readonly IsoFile[], opts: IsoOptions = {}): Buffer {
  const date = opts.date ?? new Date();
  const volumeId = (opts.volumeId ?? 'DUALWAN_SEED').toUpperCase();
  if (!/^[A-Z0-9_]{1,32}$/.test(volumeId)) throw new IsoWriteError(`volume id '${volumeId}' must be 1–32 characters of A–Z, 0–9, _`);
  const root = buildTree(files);
  const dirs = directoriesInOrder(root);

  // Sizes first (records do not depend on sector numbers' values, only on their count).
  for (const d of dirs) d.size = extentSize(recordsOf(d, root, date));
  const ptSize = pathTable(dirs, false).length;
  const ptSectors = Math.ceil(ptSize / SECTOR);
  let next = 16 + 2; // PVD, terminator
  const lTable = next;
  next += ptSectors;
  const mTable = next;
  next += ptSectors;
  for (const d of dirs) {
    d.sector = next;
    next += d.size / SECTOR;
  }
  const fileNodes: FileNode[] = [];
  const collect = (d: DirNode) => {
    for (const c of d.children) {
      if (c.kind === 'file') fileNodes.push(c);
      else collect(c);
    }
  };
  collect(root);
  for (const f of fileNodes) {
    f.sector = next;
    next += Math.max(1, Math.ceil(f.data.length / SECTOR));
  }
  const total = next;
  const image = Buffer.alloc(total * SECTOR);

  // Primary volume descriptor (§8.4).
  const pvd = image.subarray(16 * SECTOR, 17 * SECTOR);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'ascii');
  pvd[6] = 1;
  padded('', 32).copy(pvd, 8);
  padded(volumeId, 32).copy(pvd, 40);
  both32(total).copy(pvd, 80);
  both16(1).copy(pvd, 120);
  both16(1).copy(pvd, 124);
  both16(SECTOR).copy(pvd, 128);
  both32(ptSize).copy(pvd, 132);
  pvd.writeUInt32LE(lTable, 140);
  pvd.writeUInt32BE(mTable, 148);
  dirRecord(Buffer.from([0]), root.sector, root.size, true, date, Buffer.alloc(0)).copy(pvd, 156);
  padded('', 128).copy(pvd, 190);
  padded('DUALWAN', 128).copy(pvd, 318);
  padded('DUALWAN', 128).copy(pvd, 446);
  padded('DUALWAN OPNSENSE SEED', 128).copy(pvd, 574);
  padded('', 37).copy(pvd, 702);
  padded('', 37).copy(pvd, 739);
  padded('', 37).copy(pvd, 776);
  volumeDate(date).copy(pvd, 813);
  volumeDate(date).copy(pvd, 830);
  volumeDate(undefined).copy(pvd, 847);
  volumeDate(undefined).copy(pvd, 864);
  pvd[881] = 1;

  // Volume descriptor set terminator (§8.3).
  const term = image.subarray(17 * SECTOR, 18 * SECTOR);
  term[0] = 255;
  term.write('CD001', 1, 'ascii');
  term[6] = 1;

  pathTable(dirs, false).copy(image, lTable * SECTOR);
  pathTable(dirs, true).copy(image, mTable * SECTOR);

  for (const d of dirs) {
    let at = d.sector * SECTOR;
    const end = at + d.size;
    for (const r of recordsOf(d, root, date)) {
      if ((at % SECTOR) + r.length > SECTOR) at += SECTOR - (at % SECTOR);
      if (at + r.length > end) throw new IsoWriteError('directory extent overflow');
      r.copy(image, at);
      at += r.length;
    }
  }
  for (const f of fileNodes) f.data.copy(image, f.sector * SECTOR);
  return image;
}

/** The seed medium OPNsense's importer reads: `/conf/config.xml` on an ISO 9660 volume. */
export function buildSeedImage(configXml: string, opts: IsoOptions = {}): Buffer {
  return buildIso9660([{ path: 'conf/config.xml', data: Buffer.from(configXml, 'utf8') }], { volumeId: 'DUALWAN_SEED', ...opts });
}
