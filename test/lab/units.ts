/**
 * What systemd would do on the lab router, which has none (a namespace shares this machine's init):
 * read the units `dualwan apply` wrote under the lab's router root, run the restore unit's
 * ExecStart on the router through SSH, and start the monitor unit's ExecStart inside the router
 * namespace. The command lines come from the unit files themselves, so the lab runs exactly what a
 * real router's systemd would.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RemoteShell } from '../../src/providers/linux/ssh';
import type { ExecResult } from '../../src/providers/linux/ssh';
import type { LinuxRouterOptions } from '../../src/providers/linux/context';
import type { DualWanLab } from './lab';
import { dualwanMonitorCommand } from './runtime';

/**
 * How the product is told about the lab router: boot files under the lab's private root, units
 * enabled offline (`systemctl --root`), and the monitor unit running this checkout's monitor.
 */
export function labRouterOptions(lab: DualWanLab): LinuxRouterOptions {
  return { fsRoot: lab.routerRoot, systemd: 'offline', dualwanCommand: dualwanMonitorCommand() };
}

export function execStartOf(unitFile: string): [string, ...string[]] {
  const text = fs.readFileSync(unitFile, 'utf8');
  const line = text.split('\n').find((l) => l.startsWith('ExecStart='));
  if (!line) throw new Error(`${unitFile} has no ExecStart=`);
  const argv = line.slice('ExecStart='.length).trim().split(/\s+/);
  if (argv.length === 0 || argv[0] === '') throw new Error(`${unitFile}: empty ExecStart=`);
  return argv as [string, ...string[]];
}

export function unitPath(lab: DualWanLab, unit: 'dualwan-restore.service' | 'dualwan-monitor.service'): string {
  return path.join(lab.routerRoot, 'etc', 'systemd', 'system', unit);
}

/** `systemctl start dualwan-restore.service`: the boot script, run on the router over SSH. */
export async function runRestoreUnit(lab: DualWanLab, ssh: RemoteShell): Promise<ExecResult> {
  return ssh.exec(execStartOf(unitPath(lab, 'dualwan-restore.service')), { timeoutMs: 30_000 });
}

/** `systemctl start dualwan-monitor.service`: the daemon in the router namespace; returns its pid. */
export function startMonitorUnit(lab: DualWanLab, extraArgs: readonly string[] = []): number {
  return lab.startProcess('router', ['timeout', '-k', '5', '900', ...execStartOf(unitPath(lab, 'dualwan-monitor.service')), ...extraArgs], 'monitor.log');
}

export interface MonitorStateFile {
  readonly updatedAt: number;
  readonly startedAt: number;
  readonly active: readonly string[];
  readonly wans: readonly { readonly name: string; readonly status: string; readonly since: number; readonly address?: string; readonly probesSent: number }[];
  readonly events: readonly { readonly type: string; readonly at: number; readonly wan?: string; readonly to?: string; readonly removed?: readonly string[]; readonly added?: readonly string[] }[];
  readonly actions: readonly { readonly at: number; readonly what: string; readonly ok: boolean; readonly detail?: string }[];
}

export function readMonitorState(lab: DualWanLab): MonitorStateFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(lab.routerRoot, 'run', 'dualwan', 'monitor-state.json'), 'utf8')) as MonitorStateFile;
  } catch {
    return undefined;
  }
}

/** Polls (every 50 ms, bounded by `timeoutMs`) until `check` returns a value. */
export async function waitUntil<T>(check: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  const v = check();
  if (v !== undefined && v !== false) return v;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
