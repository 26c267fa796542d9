// jest globalTeardown: fails the run when any request of the dualwan client violated the
// Proxmox VE API schema (8.4 or 9.1) or the OPNsense 26.7 API catalogue and conventions while
// talking to the test doubles (each double appends one JSON line per violation).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LoggedViolation {
  /** absent for the Proxmox double (its log format predates the OPNsense one) */
  system?: 'proxmox' | 'opnsense';
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
      if (v.system === 'opnsense') return `  - OPNsense ${v.version}: ${v.method} ${v.path}: ${v.message.trim()}${errs}`;
      return `  - PVE ${v.version}: ${v.method} ${v.path} -> ${v.status} ${v.message.trim()}${errs}`;
    })
    .join('\n');
}

/** Connections a test process tried to open beyond loopback (test/helpers/net-guard.js). */
function netGuardFailure(): string | undefined {
  const file = process.env.DUALWAN_NET_GUARD_LOG;
  if (!file || !fs.existsSync(file)) return undefined;
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!text) return undefined;
  const lines = text.split('\n').map((l) => JSON.parse(l) as { kind: string; host: string; port: number | null; argv: string; stack: string });
  return `a test process tried to reach ${lines.length} destination(s) beyond loopback (refused; log: ${file}):\n${lines
    .map((l) => `  - ${l.kind} ${l.host}:${String(l.port)} from ${l.argv}\n${l.stack.replace(/^/gm, '      ')}`)
    .join('\n')}`;
}

export default async function globalTeardown(): Promise<void> {
  const guard = netGuardFailure();
  if (guard) throw new Error(guard);
  const file = process.env.DUALWAN_CONTRACT_LOG;
  if (!file || !fs.existsSync(file)) return;
  const text = fs.readFileSync(file, 'utf8').trim();
  if (!text) {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
    return;
  }
  const lines = text.split('\n').map((l) => JSON.parse(l) as LoggedViolation);
  const pve = lines.filter((l) => l.system !== 'opnsense');
  const opn = lines.filter((l) => l.system === 'opnsense');
  const parts: string[] = [];
  if (pve.length) parts.push(`dualwan sent ${pve.length} request(s) that the Proxmox VE API schema rejects (log: ${file}):\n${formatViolations(pve)}`);
  if (opn.length) parts.push(`dualwan sent ${opn.length} request(s) that break the OPNsense 26.7 API catalogue or its conventions (log: ${file}):\n${formatViolations(opn)}`);
  throw new Error(parts.join('\n'));
}
