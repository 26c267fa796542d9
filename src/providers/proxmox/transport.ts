import { Agent, fetch } from 'undici';
import type { ApiRequestable } from 'proxmox-api';
import { RemoteApiError } from '../../core/errors';
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
    const url = `${this.base}${path}${!hasBody && form.toString() ? `?${form.toString()}` : ''}`;
    let res: Awaited<ReturnType<typeof fetch>>;
    try {
      res = await fetch(url, {
        method,
        dispatcher: this.agent,
        headers: {
          Authorization: this.auth,
          'User-Agent': TOOL_USER_AGENT,
          Accept: 'application/json',
          ...(hasBody ? { 'Content-Type': 'application/x-www-form-urlencoded' } : {}),
        },
        body: hasBody ? form.toString() : undefined,
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
    const text = await res.text();
    if (res.status === 200) {
      if (method !== 'GET') this.writeCalls++;
      const ct = res.headers.get('content-type') ?? '';
      if (!ct.startsWith('application/json')) {
        throw new RemoteApiError({ system: 'proxmox', method, path, status: 200, message: `unexpected content type '${ct}'` });
      }
      return (JSON.parse(text) as { data: unknown }).data;
    }
    let body: { message?: string; errors?: Record<string, string> } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = {};
    }
    const reason = res.statusText || body.message?.split('\n')[0] || '';
    const message = (body.message ?? reason).trim();
    const fieldErrors = Object.fromEntries(Object.entries(body.errors ?? {}).map(([k, v]) => [k, String(v).trim()]));
    const details = Object.entries(fieldErrors)
      .map(([k, v]) => `\n  ${k}: ${v.replace(/\n/g, '\n    ')}`)
      .join('');
    throw new RemoteApiError({
      system: 'proxmox',
      method,
      path,
      status: res.status,
      message: redact(`${message || reason}${details}`),
      fieldErrors,
      bodyExcerpt: redact(text.slice(0, 500)),
      transient: isTransient(res.status, message),
      remedy: remedyFor(res.status, message),
    });
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
