// A stand-in for the OPNsense release mirror, on loopback: serves a small fake nano image,
// compressed with the system's bzip2 when the server starts, so its checksum is real. Tests, the
// demo and the bench point vm.image at it (`imageOverride`); nothing ever goes to the real mirror.
//
// The fake image is a raw disk: an MBR whose first sector ends in the boot signature 55 AA (so the
// simulated SeaBIOS boots it), a FreeBSD slice entry, a label text, some incompressible bytes (so
// the download, unpacking and upload stream in several chunks) and zeros.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Document } from 'yaml';
import type { VmImage } from '../../../src/core/desired';

export interface LocalImage {
  /** http://127.0.0.1:<port>/<name>.img.bz2 */
  readonly url: string;
  /** What goes into vm.image: this URL, the real sha256 of the served file, bz2, a `.raw` file name. */
  readonly image: VmImage;
  /** The unpacked image (what the VM disk must hold to boot). */
  readonly raw: Buffer;
  readonly rawSha256: string;
  /** The served file. */
  readonly compressed: Buffer;
  /** Requests received, in order. */
  readonly requests: { method: string; path: string }[];
  /** Serve these bytes instead (a damaged mirror); undefined restores the real file. */
  serveInstead(bytes: Buffer | undefined): void;
  close(): Promise<void>;
}

/** A fake nano image of `size` bytes (a multiple of 512) with a bootable MBR. */
export function fakeNanoImage(size = 1024 * 1024, label = 'OPNsense 26.7 nano amd64 (dualwan test image)'): Buffer {
  if (size < 64 * 1024 || size % 512) throw new Error('the fake image needs at least 64 KiB, in whole sectors');
  const b = Buffer.alloc(size);
  b.write(`\xeb\x3c\x90${label}`, 0, 'latin1');
  // partition 1: active, FreeBSD (0xa5), from sector 63 to the end
  b[446] = 0x80;
  b[446 + 4] = 0xa5;
  b.writeUInt32LE(63, 446 + 8);
  b.writeUInt32LE(size / 512 - 63, 446 + 12);
  b[510] = 0x55;
  b[511] = 0xaa;
  // 48 KiB that do not compress, so every stage sees several chunks
  let block = createHash('sha256').update(label).digest();
  for (let at = 512 * 63; at < 512 * 63 + 48 * 1024; at += block.length) {
    block = createHash('sha256').update(block).digest();
    block.copy(b, at);
  }
  return b;
}

export function bzip2(data: Buffer): Buffer {
  const r = spawnSync('bzip2', ['-c', '-9'], { input: data, maxBuffer: 64 * 1024 * 1024 });
  if (r.error || r.status !== 0) throw new Error(`the test image needs bzip2 on this machine (apt-get install bzip2): ${r.error?.message ?? r.stderr.toString()}`);
  return r.stdout;
}

/** The mirror stand-in; `like` names the release (URL base name and `.raw` file name), default the OPNsense template's. */
export async function startImageServer(o: { like?: Pick<VmImage, 'url' | 'filename'>; raw?: Buffer } = {}): Promise<LocalImage> {
  const raw = o.raw ?? fakeNanoImage();
  const compressed = bzip2(raw);
  const name = o.like ? (new URL(o.like.url).pathname.split('/').pop() ?? 'image.img.bz2') : 'OPNsense-26.7-nano-amd64.img.bz2';
  const filename = o.like?.filename ?? 'OPNsense-26.7-nano-amd64.raw';
  const requests: { method: string; path: string }[] = [];
  let instead: Buffer | undefined;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ method: req.method ?? 'GET', path });
    const body = instead ?? compressed;
    if (path !== `/${name}` || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': '10' });
      res.end(req.method === 'HEAD' ? undefined : 'not found\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/x-bzip2', 'Content-Length': String(body.length) });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    // in pieces, as a network would deliver it
    let at = 0;
    const next = () => {
      while (at < body.length) {
        const piece = body.subarray(at, at + 16 * 1024);
        at += piece.length;
        if (!res.write(piece)) {
          res.once('drain', next);
          return;
        }
      }
      res.end();
    };
    next();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`;
  return {
    url,
    image: { url, filename, checksum: createHash('sha256').update(compressed).digest('hex'), checksumAlgorithm: 'sha256', compression: 'bz2' },
    raw,
    rawSha256: createHash('sha256').update(raw).digest('hex'),
    compressed,
    requests,
    serveInstead(bytes) {
      instead = bytes;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Points a playbook's vm.image at the local image (a playbook with the linux backend is left alone). */
export function pointAtImage(doc: Document, img: Pick<LocalImage, 'image'>): void {
  if (doc.get('backend') === 'linux') return;
  const { url, filename, checksum, checksumAlgorithm, compression } = img.image;
  doc.setIn(['vm', 'image'], doc.createNode({ url, filename, checksum, checksumAlgorithm, ...(compression ? { compression } : {}) }));
}
