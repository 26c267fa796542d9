import { randomBytes } from 'node:crypto';
import { DualwanError } from '../core/errors';
import { commandLine, displayArgv, quoteArg, type Argv } from '../providers/linux/shell';
import type { RemoteShell } from '../providers/linux/ssh';

/**
 * A dead-man timer on the host: armed before a network change that could cut us off, it runs the
 * revert commands (restore the host's network config, stop the router VM) unless dualwan disarms
 * it — through the *new* path — within the timeout.
 *
 * Two ways to keep the time, one protocol:
 * - `systemd-run` (a real Proxmox host): a transient timer unit, `systemd-run --on-active=<N>s
 *   --unit=<id>`, runs the fire script when it elapses; disarming stops `<id>.timer`.
 * - `process` (no systemd, e.g. inside a network namespace): a detached `setsid` shell that waits
 *   N seconds in a `sleep` child, then runs the same fire script; disarming kills it by the pid it
 *   recorded, after checking that pid is still our script.
 * - `daemon` (FreeBSD, i.e. OPNsense): the same waiting shell, detached with `daemon -f` (FreeBSD
 *   has no setsid(1) and no /proc; the pid is checked with `ps`). OPNsense runs root's commands
 *   through csh, so every script of this kind goes to `/bin/sh -s` on its standard input, never
 *   inside a quoted argument.
 * Both race safely: firing and disarming each first try `mkdir <id>.claim` (atomic); whoever
 * creates it wins, the other does nothing and reports what happened. The state files live in
 * `stateDir` on the host (default /run/dualwan): `<id>.state` says `armed`, `fired` or
 * `disarmed`; `<id>.log` holds the revert's output.
 * Every command is an argv turned into a shell line by shell.ts; ids and paths are checked.
 */
export type DeadmanKind = 'systemd-run' | 'process' | 'daemon';

export interface DeadmanSpec {
  /** Unique unit-safe name, e.g. dualwan-cutover-1a2b3c4d (default: random). */
  readonly id?: string;
  readonly timeoutSeconds: number;
  /** Run in order when the timer fires; each one's failure is logged and the next still runs. */
  readonly revert: readonly Argv[];
  readonly kind?: DeadmanKind;
  /** Where the state files go on the host (default /run/dualwan). */
  readonly stateDir?: string;
  /** The `daemon` kind's detaching program (default daemon, FreeBSD's daemon(8)); tests give a stand-in. */
  readonly daemonBin?: string;
}

export interface ArmedDeadman {
  readonly id: string;
  readonly kind: DeadmanKind;
  readonly stateDir: string;
  readonly script: string;
  readonly timeoutSeconds: number;
  /** When it was armed (local clock), for messages. */
  readonly armedAt: number;
}

export type DeadmanState = 'armed' | 'fired' | 'disarmed' | 'firing' | 'unknown';

export class DeadmanError extends DualwanError {
  constructor(message: string, remedy?: string, cause?: unknown) {
    super('DEADMAN_FAILED', message, { source: 'remote', remedy, cause });
  }
}

const ID_RE = /^[a-z][a-z0-9-]{2,62}$/;
const DIR_RE = /^\/[A-Za-z0-9_./-]+$/;

/** `purpose`: the middle of the id, e.g. cutover (default) or apply. */
export function newDeadmanId(purpose = 'cutover'): string {
  return `dualwan-${purpose}-${randomBytes(4).toString('hex')}`;
}

/** The fire script: claim, then revert, logging each command and its status. Pure text. */
export function fireScript(d: { id: string; stateDir: string; revert: readonly Argv[] }): string {
  const lines = [
    '#!/bin/sh',
    `# dualwan dead-man timer ${d.id}: reverts the network change unless dualwan disarmed it in time.`,
    `dir=${quoteArg(d.stateDir)}`,
    `id=${d.id}`,
    'mkdir "$dir/$id.claim" 2>/dev/null || exit 0',
    'echo firing > "$dir/$id.state"',
    'exec >>"$dir/$id.log" 2>&1',
    'echo "dead-man timer $id fired at $(date -u +%Y-%m-%dT%H:%M:%SZ); reverting"',
  ];
  for (const argv of d.revert) {
    const line = commandLine(argv);
    lines.push(`echo "+ ${displayArgv(argv).replace(/["\\$`]/g, '\\$&')}"`, `${line} || echo "  (exit status $?)"`);
  }
  lines.push('echo fired > "$dir/$id.state"', '');
  return lines.join('\n');
}

