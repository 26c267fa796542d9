// File uploads (pve-http-server AnyEvent.pm file_upload_multipart): a multipart/form-data POST is
// parsed by the HTTP server itself; the file part is spooled to /var/tmp/pveupload-<hex> and its
// path handed to the API handler as `tmpfilename`, the other parts become parameters. The spool
// here is in memory, per simulated node.
import { createHash } from 'node:crypto';
import type { DoubleCore } from './core';
import type { Params } from './schema';

const spools = new WeakMap<DoubleCore, Map<string, Buffer>>();

export function spoolOf(core: DoubleCore): Map<string, Buffer> {
  let s = spools.get(core);
  if (!s) {
    s = new Map();
    spools.set(core, s);
  }
  return s;
}

export interface MultipartPart {
  readonly name: string;
  readonly filename?: string;
  readonly data: Buffer;
}

/** Splits a multipart/form-data body; undefined when it is not well formed. */
export function parseMultipart(contentType: string, body: Buffer): MultipartPart[] | undefined {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) return undefined;
  const delim = Buffer.from(`--${boundary}`);
  const parts: MultipartPart[] = [];
  let at = body.indexOf(delim);
  if (at < 0) return undefined;
  for (let guard = 0; guard < 1000; guard++) {
    at += delim.length;
    if (body.subarray(at, at + 2).toString() === '--') return parts;
    if (body.subarray(at, at + 2).toString() !== '\r\n') return undefined;
    at += 2;
    const headEnd = body.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return undefined;
    const head = body.subarray(at, headEnd).toString('utf8');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), headEnd + 4);
    if (next < 0) return undefined;
    const disp = /content-disposition:\s*form-data;([^\r\n]*)/i.exec(head)?.[1] ?? '';
    const name = /\bname="([^"]*)"/i.exec(disp)?.[1];
    const filename = /\bfilename="([^"]*)"/i.exec(disp)?.[1];
    if (name === undefined) return undefined;
    parts.push({ name, ...(filename === undefined ? {} : { filename }), data: body.subarray(headEnd + 4, next) });
    at = next + 2;
  }
  return undefined;
}

/**
 * What the API handler receives for a multipart request: the text fields, plus `tmpfilename` for
 * the spooled file (any `tmpfilename` the client sent itself is dropped: only the trusted local
 * port may set it). The file part's field name is `filename`, as the web UI sends it; its
 * `filename` parameter becomes the `filename` parameter when no text field of that name came.
 */
export function acceptMultipart(core: DoubleCore, contentType: string, body: Buffer): Params {
  const parts = parseMultipart(contentType, body);
  const out: Params = {};
  if (!parts) return out;
  for (const p of parts) {
    if (p.filename !== undefined) {
      const tmp = `/var/tmp/pveupload-${createHash('md5').update(`${Date.now()}:${Math.random()}`).digest('hex')}`;
      spoolOf(core).set(tmp, Buffer.from(p.data));
      out.tmpfilename = tmp;
      if (out.filename === undefined) out.filename = p.filename;
    } else if (p.name !== 'tmpfilename') {
      out[p.name] = p.data.toString('utf8');
    }
  }
  return out;
}
