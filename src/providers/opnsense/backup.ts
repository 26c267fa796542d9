import * as fs from 'node:fs';
import * as path from 'node:path';
import { DualwanError, RemoteApiError } from '../../core/errors';
import type { OpnsenseClient } from './client';
import { BackupListSchema } from './schemas';

/**
 * The safety net of an OPNsense apply. 26.7 removed the firewall savepoint/rollback, and there is
 * no API to upload a config, so the net is OPNsense's own history: every save writes a copy of the
 * new config to /conf/backup, and the newest copy is the current config. Before the first write
 * dualwan notes that copy (and downloads it); on failure it reverts to it
 * (`core/backup/revert_backup`, which rewrites config.xml only) and then re-runs the
 * reconfigure/apply of every module it touched so the running system follows.
 */
export interface BackupPoint {
  readonly id: string;
  readonly time: string;
  /** The config.xml as downloaded, for the user to keep. */
  readonly xml: string;
  /** Where the download was saved, when a directory was given. */
  readonly savedTo?: string;
}

export async function takeBackup(client: OpnsenseClient, saveDir?: string): Promise<BackupPoint> {
  const list = await client.get('core/backup/backups/this', BackupListSchema);
  const newest = [...list.items].sort((a, b) => Number(b.time) - Number(a.time))[0];
  if (!newest) {
    throw new DualwanError('OPNSENSE_NO_BACKUP', 'OPNsense lists no configuration backup to return to, so dualwan does not start writing; nothing was changed.', {
      source: 'remote',
      remedy: 'Save any setting once in the web GUI (that writes the first entry of System > Configuration > History), then run apply again.',
    });
  }
  const xml = await client.getText(`core/backup/download/this/${encodeURIComponent(newest.id)}`);
  let savedTo: string | undefined;
  if (saveDir) {
    fs.mkdirSync(saveDir, { recursive: true, mode: 0o700 });
    savedTo = path.join(saveDir, `opnsense-${newest.id}`);
    // config.xml holds password hashes and key hashes: owner only.
    fs.writeFileSync(savedTo, xml, { mode: 0o600 });
  }
  return { id: newest.id, time: newest.time, xml, ...(savedTo ? { savedTo } : {}) };
}

/** Reverts config.xml to the backup; retried a few times (bounded) when OPNsense does not answer. */
export async function revertToBackup(client: OpnsenseClient, point: BackupPoint, opts: { attempts?: number; sleep: (ms: number) => Promise<void>; backoffMs?: number }): Promise<void> {
  const attempts = opts.attempts ?? 3;
  for (let i = 1; ; i++) {
    try {
      await client.action(`core/backup/revert_backup/${encodeURIComponent(point.id)}`, { verb: 'revert', resource: 'configuration to backup', name: point.id }, /^reverted$/i);
      return;
    } catch (e) {
      const retry = e instanceof RemoteApiError && e.transient && i < attempts;
      if (!retry) throw e;
      await opts.sleep((opts.backoffMs ?? 1_000) * i);
    }
  }
}

export interface ApplyOutcome {
  readonly address: string;
  readonly action: string;
}

/** An apply that failed midway: what was applied, what failed, and what the revert did. */
export class OpnsenseApplyError extends DualwanError {
  readonly failure: unknown;
  readonly backupId?: string;
  readonly applied: readonly ApplyOutcome[];
  readonly failed?: ApplyOutcome;
  readonly notAttempted: readonly ApplyOutcome[];
  readonly reverted: boolean;
  readonly reapplied: readonly string[];

  constructor(init: {
    message: string;
    failure: unknown;
    backupId?: string;
    applied: readonly ApplyOutcome[];
    failed?: ApplyOutcome;
    notAttempted: readonly ApplyOutcome[];
    reverted: boolean;
    reapplied: readonly string[];
    remedy?: string;
  }) {
    super(init.reverted ? 'OPNSENSE_APPLY_REVERTED' : 'OPNSENSE_APPLY_FAILED', init.message, {
      source: init.failure instanceof DualwanError ? init.failure.source : 'tool',
      remedy: init.remedy ?? (init.failure instanceof DualwanError ? init.failure.remedy : undefined),
      cause: init.failure,
    });
    this.failure = init.failure;
    this.backupId = init.backupId;
    this.applied = init.applied;
    this.failed = init.failed;
    this.notAttempted = init.notAttempted;
    this.reverted = init.reverted;
    this.reapplied = init.reapplied;
  }
}
