import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, fetch, WebSocket, type Dispatcher } from 'undici';
import type { ApiRequestable } from 'proxmox-api';
import { DualwanError, RemoteApiError } from '../../core/errors';
import { connectPinned } from '../../net/pinned-tls';
import { redact } from '../../secrets/redact';
import { TOOL_USER_AGENT } from '../../version';

export interface ProxmoxTransportOptions {
  readonly host: string;
  readonly port: number;
  /** `user@realm!tokenname` */
  readonly tokenId: string;
  readonly tokenSecret: string;
  /** Pinned SHA-256 fingerprint of the API certificate. */
  readonly fingerprint: string;
  readonly requestTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly template: string;
  readonly status: number | 'network-error';
}

/**
 * The transport under `proxmox-api`'s typed proxy. It replaces the package's own engine because
 * that one retries every request once on a network error, POSTs included (a create could be sent
 * twice), accepts only token secrets shaped like UUIDs, and reports errors as strings. Here:
 * pinned TLS, a product User-Agent, no hidden retries (retries live in tasks.ts, for dispatches
 * only), structured RemoteApiError, and a count of write calls.
 */
export class ProxmoxTransport implements ApiRequestable {
  private readonly agent: Agent;
  private readonly base: string;
  private readonly auth: string;
  /** Accepted non-GET requests: the number `apply` reports as writes. */
  writeCalls = 0;
  readonly log: RequestRecord[] = [];

  constructor(private readonly opts: ProxmoxTransportOptions) {
    const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host;
    // The proxy's paths already start with /api2/json.
    this.base = `https://${host}:${opts.port}`;
    this.auth = `PVEAPIToken=${opts.tokenId}=${opts.tokenSecret}`;
    this.agent = new Agent({
      connect: (o, cb) => {
        connectPinned(
          { host: opts.host, port: Number(o.port || opts.port), fingerprint: opts.fingerprint, system: 'Proxmox VE', timeoutMs: opts.connectTimeoutMs ?? 10_000 },
          (err, socket) => (err ? cb(err, null) : cb(null, socket!)),
        );
      },
      keepAliveTimeout: 4_000,
    });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  async doRequest(httpMethod: string, path: string, pathTemplate: string, params?: Record<string, unknown>): Promise<unknown> {
    const method = httpMethod.toUpperCase();
    const form = encodeParams(params);
    const hasBody = method === 'POST' || method === 'PUT';
    const target = `${path}${!hasBody && form.toString() ? `?${form.toString()}` : ''}`;
    return this.send(method, target, pathTemplate, hasBody ? form.toString() : undefined, hasBody ? 'application/x-www-form-urlencoded' : undefined, path);
  }

  private async send(method: string, target: string, pathTemplate: string, payload: string | Buffer | undefined, contentType: string | undefined, path = target, envelope = false): Promise<unknown> {
    const url = `${this.base}${target}`;
    let res: Awaited<ReturnType<typeof fetch>>;
    try {
      res = await fetch(url, {
        method,
        dispatcher: this.agent,
        headers: {
          Authorization: this.auth,
          'User-Agent': TOOL_USER_AGENT,
          Accept: 'application/json',
          ...(contentType ? { 'Content-Type': contentType } : {}),
        },
        body: payload,
        signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 60_000),
      });
    } catch (e) {
      this.log.push({ method, path, template: pathTemplate, status: 'network-error' });
      const cause = (e as { cause?: unknown }).cause ?? e;
      if (cause instanceof Error && cause.name === 'TlsPinError') throw cause;
      throw new RemoteApiError({
        system: 'proxmox',
        method,
        path,
        message: redact(`no answer (${cause instanceof Error ? cause.message : String(cause)})`),
        transient: true,
        remedy: `Check that ${this.opts.host}:${this.opts.port} is reachable and the Proxmox API (pveproxy) is running.`,
        cause,
      });
    }
    this.log.push({ method, path, template: pathTemplate, status: res.status });
    return this.answer(method, path, res.status, res.statusText, res.headers.get('content-type') ?? '', await res.text(), envelope);
  }

