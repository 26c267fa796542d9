/**
 * Runs `dualwan verify`'s drill against a lab built by another process, in a process of its own,
 * so a test can interrupt it with a real SIGINT: `verify-child.ts <labId> <stateRoot>`.
 * Prints "induced" once the WAN is broken, then the report as JSON if it gets that far.
 */
import { linuxFailoverScenario, runLinuxVerify } from '../../src/verify/linux';
import { DualWanLab } from './lab';
import { labClientProber, labInjector, labRouterView, labVerifyWans } from './verify-lab';

async function main(): Promise<void> {
  const [id, stateRoot] = process.argv.slice(2);
  const lab = new DualWanLab({ id, stateRoot, ownerPid: null });
  lab.attach();
  const inner = labInjector(lab);
  const report = await runLinuxVerify({
    wans: labVerifyWans(lab),
    wan: 'isp1',
    injector: {
      describe: inner.describe,
      induce: async (wan) => {
        await inner.induce(wan);
        process.stdout.write('induced\n');
      },
      restore: async (wan) => {
        await inner.restore(wan);
        process.stdout.write('restored\n');
      },
    },
    client: labClientProber(lab),
    router: labRouterView(lab),
    scenario: linuxFailoverScenario({ failbackWindowMs: 40_000, holdMs: 30_000 }),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
