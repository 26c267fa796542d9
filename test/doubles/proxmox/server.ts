// A faithful Proxmox VE API test double: HTTPS on 127.0.0.1 (ephemeral port), /api2/json only,
// API-token auth, schema-validated requests, real envelopes, status lines and error texts.
// See BEHAVIOR.md next to this file. Request pipeline (pve-http-server AnyEvent.pm +
// pve-manager PVE/HTTPServer.pm): auth (401, delayed) -> route (501) -> token/permission
// check (403) -> parameter verification (400) -> handler (200 / 500).
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tlsMaterial } from './certs';
import { DoubleCore, HttpError, ParamError } from './core';
import { onNetworkEvent, type NetworkEvent } from './network';
import { loadSample, type PveVersion } from './data';
import { handlers, type Ctx } from './handlers';
import { PerlDie } from './jsonschema';
import { PermissionDenied } from './perms';
import { matchRoute, notImplemented, PARAM_FAILED, relativePath, validateParams, validateRequest, type Params } from './schema';
import type { Inventory, InventoryOverrides, RemoteFile } from './state';
import { ConsoleHub, type ConsoleOptions, type SerialGuest } from './console';
import { acceptMultipart } from './upload';
import type { Duplex } from 'node:stream';

export type { PveVersion } from './data';
export type { Inventory, InventoryOverrides, RemoteFile } from './state';

export const DEFAULT_TOKEN_ID = 'dualwan@pve!setup';
export const DEFAULT_TOKEN_SECRET = '5e1f2d3c-4b5a-4968-8776-a5b4c3d2e1f0';

export interface TokenSpec {
  id: string;
  secret: string;
  /** path -> privileges (propagating ACL entries) */
  acl?: Record<string, string[]>;
}

export interface ProxmoxDoubleOptions {
  schemaVersion?: PveVersion;
  /** default: one token dualwan@pve!setup with the privileges of pve-samples/access-permissions-token.json */
  tokens?: TokenSpec[];
  /** how long every task stays 'running' (default 30 ms) */
  taskDurationMs?: number;
  /** delay of 401 answers (real PVE: 3 s; default 3000) */
  authFailDelayMs?: number;
  inventory?: InventoryOverrides;
  /** Simulate serial consoles (termproxy + vncwebsocket, CONSOLE.md); without it they answer 501. */
  consoles?: boolean | ConsoleOptions;
}

export interface RequestRecord {
  method: string;
  /** decoded, without /api2/json */
  path: string;
  template?: string;
  params: Params;
  /** 0 when the connection was dropped on purpose */
  status: number;
}

export interface ContractViolation {
  version: PveVersion;
  method: string;
  path: string;
  template?: string;
  status: 400 | 501;
  message: string;
  errors?: Record<string, string>;
  userAgent: string;
  at: string;
}

export interface ProxmoxDouble {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** SHA-256 of the served certificate, "AA:BB:..." (as getPeerCertificate().fingerprint256) */
  readonly fingerprint: string;
  readonly certPem: string;
  readonly tokenId: string;
  readonly tokenSecret: string;
  readonly schemaVersion: PveVersion;
  readonly requests: RequestRecord[];
  readonly writeCount: number;
  readonly contractViolations: ContractViolation[];
  close(): Promise<void>;
  setSchemaVersion(v: PveVersion): void;
  failNextTask(message: string): void;
  /** Destroys the socket of the next request (of that method, when given) without handling it. */
  dropNextConnection(method?: string): void;
  setIommu(enabled: boolean): void;
  setPhoneUsbProductId(prodid: string): void;
  grant(tokenId: string, path: string, privs: string[], propagate?: boolean): void;
  revoke(tokenId: string, path: string, privs?: string[]): void;
  addToken(spec: TokenSpec): void;
  addRemoteFile(url: string, file: RemoteFile): void;
  /** resolves when no task is running any more */
  settle(): Promise<void>;
  reset(): void;
  /** the simulated node itself (hardware, network, storages, volumes, VMs, mappings, remote files) */
  readonly state: Inventory;
  /** The serial consoles (undefined unless `consoles` was given or a guest was attached). */
  readonly consoles: ConsoleHub | undefined;
  /** Puts a simulated guest on a VM's serial socket (turns console simulation on). */
  attachSerialGuest(vmid: number, guest: SerialGuest): void;
  /** Called when a staged network config is applied, or a VM start takes PCI devices from the host (network.ts). */
  onNetworkEvent(listener: (e: NetworkEvent) => void): void;
}

