import { DualwanError } from '../core/errors';
import type { Ui } from '../core/ui';
import type { Argv } from '../providers/linux/shell';
import type { RemoteShell } from '../providers/linux/ssh';
import { armDeadman, cleanupDeadman, deadmanLog, deadmanState, disarmDeadman, type ArmedDeadman, type DeadmanKind } from './deadman';

/**
 * A lockout-safe network change on the host (issue: "Lockout-safe cutover"):
 *
 *   arm the dead-man timer (old path) → apply the staged change (old path; it may cut this very
 *   session) → reach the host through the new path → disarm through the new path.
 *
 * If the new path never answers, dualwan does not disarm: the timer fires on the host, restores
 * its network config and stops the router VM; dualwan then reaches the host through the old path
 * again, reads what the revert did, and reports it with what to change. Nothing here sleeps for a
 * fixed time: reaching a path is retried with a growing interval under a deadline.
 */
export interface CutoverSpec {
  readonly timeoutSeconds: number;
  /** Restore the old network config and stop the VM (see revertCommandsForProxmox). */
  readonly revert: readonly Argv[];
  /** The staged change, applied over the old path's shell (a detached script is safest). */
  readonly change: (oldPath: RemoteShell) => Promise<void>;
  readonly connectOld: () => Promise<RemoteShell>;
  readonly connectNew: () => Promise<RemoteShell>;
  /** How long to try the new path (default: the timer's timeout minus 20 %). */
  readonly confirmWithinMs?: number;
  /** How long to wait for the old path after the timer fired (default: timeout + 60 s). */
  readonly recoverWithinMs?: number;
  readonly kind?: DeadmanKind;
  readonly stateDir?: string;
  readonly id?: string;
  readonly ui?: Ui;
}

export interface CutoverResult {
  readonly outcome: 'confirmed';
  readonly deadman: ArmedDeadman;
  readonly confirmedAfterMs: number;
}

