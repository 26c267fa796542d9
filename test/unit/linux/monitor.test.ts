/**
 * The health monitor's decision logic, through the simulator (deterministic, seeded) and directly.
 * The bars come from shared/research/linux-lab.md §2 (naive 200 ms × 3 checker: ~390 false downs a
 * day at 10 % loss; dpinger defaults: ~15 s detection, ~57 s failback) and the brief: ≤ 1 false
 * failover a day at 10 % random loss, ≤ 1.5 s to detect a black hole, failback only after the
 * stability window, no flapping.
 */
import type { DesiredState } from '../../../src/core/desired';
import { DualwanError } from '../../../src/core/errors';
import {
  DEFAULT_MONITOR_TIMINGS,
  initialMonitorState,
  lossClearlyAbove,
  meteredIntervalMs,
  monitorConfigFromDesired,
  stableWindowMs,
  stepMonitor,
  timingsFromProfile,
  validateMonitorConfig,
  type MonitorConfig,
  type MonitorEvent,
  type MonitorState,
} from '../../../src/providers/linux/monitor/decision';
import { blackholeDetection, labWans, seededRandom, simulate, type SimWan } from '../../../src/providers/linux/monitor/simulate';

const DAY = 86_400_000;
const T = DEFAULT_MONITOR_TIMINGS;

function statusChanges(events: readonly MonitorEvent[], wan: string) {
  // Leaves out the confirmation bursts that found the WAN alive (up → suspect → up).
  return events.filter(
    (e): e is Extract<MonitorEvent, { type: 'wan-status' }> => e.type === 'wan-status' && e.wan === wan && e.to !== 'suspect' && !(e.from === 'suspect' && e.to === 'up'),
  );
}

describe('a simulated day at 10 % random loss on both WANs', () => {
  const seeds = [1, 2];
  const days = seeds.map((seed) => ({ seed, started: Date.now(), result: simulate({ seed, durationMs: DAY, wans: labWans(10) }), ms: 0 }));
  for (const d of days) d.ms = Date.now() - d.started;

  it.each(days.map((d) => [d.seed, d]))('seed %i: at most one false failover, and the line is probed as configured', (_seed, d) => {
    expect(d.result.falseFailovers).toBeLessThanOrEqual(1);
    expect(d.result.falseDowns).toBeLessThanOrEqual(1);
    // One probe per second per WAN (targets in rotation); a burst after each loss usually stops at its first reply.
    const perDay = d.result.probesSent.isp1 ?? 0;
    expect(perDay).toBeGreaterThan(86_400);
    expect(perDay).toBeLessThan(86_400 * 1.25);
    // ≤ OPNsense's ~150 MB a month on an always-probed link (anchors.md §B).
    expect((d.result.probeBytes.isp1 ?? 0) * 30).toBeLessThan(150_000_000 * 1.15);
  });

  it('replays a whole day quickly (well under a few seconds each, even on a loaded machine)', () => {
    for (const d of days) expect(d.ms).toBeLessThan(15_000);
    expect(days[0]!.result.steps).toBeGreaterThan(250_000);
  });

  it('beats the naive fast checker it replaces by orders of magnitude (analytic p^N(1-p) rate: ~390 a day)', () => {
    const naive = 0.1 ** 3 * 0.9 * (DAY / 200);
    expect(naive).toBeGreaterThan(380);
    expect(days.reduce((n, d) => n + d.result.falseDowns, 0)).toBeLessThan(naive / 100);
  });
});

