// A faithful OPNsense 26.7 REST API test double: HTTPS on 127.0.0.1 (ephemeral port), key/secret
// basic auth, requests routed and validated against the 26.7.2 catalogue, real envelopes and
// quirks, saved vs applied config, gateway status, diagnostics, backups. See BEHAVIOR.md.
// Pipeline: auth (401) -> body (400 on an empty/invalid JSON body) -> route (404 "Endpoint not
// found", also for missing path parameters) -> method (200 {"result":"failed"} for GET on a
// mutator) -> injected failure -> handler (200 / 500).
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { contractProblems, route, TARGET_VERSION, BODY_MODELS, underRoot } from './catalogue';
import { tlsMaterial } from './certs';
import { factoryRules, factorySharedForwarding, factorySnatMode, factoryStickyConnections } from './factory';
import { HANDLERS, InputTypeError, isModelWrite, UserException, type Res } from './handlers';
import { RouterState, type Config, type IfaceConf, type Lease, type LinkHealth, type PfState } from './state';
import { cryptMatches } from './crypt-check';
import type { DpingerClockOptions } from './dpinger';

export const DEFAULT_API_KEY = 'w86XNZob/8Oq8aC5r0kbNarNtdpoQU781fyoeaOBQsBwkXUt';
export const DEFAULT_API_SECRET = 'XeD26XVrJ5ilAc/EmglCRC+0j2e57tRsjHwFepOseySWLM53pJASeTA3';

/** What the bootstrap leaves behind: interfaces with their devices and addresses, DHCP leases. */
export interface RouterSeed {
  readonly interfaces: Readonly<Record<string, IfaceConf>>;
  readonly leases: Readonly<Record<string, Lease>>;
  /** Devices OPNsense offers for assignment (configd "interface list assign-opts"). */
  readonly devices: readonly string[];
  /** system/gw_switch_default (seeded by the bootstrap; no API). Default true. */
  readonly gwSwitchDefault?: boolean;
  /** system/dnsserver + dns<N>gw: each WAN's DNS servers bound to its gateway, as the bootstrap seeds them (no API). */
  readonly dns?: readonly { readonly server: string; readonly gateway: string }[];
  /** system/pf_share_forward (no API): the factory value unless the bootstrap turned it off (load balancing). */
  readonly sharedForwarding?: boolean;
  /** Filter rules the seed adds to the factory ones (fields over the factory LAN rule's). */
  readonly extraRules?: readonly Readonly<Record<string, string>>[];
}

export interface OpnsenseDoubleOptions {
  /** product_version the double plays: "26.7.2" (default) or e.g. "26.1.9" for capability tests. */
  readonly version?: string;
  readonly apiKey?: string;
  readonly apiSecret?: string;
  readonly seed?: RouterSeed;
  /** configd caches "interface gateways list" for 20 s on a real box; default 0 here. */
  readonly gatewayListCacheMs?: number;
  /**
   * Gateway statuses change over time like dpinger's (windows, loss interval, watcher alarms) on
   * this clock: `{clock}` driven by the test (ManualClock) or `{timeScale}` (real time, sped up).
   * Default: none, statuses follow the link at once.
   */
  readonly dpinger?: DpingerClockOptions;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  body: unknown;
  endpoint?: string;
  /** 0 = not answered (stopAnswering) */
  status: number;
  write: boolean;
}

export interface ContractViolation {
  readonly system: 'opnsense';
  readonly version: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly message: string;
  readonly errors?: Record<string, string>;
  readonly userAgent: string;
  readonly at: string;
}

export interface InjectedFailure {
  /** validation key, e.g. "gateway_item.monitor"; default: the first posted field */
  readonly field?: string;
  readonly message?: string;
  /** let this many model writes pass first (default 0: the very next one fails) */
  readonly after?: number;
}

