// Upstream data of the OPNsense double: the 26.7.2 catalogue, the factory config and the recorded
// samples, copied into test/fixtures/upstream/opnsense (see the README there).
import * as fs from 'node:fs';
import * as path from 'node:path';

function packageRoot(start = __dirname): string {
  let dir = start;
  for (let i = 0; i < 12; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'test', 'fixtures', 'upstream', 'opnsense'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`opnsense double: no package root with test/fixtures/upstream/opnsense above ${start}`);
}

export const FIXTURES = path.join(packageRoot(), 'test', 'fixtures', 'upstream', 'opnsense');

export interface FieldSpec {
  type: string;
  required?: boolean;
  default?: string;
  options?: Record<string, string>;
  additional_options?: Record<string, string>;
  multiple?: boolean;
  min?: number;
  max?: number;
  mask?: string;
  validation_message?: string;
  constraints?: { type: string; ValidationMessage?: string; field?: string; operator?: string }[];
  volatile?: boolean;
  since?: string;
  container?: boolean;
  fields?: Record<string, FieldSpec>;
  interface_filters?: Record<string, string>;
  options_from_configd?: string;
}

export interface ModelSpec {
  mount: string;
  item_path?: string;
  fields: Record<string, FieldSpec>;
  dpinger_defaults_when_empty?: Record<string, number | string>;
}

export interface EndpointSpec {
  id: string;
  module: string;
  controller: string;
  action: string;
  path?: string;
  methods: string[];
  since: string;
  until?: string;
  path_params?: string[];
  request?: { root_key?: string; model?: string; fields?: Record<string, unknown>; shape?: Record<string, unknown>; content_type?: string; extra?: Record<string, string> };
  response?: Record<string, unknown>;
}

export interface Catalogue {
  meta: { reference_release: string; reference_commit: string };
  conventions: Record<string, unknown>;
  models: Record<string, ModelSpec>;
  endpoints: EndpointSpec[];
}

let cached: Catalogue | undefined;
export function catalogue(): Catalogue {
  cached ??= JSON.parse(fs.readFileSync(path.join(FIXTURES, 'opnsense-api.json'), 'utf8')) as Catalogue;
  return cached;
}

export function loadSample<T = unknown>(name: string): T {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, 'samples', name), 'utf8')) as T;
}

export function sampleNames(): string[] {
  return fs.readdirSync(path.join(FIXTURES, 'samples')).filter((f) => f.endsWith('.json')).sort();
}

export function factoryConfigXml(): string {
  return fs.readFileSync(path.join(FIXTURES, 'config.xml.sample'), 'utf8');
}
