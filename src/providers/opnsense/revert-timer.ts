import { DeadmanError, armDeadman, cleanupDeadman, deadmanLog, deadmanState, disarmDeadman, newDeadmanId, type ArmedDeadman, type DeadmanKind, type DeadmanState } from '../../cutover/deadman';
import { DualwanError } from '../../core/errors';
import type { Argv } from '../linux/shell';
import { HostKeyMismatchError, type RemoteShell } from '../linux/ssh';

/**
 * "Revert if unreachable" for an OPNsense apply. OPNsense 26.7 has no rollback timer of its own,
 * but the seed turns SSH on for root with dualwan's key, so dualwan brings one: before the first
 * write it arms a dead-man timer on OPNsense (cutover/deadman.ts, kind `daemon`) whose revert puts
 * the noted configuration backup back (`cp /conf/backup/<id> /conf/config.xml`, then
 * `configctl service reload all`). A fresh connection that answers after the apply disarms it over
 * a fresh SSH session; an apply that cut the path leaves it armed, and it restores the backup.
 *
 * The backup ids of `core/backup/backups/this` are the file names in /conf/backup
 * (`config-<unix time>.<fraction>.xml`), so the id names the file directly; it is checked first.
 */
export interface RevertTimerSettings {
  /** `root@host:22`, for messages. */
  readonly target: string;
  /** A fresh SSH session to OPNsense (root, dualwan's key, the pinned host key) on each call. */
  connect(): Promise<RemoteShell>;
  readonly kind: DeadmanKind;
  /** Where the timer's state files go on OPNsense. */
  readonly stateDir: string;
  /** How long after arming the timer restores the backup unless disarmed. */
  readonly timeoutSeconds: number;
  /** OPNsense's config.xml and its history directory. */
  readonly paths: { readonly config: string; readonly backupDir: string };
  /** The programs the revert and the arming run. */
  readonly bin: { readonly configctl: string; readonly daemon: string };
}

/** Either the settings, or why no timer can be armed (said once per apply). */
export type RevertTimer = { readonly settings: RevertTimerSettings } | { readonly missing: string };

export const REVERT_TIMER_DEFAULTS = {
  kind: 'daemon' as DeadmanKind,
  stateDir: '/var/run/dualwan',
  timeoutSeconds: 600,
  paths: { config: '/conf/config.xml', backupDir: '/conf/backup' },
  bin: { configctl: 'configctl', daemon: 'daemon' },
} as const;

const BACKUP_ID = /^config-\d+(\.\d+)?\.xml$/;

export class RevertTimerError extends DualwanError {
  /** True when the apply must not go on (OPNsense's SSH host key is not the pinned one). */
  readonly refuse: boolean;
  constructor(message: string, remedy: string, cause?: unknown, refuse = false) {
    super(refuse ? 'OPNSENSE_SSH_HOST_KEY_MISMATCH' : 'OPNSENSE_REVERT_TIMER', message, { source: 'remote', remedy, cause });
    this.refuse = refuse;
  }
}

/** The file of a backup in OPNsense's history: the id is its name there. */
export function backupFile(backupDir: string, id: string): string {
  if (!BACKUP_ID.test(id)) {
    throw new RevertTimerError(`OPNsense named its newest backup '${id}', not a history file name (config-<time>.xml), so a timer cannot name the file to restore`, 'Check System > Configuration > History on OPNsense.');
  }
  return `${backupDir.replace(/\/+$/, '')}/${id}`;
}

/** What the timer runs when it fires: the backup back into place, then every service reloaded from it. */
export function restoreCommands(s: Pick<RevertTimerSettings, 'paths' | 'bin'>, backupId: string): Argv[] {
  return [
    ['cp', '--', backupFile(s.paths.backupDir, backupId), s.paths.config],
    [s.bin.configctl, 'service', 'reload', 'all'],
  ];
}

/** Arms the timer over a fresh SSH session, after checking the backup file is there. */
export async function armRevertTimer(s: RevertTimerSettings, backupId: string): Promise<ArmedDeadman> {
  const file = backupFile(s.paths.backupDir, backupId);
  let shell: RemoteShell;
  try {
    shell = await s.connect();
  } catch (e) {
    if (e instanceof HostKeyMismatchError) {
      throw new RevertTimerError(
        `OPNsense's SSH host key is not the one pinned in opnsense.sshHostKey; nothing was sent to it over SSH, and nothing was written.\n  pinned:    ${e.expected}\n  presented: ${e.presented}`,
        "If OPNsense was reinstalled or its host keys were regenerated on purpose, read the new key on its console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and put it in opnsense.sshHostKey. If nothing changed there, someone may be intercepting the connection: do not continue.",
        e,
        true,
      );
    }
    throw new RevertTimerError(
      `SSH to ${s.target} failed: ${e instanceof Error ? e.message : String(e)}`,
      'Check that SSH is on in OPNsense (System > Settings > Administration), that root accepts the key of DUALWAN_SSH_PRIVATE_KEY_FILE and that opnsense.sshHostKey is its ED25519 host key.',
      e,
    );
  }
  try {
    const there = await shell.exec(['test', '-f', file], { timeoutMs: 15_000 });
    if (there.code !== 0) {
      throw new RevertTimerError(`backup ${backupId} is not at ${file} on OPNsense, so a timer could not restore it`, 'Check System > Configuration > History on OPNsense.');
    }
    return await armDeadman(shell, {
      id: newDeadmanId('apply'),
      kind: s.kind,
      stateDir: s.stateDir,
      timeoutSeconds: s.timeoutSeconds,
      revert: restoreCommands(s, backupId),
      daemonBin: s.bin.daemon,
    });
  } catch (e) {
    if (e instanceof RevertTimerError) throw e;
    throw new RevertTimerError(`arming it on ${s.target} failed: ${e instanceof Error ? e.message : String(e)}`, 'Check that root on OPNsense may write the state directory and run daemon(8).', e);
  } finally {
    await shell.close().catch(() => undefined);
  }
}

/** Disarms through a fresh SSH session (the path after the apply); a few tries, bounded. */
export async function disarmRevertTimer(
  s: RevertTimerSettings,
  armed: ArmedDeadman,
  o: { attempts?: number; sleep: (ms: number) => Promise<void>; backoffMs?: number },
): Promise<'disarmed' | 'fired' | 'firing' | 'unknown'> {
  const attempts = o.attempts ?? 3;
  let last: unknown;
  for (let i = 1; i <= attempts; i++) {
    let shell: RemoteShell | undefined;
    try {
      shell = await s.connect();
      const r = await disarmDeadman(shell, armed);
      if (r === 'disarmed') await cleanupDeadman(shell, armed).catch(() => undefined);
      return r;
    } catch (e) {
      last = e;
    } finally {
      await shell?.close().catch(() => undefined);
    }
    if (i < attempts) await o.sleep((o.backoffMs ?? 1_000) * i);
  }
  throw new DeadmanError(`Unable to disarm the revert timer ${armed.id} on OPNsense (${s.target}): ${last instanceof Error ? last.message : String(last)}`, undefined, last);
}

/** The timer's state and what its revert printed, through a fresh SSH session. */
export async function revertTimerReport(s: RevertTimerSettings, armed: ArmedDeadman): Promise<{ state: DeadmanState; log: string }> {
  const shell = await s.connect();
  try {
    const state = await deadmanState(shell, armed);
    const log = state === 'fired' ? await deadmanLog(shell, armed) : '';
    return { state, log };
  } finally {
    await shell.close().catch(() => undefined);
  }
}