/** The waiting wrapper of the process backend: records its pid, sleeps in a child it can stop. */
export function waitScript(d: { id: string; stateDir: string; timeoutSeconds: number }): string {
  return [
    '#!/bin/sh',
    `# dualwan dead-man timer ${d.id} (process backend): waits, then runs the fire script.`,
    `dir=${quoteArg(d.stateDir)}`,
    `id=${d.id}`,
    'echo $$ > "$dir/$id.pid"',
    'trap \'kill "$s" 2>/dev/null; exit 0\' TERM INT',
    `sleep ${Math.round(d.timeoutSeconds)} & s=$!`,
    'wait "$s"',
    'exec /bin/sh "$dir/$id.fire.sh"',
    '',
  ].join('\n');
}

/**
 * The disarm snippet (constant text; the state dir, id and backend come as $1 $2 $3): claim, then
 * stop the timer. Prints `disarmed`, or the state that won (`fired`/`firing`) with exit status 3.
 */
const DISARM = [
  'dir=$1; id=$2; kind=$3',
  'if ! mkdir "$dir/$id.claim" 2>/dev/null; then cat "$dir/$id.state" 2>/dev/null || echo unknown; exit 3; fi',
  'echo disarmed > "$dir/$id.state"',
  'if [ "$kind" = systemd-run ]; then systemctl stop "$id.timer" 2>/dev/null; fi',
  'if [ "$kind" = process ] && [ -f "$dir/$id.pid" ]; then',
  '  pid=$(cat "$dir/$id.pid")',
  '  case "$(tr "\\000" " " < "/proc/$pid/cmdline" 2>/dev/null)" in *"$dir/$id.wait.sh"*) kill "$pid";; esac',
  'fi',
  'if [ "$kind" = daemon ] && [ -f "$dir/$id.pid" ]; then',
  '  pid=$(cat "$dir/$id.pid")',
  '  case "$(ps -o args= -p "$pid" 2>/dev/null)" in *"$dir/$id.wait.sh"*) kill "$pid";; esac',
  'fi',
  'echo disarmed',
].join('\n');

const STATUS = ['dir=$1; id=$2', 'cat "$dir/$id.state" 2>/dev/null || echo unknown'].join('\n');

function check(spec: { id: string; stateDir: string; timeoutSeconds: number }): void {
  if (!ID_RE.test(spec.id)) throw new DeadmanError(`dead-man timer id '${spec.id}' is not a safe unit name`);
  if (!DIR_RE.test(spec.stateDir) || spec.stateDir.includes('..')) throw new DeadmanError(`dead-man state directory '${spec.stateDir}' is not a plain absolute path`);
  if (!(spec.timeoutSeconds >= 2 && spec.timeoutSeconds <= 3600)) throw new DeadmanError(`dead-man timeout ${spec.timeoutSeconds} s is outside 2–3600 s`);
}

/**
 * A shell snippet with its arguments ($1…): inside `sh -c` for the Linux kinds; on the `daemon`
 * kind fed to `/bin/sh -s` on standard input, since OPNsense's root shell is csh, which cannot take
 * a quoted argument spanning lines.
 */
export function snippet(kind: DeadmanKind, name: string, text: string, args: readonly string[]): { argv: Argv; stdin?: string } {
  return kind === 'daemon' ? { argv: ['/bin/sh', '-s', ...args], stdin: `${text}\n` } : { argv: ['sh', '-c', text, name, ...args] };
}

async function run(shell: RemoteShell, argv: Argv, what: string, timeoutMs = 15_000, stdin?: string): Promise<string> {
  const r = await shell.exec(argv, { timeoutMs, ...(stdin === undefined ? {} : { stdin }) });
  if (r.code !== 0) throw new DeadmanError(`Unable to ${what} on ${shell.target}: ${(r.stderr || r.stdout).trim() || `exit status ${String(r.code)}`}`);
  return r.stdout;
}

