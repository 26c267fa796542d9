import type { MonitorProfile } from '../core/desired';

/**
 * The three health-monitor profiles a user picks from (`policy.monitorProfile`).
 *
 * Where the numbers come from (shared/research/anchors.md §B, and the OPNsense gateway model in
 * shared/research/opnsense-api.md §1):
 * - `conservative` keeps OPNsense's own dpinger defaults: a probe every 1 s, down above 20 % loss
 *   (`losshigh`), degraded above 500 ms (`latencyhigh`), and a 60 s window (`time_period`), which is
 *   what sets failback — simulated at 47–49 s after a long outage, detection at 15–17 s.
 * - `fast` is the "OPNsense tuned" row of that table: 0.5 s probes and a 10 s window detect a total
 *   outage in 3.1–4.4 s and fail back in 7.6–8.9 s, at about twice the default probe traffic
 *   (~300 MB a month on an always-probed link, so metered links are probed by their own budget).
 * - `balanced` sits between them: default probe rate and loss threshold, a tighter latency limit,
 *   and a 30 s healthy period before failing back — slower than detection on purpose, so a line
 *   that flaps does not drag every connection back and forth (anchors.md §B, "What this means for us").
 *
 * Providers translate a profile into their engine's settings (dpinger interval, loss_interval and
 * time_period on OPNsense; the tracker's timings on Linux); the profile states intent, not knobs.
 */
export const MONITOR_PROFILES: Readonly<Record<MonitorProfile['name'], MonitorProfile>> = Object.freeze({
  fast: Object.freeze({ name: 'fast', intervalMs: 500, lossDownPercent: 20, latencyHighMs: 300, failbackAfterSeconds: 10 }),
  balanced: Object.freeze({ name: 'balanced', intervalMs: 1000, lossDownPercent: 20, latencyHighMs: 400, failbackAfterSeconds: 30 }),
  conservative: Object.freeze({ name: 'conservative', intervalMs: 1000, lossDownPercent: 20, latencyHighMs: 500, failbackAfterSeconds: 60 }),
});

export function monitorProfile(name: MonitorProfile['name']): MonitorProfile {
  return MONITOR_PROFILES[name];
}