const CONTENT_TYPE = 'application/json;charset=UTF-8';

function defaultTokens(): TokenSpec[] {
  const s = loadSample<{ response: { body: { data: Record<string, Record<string, number>> } } }>('access-permissions-token');
  const acl: Record<string, string[]> = {};
  for (const [path, privs] of Object.entries(s.response.body.data)) acl[path] = Object.keys(privs);
  return [{ id: DEFAULT_TOKEN_ID, secret: DEFAULT_TOKEN_SECRET, acl }];
}

/** extract_auth_value + PVE::AccessControl::verify_token */
function parseTokenHeader(h: string | undefined): { id: string; secret: string } | 'none' | 'bad' {
  if (!h) return 'none';
  const m = /^PVEAPIToken\s*[=:]\s*(.*)$/.exec(h.trim());
  if (!m) return 'none';
  const t = /^(\S+@\S+!\S+?)=(\S+)$/.exec(m[1]!.trim());
  return t ? { id: t[1]!, secret: t[2]! } : 'bad';
}

function decodeForm(body: string): Params {
  const out: Params = {};
  if (!body) return out;
  for (const kv of body.split(/[&;]/)) {
    if (!kv) continue;
    const i = kv.indexOf('=');
    const k = dec(i < 0 ? kv : kv.slice(0, i));
    if (i < 0) {
      out[k] = undefined;
      continue;
    }
    const v = dec(kv.slice(i + 1));
    const old = out[k];
    out[k] = old === undefined ? v : Array.isArray(old) ? [...old, v] : [String(old), v];
  }
  return out;
}

function dec(s: string): string {
  const t = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(t);
  } catch {
    return t.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
}

function decSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function fromJson(v: unknown): Params {
  const out: Params = {};
  if (!v || typeof v !== 'object' || Array.isArray(v)) return out;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (x === null || x === undefined) continue;
    if (typeof x === 'boolean') out[k] = x;
    else if (Array.isArray(x)) out[k] = x.map((e) => String(e));
    else if (typeof x === 'object') out[k] = JSON.stringify(x);
    else out[k] = String(x);
  }
  return out;
}

