/**
 * The benchmark's dpinger-equivalent (bench/linux-dpinger.ts) reproduces the figures the research
 * measured for dpinger at OPNsense's defaults (shared/research/linux-lab.md §2): ~16 s to detect a
 * total outage from steady state, ~57 s to clear after it ends, tens of alarms a day at 10 % loss.
 */
import { DpingerWindow, OPNSENSE_DPINGER_DEFAULTS, simulateDpingerDay, simulateDpingerOutage } from '../../../bench/linux-dpinger';

describe('the dpinger-equivalent prober', () => {
  it('detects a total outage in 15–17 s and clears ~57 s after it ends, from a steady-state window', () => {
    for (const phase of [0, 300, 700]) {
      const o = simulateDpingerOutage(120_000, phase);
      expect(o.detectMs).toBeGreaterThanOrEqual(15_000);
      expect(o.detectMs).toBeLessThanOrEqual(17_000);
      expect(o.clearMs).toBeGreaterThanOrEqual(55_000);
      expect(o.clearMs).toBeLessThanOrEqual(59_000);
    }
  });

  it('raises tens of alarms a day at 10 % random loss (research: 19, range 16–28)', () => {
    const alarms = [1, 2, 3].map((seed) => simulateDpingerDay(seed, 10).alarms);
    for (const a of alarms) {
      expect(a).toBeGreaterThan(5);
      expect(a).toBeLessThan(60);
    }
  });

  it('does not count unanswered probes younger than the loss interval', () => {
    const w = new DpingerWindow(OPNSENSE_DPINGER_DEFAULTS);
    w.prefill(0);
    w.send(1_000);
    expect(w.check(4_000).lossPercent).toBe(0);
    expect(w.check(5_500).lossPercent).toBe(1); // floor(1·100 / 60)
  });
});
