// Locates and loads the upstream reference data (schema subsets, property formats, samples).
// Works from the TypeScript sources (jest) and from the compiled copy under dist/test/doubles:
// the project root is found by walking up to the directory that holds package.json.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type PveVersion = '8.4' | '9.1';

let rootCache: string | undefined;

export function projectRoot(): string {
  if (rootCache) return rootCache;
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'test', 'fixtures', 'upstream'))) {
      rootCache = dir;
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`proxmox double: cannot find the project root (package.json with test/fixtures/upstream) above ${__dirname}`);
    dir = parent;
  }
}

export function upstreamDir(...parts: string[]): string {
  return path.join(projectRoot(), 'test', 'fixtures', 'upstream', ...parts);
}

const jsonCache = new Map<string, unknown>();

export function loadJson<T>(file: string): T {
  let v = jsonCache.get(file);
  if (v === undefined) {
    v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    jsonCache.set(file, v);
  }
  return v as T;
}

/** A deep copy, so callers may mutate what they get. */
export function loadSample<T = SampleFile>(name: string): T {
  return structuredClone(loadJson<T>(upstreamDir('pve-samples', name.endsWith('.json') ? name : `${name}.json`)));
}

export function listSamples(): string[] {
  return fs
    .readdirSync(upstreamDir('pve-samples'))
    .filter((f) => f.endsWith('.json'))
    .sort();
}

export interface SampleExchange {
  request: { method: string; path: string; query?: Record<string, unknown>; form?: Record<string, string>; headers?: Record<string, string> };
  response: { status: number; reason: string; headers: Record<string, string>; body: unknown };
}

export interface SampleFile extends Partial<SampleExchange> {
  provenance?: string;
  examples?: SampleExchange[];
  [k: string]: unknown;
}

// ---- schema subset types ------------------------------------------------------------------

export interface PropSchema {
  type?: string;
  optional?: number | boolean;
  format?: string | Record<string, PropSchema>;
  pattern?: string;
  enum?: string[] | null;
  maxLength?: number;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  default?: unknown;
  default_key?: number | boolean;
  alias?: string;
  keyAlias?: string;
  requires?: string;
  items?: PropSchema;
  typetext?: string;
  description?: string;
  [k: string]: unknown;
}

export type PermCheck = unknown[];

export interface MethodInfo {
  name?: string;
  method: string;
  parameters?: { additionalProperties?: number | boolean; properties?: Record<string, PropSchema> };
  permissions?: { check?: PermCheck; user?: string; description?: string };
  returns?: PropSchema;
  allowtoken?: number;
  protected?: number;
  proxyto?: string;
}

export type Subset = Record<string, Record<string, MethodInfo>>;

export function loadSubset(version: PveVersion): Subset {
  return loadJson<Subset>(upstreamDir('pve-api', `pve-${version}-router-subset.json`));
}

export interface PropertyFormatsFile {
  indexed_keys: Record<string, { min: number; max: number }>;
  formats: Record<string, { keys?: Record<string, PropSchema>; pattern?: string; flags?: string; [k: string]: unknown }>;
  validation_error_messages: Record<string, string>;
}

export function loadPropertyFormats(): PropertyFormatsFile {
  return loadJson<PropertyFormatsFile>(upstreamDir('pve-api', 'qemu-property-formats.json'));
}
