/**
 * The wizard's progress beside the config, `<config>.setup.json`: the answers given so far (no
 * secret: the token secret lives in the credentials file only) and which steps are done, so an
 * interrupted run resumes with the same answers as defaults.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SetupAnswers } from './answers';

export interface SetupProgress {
  readonly formatVersion: 1;
  answers: SetupAnswers;
  /** dualwan.yaml holds these answers. */
  written?: boolean;
  /** Every stage was applied once with these answers. */
  applied?: boolean;
  updatedAt?: string;
}

export function stateFileFor(configFile: string): string {
  return path.join(path.dirname(path.resolve(configFile)), `${path.basename(configFile)}.setup.json`);
}

export function loadProgress(file: string): SetupProgress | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as Partial<SetupProgress>;
    if (v.formatVersion !== 1 || !v.answers || typeof v.answers !== 'object') return undefined;
    return { formatVersion: 1, answers: v.answers, written: !!v.written, applied: !!v.applied, updatedAt: v.updatedAt };
  } catch {
    return undefined; // a damaged state file only loses the defaults
  }
}

export function saveProgress(file: string, p: SetupProgress, now: () => Date = () => new Date()): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify({ ...p, updatedAt: now().toISOString() }, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
