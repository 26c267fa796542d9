// The expected figures of an OPNsense drill, from the monitor profile and dpinger's arithmetic,
// against the anchors of the research (OPNsense tuned: detection 3.1–4.4 s, failback 7.6–8.9 s;
// defaults: detection 15–17 s with a 4 s loss interval, failback 47–58 s).
import { MONITOR_PROFILES } from '../../../src/config/monitor-profiles';
import { dpingerSettings } from '../../../src/providers/opnsense/layout';
import { DEFAULT_TOLERANCE, dpingerTimeline, excludedBy, expectedFigures, limitOf } from '../../../src/verify/expectations';
import { opnsenseScenario } from '../../../src/verify/scenario';

const dp = (name: keyof typeof MONITOR_PROFILES) => dpingerSettings(MONITOR_PROFILES[name], { metered: false, probeBudgetMBPerMonth: 0 });

describe('expected drill figures', () => {
  it('fast profile: down after about 4 s of total loss, usable again about 8 s after it ends', () => {
    expect(expectedFigures('block', dp('fast'), 'down')).toMatchObject({ detectionS: 4, failoverS: 4, failbackS: 8 });
  });

  it('balanced and conservative: the window sets detection and, above all, failback', () => {
    expect(expectedFigures('block', dp('balanced'), 'down')).toMatchObject({ detectionS: 8, failbackS: 26 });
    const c = expectedFigures('block', dp('conservative'), 'down');
    expect(c.detectionS).toBe(14);
    expect(c.failbackS).toBeGreaterThanOrEqual(47);
    expect(c.failbackS).toBeLessThanOrEqual(58);
  });

  it('a loss trigger takes the gateway out of the group before it is down; the default route still waits for down', () => {
    const t = dpingerTimeline(dp('balanced'), 'downlosslatency');
    expect(t.failoverS).toBeLessThan(t.detectionS!);
    expect(expectedFigures('block', dp('balanced'), 'downlosslatency').failoverS).toBe(t.detectionS);
  });

  it('an outage shorter than detection is never seen; once seen, failback waits for the lost probes to leave the window', () => {
    expect(dpingerTimeline(dp('balanced'), 'down', 3)).toEqual({ detectionS: null, failoverS: null, failbackS: null });
    // each lost probe stays in the window for time_period: the outage's length hardly matters
    expect(expectedFigures('block', dp('conservative'), 'down', 20).failbackS).toBe(53);
    expect(expectedFigures('block', dp('conservative'), 'down', 120).failbackS).toBe(53);
  });

  it('force-down and the cable: at once, and like the block', () => {
    expect(expectedFigures('force-down', dp('balanced'), 'down')).toMatchObject({ detectionS: 0, failoverS: 0, failbackS: 0 });
    expect(expectedFigures('cable', dp('fast'), 'down').detectionS).toBe(4);
    expect(expectedFigures('cable', dp('fast'), 'down').basis).toContain('pulled cable');
  });

  it('limits: expected × factor + slack; which statuses each trigger excludes', () => {
    expect(limitOf(8, DEFAULT_TOLERANCE)).toBe(17);
    expect(limitOf(0, { factor: 2, slackS: 3 })).toBe(3);
    expect(excludedBy('down', 'loss')).toBe(false);
    expect(excludedBy('downloss', 'loss')).toBe(true);
    expect(excludedBy('downlatency', 'delay')).toBe(true);
    expect(excludedBy('down', 'force_down')).toBe(true);
  });
});

describe('the scenario as data', () => {
  const scenario = opnsenseScenario({ method: 'block', wan: 'isp', gateway: 'WAN_DHCP', backups: ['WAN2_DHCP'], expected: expectedFigures('block', dp('fast'), 'down'), tolerance: DEFAULT_TOLERANCE, holdMs: 5_000 });
  it('walks baseline → induce → detect → failover → restore → failback → flows, stopping early only where it must', () => {
    expect(scenario.map((s) => s.id)).toEqual(['cleanup', 'baseline', 'dns', 'public-address', 'induce', 'detect', 'failover', 'hold', 'restore', 'failback', 'flows']);
    expect(scenario.filter((s) => s.stopOnFailure).map((s) => s.id)).toEqual(['cleanup', 'baseline', 'induce', 'restore']);
  });
  it('gives each measured step its limit and a bound well past it, so a slow router is measured, not cut off', () => {
    const detect = scenario.find((s) => s.id === 'detect')!;
    expect(detect.limitS).toBe(11);
    expect(detect.expect).toBe('within 11 s (expected 4 s)');
    expect(detect.timeoutMs).toBe(41_000);
  });
});
