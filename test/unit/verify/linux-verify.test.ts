import type { MonitorSnapshot } from '../../../src/providers/linux/monitor/daemon';
import { linuxFailoverScenario, renderBlockRuleset, renderVerifyReport, runLinuxVerify, withGuaranteedRestore, type ClientProbe, type LinuxVerifyDeps } from '../../../src/verify/linux';
import { FakeProcess } from '../../helpers/fake-process';

/** A router whose monitor reacts to the injected failure on a fixed schedule. */
function fakeWorld(opts: { detectAfterMs: number | null; failbackAfterMs: number | null; staleLoss?: boolean }) {
  let cutAt = 0;
  let restoredAt = 0;
  const events: MonitorSnapshot['events'][number][] = [];
  const calls: string[] = [];
  const snapshot = (): MonitorSnapshot => {
    const now = Date.now();
    if (cutAt && opts.detectAfterMs !== null && now >= cutAt + opts.detectAfterMs && !events.some((e) => e.type === 'routing' && e.removed.includes('isp1'))) {
      events.push({ type: 'wan-status', at: cutAt + opts.detectAfterMs, wan: 'isp1', from: 'suspect', to: 'down', reason: 'test' });
      events.push({ type: 'routing', at: cutAt + opts.detectAfterMs, active: ['isp2'], previous: ['isp1', 'isp2'], added: [], removed: ['isp1'] });
    }
    if (restoredAt && opts.failbackAfterMs !== null && now >= restoredAt + opts.failbackAfterMs && !events.some((e) => e.type === 'routing' && e.added.includes('isp1'))) {
      events.push({ type: 'routing', at: restoredAt + opts.failbackAfterMs, active: ['isp1', 'isp2'], previous: ['isp2'], added: ['isp1'], removed: [] });
    }
    const out = events.some((e) => e.type === 'routing' && e.removed.includes('isp1')) && !events.some((e) => e.type === 'routing' && e.added.includes('isp1'));
    return {
      updatedAt: now,
      pid: 1,
      startedAt: 0,
      active: out ? ['isp2'] : ['isp1', 'isp2'],
      noViableWan: false,
      wans: [
        { name: 'isp1', status: 'up', since: 0, probesSent: 10, budgetSpentBytes: 0 },
        { name: 'isp2', status: 'up', since: 0, probesSent: 10, budgetSpentBytes: 0 },
      ],
      events: [...events],
      actions: [],
    };
  };
  const deps: LinuxVerifyDeps = {
    wans: [
      { name: 'isp1', interface: 'wan1', address: '100.64.1.2', dnsServers: ['203.0.113.53'] },
      { name: 'isp2', interface: 'wan2', address: '100.64.2.2', dnsServers: ['203.0.113.54'] },
    ],
    injector: {
      describe: () => 'test black hole',
      induce: async () => {
        cutAt = Date.now();
        calls.push('induce');
      },
      restore: async () => {
        restoredAt = Date.now();
        calls.push('restore');
      },
    },
    client: {
      describe: 'fake client',
      start() {
        const probes: ClientProbe[] = [];
        const timer = setInterval(() => {
          const at = Date.now();
          const inOutage = cutAt > 0 && (restoredAt === 0 || at < restoredAt) && !events.some((e) => e.type === 'routing' && e.removed.includes('isp1') && e.at <= at);
          const stale = opts.staleLoss && events.some((e) => e.type === 'routing' && e.removed.includes('isp1') && at > e.at + 520) && probes.length % 5 === 0;
          probes.push({ at, ok: !(inOutage && probes.length % 3 === 0) && !stale });
        }, 20);
        return { stop: async () => (clearInterval(timer), probes) };
      },
    },
    router: { monitorState: async () => snapshot(), dnsCheck: async (w) => ({ ok: true, detail: `via ${w.name}` }) },
    scenario: linuxFailoverScenario({ failbackWindowMs: 1_000, holdMs: 200 }).map((s) => (s.id === 'baseline' || s.id === 'settle' ? { ...s, timeoutMs: 300 } : s)),
  };
  return { deps, calls };
}

