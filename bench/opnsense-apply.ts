// Bench: API calls and wall time of a full OPNsense apply (a freshly bootstrapped router) against a
// no-op apply (the same router, already converged), side by side, medians over RUNS runs.
// Run after `npm run build`: node dist/bench/opnsense-apply.js [runs]
import { performance } from 'node:perf_hooks';
import { pendingChanges } from '../src/core/plan';
import { openRouterRun, QuietUi } from '../test/doubles/opnsense/harness';
import { startSimulatedRouter } from '../test/doubles/opnsense/simulated-router';

interface Sample {
  calls: number;
  writes: number;
  changes: number;
  ms: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const runs = Math.max(10, Number(process.argv[2] ?? 15) || 15);
  const router = await startSimulatedRouter();
  const full: Sample[] = [];
  const noop: Sample[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      router.controls.reset(); // back to the bootstrapped router
      const run = await openRouterRun(router, { ui: new QuietUi() });
      try {
        for (const into of [full, noop]) {
          const calls0 = router.controls.requests.length;
          const writes0 = router.controls.writeCount;
          const t0 = performance.now();
          const plan = await run.plan();
          await run.apply(plan);
          into.push({ calls: router.controls.requests.length - calls0, writes: router.controls.writeCount - writes0, changes: pendingChanges(plan).length, ms: performance.now() - t0 });
        }
      } finally {
        await run.close();
      }
    }
  } finally {
    await router.close();
  }
  if (router.controls.contractViolations.length) throw new Error(`${router.controls.contractViolations.length} request(s) broke the OPNsense catalogue`);
  const row = (label: string, f: (s: Sample) => number, digits = 0) => `${label.padEnd(28)}${median(full.map(f)).toFixed(digits).padStart(14)}${median(noop.map(f)).toFixed(digits).padStart(14)}`;
  const lines = [
    `OPNsense apply against the simulated router (26.7.2 double, loopback HTTPS), hotspot-failover.yaml, medians of ${runs} runs`,
    '',
    `${''.padEnd(28)}${'full apply'.padStart(14)}${'no-op apply'.padStart(14)}`,
    row('changes planned', (s) => s.changes),
    row('API calls (plan + apply)', (s) => s.calls),
    row('  of which writes', (s) => s.writes),
    row('wall time, ms', (s) => s.ms, 1),
    '',
    'Calls include the plan (one search per resource kind), the backup (list + download, full apply only),',
    "the apply's re-read before writing, each write with its read-back, one reconfigure/apply per touched",
    'module, and a final reachability check. A no-op apply only plans: it writes nothing and takes no backup.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