export interface OpnsenseDouble {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly fingerprint: string;
  readonly certPem: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  readonly version: string;
  readonly requests: RequestRecord[];
  /** mutating requests answered 200 (not counting refusals) */
  readonly writeCount: number;
  readonly contractViolations: ContractViolation[];
  readonly state: RouterState;
  setVersion(v: string): void;
  /**
   * The API keys config.xml holds from now on (`key|crypt(secret)`, as ApiKeyField stores them),
   * replacing the key the double was started with: a presented secret is checked against the
   * hash, as OPNsense does.
   */
  setApiKeys(keys: readonly { key: string; secretHash: string }[]): void;
  /** The next model write (add/set of an item) answers a validation failure; nothing is saved. */
  failNextWrite(f?: InjectedFailure): void;
  /** After `after` more requests, the next `count` (default: all) get no answer at all. */
  stopAnswering(o?: { after?: number; count?: number; process?: boolean }): void;
  resumeAnswering(): void;
  setLinkHealth(identifierOrGateway: string, h: Partial<LinkHealth>): void;
  openConnection(c: { src: string; dst: string; dport?: number; proto?: 'tcp' | 'udp' }): PfState | undefined;
  /** modules whose saved config differs from what runs */
  unapplied(): string[];
  reset(): void;
  close(): Promise<void>;
}

/** A default seed: the hotspot playbook's router (igc0 WAN, vtnet0 LAN, ue0 WAN2), bootstrapped. */
export function defaultSeed(): RouterSeed {
  return {
    interfaces: {
      wan: { if: 'igc0', descr: 'WAN', enable: true, ipaddr: 'dhcp', subnet: '', ipaddrv6: 'dhcp6', lock: false },
      lan: { if: 'vtnet0', descr: 'LAN', enable: true, ipaddr: '192.168.10.1', subnet: '24', ipaddrv6: '', lock: false },
      opt1: { if: 'ue0', descr: 'WAN2', enable: true, ipaddr: 'dhcp', subnet: '', ipaddrv6: '', lock: false },
    },
    leases: { wan: { address: '192.168.1.100', prefix: 24, router: '192.168.1.1' }, opt1: { address: '192.168.43.20', prefix: 24, router: '192.168.43.1' } },
    devices: ['igc0', 'igc1', 'vtnet0', 'ue0'],
  };
}

function seedConfig(seed: RouterSeed): Config {
  const rules: Record<string, Record<string, string>> = {};
  const factory = factoryRules();
  for (const r of factory) rules[randomUUID()] = r;
  for (const r of seed.extraRules ?? []) rules[randomUUID()] = { ...factory[0]!, ...r };
  return {
    interfaces: structuredClone(seed.interfaces) as Record<string, IfaceConf>,
    gateways: {},
    groups: {},
    rules,
    snatRules: {},
    snatMode: factorySnatMode(),
    system: { gw_switch_default: seed.gwSwitchDefault ?? true, lb_use_sticky: factoryStickyConnections(), pf_share_forward: seed.sharedForwarding ?? factorySharedForwarding(), dns: (seed.dns ?? []).map((d) => ({ ...d })) },
  };
}

function parseForm(text: string): Record<string, unknown> {
  // PHP style: a[b][c]=v
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    const keys = k.replace(/\]/g, '').split('[');
    let o = out;
    keys.forEach((key, i) => {
      if (i === keys.length - 1) o[key] = v;
      else o = (o[key] ??= {}) as Record<string, unknown>;
    });
  }
  return out;
}

const JSON_TYPE = 'application/json; charset=UTF-8';