describe('runLinuxVerify', () => {
  it('reports detection, failover, failback and DNS as data, restoring once', async () => {
    const { deps, calls } = fakeWorld({ detectAfterMs: 300, failbackAfterMs: 400 });
    const r = await runLinuxVerify(deps);
    expect(r.problems).toEqual([]);
    expect(r.behaved).toBe(true);
    // The fake world changes state on wall-clock timers: on a loaded machine a timer can fire a
    // little late, never early.
    expect(r.detectionMs).toBeGreaterThanOrEqual(300);
    expect(r.detectionMs).toBeLessThan(450);
    expect(r.failbackMs).toBeGreaterThanOrEqual(400);
    expect(r.failbackMs).toBeLessThan(550);
    expect(r.dns.map((d) => [d.wan, d.ok])).toEqual([
      ['isp1', true],
      ['isp2', true],
    ]);
    expect(calls).toEqual(['induce', 'restore']);
    expect(r.steps.map((s) => s.id)).toEqual(['baseline', 'induce', 'detect', 'failover', 'hold', 'restore', 'failback', 'settle', 'dns']);
    expect(renderVerifyReport(r)).toContain('Failover behaved.');
  }, 20_000);

  it('says failover did not behave when the monitor never reacts, and still restores', async () => {
    const { deps, calls } = fakeWorld({ detectAfterMs: null, failbackAfterMs: null });
    const scenario = deps.scenario.map((s) => (s.id === 'detect' || s.id === 'failover' || s.id === 'failback' ? { ...s, timeoutMs: 300 } : s));
    const r = await runLinuxVerify({ ...deps, scenario });
    expect(r.behaved).toBe(false);
    expect(r.detectionMs).toBeNull();
    expect(r.restored).toBe(true);
    expect(calls).toEqual(['induce', 'restore']);
    expect(renderVerifyReport(r)).toContain('did not behave');
  }, 20_000);

  it('counts new client flows lost after the failover as stale failures', async () => {
    const { deps } = fakeWorld({ detectAfterMs: 200, failbackAfterMs: 400, staleLoss: true });
    const r = await runLinuxVerify(deps);
    expect(r.clientProbes.lostAfterFailover).toBeGreaterThan(0);
    expect(r.behaved).toBe(false);
  }, 20_000);
});

describe('withGuaranteedRestore', () => {
  it('restores on SIGINT before letting the signal end the process', async () => {
    const proc = new FakeProcess();
    const order: string[] = [];
    let release: () => void = () => undefined;
    const body = withGuaranteedRestore(
      async () => {
        order.push('restore');
      },
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
      { processLike: proc as unknown as NonNullable<LinuxVerifyDeps['processLike']> },
    );
    proc.emit('SIGINT');
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['restore']);
    expect(proc.killed).toEqual(['SIGINT']);
    release();
    await body;
    expect(order).toEqual(['restore']);
    expect(proc.listenerCount('SIGINT')).toBe(0);
  });

  it('restores when the body throws, and not twice when the body restored itself', async () => {
    const proc = new FakeProcess() as unknown as NonNullable<LinuxVerifyDeps['processLike']>;
    let n = 0;
    await expect(withGuaranteedRestore(async () => void n++, async () => Promise.reject(new Error('boom')), { processLike: proc })).rejects.toThrow('boom');
    expect(n).toBe(1);
    await withGuaranteedRestore(async () => void n++, async (restored) => restored(), { processLike: proc });
    expect(n).toBe(1);
  });
});

describe('the drill on a real router', () => {
  it('blocks one interface with a set element that expires by itself', () => {
    const text = renderBlockRuleset('wan1', 120);
    expect(text).toContain('elements = { "wan1" timeout 120s }');
    expect(text).toContain('oifname @blocked_wans drop');
    expect(() => renderBlockRuleset('wan1"; flush ruleset', 120)).toThrow();
    expect(() => renderBlockRuleset('wan1', 0)).toThrow();
  });
});