describe('black hole detection (link up, every packet dropped upstream)', () => {
  it('takes the WAN out of the route within 1.9 s at every probe phase, 1.5 s at the median', () => {
    const stats = blackholeDetection({ seed: 11, phases: 50 });
    expect(stats.missed).toBe(0);
    // One probe a second: up to 1 s until the next probe, 250 ms until it counts lost, 600 ms of burst.
    expect(stats.max).toBeLessThanOrEqual(1_900);
    expect(stats.median).toBeLessThanOrEqual(1_500);
    // Never before the first probe could have been lost and a burst confirmed it.
    expect(stats.min).toBeGreaterThanOrEqual(T.lossTimeoutMs + (T.confirmProbes - 1) * T.confirmIntervalMs + T.lossTimeoutMs);
  });

  it('still detects within 2 s on a line that also has 10 % random loss', () => {
    const stats = blackholeDetection({ seed: 12, phases: 50, lossPercent: 10 });
    expect(stats.missed).toBe(0);
    expect(stats.max).toBeLessThanOrEqual(2_000);
  });

  it('is faster still with the fast profile', () => {
    const fast = timingsFromProfile({ name: 'fast', intervalMs: 500, lossDownPercent: 20, latencyHighMs: 300, failbackAfterSeconds: 10 });
    expect(blackholeDetection({ seed: 13, phases: 25, timings: fast }).max).toBeLessThanOrEqual(1_400);
  });
});

describe('failback', () => {
  const outage = { fromMs: 100_000, toMs: 160_000 };
  const run = simulate({ seed: 5, durationMs: 400_000, wans: labWans(10, { isp1: { outages: [outage] } }) });

  it('happens only after the stability window, and then promptly', () => {
    const o = run.outages[0]!;
    expect(o.removedAfterMs).not.toBeNull();
    expect(o.restoredAfterMs).not.toBeNull();
    expect(o.restoredAfterMs!).toBeGreaterThanOrEqual(T.failbackStableMs);
    expect(o.restoredAfterMs!).toBeLessThanOrEqual(T.failbackStableMs + 3_000);
  });

  it('moves traffic once each way, nothing else', () => {
    const routing = run.events.filter((e) => e.type === 'routing');
    expect(routing.map((e) => (e.type === 'routing' ? e.active : []))).toEqual([['isp2'], ['isp1', 'isp2']]);
    expect(statusChanges(run.events, 'isp1').map((e) => e.to)).toEqual(['down', 'recovering', 'up']);
    expect(statusChanges(run.events, 'isp2')).toEqual([]);
  });
});

describe('flapping', () => {
  it('a line that dies for 2 s every 20 s for 10 minutes moves traffic once each way', () => {
    const flaps = Array.from({ length: 30 }, (_, i) => ({ fromMs: 100_000 + i * 20_000, toMs: 102_000 + i * 20_000 }));
    const run = simulate({ seed: 6, durationMs: 1_800_000, wans: labWans(1, { isp1: { outages: flaps } }) });
    const routing = run.events.filter((e) => e.type === 'routing');
    expect(routing).toHaveLength(2);
    const lastOutageEnd = flaps[flaps.length - 1]!.toMs;
    // Failback waits longer after each repeat outage (flap damping), within its cap.
    expect(routing[1]!.at - lastOutageEnd).toBeGreaterThan(T.failbackStableMs);
    expect(routing[1]!.at - lastOutageEnd).toBeLessThanOrEqual(T.maxFailbackStableMs + 3_000);
  });

  it('doubles the stable window per recent outage, up to the cap', () => {
    expect(stableWindowMs(T, [0], 1_000)).toBe(T.failbackStableMs);
    expect(stableWindowMs(T, [0, 10_000], 20_000)).toBe(2 * T.failbackStableMs);
    expect(stableWindowMs(T, Array.from({ length: 10 }, (_, i) => i * 1_000), 20_000)).toBe(T.maxFailbackStableMs);
    expect(stableWindowMs(T, [0, 10_000], 10_000 + T.flapMemoryMs + 1)).toBe(T.failbackStableMs);
  });
});

