/**
 * The Linux router resource handlers applied through the real sshd of the lab router: kernel
 * settings, NAT with connection marks, per-ISP tables and rules, and the 2:1 multipath default.
 * Then real flows from the LAN spread about 2:1 over the two ISPs, and a second plan is empty and
 * applies with zero writes. Root only.
 */
import { applyPlan, makePlan, observe } from '../../src/plan/engine';
import { pendingChanges } from '../../src/core/plan';
import { buildLinuxContext } from '../../src/providers/linux/context';
import { linuxHandlers } from '../../src/providers/linux/resources';
import { connectSsh, type SshClient } from '../../src/providers/linux/ssh';
import { TestUi } from '../helpers/test-ui';
import { labDesiredState } from '../lab/desired';
import { describeIfRoot, useLab } from '../lab/jest-lab';
import { labRouterOptions } from '../lab/units';

describeIfRoot('Linux router handlers applied through SSH to the lab (root)', () => {
  const lab = useLab({ maxLifetimeS: 600 });
  let ssh: SshClient | undefined;

  beforeAll(async () => {
    ssh = await connectSsh({ ...lab().sshTarget(), sock: lab().sshTransport() });
  }, 30_000);
  afterAll(async () => {
    await ssh?.close();
  });

  const planOnce = async () => {
    const state = labDesiredState(lab().plan, lab().sshTarget().hostKey);
    // The lab router shares this machine's file system: its boot files go under a private root.
    const ctx = await buildLinuxContext(state, ssh!, labRouterOptions(lab()));
    const plan = makePlan(linuxHandlers, await observe(ctx, linuxHandlers), 'lab', new Date(0).toISOString());
    return { ctx, plan };
  };

  it('plans every resource on a bare router and applies it, reading each one back', async () => {
    const { ctx, plan } = await planOnce();
    const pending = pendingChanges(plan);
    expect(pending.map((c) => c.kind)).toEqual(expect.arrayContaining(['linux.sysctl', 'linux.nft-table', 'linux.route-table', 'linux.rule', 'linux.default-route', 'linux.file', 'linux.unit']));
    const order = plan.changes.map((c) => c.kind);
    expect(order.indexOf('linux.default-route')).toBeGreaterThan(order.lastIndexOf('linux.rule'));
    expect(order.indexOf('linux.unit')).toBeGreaterThan(order.lastIndexOf('linux.file'));
    const ui = new TestUi({}, true);
    const report = await applyPlan(plan, 'lab', { ctx, handlers: linuxHandlers, ui, writeCalls: () => ctx.router.writes });
    expect(report.applied).toHaveLength(pending.length);
    expect(report.writeCalls).toBeGreaterThanOrEqual(pending.length);
  }, 60_000);

  it('spreads new connections from one LAN client about 2:1 over the two ISPs', () => {
    const p = lab().plan;
    const res = lab().client('lan', ['flows', p.server, '300'], 60_000);
    expect(res.ok).toBe(true);
    const tally = res.tally as Record<string, number>;
    const isp1 = tally[p.upstreams[0].near] ?? 0;
    const isp2 = tally[p.upstreams[1].near] ?? 0;
    expect(isp1 + isp2).toBe(300);
    // Expected share 2/3; ±4 binomial standard deviations at N = 300 (linux-lab.md §1 saw 0.63–0.69).
    const share = isp1 / 300;
    expect(share).toBeGreaterThan(0.55);
    expect(share).toBeLessThan(0.78);
  }, 90_000);

  it('plans nothing the second time, and applying that plan writes nothing', async () => {
    const { ctx, plan } = await planOnce();
    expect(pendingChanges(plan).map((c) => `${c.address}: ${JSON.stringify(c.properties)}`)).toEqual([]);
    const report = await applyPlan(plan, 'lab', { ctx, handlers: linuxHandlers, ui: new TestUi({}, true), writeCalls: () => ctx.router.writes });
    expect(report.writeCalls).toBe(0);
    expect(report.applied).toEqual([]);
  }, 60_000);

  it('leaves alone what it does not own: another nft table, other rules and tables', async () => {
    const s = ssh!;
    const foreign = 'table ip someone_else {\n  chain input_count {\n    type filter hook input priority 10; policy accept;\n    counter\n  }\n}\n';
    expect((await s.exec(['nft', '-f', '-'], { stdin: foreign })).code).toBe(0);
    expect((await s.exec(['ip', 'route', 'add', '10.99.0.0/24', 'dev', 'lan0', 'table', '200'])).code).toBe(0);
    expect((await s.exec(['ip', 'rule', 'add', 'priority', '500', 'from', '10.99.0.7', 'table', '200'])).code).toBe(0);
    const { ctx, plan } = await planOnce();
    expect(pendingChanges(plan)).toEqual([]);
    const report = await applyPlan(plan, 'lab', { ctx, handlers: linuxHandlers, ui: new TestUi({}, true), writeCalls: () => ctx.router.writes });
    expect(report.writeCalls).toBe(0);
    expect((await s.exec(['nft', 'list', 'table', 'ip', 'someone_else'])).code).toBe(0);
    expect((await s.exec(['ip', 'route', 'show', 'table', '200'])).stdout).toContain('10.99.0.0/24 dev lan0');
    expect((await s.exec(['ip', 'rule', 'show', 'priority', '500'])).stdout).toContain('from 10.99.0.7 lookup 200');
  }, 60_000);

  it('notices drift made by hand and repairs exactly that', async () => {
    const s = ssh!;
    expect((await s.exec(['ip', 'route', 'del', 'default', 'table', '102'])).code).toBe(0);
    expect((await s.exec(['sysctl', '-w', 'net.ipv4.fib_multipath_hash_policy=0'])).code).toBe(0);
    const { ctx, plan } = await planOnce();
    expect(pendingChanges(plan).map((c) => c.address).sort()).toEqual(['linux.route-table/isp2', 'linux.sysctl/net.ipv4.fib_multipath_hash_policy']);
    await applyPlan(plan, 'lab', { ctx, handlers: linuxHandlers, ui: new TestUi({}, true), writeCalls: () => ctx.router.writes });
    expect(pendingChanges((await planOnce()).plan)).toEqual([]);
    // The repair left the foreign objects where they were.
    expect((await s.exec(['nft', 'list', 'table', 'ip', 'someone_else'])).code).toBe(0);
    expect((await s.exec(['ip', 'rule', 'show', 'priority', '500'])).stdout).toContain('from 10.99.0.7 lookup 200');
  }, 60_000);
});
