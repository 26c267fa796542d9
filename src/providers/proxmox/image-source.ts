/**
 * The router VM's disk image, made ready on the machine dualwan runs on: downloaded from the
 * template's URL, checked against the pinned checksum, unpacked with the system's own tool
 * (`bzip2 -dc` for the OPNsense nano image) and offered as a stream of known size and SHA-256 for
 * the upload to the host's `import` storage. Proxmox unpacks downloads only for content `iso`,
 * and `import` takes only `.raw/.qcow2/.vmdk/.ova`, so the unpacking has to happen here.
 *
 * Nothing is held in memory: the compressed file goes to a temporary directory (TMPDIR), and the
 * unpacked image is never written at all. It is streamed twice: once to learn its size and digest
 * (pveproxy wants a Content-Length, and the upload's checksum lets Proxmox reject a damaged copy),
 * once into the upload.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import axios from 'axios';
import { DualwanError } from '../../core/errors';
import { TOOL_USER_AGENT } from '../../version';

export type ImageCompression = 'bz2' | 'gz' | 'lzo' | 'zst';

export interface ImageSource {
  readonly url: string;
  readonly checksum: string;
  readonly checksumAlgorithm: 'sha256' | 'sha512';
  readonly compression?: ImageCompression;
}

export type ImageProgress =
  | { readonly phase: 'download'; readonly done: number; readonly total?: number }
  | { readonly phase: 'unpack'; readonly done: number }
  | { readonly phase: 'upload'; readonly done: number; readonly total: number };

export interface PreparedImage {
  /** Bytes of the unpacked image. */
  readonly size: number;
  /** SHA-256 of the unpacked image (the upload's checksum). */
  readonly sha256: string;
  /** Bytes downloaded (the compressed file). */
  readonly downloaded: number;
  /** The unpacked image, from its first byte; may be called again (a new stream each time). */
  open(): AsyncIterable<Uint8Array>;
  /** Removes the downloaded file. */
  dispose(): void;
}

/** The system tool that unpacks each compression, and the package that has it. */
const UNPACKERS: Record<ImageCompression, { command: string; package: string }> = {
  bz2: { command: 'bzip2', package: 'bzip2' },
  gz: { command: 'gzip', package: 'gzip' },
  zst: { command: 'zstd', package: 'zstd' },
  lzo: { command: 'lzop', package: 'lzop' },
};

function onPath(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, command);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function toolMissing(compression: ImageCompression): DualwanError {
  const u = UNPACKERS[compression];
  return new DualwanError('IMAGE_UNPACKER_MISSING', `The VM image is ${compression}-compressed and this machine has no '${u.command}' to unpack it (none on PATH).`, {
    source: 'user',
    remedy: `Install ${u.package} on the machine that runs dualwan (Debian/Ubuntu: sudo apt-get install ${u.package}; Fedora: sudo dnf install ${u.package}; macOS: brew install ${u.package}), then run dualwan apply again. Nothing was changed on the host.`,
  });
}

/** Throws IMAGE_UNPACKER_MISSING when the tool for `compression` is not on PATH. */
export function assertUnpackerPresent(compression: ImageCompression | undefined, env: NodeJS.ProcessEnv = process.env): void {
  if (compression && !onPath(UNPACKERS[compression].command, env)) throw toolMissing(compression);
}