/** Arms the timer on the host. Returns once it is known to be ticking. */
export async function armDeadman(shell: RemoteShell, spec: DeadmanSpec): Promise<ArmedDeadman> {
  const id = spec.id ?? newDeadmanId();
  const stateDir = spec.stateDir ?? '/run/dualwan';
  const kind = spec.kind ?? 'systemd-run';
  check({ id, stateDir, timeoutSeconds: spec.timeoutSeconds });
  if (!spec.revert.length) throw new DeadmanError('a dead-man timer needs at least one revert command');
  await run(shell, ['mkdir', '-p', '-m', '0700', stateDir], 'create the dead-man state directory');
  const fire = `${stateDir}/${id}.fire.sh`;
  await shell.writeFile(fire, fireScript({ id, stateDir, revert: spec.revert }), 0o700);
  await shell.writeFile(`${stateDir}/${id}.state`, 'armed\n', 0o600);
  let script = fire;
  if (kind === 'systemd-run') {
    await run(shell, ['systemd-run', `--unit=${id}`, `--on-active=${Math.round(spec.timeoutSeconds)}s`, '--timer-property=AccuracySec=1s', `--description=dualwan dead-man timer ${id}`, '/bin/sh', fire], 'start the transient systemd timer');
  } else {
    script = `${stateDir}/${id}.wait.sh`;
    await shell.writeFile(script, waitScript({ id, stateDir, timeoutSeconds: spec.timeoutSeconds }), 0o700);
    if (kind === 'daemon') {
      // daemon -f: detached into its own session with stdio on /dev/null, so it outlives this SSH session.
      await run(shell, [spec.daemonBin ?? 'daemon', '-f', '/bin/sh', script], 'start the dead-man process (daemon -f)');
    } else {
      // setsid -f: its own session, so the timer outlives this SSH session; no stdio held open.
      await run(shell, ['sh', '-c', 'setsid -f /bin/sh "$0" </dev/null >/dev/null 2>&1', script], 'start the dead-man process');
    }
    // The pid file proves it runs (bounded wait for the fork to write it).
    const wait = snippet(kind, 'started', 'i=0; while [ ! -s "$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; test -s "$1"', [`${stateDir}/${id}.pid`]);
    await run(shell, wait.argv, 'confirm the dead-man process started', 15_000, wait.stdin);
  }
  return { id, kind, stateDir, script, timeoutSeconds: spec.timeoutSeconds, armedAt: Date.now() };
}

/** Disarms it (call through the new path). `fired`/`firing` means the revert already won. */
export async function disarmDeadman(shell: RemoteShell, armed: ArmedDeadman): Promise<'disarmed' | 'fired' | 'firing' | 'unknown'> {
  const s = snippet(armed.kind, 'disarm', DISARM, [armed.stateDir, armed.id, armed.kind]);
  const r = await shell.exec(s.argv, { timeoutMs: 15_000, ...(s.stdin === undefined ? {} : { stdin: s.stdin }) });
  const out = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code === 0 && out === 'disarmed') return 'disarmed';
  if (r.code === 3 && out === 'disarmed') return 'disarmed'; // disarmed before: nothing to do
  if (r.code === 3 && (out === 'fired' || out === 'firing' || out === 'unknown')) return out;
  throw new DeadmanError(`Unable to disarm the dead-man timer ${armed.id} on ${shell.target}: ${(r.stderr || r.stdout).trim() || `exit status ${String(r.code)}`}`);
}

export async function deadmanState(shell: RemoteShell, armed: Pick<ArmedDeadman, 'id' | 'stateDir'> & { kind?: DeadmanKind }): Promise<DeadmanState> {
  const sn = snippet(armed.kind ?? 'process', 'status', STATUS, [armed.stateDir, armed.id]);
  const r = await shell.exec(sn.argv, { timeoutMs: 15_000, ...(sn.stdin === undefined ? {} : { stdin: sn.stdin }) });
  const s = r.stdout.trim();
  return s === 'armed' || s === 'fired' || s === 'disarmed' || s === 'firing' ? s : 'unknown';
}

/** What the revert printed (for the error a person reads). */
export async function deadmanLog(shell: RemoteShell, armed: Pick<ArmedDeadman, 'id' | 'stateDir'>): Promise<string> {
  return (await shell.readFile(`${armed.stateDir}/${armed.id}.log`)) ?? '';
}

/** Removes the state files of a finished timer. */
export async function cleanupDeadman(shell: RemoteShell, armed: Pick<ArmedDeadman, 'id' | 'stateDir'>): Promise<void> {
  const base = `${armed.stateDir}/${armed.id}`;
  await shell.exec(['rm', '-rf', '--', `${base}.claim`, `${base}.state`, `${base}.pid`, `${base}.log`, `${base}.fire.sh`, `${base}.wait.sh`], { timeoutMs: 15_000 });
}