  /** The `data` of a 200 answer (or the whole envelope), or the error the answer tells. */
  private answer(method: string, path: string, status: number, statusText: string, contentType: string, text: string, envelope = false): unknown {
    if (status === 200) {
      if (method !== 'GET') this.writeCalls++;
      if (!contentType.startsWith('application/json')) {
        throw new RemoteApiError({ system: 'proxmox', method, path, status: 200, message: `unexpected content type '${contentType}'` });
      }
      const parsed = JSON.parse(text) as { data: unknown };
      return envelope ? parsed : parsed.data;
    }
    let body: { message?: string; errors?: Record<string, string> } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = {};
    }
    const reason = statusText || body.message?.split('\n')[0] || '';
    const message = (body.message ?? reason).trim();
    const fieldErrors = Object.fromEntries(Object.entries(body.errors ?? {}).map(([k, v]) => [k, String(v).trim()]));
    const details = Object.entries(fieldErrors)
      .map(([k, v]) => `\n  ${k}: ${v.replace(/\n/g, '\n    ')}`)
      .join('');
    throw new RemoteApiError({
      system: 'proxmox',
      method,
      path,
      status,
      message: redact(`${message || reason}${details}`),
      fieldErrors,
      bodyExcerpt: redact(text.slice(0, 500)),
      transient: isTransient(status, message),
      remedy: remedyFor(status, message),
    });
  }

  /**
   * A GET that returns the whole envelope (`{data, changes?, total?}`): `/nodes/{node}/network` says
   * in `changes` that /etc/network/interfaces.new is pending, which `data` alone cannot tell.
   */
  async getEnvelope(path: string): Promise<unknown> {
    return this.send('GET', path, path, undefined, undefined, path, true);
  }

  /**
   * POST multipart/form-data (the only way Proxmox accepts a file: `/storage/{storage}/upload`;
   * the `proxmox-api` proxy sends forms only). The file part goes last, as the PVE web UI sends it
   * (pve-http-server spools it to /var/tmp/pveupload-* and hands the path on as `tmpfilename`).
   * The body is built in memory with its length known: seed images are a few kilobytes.
   */
  async postMultipart(path: string, fields: Record<string, string>, file: { field: string; name: string; data: Buffer; contentType?: string }): Promise<unknown> {
    const boundary = `----dualwan${randomBytes(12).toString('hex')}`;
    const parts: Buffer[] = [];
    const quote = (s: string) => s.replace(/["\\\r\n]/g, '_');
    for (const [k, v] of Object.entries(fields)) {
      parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${quote(k)}"\r\n\r\n${v}\r\n`, 'utf8'));
    }
    parts.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${quote(file.field)}"; filename="${quote(file.name)}"\r\nContent-Type: ${file.contentType ?? 'application/octet-stream'}\r\n\r\n`, 'utf8'),
      file.data,
      Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8'),
    );
    return this.send('POST', path, path, Buffer.concat(parts), `multipart/form-data; boundary=${boundary}`);
  }

  /**
   * The same multipart POST with the file streamed (disk images of several GB are never held in
   * memory). pveproxy refuses chunked transfer encoding and uploads without a length (pve-http-server
   * AnyEvent.pm), so the caller states the file's exact size and the body goes out with a
   * Content-Length; a stream that ends early or runs long fails the request instead of sending a
   * wrong file. The answer comes only after the whole body is spooled, so the wait for it is long.
   */
  async postMultipartStream(
    path: string,
    fields: Record<string, string>,
    file: { field: string; name: string; size: number; open(): AsyncIterable<Uint8Array>; contentType?: string },
    timeoutMs = 4 * 3600_000,
  ): Promise<unknown> {
    const boundary = `----dualwan${randomBytes(12).toString('hex')}`;
    const quote = (s: string) => s.replace(/["\\\r\n]/g, '_');
    const head = Buffer.concat([
      ...Object.entries(fields).map(([k, v]) => Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${quote(k)}"\r\n\r\n${v}\r\n`, 'utf8')),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${quote(file.field)}"; filename="${quote(file.name)}"\r\nContent-Type: ${file.contentType ?? 'application/octet-stream'}\r\n\r\n`, 'utf8'),
    ]);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
    async function* body(): AsyncGenerator<Uint8Array> {
      yield head;
      for await (const chunk of file.open()) yield chunk;
      yield tail;
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await this.agent.request({
        origin: this.base,
        path,
        method: 'POST',
        headers: {
          Authorization: this.auth,
          'User-Agent': TOOL_USER_AGENT,
          Accept: 'application/json',
          'Content-Type': `multipart/form-data; boundary=${boundary}`,
          'Content-Length': String(head.length + file.size + tail.length),
        },
        body: Readable.from(body()),
        headersTimeout: timeoutMs,
        bodyTimeout: this.opts.requestTimeoutMs ?? 60_000,
      });
    } catch (e) {
      this.log.push({ method: 'POST', path, template: path, status: 'network-error' });
      const cause = (e as { cause?: unknown }).cause ?? e;
      if (cause instanceof Error && cause.name === 'TlsPinError') throw cause;
      if (e instanceof DualwanError) throw e;
      throw new RemoteApiError({
        system: 'proxmox',
        method: 'POST',
        path,
        // not retried: a lost answer after gigabytes sent is better repeated by the next run
        message: redact(`upload of ${file.name} failed (${cause instanceof Error ? cause.message : String(cause)})`),
        remedy: `Check that ${this.opts.host}:${this.opts.port} stays reachable and that /var/tmp on the host has room for the file, then run dualwan apply again.`,
        cause,
      });
    }
    this.log.push({ method: 'POST', path, template: path, status: res.statusCode });
    const ct = res.headers['content-type'];
    return this.answer('POST', path, res.statusCode, '', Array.isArray(ct) ? (ct[0] ?? '') : (ct ?? ''), await res.body.text());
  }

  /**
   * Opens a websocket on the API (`vncwebsocket`) over the same pinned TLS connections and with the
   * same token header as every REST call. undici's WebSocket (already a dependency) does the RFC 6455
   * framing; it accepts a dispatcher and headers, which the browser API does not.
   */
  openWebSocket(path: string, query: Record<string, string>, protocols: string[] = ['binary']): WebSocket {
    const host = this.opts.host.includes(':') && !this.opts.host.startsWith('[') ? `[${this.opts.host}]` : this.opts.host;
    const url = `wss://${host}:${this.opts.port}${path}?${new URLSearchParams(query).toString()}`;
    this.log.push({ method: 'GET', path, template: path, status: 101 });
    return new WebSocket(url, { protocols, dispatcher: this.agent, headers: { Authorization: this.auth, 'User-Agent': TOOL_USER_AGENT } });
  }
}

/** Proxmox wants form fields: booleans as 1/0, arrays as repeated keys, nothing for undefined. */
export function encodeParams(params?: Record<string, unknown>): URLSearchParams {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null) continue;
    const values = Array.isArray(v) ? v : [v];
    for (const item of values) out.append(k, typeof item === 'boolean' ? (item ? '1' : '0') : String(item));
  }
  return out;
}

function isTransient(status: number, message: string): boolean {
  if (status === 502 || status === 503 || status === 595 || status === 596) return true;
  return status === 500 && /got timeout|got no worker upid|connection refused|temporarily unavailable/i.test(message);
}

function remedyFor(status: number, message: string): string | undefined {
  if (status === 401) return 'Check the token id in dualwan.yaml and DUALWAN_PROXMOX_TOKEN_SECRET (or the credentials file).';
  if (status === 403) return 'Give the token the missing privilege (see docs/proxmox-token.md for the role dualwan needs).';
  if (/only root can/i.test(message)) return 'Use a resource mapping (dualwan creates them) instead of raw host= passthrough; API tokens are never root@pam.';
  return undefined;
}