export class CutoverRevertedError extends DualwanError {
  readonly deadmanState: string;
  readonly revertLog: string;
  constructor(message: string, state: string, log: string, remedy: string) {
    super('CUTOVER_REVERTED', message, { source: 'remote', remedy });
    this.deadmanState = state;
    this.revertLog = log;
  }
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Tries `connect` until it succeeds or the deadline passes; undefined on the deadline. */
export async function reachWithin(connect: () => Promise<RemoteShell>, withinMs: number, now: () => number = Date.now): Promise<RemoteShell | undefined> {
  const end = now() + withinMs;
  let delay = 200;
  for (let attempt = 0; attempt < 1000; attempt++) {
    try {
      const shell = await connect();
      const r = await shell.exec(['true'], { timeoutMs: 5_000 });
      if (r.code === 0) return shell;
      await shell.close();
    } catch {
      // not reachable yet
    }
    if (now() + delay > end) return undefined;
    await pause(delay);
    delay = Math.min(delay * 2, 3_000);
  }
  return undefined;
}

export async function guardedCutover(spec: CutoverSpec): Promise<CutoverResult> {
  const say = (code: string, text: string, level: 'info' | 'warn' | 'success' = 'info') => spec.ui?.notify({ code, level, text });
  const old = await spec.connectOld();
  let armed: ArmedDeadman;
  try {
    armed = await armDeadman(old, { timeoutSeconds: spec.timeoutSeconds, revert: spec.revert, ...(spec.kind ? { kind: spec.kind } : {}), ...(spec.stateDir ? { stateDir: spec.stateDir } : {}), ...(spec.id ? { id: spec.id } : {}) });
    say('CUTOVER_ARMED', `Dead-man timer ${armed.id} armed on ${old.target}: unless dualwan confirms the new path within ${spec.timeoutSeconds} s, the host restores its network config and stops the router VM.`);
    await spec.change(old);
  } finally {
    await old.close().catch(() => undefined);
  }
  const started = Date.now();
  const confirmWithin = spec.confirmWithinMs ?? Math.round(spec.timeoutSeconds * 800);
  say('CUTOVER_CONFIRMING', `Network change applied; reaching the host through the new path (up to ${Math.round(confirmWithin / 1000)} s).`);
  const fresh = await reachWithin(spec.connectNew, confirmWithin);
  if (fresh) {
    try {
      const result = await disarmDeadman(fresh, armed);
      if (result === 'disarmed') {
        await cleanupDeadman(fresh, armed);
        say('CUTOVER_CONFIRMED', `Reached the host through the new path after ${Math.round((Date.now() - started) / 1000)} s; dead-man timer disarmed.`, 'success');
        return { outcome: 'confirmed', deadman: armed, confirmedAfterMs: Date.now() - started };
      }
      // The timer won the race: the revert is running or done; fall through to the report.
    } finally {
      await fresh.close().catch(() => undefined);
    }
  }
  say('CUTOVER_NOT_CONFIRMED', 'The new path did not answer in time; the dead-man timer is reverting the host. Waiting to reach it through the old path.', 'warn');
  const left = Math.max(0, armed.armedAt + spec.timeoutSeconds * 1000 - Date.now());
  const back = await reachWithin(spec.connectOld, left + (spec.recoverWithinMs ?? 60_000));
  if (!back) {
    throw new CutoverRevertedError(
      `The new path to the host never answered, and the host did not come back on the old path either after the dead-man timer ${armed.id} should have fired.`,
      'unknown',
      '',
      'Go to the host\'s console (keyboard and screen): check `ip addr`, restore /etc/network/interfaces from the .dualwan backup next to it, run `ifreload -a`, and stop the router VM (`qm stop <vmid>`).',
    );
  }
  try {
    // The timer may still be reverting: wait for its state to settle (bounded).
    let state = await deadmanState(back, armed);
    for (let i = 0; i < 50 && (state === 'armed' || state === 'firing'); i++) {
      await pause(200);
      state = await deadmanState(back, armed);
    }
    const log = await deadmanLog(back, armed);
    throw new CutoverRevertedError(
      `The host was not reachable through the new path within ${Math.round(confirmWithin / 1000)} s, so the dead-man timer ${armed.id} restored its previous network config (state: ${state}).\n  what the revert did:\n${log
        .trim()
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n')}`,
      state,
      log,
      'Nothing is lost: the host is as before. Check the new path (cabling: which port goes to which device; the VM bridge and its address), then run dualwan apply again.',
    );
  } finally {
    await back.close().catch(() => undefined);
  }
}

/**
 * The revert of a Proxmox host: put the saved /etc/network/interfaces back, apply it with
 * ifupdown2, stop the router VM. (`backup` is where the change saved the old file.)
 */
export function revertCommandsForProxmox(o: { backup: string; vmid: number }): Argv[] {
  return [
    ['cp', '--', o.backup, '/etc/network/interfaces'],
    ['ifreload', '-a'],
    ['qm', 'stop', String(o.vmid)],
  ];
}

/**
 * What the plan shows for the cutover: a disruptive step and the re-cabling the user must do.
 */
export function describeCutover(o: { managementNic: string; bridge: string; hostAddress: string; lanAddress: string; vmid: number; timeoutSeconds: number }): { disruption: ('drops-management-session' | 'restarts-router-vm')[]; steps: string[] } {
  return {
    disruption: ['drops-management-session', 'restarts-router-vm'],
    steps: [
      `The NIC ${o.managementNic} that carries the Proxmox management address goes to the router VM ${o.vmid}; the host keeps ${o.hostAddress} on ${o.bridge}, which the VM also joins.`,
      `Before the change, a dead-man timer on the host is armed for ${o.timeoutSeconds} s: if dualwan cannot reach the host through the router afterwards, the host restores its network config and stops the VM by itself.`,
      `Re-cabling: the TP-Link (now an access point) goes into the port the VM's LAN uses; the ISP modem into the WAN port. The host is then reached at ${o.hostAddress} through the router (${o.lanAddress}).`,
      'Keep a keyboard and screen at hand for the host during this step: if both paths fail, that is the way back.',
    ],
  };
}
