import * as fs from 'node:fs';
import * as path from 'node:path';

const DIR = path.resolve(__dirname, '../fixtures/upstream/pve-samples');

interface SampleFile {
  response?: { body: { data: unknown } };
  examples?: { request: { path: string; query?: Record<string, string> }; response: { status: number; body: { data: unknown } } }[];
}

/** The `data` of a recorded Proxmox response (the first example when a file has several). */
export function sampleData<T = unknown>(file: string, example = 0): T {
  const s = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as SampleFile;
  const body = s.response?.body ?? s.examples?.[example]?.response.body;
  if (!body) throw new Error(`no response body in ${file}`);
  return structuredClone(body.data) as T;
}

export function sampleFiles(): string[] {
  return fs.readdirSync(DIR).filter((f) => f.endsWith('.json'));
}
