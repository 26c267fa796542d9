/**
 * `dualwan verify` on the Linux backend, in the namespace lab (root only): the drill runs against
 * the live monitor and reports detection, failover, the client's view, failback and DNS through
 * each WAN; interrupted with a real SIGINT mid-outage, it restores the WAN before it ends.
 */
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { linuxStage } from '../../src/flows/linux';
import { applyPlan, makePlan, observe } from '../../src/plan/engine';
import { linuxFailoverScenario, runLinuxVerify } from '../../src/verify/linux';
import { TestUi } from '../helpers/test-ui';
import { LAB_PROFILES, labDesiredState } from '../lab/desired';
import { describeIfRoot, useLab } from '../lab/jest-lab';
import { checkoutScript } from '../lab/runtime';
import { labRouterOptions, readMonitorState, startMonitorUnit, waitUntil } from '../lab/units';
import { labClientProber, labInjector, labRouterView, labVerifyWans } from '../lab/verify-lab';

describeIfRoot('dualwan verify on the Linux lab (root)', () => {
  const lab = useLab({ maxLifetimeS: 600 });
  let monitorPid: number | undefined;

  beforeAll(async () => {
    const l = lab();
    const state = labDesiredState(l.plan, l.sshTarget().hostKey, { monitor: LAB_PROFILES.fast });
    const ui = new TestUi({}, true);
    const session = await linuxStage({ router: labRouterOptions(l), transport: () => l.sshTransport() }).open({
      state,
      ui,
      trustOnFirstUse: false,
      credentialsFile: path.join(l.dir, 'no-credentials'),
      env: { DUALWAN_SSH_PRIVATE_KEY_FILE: path.join(l.dir, 'client_ed25519') },
      earlier: [],
    });
    try {
      const plan = makePlan(session.handlers, await observe(session.ctx, session.handlers), 'lab', new Date(0).toISOString());
      await applyPlan(plan, 'lab', { ctx: session.ctx, handlers: session.handlers, ui, writeCalls: () => session.writeCalls() });
    } finally {
      await session.close();
    }
    monitorPid = startMonitorUnit(l);
    await waitUntil(() => readMonitorState(l)?.wans.every((w) => w.status === 'up' && w.probesSent > 4), 20_000, 'the monitor');
  }, 60_000);
  afterAll(() => {
    if (monitorPid !== undefined) lab().stopProcess(monitorPid);
  });

  it('measures detection, failover, the client view and failback, and checks DNS through each WAN', async () => {
    const l = lab();
    const lines: string[] = [];
    const report = await runLinuxVerify({
      wans: labVerifyWans(l),
      wan: 'isp1',
      injector: labInjector(l),
      client: labClientProber(l),
      router: labRouterView(l),
      scenario: linuxFailoverScenario({ failbackWindowMs: 20_000, holdMs: 2_000 }),
      log: (line) => lines.push(line),
    });
    expect(report.problems).toEqual([]);
    expect(report.behaved).toBe(true);
    expect(report.detectionMs).toBeLessThan(4_000);
    expect(report.failoverMs).toBeGreaterThanOrEqual(report.detectionMs!);
    expect(report.failbackMs).toBeGreaterThanOrEqual(9_000);
    expect(report.clientProbes.lostAfterFailover).toBe(0);
    expect(report.clientProbes.total).toBeGreaterThan(300);
    expect(report.dns.map((d) => [d.wan, d.ok])).toEqual([
      ['isp1', true],
      ['isp2', true],
    ]);
    expect(report.restored).toBe(true);
    expect(l.exec('isp1', ['nft', 'list', 'table', 'ip', 'dwlab_impair']).stdout).not.toMatch(/drop/);
  }, 90_000);

  it('restores the WAN when interrupted with SIGINT in the middle of the outage', async () => {
    const l = lab();
    await waitUntil(() => readMonitorState(l)?.wans.every((w) => w.status === 'up'), 40_000, 'both WANs up again');
    const [node, ...args] = checkoutScript('test/lab/verify-child.ts');
    const child = spawn(node!, [...args, l.id, path.dirname(l.dir)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      await waitUntil(() => out.includes('induced'), 30_000, `the drill to break isp1 (output so far: ${out})`);
      expect(l.exec('isp1', ['nft', 'list', 'table', 'ip', 'dwlab_impair']).stdout).toMatch(/drop/);
      await new Promise((r) => setTimeout(r, 500));
      child.kill('SIGINT');
      const end = await exited;
      expect(end.signal ?? end.code).toBe('SIGINT');
      expect(out).toContain('restored');
      expect(l.exec('isp1', ['nft', 'list', 'table', 'ip', 'dwlab_impair']).stdout).not.toMatch(/drop/);
      expect(l.client('lan', ['udp', l.plan.server, '80'], 3_000).ok).toBe(true);
    } finally {
      clearTimeout(killer);
    }
  }, 90_000);
});
