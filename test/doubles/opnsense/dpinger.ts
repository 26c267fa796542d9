// dpinger over time, for the OPNsense double (see BEHAVIOR.md "dpinger over time").
//
// One process per applied, monitored gateway, restarted by a routing reconfigure. It sends a probe
// every `interval` seconds; each probe's fate (lost or answered after its round trip) is decided
// when it is sent, under the conditions that hold then (link, firewall rules, pf state, loss).
// The report follows dpinger's own arithmetic (dpinger.c report()): the window is the last
// time_period / interval probes; a probe counts as lost only once it is older than loss_interval
// without an answer; loss % = lost·100 // (received + lost), integer division; the latency is the
// average round trip of the answered probes. OPNsense turns that into a status
// (dpinger.inc dpinger_status): down above latencyhigh or losshigh; delay / loss / delay+loss
// above the low thresholds; none (Online) otherwise.

import type { DpingerSettings } from '../../../src/providers/opnsense/layout';

export type DpingerStatus = 'none' | 'down' | 'force_down' | 'delay' | 'loss' | 'delay+loss';

/**
 * Effective dpinger settings of a gateway (seconds, ms, percent): the gateway fields OPNsense
 * stores, the same shape the product plans (the type only; the arithmetic here is the double's own).
 */
export type DpingerParams = DpingerSettings;

export interface DpingerReport {
  /** integer percent, as dpinger reports it */
  readonly lossPercent: number;
  /** average round trip of the answered probes, ms; undefined when none answered */
  readonly delayMs: number | undefined;
  readonly received: number;
  readonly lost: number;
}

/** OPNsense's reading of a dpinger report against the gateway's thresholds. */
export function dpingerStatus(r: Pick<DpingerReport, 'lossPercent' | 'delayMs'>, p: DpingerParams): DpingerStatus {
  const delay = r.delayMs ?? 0;
  if (delay > p.latencyhigh || r.lossPercent > p.losshigh) return 'down';
  const slow = delay > p.latencylow;
  const lossy = r.lossPercent > p.losslow;
  return slow && lossy ? 'delay+loss' : slow ? 'delay' : lossy ? 'loss' : 'none';
}

export interface ProbeFate {
  readonly lost: boolean;
  readonly delayMs: number;
}

interface Probe {
  readonly sent: number;
  readonly lost: boolean;
  readonly rtt: number;
}

/** One dpinger process (one gateway). Times are the router's clock, ms. */
export class DpingerProcess {
  private probes: Probe[] = [];
  private seq = 0;
  private nextAt: number;
  constructor(
    readonly params: DpingerParams,
    readonly startedAt: number,
  ) {
    this.nextAt = startedAt;
  }

  private get windowSize(): number {
    return Math.max(1, Math.floor(this.params.time_period / this.params.interval));
  }

  /** Sends every probe due up to `to`; `fate` decides each one under the conditions of its time. */
  advance(to: number, fate: (seq: number, sentAt: number) => ProbeFate): void {
    const step = this.params.interval * 1000;
    // probes older than the window cannot matter: skip ahead after a long jump of the clock
    const due = Math.floor((to - this.nextAt) / step) + 1;
    if (due > 2 * this.windowSize) {
      const skip = due - 2 * this.windowSize;
      this.nextAt += skip * step;
      this.seq += skip;
      this.probes = [];
    }
    for (let i = 0; i < 10 * this.windowSize + 10 && this.nextAt <= to; i++) {
      const f = fate(this.seq++, this.nextAt);
      this.probes.push({ sent: this.nextAt, lost: f.lost, rtt: f.delayMs });
      this.nextAt += step;
    }
    if (this.probes.length > this.windowSize) this.probes.splice(0, this.probes.length - this.windowSize);
  }

  /** dpinger's report at `at` (the probes sent up to then). */
  report(at: number): DpingerReport {
    const window = this.probes.filter((p) => p.sent <= at).slice(-this.windowSize);
    let received = 0;
    let lost = 0;
    let rttSum = 0;
    for (const p of window) {
      if (!p.lost && p.sent + p.rtt <= at) {
        received++;
        rttSum += p.rtt;
      } else if (at - p.sent > this.params.loss_interval * 1000) lost++;
    }
    const lossPercent = received + lost === 0 ? 0 : Math.floor((lost * 100) / (received + lost));
    return { lossPercent, delayMs: received ? rttSum / received : undefined, received, lost };
  }
}

/** How the double's clock runs: a function the tests drive, or real time scaled up. */
export interface DpingerClockOptions {
  /** The router's clock, ms (e.g. a ManualClock's `now`). */
  readonly clock?: () => number;
  /** Router seconds per real second (default 1) when no clock is given. */
  readonly timeScale?: number;
}

export function routerClock(o: DpingerClockOptions): () => number {
  if (o.clock) return o.clock;
  const scale = o.timeScale ?? 1;
  const t0 = Date.now();
  return () => t0 + (Date.now() - t0) * scale;
}

/**
 * A clock the tests drive: `sleep(ms)` moves it forward and resolves on the next turn of the
 * event loop, so a drill of minutes runs in milliseconds and its figures come out exact.
 */
export class ManualClock {
  private t: number;
  constructor(start = Date.UTC(2026, 7, 30, 12, 0, 0)) {
    this.t = start;
  }
  readonly now = (): number => this.t;
  readonly sleep = async (ms: number): Promise<void> => {
    this.t += Math.max(0, ms);
    await new Promise<void>((r) => setImmediate(r));
  };
  advance(ms: number): void {
    this.t += Math.max(0, ms);
  }
}