export async function startProxmoxDouble(opts: ProxmoxDoubleOptions = {}): Promise<ProxmoxDouble> {
  const tls = await tlsMaterial();
  const core = new DoubleCore({ schemaVersion: opts.schemaVersion ?? '9.1', taskDurationMs: opts.taskDurationMs ?? 30, inventory: opts.inventory });
  core.tls = tls;
  const authFailDelayMs = opts.authFailDelayMs ?? 3000;
  const tokenSpecs = structuredClone(opts.tokens ?? defaultTokens());
  const setupTokens = () => {
    core.acl.tokens.clear();
    for (const t of tokenSpecs) {
      core.acl.addToken(t.id, t.secret);
      for (const [path, privs] of Object.entries(t.acl ?? {})) core.acl.grant(t.id, path, privs, true);
    }
  };
  setupTokens();
  let consoles: ConsoleHub | undefined = opts.consoles ? new ConsoleHub(core, opts.consoles === true ? {} : opts.consoles) : undefined;

  const requests: RequestRecord[] = [];
  const contractViolations: ContractViolation[] = [];
  let writeCount = 0;
  let dropNext: false | { method?: string } = false;
  const sockets = new Set<Socket>();
  const pendingTimers = new Set<NodeJS.Timeout>();
  /** Runs `fn` after `delayMs` (at once for 0), on a timer that close() cancels. */
  const later = (delayMs: number, fn: () => void) => {
    if (delayMs <= 0) return fn();
    const t = setTimeout(() => {
      pendingTimers.delete(t);
      fn();
    }, delayMs);
    pendingTimers.add(t);
  };

  const recordViolations = (method: string, path: string, params: Params, ua: string) => {
    for (const v of ['8.4', '9.1'] as const) {
      const r = validateRequest(v, method, path, params);
      if (r.ok) continue;
      const viol: ContractViolation = { version: v, method, path: relativePath(path), template: r.template, status: r.status, message: r.message, errors: r.errors, userAgent: ua, at: new Date().toISOString() };
      contractViolations.push(viol);
      const file = process.env.DUALWAN_CONTRACT_LOG;
      if (file) {
        try {
          fs.appendFileSync(file, `${JSON.stringify(viol)}\n`);
        } catch {
          // the log is best effort; the in-memory list stays authoritative
        }
      }
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown, rawReason: string, delayMs = 0) => {
    // a status line carries printable ASCII only
    const reason = rawReason.replace(/[^\x20-\x7e]/g, '?');
    const write = () => {
      if (res.destroyed) return;
      if (status === 401) {
        res.writeHead(401, reason, { 'Content-Length': '0', Connection: 'close' });
        res.end();
        return;
      }
      const text = JSON.stringify(body);
      const headers: Record<string, string> = { 'Content-Type': CONTENT_TYPE, 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'max-age=0', Pragma: 'no-cache', Server: 'pve-api-daemon/3.0' };
      if (status >= 400) headers.Connection = 'close';
      res.writeHead(status, reason, headers);
      res.end(text);
    };
    later(delayMs, write);
  };

  const firstLine = (m: string) => (m.split('\n')[0] ?? '').replace(/\r/g, '') || 'Internal Server Error';

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const qIndex = rawUrl.indexOf('?');
    const rawPath = qIndex < 0 ? rawUrl : rawUrl.slice(0, qIndex);
    const query = qIndex < 0 ? '' : rawUrl.slice(qIndex + 1);
    // AnyEvent.pm reads the header first: no chunked bodies (uploads must state their length)
    const te = req.headers['transfer-encoding'];
    if (te) {
      const msg = te.toLowerCase() === 'chunked' ? 'chunked transfer encoding not supported' : `Unknown transfer encoding '${te}'`;
      requests.push({ method, path: relativePath(rawPath).split('/').map(decSegment).join('/'), params: {}, status: 501 });
      res.writeHead(501, msg, { 'Content-Length': String(Buffer.byteLength(msg)), Connection: 'close' });
      res.end(msg);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const ch of req) chunks.push(ch as Buffer);
    const bodyText = Buffer.concat(chunks).toString('utf8');

    const record: RequestRecord = { method, path: relativePath(rawPath).split('/').map(decSegment).join('/'), params: {}, status: 0 };
    requests.push(record);

    if (dropNext && (!dropNext.method || dropNext.method === method)) {
      dropNext = false;
      req.socket.destroy();
      return;
    }

    let params: Params = {};
    if (method === 'POST' || method === 'PUT') {
      const ct = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (ct === 'application/json') {
        try {
          params = fromJson(JSON.parse(bodyText || '{}'));
        } catch {
          params = {};
        }
      } else if (ct === 'multipart/form-data') {
        params = acceptMultipart(core, String(req.headers['content-type']), Buffer.concat(chunks));
      } else params = decodeForm(bodyText);
    }
    for (const [k, v] of Object.entries(decodeForm(query))) params[k] = v;
    record.params = params;

    const ua = String(req.headers['user-agent'] ?? '');
    if (ua.startsWith('dualwan/')) recordViolations(method, rawPath, params, ua);

    const finish = (status: number, body: unknown, reason: string, delay = 0) => {
      record.status = status;
      if (status === 200 && method !== 'GET') writeCount++;
      send(res, status, body, reason, delay);
    };

    if (!rawPath.startsWith('/api2/json/') && rawPath !== '/api2/json') {
      finish(501, { data: null, message: 'no such uri' }, 'no such uri');
      return;
    }
    const rel = relativePath(rawPath);

    // auth (pve-manager PVE/HTTPServer.pm auth_handler); a few calls need none
    const open = (rel === '/access/domains' && method === 'GET') || (rel === '/access/ticket' && (method === 'GET' || method === 'POST')) || (rel === '/access/vncticket' && method === 'POST');
    let user = '';
    if (!open) {
      const tok = parseTokenHeader(req.headers.authorization);
      const cookie = /(?:^|;\s*)PVEAuthCookie=/.test(String(req.headers.cookie ?? ''));
      if (tok === 'none' && !cookie) return finish(401, undefined, 'No ticket', authFailDelayMs);
      const rec = typeof tok === 'object' ? core.acl.tokens.get(tok.id) : undefined;
      if (typeof tok !== 'object' || !rec || rec.secret !== tok.secret) return finish(401, undefined, 'Authentication failed!', authFailDelayMs);
      user = tok.id;
    }

    // matchRoute accepts paths with or without the prefix; a doubled prefix is an unknown path here.
    const route = rel.startsWith('/api2/') ? undefined : matchRoute(core.version, method, rel);
    if (!route) {
      const msg = notImplemented(method, rel);
      return finish(501, { data: null, message: msg }, msg);
    }
    record.template = route.template;

    const errorResponse = (e: unknown) => {
      if (e instanceof ParamError) return finish(400, { data: null, message: PARAM_FAILED, errors: e.errors }, firstLine(PARAM_FAILED));
      if (e instanceof PermissionDenied) return finish(403, { data: null, message: e.text }, firstLine(e.text));
      if (e instanceof HttpError) return finish(e.status, { data: null, message: e.text }, firstLine(e.text));
      if (e instanceof PerlDie) return finish(500, { data: null, message: e.text }, firstLine(e.text));
      const text = `${e instanceof Error ? e.message : String(e)}\n`;
      return finish(500, { data: null, message: text }, firstLine(text));
    };

    try {
      // URI parameters win; a conflicting duplicate is a 400 before anything else
      for (const k of Object.keys(params).sort()) {
        if (route.pathParams[k] !== undefined && params[k] !== route.pathParams[k]) throw new ParamError({ [k]: 'duplicate parameter (already defined in URI) with conflicting values!' });
      }
      const uriParams: Params = { ...params, ...route.pathParams };
      if (user && !route.info.allowtoken) throw new PermissionDenied(`URI '${rel}' not available with API token, need proper ticket.\n`);
      if (user) core.acl.checkApi2(route.info, user, uriParams as Record<string, unknown>);
      if (route.info.proxyto === 'node' && route.pathParams.node !== undefined && route.pathParams.node !== core.node && route.pathParams.node !== 'localhost') {
        const n = route.pathParams.node;
        throw new PerlDie(`hostname lookup '${n}' failed - failed to get address info for: ${n}: Name or service not known\n`);
      }
      const v = validateParams(route, params);
      if (!v.ok) {
        if (v.status === 400) throw new ParamError(v.errors ?? {});
        return finish(v.status, { data: null, message: v.message }, v.message);
      }
      const h = handlers[route.template]?.[method];
      if (!h) {
        const msg = `${notImplemented(method, rel)} by the proxmox test double`;
        return finish(501, { data: null, message: msg }, msg);
      }
      const ctx: Ctx = { core, user, params: v.params, method, template: route.template, result: {} };
      const data = h(ctx);
      const body: Record<string, unknown> = { data: data === undefined ? null : data };
      if (ctx.result.total) body.total = ctx.result.total;
      if (ctx.result.changes) body.changes = ctx.result.changes;
      return finish(200, body, 'OK');
    } catch (e) {
      return errorResponse(e);
    }
  };

  const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        const text = `${e instanceof Error ? e.message : String(e)}\n`;
        send(res, 500, { data: null, message: text }, 'Internal Server Error');
      }
    });
  });
  /**
   * A websocket upgrade (pve-http-server: the API call runs first, then websocket_proxy): the same
   * auth, route, permission and parameter checks as any GET, then the console hub takes the socket.
   * Errors before the upgrade are plain HTTP answers on the raw socket.
   */
  const rawAnswer = (socket: Duplex, status: number, reason: string, body?: unknown, delayMs = 0) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    const write = () => {
      if (socket.destroyed) return;
      socket.end(`HTTP/1.1 ${status} ${reason.replace(/[^\x20-\x7e]/g, '?')}\r\nContent-Type: ${CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    };
    later(delayMs, write);
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const rawUrl = req.url ?? '/';
    const qIndex = rawUrl.indexOf('?');
    const rawPath = qIndex < 0 ? rawUrl : rawUrl.slice(0, qIndex);
    const params = decodeForm(qIndex < 0 ? '' : rawUrl.slice(qIndex + 1));
    const rel = relativePath(rawPath);
    const record: RequestRecord = { method: 'GET', path: rel.split('/').map(decSegment).join('/'), params, status: 0 };
    requests.push(record);
    const ua = String(req.headers['user-agent'] ?? '');
    if (ua.startsWith('dualwan/')) recordViolations('GET', rawPath, params, ua);
    const fail = (status: number, message: string, delay = 0) => {
      record.status = status;
      rawAnswer(socket, status, firstLine(message), status === 401 ? undefined : { data: null, message }, delay);
    };
    const tok = parseTokenHeader(req.headers.authorization);
    if (tok === 'none') return fail(401, 'No ticket', authFailDelayMs);
    const rec = typeof tok === 'object' ? core.acl.tokens.get(tok.id) : undefined;
    if (typeof tok !== 'object' || !rec || rec.secret !== tok.secret) return fail(401, 'Authentication failed!', authFailDelayMs);
    const user = tok.id;
    const route = rel.startsWith('/api2/') ? undefined : matchRoute(core.version, 'GET', rel);
    if (!route || route.template !== '/nodes/{node}/qemu/{vmid}/vncwebsocket') return fail(501, notImplemented('GET', rel));
    record.template = route.template;
    try {
      core.acl.checkApi2(route.info, user, { ...params, ...route.pathParams } as Record<string, unknown>);
      const v = validateParams(route, params);
      if (!v.ok) {
        if (v.status === 400) throw new ParamError(v.errors ?? {});
        return fail(v.status, v.message);
      }
      if (!consoles) return fail(501, `${notImplemented('GET', rel)} by the proxmox test double`);
      const vmid = Number(route.pathParams.vmid);
      core.loadVm(vmid);
      const session = consoles.verify(user, vmid, Number(v.params.port), String(v.params.vncticket));
      if (!session) return fail(401, 'permission denied - invalid vnc ticket');
      const key = String(req.headers['sec-websocket-key'] ?? '');
      const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((x) => x.trim());
      if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || !key || req.headers['sec-websocket-version'] !== '13') return fail(400, 'websocket handshake failed');
      if (!protocols.includes('binary')) return fail(400, 'websocket_proxy: unsupported protocol');
      record.status = 101;
      consoles.serve(session, socket as Socket, key, head);
    } catch (e) {
      if (e instanceof ParamError) {
        record.status = 400;
        return rawAnswer(socket, 400, firstLine(PARAM_FAILED), { data: null, message: PARAM_FAILED, errors: e.errors });
      }
      if (e instanceof PermissionDenied) return fail(403, e.text);
      if (e instanceof HttpError) return fail(e.status, e.text);
      if (e instanceof PerlDie) return fail(500, e.text);
      return fail(500, `${e instanceof Error ? e.message : String(e)}\n`);
    }
    return undefined;
  });

  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = '127.0.0.1';

  const double: ProxmoxDouble = {
    url: `https://${host}:${port}`,
    host,
    port,
    fingerprint: tls.fingerprint,
    certPem: tls.cert,
    tokenId: tokenSpecs[0]?.id ?? DEFAULT_TOKEN_ID,
    tokenSecret: tokenSpecs[0]?.secret ?? DEFAULT_TOKEN_SECRET,
    get schemaVersion() {
      return core.version;
    },
    requests,
    get writeCount() {
      return writeCount;
    },
    contractViolations,
    async close() {
      consoles?.close();
      core.close();
      for (const t of pendingTimers) clearTimeout(t);
      pendingTimers.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
    setSchemaVersion(v) {
      core.version = v;
    },
    failNextTask(message) {
      core.armFailure(message);
    },
    dropNextConnection(method) {
      dropNext = { method };
    },
    setIommu(enabled) {
      core.inv.iommu = enabled;
    },
    setPhoneUsbProductId(prodid) {
      const phone = core.inv.usb.find((d) => d.vendid === '18d1');
      if (!phone) throw new Error('proxmox double: no phone (18d1:*) on the USB bus');
      if (phone.prodid === prodid) return;
      phone.prodid = prodid;
      // re-enumeration: the device gets the next free device number on its bus
      phone.devnum = Math.max(...core.inv.usb.filter((d) => d.busnum === phone.busnum).map((d) => d.devnum)) + 1;
    },
    grant(tokenId, path, privs, propagate = true) {
      core.acl.grant(tokenId, path, privs, propagate);
    },
    revoke(tokenId, path, privs) {
      core.acl.revoke(tokenId, path, privs);
    },
    addToken(spec) {
      core.acl.addToken(spec.id, spec.secret);
      for (const [path, privs] of Object.entries(spec.acl ?? {})) core.acl.grant(spec.id, path, privs, true);
    },
    addRemoteFile(url, file) {
      core.inv.remoteFiles[url] = file;
    },
    settle() {
      return core.settle();
    },
    reset() {
      core.resetState();
      setupTokens();
      requests.length = 0;
      contractViolations.length = 0;
      writeCount = 0;
      dropNext = false;
    },
    get state() {
      return core.inv;
    },
    get consoles() {
      return consoles;
    },
    onNetworkEvent(listener) {
      onNetworkEvent(core, listener);
    },
    attachSerialGuest(vmid, guest) {
      consoles ??= new ConsoleHub(core, opts.consoles && opts.consoles !== true ? opts.consoles : {});
      consoles.attachGuest(vmid, guest);
    },
  };
  return double;
}
