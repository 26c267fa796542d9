/**
 * Jest helpers for lab tests: skip (with the reason) when not root, and make sure the lab is torn
 * down however the test ends — afterAll for the normal path, a process 'exit' hook for a worker
 * that is killed or crashes mid-suite.
 */
import { DualWanLab, reapStaleLabs, type LabOptions } from './lab';

/** Why lab tests cannot run here, or undefined when they can. */
export function labSkipReason(): string | undefined {
  const uid = process.getuid?.();
  if (uid !== 0) return `needs root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN (running as uid ${String(uid)})`;
  return undefined;
}

/** `describe` when the lab can run; otherwise one skipped test whose title says why. */
export function describeIfRoot(name: string, body: () => void): void {
  const reason = labSkipReason();
  if (reason === undefined) {
    describe(name, body);
    return;
  }
  process.stderr.write(`[lab] "${name}" skipped: ${reason}\n`);
  describe(name, () => {
    it.skip(`skipped: ${reason}`, () => undefined);
  });
}

/**
 * Creates a lab for the enclosing describe block (built in beforeAll, removed in afterAll and on
 * process exit). Returns a getter, since the lab exists only once beforeAll ran.
 */
export function useLab(options: LabOptions = {}, buildTimeoutMs = 60_000): () => DualWanLab {
  let lab: DualWanLab | undefined;
  const onExit = () => lab?.down();
  // Ctrl-C or a killed run: tear down, then let the signal do what it would have done.
  const onSignal = (signal: NodeJS.Signals) => {
    lab?.down();
    lab = undefined;
    process.kill(process.pid, signal);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  beforeAll(() => {
    reapStaleLabs();
    lab = new DualWanLab(options);
    process.once('exit', onExit);
    for (const s of signals) process.once(s, onSignal);
    lab.up();
  }, buildTimeoutMs);
  afterAll(() => {
    process.removeListener('exit', onExit);
    for (const s of signals) process.removeListener(s, onSignal);
    lab?.down();
  }, 30_000);
  return () => {
    if (!lab) throw new Error('the lab was not built (see the beforeAll failure above)');
    return lab;
  };
}
