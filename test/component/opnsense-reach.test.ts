// After an OPNsense apply: a fresh connection must answer and read every change back. OPNsense
// 26.7 has no rollback timer, so this is the guard against an apply that cut the session in use:
// answered but not in place → revert through the backup API; never answered → say exactly how to
// restore the backup from the console.
import type { Step } from '../../src/core/ui';
import { OpnsenseApplyError } from '../../src/providers/opnsense/backup';
import { presentFault } from '../doubles/opnsense/faults';
import { openRouterRun, QuietUi, type RouterRun } from '../doubles/opnsense/harness';
import { type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { useSimulatedRouter } from '../helpers/router-fixture';

let router: SimulatedRouter;
useSimulatedRouter((r) => (router = r));

const snapshot = () => JSON.stringify(router.controls.state.config);
const stage = { client: { requestTimeoutMs: 1_000 }, reachAttempts: 3, reachWithinMs: 10_000 };

/** Runs the apply's steps, then does `after` (what happens on the router once the last post-action ran). */
class AfterStepsUi extends QuietUi {
  constructor(private readonly after: () => void) {
    super();
  }
  override async runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    await super.runSteps(ctx, steps);
    this.after();
  }
}

async function withRun<T>(o: Parameters<typeof openRouterRun>[1], body: (run: RouterRun) => Promise<T>): Promise<T> {
  const run = await openRouterRun(router, o);
  try {
    return await body(run);
  } finally {
    router.controls.resumeAnswering();
    await run.close();
  }
}

it('a fresh connection answers and reads every change back: the apply stands', async () => {
  const ui = new QuietUi();
  await withRun({ ui, stage }, async (run) => {
    const plan = await run.plan();
    const marker = router.controls.requests.length;
    await run.apply(plan);
    expect(ui.notices.map((n) => n.code)).toContain('OPNSENSE_REACHED_AFTER_APPLY');
    // the last requests are the re-reach: the firmware status, then the read-back's searches
    const after = router.controls.requests.slice(marker).map((r) => `${r.method} ${r.path}`);
    const lastPost = after.map((x) => /reconfigure|\/apply/.test(x)).lastIndexOf(true);
    expect(after[lastPost + 1]).toBe('GET /api/core/firmware/status');
    expect(after.slice(lastPost + 2).every((x) => !/set_|add_|del_|reconfigure|apply|revert/.test(x))).toBe(true);
    expect(router.controls.requests.some((r) => r.path.includes('revert_backup'))).toBe(false);
  });
});

it('answers, but a change is not in place after the apply: reverted through the backup API', async () => {
  let before = '';
  const ui = new AfterStepsUi(() => presentFault(router.controls, 'lan-rule-default-route'));
  await withRun({ ui, stage }, async (run) => {
    const plan = await run.plan();
    before = snapshot();
    const err = (await run.apply(plan).catch((e: unknown) => e)) as OpnsenseApplyError;
    expect(err).toBeInstanceOf(OpnsenseApplyError);
    expect(err.message.split('\n')[0]).toMatch(/^After the apply, a fresh connection finds 1 change not in place: opnsense\.filter-rule\/lan-default \(gateway\)/);
    expect(err.reverted).toBe(true);
    expect(err.message).toContain(`reverted to configuration backup ${err.backupId}`);
    const revert = router.controls.requests.find((r) => r.path.startsWith('/api/core/backup/revert_backup/'))!;
    expect(revert.path).toBe(`/api/core/backup/revert_backup/${err.backupId}`);
    // config.xml is as before the apply (the stray edit went with it), and what runs follows it
    expect(snapshot()).toBe(before);
    expect(router.controls.unapplied()).toEqual([]);
  });
});

it('never answers again within the bound: no revert attempted, and the report says how to restore from the console', async () => {
  const ui = new AfterStepsUi(() => router.controls.stopAnswering());
  await withRun({ ui, stage }, async (run) => {
    const plan = await run.plan();
    const started = Date.now();
    const err = (await run.apply(plan).catch((e: unknown) => e)) as OpnsenseApplyError;
    expect(err).toBeInstanceOf(OpnsenseApplyError);
    expect(err.reverted).toBe(false);
    expect(err.code).toBe('OPNSENSE_APPLY_FAILED');
    const id = err.backupId!;
    expect(id).toMatch(/^config-[\d.]+\.xml$/);
    expect(err.message).toMatch(/^OPNsense at 127\.0\.0\.1:\d+ did not answer a fresh connection after the apply \(3 tries in \d+ s; last: /);
    expect(err.message).toContain('OPNsense 26.7 has no rollback timer of its own: nothing undoes the apply by itself.');
    expect(err.message).toContain(`The configuration before this apply is backup ${id}.`);
    expect(err.applied.length).toBe(plan.changes.filter((c) => c.action !== 'noop').length);
    expect(err.remedy).toContain(`Restore backup ${id} from OPNsense's console: the Proxmox GUI (VM 100 > Console) or \`qm terminal 100\` on the host, log in as root, choose "13) Restore a backup", pick ${id}`);
    expect(err.remedy).toContain(`System > Configuration > History, backup ${id}, "Revert"`);
    // bounded: three tries of at most a second each, with waits in between, well under the 10 s bound plus slack
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(router.controls.requests.some((r) => r.path.includes('revert_backup'))).toBe(false);
  });
});
