import { MONITOR_PROFILES } from '../../../src/config/monitor-profiles';
import { MONITOR_PROFILE_NAMES } from '../../../src/config/schema';

describe('monitor profiles', () => {
  it('exist for every name the schema accepts', () => {
    expect(Object.keys(MONITOR_PROFILES).sort()).toEqual([...MONITOR_PROFILE_NAMES].sort());
    for (const name of MONITOR_PROFILE_NAMES) expect(MONITOR_PROFILES[name].name).toBe(name);
  });

  it('keep OPNsense dpinger defaults as the conservative baseline', () => {
    // OPNsense: interval 1 s, losshigh 20 %, latencyhigh 500 ms, time_period 60 s (opnsense-api.md §1).
    expect(MONITOR_PROFILES.conservative).toEqual({ name: 'conservative', intervalMs: 1000, lossDownPercent: 20, latencyHighMs: 500, failbackAfterSeconds: 60 });
  });

  it('order from fast to conservative on every axis', () => {
    const { fast, balanced, conservative } = MONITOR_PROFILES;
    expect(fast.intervalMs).toBeLessThanOrEqual(balanced.intervalMs);
    expect(balanced.intervalMs).toBeLessThanOrEqual(conservative.intervalMs);
    expect(fast.latencyHighMs).toBeLessThan(balanced.latencyHighMs);
    expect(balanced.latencyHighMs).toBeLessThan(conservative.latencyHighMs);
    expect(fast.failbackAfterSeconds).toBeLessThan(balanced.failbackAfterSeconds);
    expect(balanced.failbackAfterSeconds).toBeLessThan(conservative.failbackAfterSeconds);
    for (const p of Object.values(MONITOR_PROFILES)) {
      expect(p.lossDownPercent).toBeGreaterThan(0);
      expect(p.lossDownPercent).toBeLessThanOrEqual(100);
    }
  });
});