describe('lossy but alive lines', () => {
  it('takes a WAN down on sustained heavy loss, judged over a long window', () => {
    const run = simulate({ seed: 21, durationMs: 600_000, wans: labWans(0, { isp1: { lossPercent: 45 } }) });
    const down = statusChanges(run.events, 'isp1').find((e) => e.to === 'down');
    expect(down).toBeDefined();
  });

  it('tests loss against the threshold with statistical margin', () => {
    expect(lossClearlyAbove(30, 240, 20)).toBe(false); // 12.5 %
    expect(lossClearlyAbove(60, 240, 20)).toBe(false); // 25 %: within chance
    expect(lossClearlyAbove(90, 240, 20)).toBe(true); // 37.5 %
    expect(lossClearlyAbove(0, 0, 20)).toBe(false);
  });
});

describe('no viable WAN', () => {
  it('keeps the routes as they are when every WAN is down, and uses the first one that answers again', () => {
    const run = simulate({
      seed: 31,
      durationMs: 300_000,
      wans: labWans(0, { isp1: { outages: [{ fromMs: 50_000, toMs: 150_000 }] }, isp2: { outages: [{ fromMs: 60_000, toMs: 120_000 }] } }),
    });
    const routing = run.events.filter((e): e is Extract<MonitorEvent, { type: 'routing' }> => e.type === 'routing');
    const none = run.events.find((e) => e.type === 'no-viable-wan');
    expect(none).toMatchObject({ kept: ['isp2'] });
    // Never an empty set of routes.
    for (const r of routing) expect(r.active.length).toBeGreaterThan(0);
    expect(routing.map((r) => r.active)).toEqual([['isp2'], ['isp1', 'isp2']]);
  });
});

describe('tiers and the metered standby', () => {
  const wans = labWans(10);
  const standby: SimWan[] = [
    { ...wans[0]!, tier: 1 },
    { ...wans[1]!, tier: 2, metered: true, probeBudgetMBPerMonth: 5 },
  ];

  it('uses only the first tier while it is healthy and probes the metered standby within its monthly budget', () => {
    const run = simulate({ seed: 41, durationMs: DAY, wans: standby });
    expect(run.routingChanges).toBe(0);
    const monthly = (run.probeBytes.isp2 ?? 0) * 31;
    expect(monthly).toBeLessThanOrEqual(5_000_000);
    expect(meteredIntervalMs(T, 5)).toBeGreaterThanOrEqual(30_000);
  });

  it('fails over to the standby when the primary dies, and back after the stable window', () => {
    const run = simulate({ seed: 42, durationMs: 400_000, wans: [{ ...standby[0]!, outages: [{ fromMs: 100_000, toMs: 200_000 }] }, standby[1]!] });
    const routing = run.events.filter((e): e is Extract<MonitorEvent, { type: 'routing' }> => e.type === 'routing');
    expect(routing.map((r) => r.active)).toEqual([['isp2'], ['isp1']]);
    expect(routing[0]!.at - 100_000).toBeLessThanOrEqual(1_900);
    expect(routing[1]!.at - 200_000).toBeGreaterThanOrEqual(T.failbackStableMs);
  });

  it('stops growing probe traffic once the budget is spent', () => {
    const tiny: SimWan[] = [standby[0]!, { ...standby[1]!, probeBudgetMBPerMonth: 0.004 }];
    const run = simulate({ seed: 43, durationMs: DAY, wans: tiny });
    expect(run.events.some((e) => e.type === 'probe-budget-exhausted' && e.wan === 'isp2')).toBe(true);
    expect(run.probesSent.isp2 ?? 0).toBeLessThan(4_000 / T.probeWireBytes + DAY / T.meteredMaxIntervalMs + 20);
  });
});

describe('a monitor IP that never answers', () => {
  it('is set aside instead of doubting the WAN, and the WAN stays up', () => {
    const run = simulate({ seed: 51, durationMs: 600_000, wans: labWans(0, { isp1: { deadTargets: ['198.51.100.1'] } }) });
    expect(run.events.find((e) => e.type === 'target-unresponsive')).toMatchObject({ wan: 'isp1', target: '198.51.100.1' });
    expect(run.falseDowns).toBe(0);
    expect(run.routingChanges).toBe(0);
  });
});