export async function startOpnsenseDouble(opts: OpnsenseDoubleOptions = {}): Promise<OpnsenseDouble> {
  const tls = await tlsMaterial();
  const seed = opts.seed ?? defaultSeed();
  const apiKey = opts.apiKey ?? DEFAULT_API_KEY;
  const apiSecret = opts.apiSecret ?? DEFAULT_API_SECRET;
  let version = opts.version ?? TARGET_VERSION;
  // Until setApiKeys: the one key the double was started with, compared in clear.
  let storedKeys: readonly { key: string; secretHash: string }[] | undefined;
  const authorised = (k: string | undefined, secret: string) => {
    if (!storedKeys) return k === apiKey && secret === apiSecret;
    const hit = storedKeys.find((x) => x.key === k);
    return !!hit && cryptMatches(secret, hit.secretHash);
  };
  const fresh = () => {
    const s = new RouterState({ config: seedConfig(seed), leases: structuredClone(seed.leases) as Record<string, Lease>, devices: [...seed.devices] });
    s.gatewayListCacheMs = opts.gatewayListCacheMs ?? 0;
    if (opts.dpinger) s.enableTimedDpinger(opts.dpinger);
    return s;
  };
  let state = fresh();
  const requests: RequestRecord[] = [];
  const contractViolations: ContractViolation[] = [];
  let writeCount = 0;
  let injected: InjectedFailure[] = [];
  let silence: { after: number; count: number; process: boolean } | undefined;
  const hung = new Set<ServerResponse>();
  const sockets = new Set<Socket>();

  const logViolation = (v: ContractViolation) => {
    contractViolations.push(v);
    const file = process.env.DUALWAN_CONTRACT_LOG;
    if (file) {
      try {
        fs.appendFileSync(file, `${JSON.stringify(v)}\n`);
      } catch {
        // best effort; the in-memory list stays authoritative
      }
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown, raw?: Res['raw']) => {
    if (res.destroyed) return;
    const text = raw ? raw.text : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': raw ? raw.contentType : JSON_TYPE, 'Content-Length': String(Buffer.byteLength(text)), ...(raw?.headers ?? {}) });
    res.end(text);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = q < 0 ? '' : rawUrl.slice(q + 1);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const record: RequestRecord = { method, path, query, body: undefined, status: 0, write: false };
    requests.push(record);

    let answer = true;
    let processIt = true;
    if (silence) {
      if (silence.after > 0) silence.after--;
      else {
        answer = false;
        processIt = silence.process;
        if (--silence.count <= 0) silence = undefined;
      }
    }
    const s = state;
    const finish = (status: number, body: unknown, raw?: Res['raw']) => {
      record.status = answer ? status : 0;
      if (answer) send(res, status, body, raw);
      else hung.add(res);
    };
    if (!processIt) {
      // the request never reached the API: no answer, no effect
      hung.add(res);
      return;
    }

    // auth (Auth/API.php: basic key:secret)
    const auth = String(req.headers.authorization ?? '');
    const m = /^Basic\s+(.+)$/i.exec(auth);
    const [k, ...rest] = m ? Buffer.from(m[1]!, 'base64').toString('utf8').split(':') : [];
    if (!m || !authorised(k, rest.join(':'))) return finish(401, { status: 401, message: 'Authentication Failed' });

    // body
    const ct = String(req.headers['content-type'] ?? '').toLowerCase();
    let body: unknown = {};
    let parsedOk = true;
    if (/json/.test(ct)) {
      try {
        body = JSON.parse(rawBody);
        if (body === null || typeof body !== 'object') throw new Error('not an object');
      } catch {
        parsedOk = false;
      }
    } else if (/x-www-form-urlencoded/.test(ct)) body = parseForm(rawBody);
    record.body = parsedOk ? body : rawBody;

    const ua = String(req.headers['user-agent'] ?? '');
    if (ua.startsWith('dualwan/')) {
      for (const p of contractProblems({ method, path, query, contentType: ct, rawBody, body: parsedOk ? body : undefined })) {
        logViolation({ system: 'opnsense', version: TARGET_VERSION, method, path: query ? `${path}?${query}` : path, status: 0, message: p.message, ...(p.errors ? { errors: p.errors } : {}), userAgent: ua, at: new Date().toISOString() });
      }
    }
    if (!parsedOk) return finish(400, { status: 400, message: 'Invalid JSON syntax' });

    const routed = route(version, path);
    if (!routed.ok) return finish(404, { errorMessage: 'Endpoint not found' });
    const e = routed.match.endpoint;
    record.endpoint = e.id;
    if (method !== 'POST' && !e.methods.includes(method)) {
      // mutators answer a GET with 200 and a failure body, never 405
      const resp = e.response ?? {};
      const key = Object.keys(resp).find((x) => /GET|not[ _]post/i.test(x));
      const v = key ? resp[key] : undefined;
      return finish(200, v && typeof v === 'object' ? v : { result: 'failed' });
    }
    if (method === 'POST' && isModelWrite(e) && injected.length) {
      const f = injected[0]!;
      if ((f.after ?? 0) > 0) injected[0] = { ...f, after: (f.after ?? 0) - 1 };
      else {
        injected = injected.slice(1);
        const root = BODY_MODELS[e.id]!.root;
        const first = Object.keys(underRoot(body, root) ?? {})[0] ?? 'name';
        return finish(200, { result: 'failed', validations: { [f.field ?? `${root.join('.')}.${first}`]: f.message ?? 'This value was refused (injected by the test double).' } });
      }
    }
    const h = HANDLERS[e.id];
    s.tick(); // dpinger and the gateway watcher catch up with the clock before the router answers
    if (!h) return finish(500, { errorMessage: `${e.id} is not simulated by the OPNsense test double`, errorTitle: '', errorLevel: 'error' });
    try {
      const out = h({ method, params: routed.match.params, body: body as Record<string, unknown>, query: new URLSearchParams(query), state: s, version, endpoint: e });
      const status = out.status ?? 200;
      const failed = !!out.body && typeof out.body === 'object' && (out.body as { result?: unknown }).result === 'failed';
      if (status === 200 && out.write && !failed) {
        writeCount++;
        record.write = true;
      }
      return finish(status, out.body, out.raw);
    } catch (err) {
      if (err instanceof UserException) return finish(500, { errorMessage: err.message, errorTitle: err.title, errorLevel: 'error' });
      if (err instanceof InputTypeError) return finish(500, { errorMessage: err.message, errorTitle: '', errorLevel: 'error' });
      return finish(500, { errorMessage: 'Unexpected error, check log for details' });
    }
  };

  const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) send(res, 500, { errorMessage: 'Unexpected error, check log for details' });
    });
  });
  server.on('connection', (sock: Socket) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = '127.0.0.1';
  const dropHung = () => {
    for (const r of hung) r.socket?.destroy();
    hung.clear();
  };

  return {
    url: `https://${host}:${port}`,
    host,
    port,
    fingerprint: tls.fingerprint,
    certPem: tls.cert,
    apiKey,
    apiSecret,
    get version() {
      return version;
    },
    requests,
    get writeCount() {
      return writeCount;
    },
    contractViolations,
    get state() {
      return state;
    },
    setVersion(v) {
      version = v;
    },
    setApiKeys(keys) {
      storedKeys = keys.map((x) => ({ ...x }));
    },
    failNextWrite(f = {}) {
      injected.push(f);
    },
    stopAnswering(o = {}) {
      silence = { after: o.after ?? 0, count: o.count ?? Number.POSITIVE_INFINITY, process: o.process ?? false };
    },
    resumeAnswering() {
      silence = undefined;
      dropHung();
    },
    setLinkHealth(id, h) {
      state.setHealth(id, h);
    },
    openConnection(c) {
      return state.openConnection(c);
    },
    unapplied() {
      return state.unapplied();
    },
    reset() {
      state = fresh();
      requests.length = 0;
      contractViolations.length = 0;
      writeCount = 0;
      injected = [];
      silence = undefined;
      dropHung();
    },
    async close() {
      dropHung();
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
