// jest globalTeardown: fails the run when any request of the dualwan client violated the
// Proxmox VE API schema (8.4 or 9.1) while talking to the test double.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LoggedViolation {
  version: string;
  method: string;
  path: string;
  status: number;
  message: string;
  errors?: Record<string, string>;
}

export function formatViolations(lines: LoggedViolation[]): string {
  return lines
    .map((v) => {
      const errs = Object.entries(v.errors ?? {})
        .map(([k, m]) => `\n      ${k}: ${m.trim().replace(/\n/g, ' | ')}`)
        .join('');
      return `  - PVE ${v.version}: ${v.method} ${v.path} -> ${v.status} ${v.message.trim()}${errs}`;
    })
    .join('\n');
}

export default async function globalTeardown(): Promise<void> {
  const file = process.env.DUALWAN_CONTRACT_LOG;
  if (!file || !fs.existsSync(file)) return;
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!text) {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
    return;
  }
  const lines = text.split('\n').map((l) => JSON.parse(l) as LoggedViolation);
  throw new Error(`dualwan sent ${lines.length} request(s) that the Proxmox VE API schema rejects (log: ${file}):\n${formatViolations(lines)}`);
}
