// A reader for ISO 9660 volumes, as the simulated OPNsense importer mounts `cd0` (FreeBSD
// `mount -t cd9660`): Rock Ridge names when the root's "." record announces them (SUSP `SP` +
// `ER`), else ISO names with the `;1` version dropped and lower-cased (FreeBSD's default
// translation). Written separately from the product's writer so a shared mistake cannot hide.
const SECTOR = 2048;

export interface IsoEntry {
  readonly name: string;
  readonly isDir: boolean;
  readonly sector: number;
  readonly size: number;
  readonly mode?: number;
}

export class IsoReadError extends Error {}

function le32(b: Buffer, at: number): number {
  return b.readUInt32LE(at);
}

function suspEntries(area: Buffer): { sig: string; body: Buffer }[] {
  const out: { sig: string; body: Buffer }[] = [];
  let i = 0;
  while (i + 4 <= area.length) {
    const len = area[i + 2]!;
    if (len < 4 || i + len > area.length) break;
    out.push({ sig: area.toString('latin1', i, i + 2), body: area.subarray(i + 4, i + len) });
    i += len;
  }
  return out;
}

export class IsoVolume {
  readonly volumeId: string;
  readonly rockRidge: boolean;
  private readonly rootSector: number;
  private readonly rootSize: number;

  constructor(private readonly image: Buffer) {
    if (image.length < 17 * SECTOR) throw new IsoReadError('too short for an ISO 9660 volume');
    const pvd = image.subarray(16 * SECTOR, 17 * SECTOR);
    if (pvd[0] !== 1 || pvd.toString('latin1', 1, 6) !== 'CD001') throw new IsoReadError('no primary volume descriptor at sector 16');
    if (pvd.readUInt16LE(128) !== SECTOR) throw new IsoReadError('logical block size is not 2048');
    this.volumeId = pvd.toString('latin1', 40, 72).trimEnd();
    const rootRec = pvd.subarray(156, 190);
    this.rootSector = le32(rootRec, 2);
    this.rootSize = le32(rootRec, 10);
    const first = this.records(this.rootSector, this.rootSize)[0];
    const su = first ? this.systemUse(first) : Buffer.alloc(0);
    const entries = suspEntries(su);
    const sp = entries[0];
    this.rockRidge =
      !!sp && sp.sig === 'SP' && sp.body[0] === 0xbe && sp.body[1] === 0xef && entries.some((e) => e.sig === 'ER' && ['RRIP_1991A', 'IEEE_P1282', 'IEEE_1282'].includes(e.body.toString('latin1', 4, 4 + e.body[0]!)));
  }

  private records(sector: number, size: number): Buffer[] {
    const out: Buffer[] = [];
    const start = sector * SECTOR;
    if (start + size > this.image.length) throw new IsoReadError(`extent at sector ${sector} runs past the end of the image`);
    let i = start;
    while (i < start + size) {
      const len = this.image[i]!;
      if (len === 0) {
        i = (Math.floor((i - start) / SECTOR) + 1) * SECTOR + start;
        continue;
      }
      out.push(this.image.subarray(i, i + len));
      i += len;
    }
    return out;
  }

  private systemUse(rec: Buffer): Buffer {
    const idLen = rec[32]!;
    const start = 33 + idLen + (idLen % 2 === 0 ? 1 : 0);
    return rec.subarray(start, rec[0]);
  }

  list(dirPath = ''): IsoEntry[] {
    let sector = this.rootSector;
    let size = this.rootSize;
    for (const part of dirPath.split('/').filter(Boolean)) {
      const hit = this.list(dirPath.slice(0, dirPath.indexOf(part)).replace(/\/$/, '')).find((e) => e.name === part && e.isDir);
      if (!hit) throw new IsoReadError(`no directory '${part}'`);
      sector = hit.sector;
      size = hit.size;
    }
    return this.records(sector, size)
      .slice(2)
      .map((rec) => {
        const idLen = rec[32]!;
        let name = rec.toString('latin1', 33, 33 + idLen).replace(/;\d+$/, '').replace(/\.$/, '').toLowerCase();
        let mode: number | undefined;
        if (this.rockRidge) {
          for (const e of suspEntries(this.systemUse(rec))) {
            if (e.sig === 'NM') name = e.body.subarray(1).toString('utf8');
            if (e.sig === 'PX') mode = le32(e.body, 0);
          }
        }
        return { name, isDir: (rec[25]! & 2) !== 0, sector: le32(rec, 2), size: le32(rec, 10), ...(mode === undefined ? {} : { mode }) };
      });
  }

  /** The file's bytes, or undefined when there is no such file. */
  read(path: string): Buffer | undefined {
    const parts = path.split('/').filter(Boolean);
    const name = parts.pop();
    let entries: IsoEntry[];
    try {
      entries = this.list(parts.join('/'));
    } catch {
      return undefined;
    }
    const e = entries.find((x) => x.name === name && !x.isDir);
    return e ? this.image.subarray(e.sector * SECTOR, e.sector * SECTOR + e.size) : undefined;
  }
}
