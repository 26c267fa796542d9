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
  /**
   * Work to finish through the new path before disarming (e.g. wait for the VM start, clean up the
   * old bridge). If it throws, the timer is not disarmed: it reverts, and the error is reported.
   */
  readonly afterReach?: (newPath: RemoteShell) => Promise<void>;
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
    try {
      await spec.change(old);
    } catch (e) {
      // The change failed before cutting anything, or cut the old path mid-way. Disarm if the old
      // path still answers (nothing to revert then beyond what the caller undoes); else the timer reverts.
      const outcome = await disarmDeadman(old, armed).catch(() => 'unreachable' as const);
      if (outcome === 'disarmed') await cleanupDeadman(old, armed).catch(() => undefined);
      else say('CUTOVER_CHANGE_FAILED', `The change failed and the dead-man timer ${armed.id} stays armed (${outcome}): it reverts the host within ${spec.timeoutSeconds} s.`, 'warn');
      throw e;
    }
  } finally {
    await old.close().catch(() => undefined);
  }
  const started = Date.now();
  const confirmWithin = spec.confirmWithinMs ?? Math.round(spec.timeoutSeconds * 800);
  say('CUTOVER_CONFIRMING', `Network change applied; reaching the host through the new path (up to ${Math.round(confirmWithin / 1000)} s).`);
  const fresh = await reachWithin(spec.connectNew, confirmWithin);
  let afterError: unknown;
  if (fresh) {
    try {
      if (spec.afterReach) {
        try {
          await spec.afterReach(fresh);
        } catch (e) {
          afterError = e;
        }
      }
      const result = afterError !== undefined ? 'not-confirmed' : await disarmDeadman(fresh, armed);
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
  const failedAfter = afterError === undefined ? '' : `\n  reached through the new path, but finishing there failed: ${afterError instanceof Error ? afterError.message : String(afterError)}`;
  say(
    'CUTOVER_NOT_CONFIRMED',
    afterError === undefined
      ? 'The new path did not answer in time; the dead-man timer is reverting the host. Waiting to reach it through the old path.'
      : `The cutover could not be finished through the new path (${afterError instanceof Error ? afterError.message : String(afterError)}); the dead-man timer reverts the host. Waiting to reach it through the old path.`,
    'warn',
  );
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
      `${afterError === undefined ? `The host was not reachable through the new path within ${Math.round(confirmWithin / 1000)} s` : 'The cutover was not confirmed'}, so the dead-man timer ${armed.id} restored its previous network config (state: ${state}).${failedAfter}\n  what the revert did:\n${log
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
 * The revert of a Proxmox host: put the saved /etc/network/interfaces back, drop anything staged,
 * apply it with ifupdown2, stop the router VM, take the NICs the cutover added out of its config
 * (`deleteKeys`, e.g. hostpci1) and keep it from starting at boot (belt and braces: it must not
 * take the management NIC again with no timer armed). `backup` is where the change saved the old
 * file; `bin` lets a test host use stand-ins for ifreload and qm.
 */
export function revertCommandsForProxmox(o: { backup: string; vmid: number; interfaces?: string; deleteKeys?: readonly string[]; bin?: { ifreload?: string; qm?: string } }): Argv[] {
  const interfaces = o.interfaces ?? '/etc/network/interfaces';
  const qm = o.bin?.qm ?? 'qm';
  return [
    ['cp', '--', o.backup, interfaces],
    ['rm', '-f', '--', `${interfaces}.new`],
    [o.bin?.ifreload ?? 'ifreload', '-a'],
    [qm, 'stop', String(o.vmid)],
    ...(o.deleteKeys?.length ? [[qm, 'set', String(o.vmid), '--delete', o.deleteKeys.join(',')] as Argv] : []),
    [qm, 'set', String(o.vmid), '--onboot', '0'],
  ];
}

export interface CutoverPort {
  /** Host netdev name (enp1s0) when known. */
  readonly iface?: string;
  readonly pci: string;
  /** What it is for the router: "LAN", "WAN isp (Fibre)". */
  readonly role: string;
  /** What must be plugged into it. */
  readonly plug: string;
}

/**
 * What the plan shows for the cutover: the disruption, and in words what moves, the re-cabling the
 * user must do before confirming, and where the host answers afterwards.
 */
export function describeCutover(o: {
  readonly ports: readonly CutoverPort[];
  readonly managementBridge?: string;
  readonly oldAddress?: string;
  readonly bridge: string;
  readonly hostAddress: string;
  readonly gateway: string;
  readonly apiPort: number;
  readonly sshPort: number;
  readonly lanSubnet: string;
  readonly lanAddress: string;
  readonly vmid: number;
  readonly vmRunning: boolean;
  /** VM config entries the cutover adds (`hostpci1 (lan)`). */
  readonly vmKeys?: readonly string[];
  readonly timeoutSeconds: number;
}): { disruption: ('drops-management-session' | 'restarts-router-vm' | 'starts-router-vm')[]; steps: string[] } {
  const ip = o.hostAddress.split('/')[0]!;
  const name = (p: CutoverPort) => `${p.iface ?? 'the NIC'} (PCI ${p.pci})`;
  return {
    disruption: ['drops-management-session', o.vmRunning ? 'restarts-router-vm' : 'starts-router-vm'],
    steps: [
      `The host's management path moves: ${o.ports.map(name).join(' and ')} leave${o.ports.length === 1 ? 's' : ''} ${o.managementBridge ?? 'the management bridge'}${o.oldAddress ? ` (${o.oldAddress})` : ''} for the router VM ${o.vmid}${o.vmKeys?.length ? ` (added as ${o.vmKeys.join(', ')}; the VM ${o.vmRunning ? 'restarts' : 'starts'} to take ${o.vmKeys.length === 1 ? 'it' : 'them'})` : ''}; the host keeps ${o.hostAddress} on ${o.bridge} (no physical port), where the router already answers at ${o.gateway}, its new gateway.`,
      `Re-cabling, before you confirm: ${o.ports.map((p) => `${name(p)} becomes the router's ${p.role} port: plug ${p.plug} into it`).join('; ')}.`,
      `Afterwards the host answers only through the router, at ${ip} (API https://${ip}:${o.apiPort}, SSH port ${o.sshPort}); run dualwan from a computer on the LAN ${o.lanSubnet} (router ${o.lanAddress}). dualwan records the new address as proxmox.host.`,
      `Before the change a dead-man timer is armed on the host over SSH: unless dualwan reaches the host at ${ip} within ${o.timeoutSeconds} s, the host restores its network config, stops the router VM and turns its start at boot off.`,
      'Keep a keyboard and screen at hand for the host during this step: if both paths fail, that is the way back.',
    ],
  };
}