/** The size the server announces for the download (HEAD), or undefined when it does not tell or cannot be reached. */
export async function announcedSize(url: string, timeoutMs = 10_000): Promise<number | undefined> {
  try {
    const res = await axios.head(url, { timeout: timeoutMs, maxRedirects: 5, headers: { 'User-Agent': TOOL_USER_AGENT }, validateStatus: (s) => s === 200 });
    const n = Number(res.headers['content-length']);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Decimal units, as download sizes are usually given. */
export function humanSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(0)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(0)} kB`;
  return `${bytes} B`;
}

function counter(onChunk: (n: number) => void, hash?: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash?.update(chunk);
      onChunk(chunk.length);
      cb(null, chunk);
    },
  });
}

async function download(src: ImageSource, file: string, progress: (p: ImageProgress) => void, timeoutMs: number): Promise<{ bytes: number; digest: string }> {
  let res;
  try {
    res = await axios.get<NodeJS.ReadableStream>(src.url, { responseType: 'stream', timeout: timeoutMs, maxRedirects: 5, headers: { 'User-Agent': TOOL_USER_AGENT }, decompress: false });
  } catch (e) {
    const status = (e as { response?: { status?: number } }).response?.status;
    throw new DualwanError('IMAGE_DOWNLOAD_FAILED', `The VM image could not be downloaded from ${src.url}: ${status ? `HTTP ${status}` : e instanceof Error ? e.message : String(e)}.`, {
      source: 'remote',
      remedy: 'Check that this machine reaches that address (a proxy goes in HTTPS_PROXY), or point vm.image.url at a mirror that has the same file. Nothing was changed on the host.',
      cause: e,
    });
  }
  const total = Number(res.headers['content-length']);
  const known = Number.isSafeInteger(total) && total > 0 ? total : undefined;
  if (known !== undefined) {
    const free = freeBytes(path.dirname(file));
    if (free !== undefined && free < known) {
      (res.data as unknown as { destroy(): void }).destroy();
      throw new DualwanError('IMAGE_TMP_FULL', `The download (${humanSize(known)}) does not fit into ${path.dirname(path.dirname(file))}: ${humanSize(free)} free.`, {
        source: 'user',
        remedy: 'Free space there, or point TMPDIR at a directory with room, then run dualwan apply again.',
      });
    }
  }
  const hash = createHash(src.checksumAlgorithm);
  let done = 0;
  try {
    await pipeline(
      res.data,
      counter((n) => {
        done += n;
        progress({ phase: 'download', done, ...(known !== undefined ? { total: known } : {}) });
      }, hash),
      fs.createWriteStream(file),
    );
  } catch (e) {
    throw new DualwanError('IMAGE_DOWNLOAD_FAILED', `The download of ${src.url} broke off after ${humanSize(done)}: ${e instanceof Error ? e.message : String(e)}.`, {
      source: 'remote',
      remedy: 'Run dualwan apply again; the download starts over. Nothing was changed on the host.',
      cause: e,
    });
  }
  return { bytes: done, digest: hash.digest('hex') };
}

function freeBytes(dir: string): number | undefined {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** The unpacked bytes of `file`, read by the system tool as a child process (streamed, never buffered whole). */
export async function* unpack(file: string, compression: ImageCompression | undefined): AsyncGenerator<Uint8Array> {
  if (!compression) {
    yield* fs.createReadStream(file, { highWaterMark: 1024 * 1024 });
    return;
  }
  const tool = UNPACKERS[compression];
  const child = spawn(tool.command, ['-dc', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 2000) stderr += d;
  });
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    finished = true;
  } finally {
    // the reader stopped early (an error further down the pipe): do not leave the tool running
    if (!finished && child.exitCode === null) child.kill('SIGTERM');
  }
  const end = await ended;
  if (end.error?.code === 'ENOENT') throw toolMissing(compression);
  if (end.error || end.code !== 0) {
    throw new DualwanError(
      'IMAGE_UNPACK_FAILED',
      `${tool.command} -dc could not unpack the downloaded image (${end.error ? end.error.message : `exit ${end.code ?? end.signal}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}.`,
      { source: 'user', remedy: 'Check the free space of TMPDIR and run dualwan apply again; the download is repeated.' },
    );
  }
}

/**
 * Downloads, verifies and measures the image. The download is refused (and deleted) when its
 * digest differs from the pinned one: nothing unverified is unpacked into the upload.
 */
export async function prepareImage(
  src: ImageSource,
  opts: { progress?: (p: ImageProgress) => void; tmpDir?: string; timeoutMs?: number } = {},
): Promise<PreparedImage> {
  const progress = opts.progress ?? (() => undefined);
  assertUnpackerPresent(src.compression);
  const dir = fs.mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), 'dualwan-image-'));
  const dispose = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const file = path.join(dir, path.basename(new URL(src.url).pathname) || 'image');
    const got = await download(src, file, progress, opts.timeoutMs ?? 60_000);
    if (got.digest.toLowerCase() !== src.checksum.toLowerCase()) {
      throw new DualwanError(
        'IMAGE_CHECKSUM_MISMATCH',
        `The file downloaded from ${src.url} (${humanSize(got.bytes)}) has ${src.checksumAlgorithm} ${got.digest}, but vm.image pins ${src.checksum.toLowerCase()}. It was deleted; nothing was uploaded.`,
        {
          source: 'remote',
          remedy: "Compare the pinned value with the release's published checksum file; if the release is right, the mirror served a damaged or different file: try again later or another mirror (vm.image.url).",
        },
      );
    }
    const sha = createHash('sha256');
    let size = 0;
    for await (const chunk of unpack(file, src.compression)) {
      sha.update(chunk);
      size += chunk.length;
      progress({ phase: 'unpack', done: size });
    }
    if (size === 0) throw new DualwanError('IMAGE_UNPACK_FAILED', `The image downloaded from ${src.url} unpacks to nothing.`, { source: 'remote', remedy: 'Check vm.image.url and vm.image.compression.' });
    return { size, sha256: sha.digest('hex'), downloaded: got.bytes, open: () => unpack(file, src.compression), dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}