describe('the reducer itself', () => {
  const config: MonitorConfig = { wans: labWans(0), timings: T };

  function deepFreeze<X>(value: X): X {
    if (value && typeof value === 'object' && !Object.isFrozen(value)) {
      Object.freeze(value);
      for (const v of Object.values(value)) deepFreeze(v);
    }
    return value;
  }

  it('is pure: it never modifies the state it is given, and the same inputs give the same outputs', () => {
    let state: MonitorState = deepFreeze(initialMonitorState(config, 0));
    const random = seededRandom(3);
    for (let i = 0; i < 200; i++) {
      const input = { type: 'tick' as const, at: i * 37 };
      const a = stepMonitor(config, state, input);
      const b = stepMonitor(config, state, input);
      expect(b).toEqual(a);
      const replied = a.probes.filter(() => random() > 0.3);
      state = deepFreeze(a.state);
      for (const p of replied) state = deepFreeze(stepMonitor(config, state, { type: 'reply', seq: p.seq, at: input.at + 5 }).state);
    }
  });

  it('probes every target of a WAN, rotating, and asks to be woken up in time', () => {
    let step = stepMonitor(config, initialMonitorState(config, 0), { type: 'tick', at: 0 });
    const targets = new Set<string>();
    for (let i = 0; i < 8; i++) {
      for (const p of step.probes) targets.add(p.target);
      expect(step.nextWakeAt).toBeGreaterThan(step.state.now);
      let state = step.state;
      for (const p of step.probes) state = stepMonitor(config, state, { type: 'reply', seq: p.seq, at: step.state.now + 1 }).state;
      step = stepMonitor(config, state, { type: 'tick', at: step.nextWakeAt });
    }
    expect([...targets].sort()).toEqual(['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4']);
  });

  it('ignores replies it does not know (late beyond the window, or duplicates)', () => {
    const s0 = stepMonitor(config, initialMonitorState(config, 0), { type: 'tick', at: 0 });
    const after = stepMonitor(config, s0.state, { type: 'reply', seq: 99_999, at: 10 });
    expect(after.events).toEqual([]);
    expect(after.state.wans).toEqual(s0.state.wans);
  });

  it('is deterministic across whole simulations', () => {
    const a = simulate({ seed: 77, durationMs: 120_000, wans: labWans(10) });
    const b = simulate({ seed: 77, durationMs: 120_000, wans: labWans(10) });
    expect(b.events).toEqual(a.events);
  });
});

describe('configuration', () => {
  it('needs two distinct targets per WAN, none shared', () => {
    const one = labWans(0);
    expect(() => validateMonitorConfig({ wans: [{ ...one[0]!, targets: ['198.51.100.1'] }], timings: T })).toThrow(DualwanError);
    expect(() => validateMonitorConfig({ wans: [one[0]!, { ...one[1]!, targets: ['198.51.100.1', '198.51.100.9'] }], timings: T })).toThrow(/two WANs/);
    expect(() => validateMonitorConfig({ wans: [], timings: T })).toThrow(DualwanError);
  });

  it('takes its timings from the policy profile of dualwan.yaml', () => {
    const desired = {
      wans: [
        { name: 'isp', monitorIps: ['198.51.100.1', '198.51.100.2'], tier: 1, metered: false, probeBudgetMBPerMonth: 0 },
        { name: 'hotspot', monitorIps: ['198.51.100.3', '198.51.100.4'], tier: 2, metered: true, probeBudgetMBPerMonth: 5 },
      ],
      policy: { monitor: { name: 'conservative', intervalMs: 1000, lossDownPercent: 20, latencyHighMs: 500, failbackAfterSeconds: 60 } },
    } as unknown as DesiredState;
    const config = monitorConfigFromDesired(desired);
    expect(config.timings.failbackStableMs).toBe(60_000);
    expect(config.timings.probeIntervalMs).toBe(1_000);
    expect(config.wans.map((w) => [w.name, w.tier, w.metered])).toEqual([
      ['isp', 1, false],
      ['hotspot', 2, true],
    ]);
  });
});
