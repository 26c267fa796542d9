import axios, { AxiosError, type AxiosInstance, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import type { z } from 'zod';
import { DualwanError, RemoteApiError, TlsPinError, ValidationError } from '../../core/errors';
import { PinnedHttpsAgent, type ConnectVia } from '../../net/pinned-tls';
import { redact, registerSecret } from '../../secrets/redact';
import { TOOL_USER_AGENT } from '../../version';
import { ActionStatusSchema, ErrorBodySchema, gridSchema, ValidationFailedSchema, type Grid } from './schemas';

/** What a write is about, for the "Unable to <verb> <resource> <name>: <field>: <message>" text. */
export interface RequestMeta {
  readonly verb: string;
  readonly resource: string;
  readonly name: string;
}

declare module 'axios' {
  interface AxiosRequestConfig {
    /** dualwan's own request annotations, read by the interceptors. */
    dualwan?: { readonly meta?: RequestMeta; readonly write: boolean; started?: number };
  }
}

export interface OpnsenseClientOptions {
  readonly host: string;
  readonly port: number;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Pinned SHA-256 fingerprint of the web GUI certificate. */
  readonly fingerprint: string;
  /** TLS connection set-up, ms (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Whole request, ms (default 60 s: reconfigure restarts dpinger and reloads the filter). */
  readonly requestTimeoutMs?: number;
  /**
   * How OPNsense is reached when it is not by TCP from this machine: each connection's byte stream
   * (e.g. an SSH channel through the Proxmox host, src/flows/opnsense-route.ts); TLS and the pin
   * run over it unchanged, `host` and `port` then name OPNsense's end.
   */
  readonly connectVia?: ConnectVia;
  /** The path in words for messages, e.g. "through the Proxmox host root@192.168.1.10 (SSH)". */
  readonly routeText?: string;
}

export interface OpnsenseRequestRecord {
  readonly method: string;
  readonly path: string;
  readonly status: number | 'no-answer';
  readonly write: boolean;
  /** ok; refused = a validation failure or {"result":"failed"} (nothing saved); error = another HTTP error */
  readonly outcome: 'ok' | 'refused' | 'error' | 'no-answer';
  readonly ms: number;
}

/** Search parameters of OPNsense grids; they are read from the POST body only. */
export interface SearchParams {
  readonly current?: number;
  readonly rowCount?: number;
  readonly searchPhrase?: string;
  readonly [extra: string]: string | number | undefined;
}

/** A JSON body as OPNsense wants it: every leaf a string. */
export type StringTree = { readonly [key: string]: string | StringTree };

/**
 * The OPNsense REST client: one axios instance, key/secret basic auth, the pinned certificate,
 * connect and request timeouts, and the OPNsense conventions handled in one place:
 * - a validation failure is HTTP 200 `{"result":"failed","validations":{…}}` → ValidationError
 *   naming the field and message;
 * - 404 `{"errorMessage":"Endpoint not found"}` also means a missing path parameter;
 * - body-less POSTs send `{}` (an empty body with a JSON content type is a 400);
 * - every value is sent as a string; option maps from GET are never posted back;
 * - search grids read their parameters from the POST body only.
 * Writes (mutating POSTs answered 200) are counted; searches are POSTs too but are reads.
 */
export class OpnsenseClient {
  private readonly http: AxiosInstance;
  private readonly agent: PinnedHttpsAgent;
  /** Mutating requests answered 200: the number `apply` reports as writes. */
  writeCalls = 0;
  readonly log: OpnsenseRequestRecord[] = [];
  readonly base: string;

  constructor(private readonly opts: OpnsenseClientOptions) {
    registerSecret(opts.apiKey);
    registerSecret(opts.apiSecret);
    const host = opts.host.includes(':') && !opts.host.startsWith('[') ? `[${opts.host}]` : opts.host;
    this.base = `https://${host}:${opts.port}/api/`;
    this.agent = new PinnedHttpsAgent({ fingerprint: opts.fingerprint, system: 'OPNsense', timeoutMs: opts.connectTimeoutMs ?? 10_000, ...(opts.connectVia ? { via: opts.connectVia } : {}) });
    this.http = axios.create({
      baseURL: this.base,
      httpsAgent: this.agent,
      auth: { username: opts.apiKey, password: opts.apiSecret },
      timeout: opts.requestTimeoutMs ?? 60_000,
      headers: { 'User-Agent': TOOL_USER_AGENT, Accept: 'application/json' },
      // Status handling lives in the interceptors below; only 200 is a success.
      validateStatus: (s) => s === 200,
      maxRedirects: 0,
      proxy: false,
    });
    this.http.interceptors.request.use((config: InternalAxiosRequestConfig) => {
      config.dualwan = { write: false, ...config.dualwan, started: Date.now() };
      return config;
    });
    this.http.interceptors.response.use(
      (res) => this.onAnswer(res),
      (err: unknown) => Promise.reject(this.onFailure(err)),
    );
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /** A new client for the same API, key and certificate pin, on new connections (a fresh TLS session). */
  reconnect(): OpnsenseClient {
    return new OpnsenseClient(this.opts);
  }

  private record(config: InternalAxiosRequestConfig | undefined, status: number | 'no-answer', outcome: OpnsenseRequestRecord['outcome']): void {
    const method = (config?.method ?? 'get').toUpperCase();
    this.log.push({ method, path: config?.url ?? '', status, write: !!config?.dualwan?.write, outcome, ms: Date.now() - (config?.dualwan?.started ?? Date.now()) });
  }

  private onAnswer(res: AxiosResponse): AxiosResponse {
    const config = res.config;
    const method = (config.method ?? 'get').toUpperCase();
    const path = config.url ?? '';
    const failed = ValidationFailedSchema.safeParse(res.data);
    this.record(config, res.status, failed.success ? 'refused' : 'ok');
    if (failed.success) {
      const validations = Object.fromEntries(Object.entries(failed.data.validations ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v.join(' ') : v]));
      const meta = config.dualwan?.meta;
      if (Object.keys(validations).length) {
        throw new ValidationError(meta?.verb ?? 'change', meta?.resource ?? 'OPNsense setting', meta?.name ?? path, validations);
      }
      // {"result":"failed"} alone: wrong method, missing root key, or an unknown item.
      throw new RemoteApiError({
        system: 'opnsense',
        method,
        path,
        status: 200,
        message: `refused without a reason ({"result":"failed"}): the item is unknown, the body lacks its root key, or the method is wrong`,
        bodyExcerpt: redact(JSON.stringify(res.data).slice(0, 300)),
      });
    }
    if (config.dualwan?.write) this.writeCalls++;
    return res;
  }

  private onFailure(err: unknown): Error {
    if (!(err instanceof AxiosError)) return err instanceof Error ? err : new Error(String(err));
    const config = err.config;
    const method = (config?.method ?? 'get').toUpperCase();
    const path = config?.url ?? '';
    const pin = findRefusal(err);
    if (pin) {
      this.record(config, 'no-answer', 'no-answer');
      return pin;
    }
    const res = err.response;
    if (!res) {
      this.record(config, 'no-answer', 'no-answer');
      const timedOut = err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT' || /timeout/i.test(err.message);
      return new RemoteApiError({
        system: 'opnsense',
        method,
        path,
        message: redact(timedOut ? `timed out after ${this.opts.requestTimeoutMs ?? 60_000} ms` : `${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ').trim()),
        transient: true,
        remedy: this.opts.routeText
          ? `Check that OPNsense answers at ${this.opts.host}:${this.opts.port} (the web GUI port) ${this.opts.routeText}.`
          : `Check that OPNsense answers at ${this.opts.host}:${this.opts.port} (the web GUI port) from this machine.`,
        cause: err,
      });
    }
    this.record(config, res.status, 'error');
    const text = typeof res.data === 'string' ? res.data : JSON.stringify(res.data ?? '');
    const body = ErrorBodySchema.safeParse(res.data);
    const fromBody = body.success ? String((body.data as { errorMessage?: unknown; message?: unknown }).errorMessage ?? (body.data as { message?: unknown }).message ?? '') : '';
    let message: string = fromBody || text.slice(0, 200) || `HTTP ${res.status}`;
    let remedy: string | undefined;
    if (res.status === 404 && /Endpoint not found/i.test(message)) {
      message = `Endpoint not found (the path is unknown to this OPNsense version, or a path parameter is missing)`;
      remedy = 'dualwan needs OPNsense 26.7 or newer; check System > Firmware > Status.';
    } else if (res.status === 401) {
      remedy = 'Check DUALWAN_OPNSENSE_API_KEY and DUALWAN_OPNSENSE_API_SECRET (environment or credentials file) against System > Access > Users > API keys.';
    } else if (res.status === 403) {
      remedy = "Give the API key's user the privilege for this page, or use a key of a user in the admins group (page-all): the gateway-group API is not reachable with the group's own privilege (OPNsense ACL quirk).";
    } else if (res.status === 400) {
      remedy = 'This is a bug in dualwan (it sent a body OPNsense cannot parse); please report it with this message.';
    }
    return new RemoteApiError({
      system: 'opnsense',
      method,
      path,
      status: res.status,
      message: redact(message),
      bodyExcerpt: redact(text.slice(0, 500)),
      // a gateway or proxy in front of OPNsense may recover; OPNsense's own 500s are answers
      transient: res.status === 502 || res.status === 503 || res.status === 504,
      remedy,
      cause: err,
    });
  }

  /** GET, parsed by `schema` (a mismatch is reported, never ignored). */
  async get<S extends z.ZodType>(path: string, schema: S): Promise<z.output<S>> {
    const res = await this.http.get<unknown>(path);
    return parse(schema, res.data, 'GET', path);
  }

  /** GET of a raw file (a config backup download). */
  async getText(path: string): Promise<string> {
    const res = await this.http.get<string>(path, { responseType: 'text', transformResponse: (d: unknown) => d });
    return String(res.data);
  }

  /** A search grid: POST, parameters in the body (the hand-built grids ignore a query string). */
  async search<S extends z.ZodType>(path: string, row: S, params: SearchParams = {}): Promise<Grid<z.output<S>>> {
    const body = { current: 1, rowCount: -1, searchPhrase: '', ...params };
    const res = await this.http.post<unknown>(path, body, { dualwan: { write: false } });
    return parse(gridSchema(row), res.data, 'POST', path) as Grid<z.output<S>>;
  }

  /** A read that OPNsense only offers as POST (state queries); not counted as a write. */
  async postRead<S extends z.ZodType>(path: string, body: Record<string, string | number>, schema: S): Promise<z.output<S>> {
    const res = await this.http.post<unknown>(path, body, { dualwan: { write: false } });
    return parse(schema, res.data, 'POST', path);
  }

  /** A mutating POST with a model body (`{"<root>":{…}}`, every leaf a string). */
  async write<S extends z.ZodType>(path: string, body: StringTree, meta: RequestMeta, schema: S): Promise<z.output<S>> {
    assertStringLeaves(body, path);
    const res = await this.http.post<unknown>(path, body, { dualwan: { write: true, meta } });
    return parse(schema, res.data, 'POST', path);
  }

  /**
   * A body-less mutating action (reconfigure, apply, revert): POSTs `{}`. Returns the trimmed
   * status; firewall `apply` answers configd's raw "OK\n\n".
   */
  async action(path: string, meta?: RequestMeta, expect: RegExp = /^(ok|done|reverted)$/i): Promise<string> {
    const res = await this.http.post<unknown>(path, {}, { dualwan: { write: true, meta } });
    const status = parse(ActionStatusSchema, res.data, 'POST', path).status.trim();
    if (!expect.test(status)) {
      throw new RemoteApiError({ system: 'opnsense', method: 'POST', path, status: 200, message: `the action answered ${JSON.stringify(status)}`, bodyExcerpt: redact(JSON.stringify(res.data).slice(0, 300)) });
    }
    return status;
  }
}

/**
 * A refusal on the way to OPNsense, reported as it is rather than as "no answer": a certificate
 * that is not the pinned one, or, on a path through another host, that host's own refusal (an SSH
 * host key that is not the pinned one, a key it does not accept). Any DualwanError in the cause
 * chain that is not a RemoteApiError is one.
 */
function findRefusal(err: unknown): DualwanError | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e; i++) {
    if (e instanceof TlsPinError || (e instanceof DualwanError && !(e instanceof RemoteApiError))) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function parse<S extends z.ZodType>(schema: S, data: unknown, method: string, path: string): z.output<S> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new RemoteApiError({
    system: 'opnsense',
    method,
    path,
    status: 200,
    message: `unexpected answer shape at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    bodyExcerpt: redact(JSON.stringify(data ?? null).slice(0, 500)),
    remedy: 'dualwan supports OPNsense 26.7.x; a newer release may have changed this answer. Please report it with this message.',
  });
}

/** OPNsense turns JSON false into "" and rejects arrays for scalar fields: send strings only. */
function assertStringLeaves(v: unknown, path: string, at = ''): void {
  if (typeof v === 'string') return;
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) assertStringLeaves(x, path, at ? `${at}.${k}` : k);
    return;
  }
  throw new DualwanError('OPNSENSE_BODY_ENCODING', `dualwan built a non-string value for ${at} in POST ${path}; OPNsense expects every value as a string.`, { source: 'tool' });
}
