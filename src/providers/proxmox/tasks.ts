import { RemoteApiError, TaskError } from '../../core/errors';

/**
 * Long Proxmox work returns a task id (UPID). The dispatch may be retried on transient errors —
 * with an `alreadyDone` check, because a create whose answer was lost may have happened — but once
 * a UPID exists the task is only ever waited for, never started again (bpg/terraform-provider-proxmox
 * `proxmox/retry`). Polling reads tolerate a few transient failures.
 */
export interface DispatchOptions {
  readonly attempts?: number;
  readonly backoffMs?: number;
  /** Asked after a failed retry: has the first attempt in fact done the work? */
  readonly alreadyDone?: (err: RemoteApiError) => Promise<boolean>;
  readonly sleep?: (ms: number) => Promise<void>;
}

export const realSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function dispatchWithRetry<T>(send: () => Promise<T>, opts: DispatchOptions = {}): Promise<T | 'already-done'> {
  const attempts = opts.attempts ?? 3;
  const sleep = opts.sleep ?? realSleep;
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await send();
    } catch (e) {
      last = e;
      if (!(e instanceof RemoteApiError)) throw e;
      if (i > 0 && opts.alreadyDone && (await opts.alreadyDone(e))) return 'already-done';
      if (!e.transient || i === attempts - 1) throw e;
      await sleep((opts.backoffMs ?? 500) * 2 ** i);
    }
  }
  throw last;
}

export interface TaskApi {
  status(upid: string): Promise<{ status: 'running' | 'stopped'; exitstatus?: string }>;
  log(upid: string): Promise<string[]>;
}

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
  readonly onProgress?: (line: string) => void;
}

/** Success is `OK` or `WARNINGS: n` (pve-common UPID.pm status_is_error). */
export function taskSucceeded(exitstatus: string | undefined): boolean {
  return exitstatus === 'OK' || /^WARNINGS: \d+$/.test(exitstatus ?? '');
}

export async function waitForTask(api: TaskApi, upid: string, what: string, opts: WaitOptions): Promise<void> {
  const sleep = opts.sleep ?? realSleep;
  const now = opts.now ?? Date.now;
  const deadline = now() + opts.timeoutMs;
  let delay = 50;
  let transientFailures = 0;
  for (let polls = 0; polls < 100_000; polls++) {
    let st: Awaited<ReturnType<TaskApi['status']>>;
    try {
      st = await api.status(upid);
      transientFailures = 0;
    } catch (e) {
      if (e instanceof RemoteApiError && e.transient && ++transientFailures <= 5) {
        await sleep(delay);
        continue;
      }
      throw e;
    }
    if (st.status === 'stopped') {
      if (taskSucceeded(st.exitstatus)) return;
      let lines: string[] = [];
      try {
        lines = (await api.log(upid)).slice(-8);
      } catch {
        lines = ['(task log unavailable)'];
      }
      throw new TaskError(upid, st.exitstatus ?? 'unexpected status', lines, what);
    }
    if (now() >= deadline) {
      throw new TaskError(upid, `still running after ${Math.round(opts.timeoutMs / 1000)} s`, [], what);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 1000);
  }
  throw new TaskError(upid, 'polling limit reached', [], what);
}
