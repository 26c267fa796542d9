/**
 * The figures a failover drill on OPNsense should measure, worked out from the monitor profile the
 * user chose (src/config/monitor-profiles.ts → the gateway's dpinger settings, layout.ts) and
 * dpinger's arithmetic (shared research, anchors §B; dpinger.c report(), dpinger.inc):
 * the window is the last time_period / interval probes; a probe counts as lost once it is older
 * than loss_interval without an answer; loss % = lost·100 // (received + lost); OPNsense calls the
 * gateway down above losshigh, "Packetloss" above losslow; the gateway watcher looks once a second.
 *
 * Pure: a small simulation of probes against an outage of the given length, one probe sent at the
 * very start of the outage (the phase that detects fastest is as likely as the slowest; the
 * tolerance covers the difference, about one interval).
 */
import type { DpingerSettings } from '../providers/opnsense/layout';

export type DrillMethod = 'block' | 'force-down' | 'cable';
export const DRILL_METHODS: readonly DrillMethod[] = ['block', 'force-down', 'cable'];

/** OPNsense's gateway-group triggers, and which statuses take a member out of its tier. */
const EXCLUDED: Readonly<Record<string, readonly string[]>> = {
  down: ['down', 'force_down'],
  downloss: ['down', 'force_down', 'loss', 'delay+loss'],
  downlatency: ['down', 'force_down', 'delay', 'delay+loss'],
  downlosslatency: ['down', 'force_down', 'loss', 'delay', 'delay+loss'],
};

export function excludedBy(trigger: string, status: string): boolean {
  return (EXCLUDED[trigger] ?? EXCLUDED.down!).includes(status);
}

export interface ExpectedFigures {
  /** Outage start → the gateway is Offline, s. */
  readonly detectionS: number;
  /**
   * Outage start → traffic has left it: the group stops using it (at its trigger) and the default
   * route moves (only once it is down), s; the filter reload comes on top.
   */
  readonly failoverS: number;
  /**
   * End of the outage → the gateway is usable again, s: until the lost probes but losslow % of
   * them have left the window, so about time_period × (1 − losslow) once an outage was detected.
   */
  readonly failbackS: number;
  /** How these were worked out, in words. */
  readonly basis: string;
}

/** How far a measured figure may exceed its expectation: expected × factor + slackS. */
export interface Tolerance {
  readonly factor: number;
  /** Polling granularity, API round trips, the filter reload after an alarm. */
  readonly slackS: number;
}
export const DEFAULT_TOLERANCE: Tolerance = { factor: 1.5, slackS: 5 };

export const limitOf = (expectedS: number, t: Tolerance): number => Math.round((expectedS * t.factor + t.slackS) * 10) / 10;

const WATCHER_S = 1;

/** Loss % at time t (s) with probes every `interval` s from −window, lost when sent in [0, outageEnd). */
function lossAt(dp: DpingerSettings, t: number, outageEndS: number): number {
  const n = Math.max(1, Math.floor(dp.time_period / dp.interval));
  const lastK = Math.floor(t / dp.interval + 1e-9);
  let received = 0;
  let lost = 0;
  for (let k = lastK - n + 1; k <= lastK; k++) {
    const sent = k * dp.interval;
    const inOutage = sent >= 0 && sent < outageEndS;
    if (!inOutage) received++;
    else if (t - sent > dp.loss_interval) lost++;
  }
  return received + lost === 0 ? 0 : Math.floor((lost * 100) / (received + lost));
}

function statusAt(dp: DpingerSettings, t: number, outageEndS: number): string {
  const loss = lossAt(dp, t, outageEndS);
  return loss > dp.losshigh ? 'down' : loss > dp.losslow ? 'loss' : 'none';
}

/**
 * Detection, failover and failback of a total loss of the monitor's answers lasting `outageS`
 * (Infinity while it lasts), as the gateway watcher sees them (once a second).
 */
export function dpingerTimeline(dp: DpingerSettings, trigger: string, outageS = Number.POSITIVE_INFINITY): { detectionS: number | null; failoverS: number | null; failbackS: number | null } {
  const horizon = Math.min(outageS, 10 * dp.time_period + 60);
  let detectionS: number | null = null;
  let failoverS: number | null = null;
  for (let t = WATCHER_S; t <= horizon + 1e-9 && (detectionS === null || failoverS === null); t += WATCHER_S) {
    const s = statusAt(dp, t, outageS);
    if (detectionS === null && s === 'down') detectionS = t;
    if (failoverS === null && excludedBy(trigger, s)) failoverS = t;
  }
  let failbackS: number | null = null;
  if (Number.isFinite(outageS) && failoverS !== null) {
    for (let t = Math.ceil(outageS / WATCHER_S) * WATCHER_S; t <= outageS + 10 * dp.time_period + 60; t += WATCHER_S) {
      if (!excludedBy(trigger, statusAt(dp, t, outageS)) && statusAt(dp, t, outageS) === 'none') {
        failbackS = Math.round((t - outageS) * 10) / 10;
        break;
      }
    }
  }
  return { detectionS, failoverS, failbackS };
}

/** What the drill should measure with this method; `outageS` refines failback once it is known. */
export function expectedFigures(method: DrillMethod, dp: DpingerSettings, trigger: string, outageS?: number): ExpectedFigures {
  if (method === 'force-down') {
    return {
      detectionS: 0,
      failoverS: 0,
      failbackS: 0,
      basis: 'force_down takes effect with the routing reconfigure, without dpinger: at once, both ways',
    };
  }
  const open = dpingerTimeline(dp, trigger);
  const detectionS = open.detectionS ?? Number.NaN;
  const failoverS = Math.max(open.failoverS ?? detectionS, detectionS);
  const outage = outageS ?? Math.max(dp.time_period, detectionS);
  const back = dpingerTimeline(dp, trigger, outage).failbackS ?? Number.NaN;
  return {
    detectionS,
    failoverS,
    failbackS: back,
    basis: `dpinger: a probe every ${dp.interval} s, lost after ${dp.loss_interval} s, averaged over ${dp.time_period} s; down above ${dp.losshigh} % loss, packet loss above ${dp.losslow} %; group trigger "${trigger}"${method === 'cable' ? '; a pulled cable loses every probe, like the block' : ''}`,
  };
}
