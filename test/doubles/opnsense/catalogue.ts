// Routing and request checks against the OPNsense 26.7.2 catalogue (opnsense-api.json).
// Router semantics (mvc/library/OPNsense/Mvc/Router.php): /api/<module>/<controller>/<action>/<p…>;
// the controller resolves through ucwords('_') (so group_settings == groupSettings, but
// groupsettings is another, missing class), the action through a case-insensitive PHP method
// lookup (search_gateway == searchGateway). Missing path parameters → 404 "Endpoint not found";
// extra ones are ignored; a query string never binds a path parameter.
import { catalogue, type EndpointSpec, type ModelSpec } from './data';
import { staticFieldErrors } from './fields';

export type Version = string; // "26.7.2", "26.1.9"
export const TARGET_VERSION: Version = '26.7.2';

export function parseVersion(v: string): [number, number, number] {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

export function compareVersions(a: string | [number, number, number], b: string | [number, number, number]): number {
  const x = typeof a === 'string' ? parseVersion(a) : a;
  const y = typeof b === 'string' ? parseVersion(b) : b;
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/** First release that has the endpoint ("<=x" and "<=16.x" mean: long before anything we test). */
export function sinceOf(e: EndpointSpec): [number, number, number] {
  if (e.since.trim().startsWith('<=')) return [0, 0, 0];
  const m = /(\d+\.\d+(?:\.\d+)?)/.exec(e.since);
  return m ? parseVersion(m[1]!) : [0, 0, 0];
}

/** First release that no longer has it ("removed in 26.7", "renamed … in 26.7"), exclusive. */
export function untilOf(e: EndpointSpec): [number, number, number] | undefined {
  if (!e.until) return undefined;
  const m = /in (\d+\.\d+(?:\.\d+)?)/.exec(e.until);
  return m ? parseVersion(m[1]!) : undefined;
}

export function availableIn(e: EndpointSpec, version: Version): boolean {
  if (compareVersions(version, sinceOf(e)) < 0) return false;
  const until = untilOf(e);
  return !until || compareVersions(version, until) < 0;
}

const classPart = (s: string) => s.split('_').map((p) => (p ? p[0]!.toUpperCase() + p.slice(1) : p)).join('');
const methodPart = (s: string) => s.replace(/_/g, '').toLowerCase();

export interface PathParamSpec {
  readonly required: number;
  readonly max: number;
}

export function pathParamsOf(e: EndpointSpec): PathParamSpec {
  const list = e.path_params ?? [];
  return { required: list.filter((p) => !/optional/i.test(p)).length, max: list.length };
}

export interface RouteMatch {
  readonly endpoint: EndpointSpec;
  /** decoded path parameters */
  readonly params: string[];
}

export type RouteResult = { ok: true; match: RouteMatch } | { ok: false; reason: 'unknown' | 'missing-params'; endpoint?: EndpointSpec };

/** Resolves `/api/...` (no query string) for a given release. */
export function route(version: Version, rawPath: string): RouteResult {
  const segs = rawPath.split('/').filter(Boolean);
  if (segs[0] !== 'api' || segs.length < 4) return { ok: false, reason: 'unknown' };
  const [, module, controller, action, ...rest] = segs as [string, string, string, string, ...string[]];
  const dec = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  for (const e of catalogue().endpoints) {
    if (!availableIn(e, version)) continue;
    if (e.module !== module.toLowerCase() || classPart(e.controller) !== classPart(controller)) continue;
    if (e.path) {
      // LogController::__call: the "action" is the log module, the next segment its scope
      const fixed = e.path.replace(/^\/api\//, '').split('/').slice(2); // ["core","gateways"]
      if (fixed.every((f, i) => [action, ...rest][i] === f)) return { ok: true, match: { endpoint: e, params: [action, ...rest].slice(fixed.length).map(dec) } };
      continue;
    }
    if (methodPart(e.action) !== methodPart(action)) continue;
    const params = rest.filter((p) => p !== '').map(dec);
    const spec = pathParamsOf(e);
    if (params.length < spec.required) return { ok: false, reason: 'missing-params', endpoint: e };
    return { ok: true, match: { endpoint: e, params } };
  }
  return { ok: false, reason: 'unknown' };
}

export const isReadOnlyMethod = (e: EndpointSpec) => !e.methods.includes('POST');

/** Which model a posted body belongs to, by endpoint id. */
export const BODY_MODELS: Readonly<Record<string, { root: string[]; model: string }>> = {
  'routing.settings.add_gateway': { root: ['gateway_item'], model: 'Routing.Gateways.gateway_item' },
  'routing.settings.set_gateway': { root: ['gateway_item'], model: 'Routing.Gateways.gateway_item' },
  'routing.group_settings.add': { root: ['gateway_group'], model: 'Routing.GatewayGroups.gateway_group' },
  'routing.group_settings.set': { root: ['gateway_group'], model: 'Routing.GatewayGroups.gateway_group' },
  'firewall.filter.add_rule': { root: ['rule'], model: 'Firewall.Filter.rules.rule' },
  'firewall.filter.set_rule': { root: ['rule'], model: 'Firewall.Filter.rules.rule' },
  'firewall.source_nat.add_rule': { root: ['rule'], model: 'Firewall.Filter.snatrules.rule' },
  'firewall.source_nat.set_rule': { root: ['rule'], model: 'Firewall.Filter.snatrules.rule' },
  'firewall.source_nat.set': { root: ['filter', 'general'], model: 'Firewall.Filter.general' },
  'firewall.source_nat.set_general': { root: ['filter', 'general'], model: 'Firewall.Filter.general' },
  'interfaces.assignment.add_item': { root: ['interface'], model: 'Interfaces.NetworkInterface.interface@26.7' },
  'interfaces.assignment.set_item': { root: ['interface'], model: 'Interfaces.NetworkInterface.interface@26.7' },
  'diagnostics.ping.set': { root: ['ping', 'settings'], model: 'Diagnostics.Ping.settings' },
  'diagnostics.traceroute.set': { root: ['traceroute', 'settings'], model: 'Diagnostics.Traceroute.settings' },
  'core.initial_setup.configure': { root: ['wizard'], model: 'Core.InitialSetup' },
};

export function modelOf(key: string): ModelSpec {
  const m = catalogue().models[key];
  if (!m) throw new Error(`opnsense double: no model ${key} in the catalogue`);
  return m;
}

/** The object under a root path ({"filter":{"general":{…}}} → {…}), or undefined. */
export function underRoot(body: unknown, root: readonly string[]): Record<string, unknown> | undefined {
  let v: unknown = body;
  for (const k of root) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

export interface ContractRequest {
  readonly method: string;
  /** the path without query string */
  readonly path: string;
  readonly query: string;
  readonly contentType: string;
  readonly rawBody: string;
  /** parsed body (JSON or form), undefined when it could not be parsed */
  readonly body: unknown;
}

/**
 * What a dualwan request does wrong against the 26.7.2 catalogue and conventions, independent of
 * the double's state: unknown/removed endpoints, undocumented methods, missing path parameters,
 * empty JSON bodies, search parameters in a query string, a missing root key, non-string values,
 * option maps posted back, fields the model does not have, and values the field type refuses.
 */
export function contractProblems(r: ContractRequest): { message: string; errors?: Record<string, string> }[] {
  const out: { message: string; errors?: Record<string, string> }[] = [];
  const res = route(TARGET_VERSION, r.path);
  if (!res.ok) {
    out.push({ message: res.reason === 'missing-params' ? `missing path parameter(s) of ${res.endpoint?.id} (${(res.endpoint?.path_params ?? []).join(', ')})` : `not an endpoint of OPNsense ${TARGET_VERSION}` });
    return out;
  }
  const e = res.match.endpoint;
  if (!e.methods.includes(r.method)) out.push({ message: `${e.id} is documented for ${e.methods.join('/')}, not ${r.method}` });
  if (r.method === 'POST' && /json/.test(r.contentType) && r.rawBody.trim() === '') {
    out.push({ message: 'JSON content type with an empty body (OPNsense answers 400): send {}' });
    return out;
  }
  if (r.method !== 'POST') return out;
  if (r.query) out.push({ message: `query string "${r.query}" on a POST: OPNsense reads parameters from the path and the body only` });
  if (r.body === undefined) {
    out.push({ message: 'the body could not be parsed' });
    return out;
  }
  const bm = BODY_MODELS[e.id];
  if (bm) {
    const item = underRoot(r.body, bm.root);
    if (!item) {
      out.push({ message: `the body lacks its root key ${bm.root.join('.')}` });
      return out;
    }
    const model = modelOf(bm.model);
    const errors: Record<string, string> = {};
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(item)) {
      const key = `${bm.root.join('.')}.${k}`;
      const spec = model.fields[k];
      if (!spec) errors[key] = 'not a field of the model (OPNsense ignores it silently)';
      else if (typeof v !== 'string') errors[key] = v !== null && typeof v === 'object' ? 'an object or array (an option map from GET?) where a string is expected' : `sent as JSON ${v === null ? 'null' : typeof v}; every value must be a string`;
      else values[k] = v;
    }
    for (const [k, m] of Object.entries(staticFieldErrors(model, values))) errors[`${bm.root.join('.')}.${k}`] ??= m;
    if (Object.keys(errors).length) out.push({ message: `the ${bm.root.join('.')} body does not fit ${bm.model}`, errors });
    return out;
  }
  const fields = e.request?.fields;
  if (fields) {
    const known = new Set([...Object.keys(fields), ...Object.keys(e.request?.extra ?? {})]);
    const errors: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.body as Record<string, unknown>)) {
      if (!known.has(k)) errors[k] = 'not a parameter of this endpoint';
      else if (k === 'sort') {
        if (!v || typeof v !== 'object') errors[k] = 'must be an object {field: "asc"|"desc"}';
      } else if ((k === 'current' || k === 'rowCount') && !(typeof v === 'number' ? Number.isInteger(v) : typeof v === 'string' && /^-?\d+$/.test(v))) errors[k] = 'must be an integer';
      else if (k !== 'current' && k !== 'rowCount' && typeof v !== 'string') errors[k] = 'must be a string';
    }
    if (Object.keys(errors).length) out.push({ message: `parameters of ${e.id}`, errors });
    return out;
  }
  if (r.body && typeof r.body === 'object' && Object.keys(r.body).length) out.push({ message: `${e.id} takes no body; send {}` });
  return out;
}
