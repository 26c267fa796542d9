// Request validation against the official PVE API schema subsets, usable on its own:
//   validateRequest('9.1', 'POST', '/nodes/pve/qemu', { vmid: '100', ... })
// Route matching on the subset's {param} templates (unknown path or method -> 501 like
// pve-manager PVE/HTTPServer.pm rest_handler), then the parameter checks of
// pve-common PVE/RESTHandler.pm handle() + PVE/JSONSchema.pm validate() (see jsonschema.ts).
import { loadPropertyFormats, loadSubset, type MethodInfo, type PropSchema, type PveVersion } from './data';
import { checkObject, type ErrorMap, type ParamValue } from './jsonschema';

export type { PveVersion } from './data';
export type Params = Record<string, ParamValue>;

export const PARAM_FAILED = 'Parameter verification failed.\n';

export type ValidationResult =
  | {
      ok: true;
      template: string;
      pathParams: Record<string, string>;
      /** the parameters after PVE's normalisation (path parameters merged in, arrays for array types) */
      params: Params;
      info: MethodInfo;
    }
  | {
      ok: false;
      status: 501 | 400;
      message: string;
      errors?: ErrorMap;
      template?: string;
      pathParams?: Record<string, string>;
    };

interface Route {
  template: string;
  re: RegExp;
  names: string[];
  literalCount: number;
}

const routeCache = new Map<PveVersion, Route[]>();

function routes(version: PveVersion): Route[] {
  let r = routeCache.get(version);
  if (!r) {
    r = Object.keys(loadSubset(version)).map((template) => {
      const names: string[] = [];
      const segs = template.split('/').filter(Boolean);
      const re = new RegExp(
        '^/' +
          segs
            .map((s) => {
              const m = /^\{([^}]+)\}$/.exec(s);
              if (!m) return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
              names.push(m[1]!);
              return '([^/]+)';
            })
            .join('/') +
          '$',
      );
      return { template, re, names, literalCount: segs.filter((s) => !s.startsWith('{')).length };
    });
    // literal segments win over parameters when both match
    r.sort((a, b) => b.literalCount - a.literalCount);
    routeCache.set(version, r);
  }
  return r;
}

/** Strips `/api2/json`, a query string and trailing slashes. */
export function relativePath(path: string): string {
  let p = path.split('?')[0]!;
  if (p.startsWith('/api2/json')) p = p.slice('/api2/json'.length);
  p = p.replace(/\/+$/, '');
  return p === '' ? '/' : p;
}

export function notImplemented(method: string, relPath: string): string {
  return `Method '${method.toUpperCase()} ${relPath}' not implemented`;
}

export type RouteMatch = { template: string; pathParams: Record<string, string>; info: MethodInfo } | undefined;

export function matchRoute(version: PveVersion, method: string, path: string): RouteMatch {
  const rel = relativePath(path);
  const m = method.toUpperCase();
  const subset = loadSubset(version);
  for (const r of routes(version)) {
    const hit = r.re.exec(rel);
    if (!hit) continue;
    const info = subset[r.template]?.[m];
    if (!info) continue;
    const pathParams: Record<string, string> = {};
    r.names.forEach((n, i) => {
      pathParams[n] = safeDecode(hit[i + 1]!);
    });
    return { template: r.template, pathParams, info };
  }
  return undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// ---- numbered keys -----------------------------------------------------------------------------

/** virtiofs[n] is not in the transcription: qemu-server Virtiofs.pm $MAX_VIRTIOFS = 10. */
const EXTRA_INDEX_RANGES: Record<string, { min: number; max: number }> = { virtiofs: { min: 0, max: 9 } };

const expandedCache = new WeakMap<object, Record<string, PropSchema>>();

/** The schema's properties with `name[n]` expanded to name0..nameMAX (ranges from qemu-property-formats.json). */
export function expandedProperties(info: MethodInfo): Record<string, PropSchema> {
  const props = info.parameters?.properties ?? {};
  let out = expandedCache.get(props);
  if (out) return out;
  out = {};
  const ranges = { ...loadPropertyFormats().indexed_keys, ...EXTRA_INDEX_RANGES };
  for (const [k, s] of Object.entries(props)) {
    const m = /^(.+)\[n\]$/.exec(k);
    if (!m) {
      out[k] = s;
      continue;
    }
    const r = ranges[m[1]!];
    if (!r) throw new Error(`proxmox double: no index range known for '${k}'`);
    for (let i = r.min; i <= r.max; i++) out[`${m[1]}${i}`] = s;
  }
  expandedCache.set(props, out);
  return out;
}

// ---- validation --------------------------------------------------------------------------------

/**
 * PVE's normalisation of form input (RESTHandler.pm normalize_legacy_param_formats): a repeated key
 * for a `-list` string becomes a comma list, a single value for an array parameter becomes [value].
 */
export function normalizeParams(params: Params, props: Record<string, PropSchema>): Params {
  const out: Params = { ...params };
  for (const [k, v] of Object.entries(out)) {
    const s = props[k];
    if (!s || !v) continue;
    const fmt = typeof s.format === 'string' ? s.format : '';
    if (Array.isArray(v) && s.type === 'string' && fmt.endsWith('-list')) out[k] = v.join(',');
    else if (!Array.isArray(v) && s.type === 'array') out[k] = [v as string];
  }
  return out;
}

export function validateRequest(version: PveVersion, method: string, path: string, params: Params = {}): ValidationResult {
  const rel = relativePath(path);
  const route = matchRoute(version, method, rel);
  if (!route) return { ok: false, status: 501, message: notImplemented(method, rel) };
  return validateParams(route, params);
}

/** The checks after routing: URI/param conflicts, then JSONSchema validate(). */
export function validateParams(route: NonNullable<RouteMatch>, params: Params): ValidationResult {
  const { template, pathParams, info } = route;
  const merged: Params = { ...pathParams };
  for (const k of Object.keys(params).sort()) {
    if (pathParams[k] !== undefined && params[k] !== pathParams[k]) {
      return {
        ok: false,
        status: 400,
        message: PARAM_FAILED,
        errors: { [k]: 'duplicate parameter (already defined in URI) with conflicting values!' },
        template,
        pathParams,
      };
    }
    merged[k] = params[k];
  }
  const props = expandedProperties(info);
  const normalized = normalizeParams(merged, props);
  const errors: ErrorMap = {};
  const work = { ...normalized };
  checkObject('', props, work, info.parameters?.additionalProperties, errors);
  if (Object.keys(errors).length) {
    const sorted = Object.fromEntries(Object.keys(errors).sort().map((k) => [k, errors[k]!]));
    return { ok: false, status: 400, message: PARAM_FAILED, errors: sorted, template, pathParams };
  }
  return { ok: true, template, pathParams, params: work, info };
}
