/**
 * Replays simulated time through the monitor's decision logic (decision.ts), with a simulated
 * network: per-probe random loss from a seeded PRNG, an RTT with jitter, outages (black holes:
 * every probe sent during one is lost) and targets that never answer. Event-driven, so a whole
 * day runs in well under a second, and deterministic for a given seed.
 *
 * It answers the questions the live lab cannot answer quickly (shared/research/linux-lab.md §2):
 * false failovers per day at a given loss, detection time over every probe phase, failback time,
 * flapping, and probe data on a metered link.
 */
import {
  DEFAULT_MONITOR_TIMINGS,
  initialMonitorState,
  stepMonitor,
  type MonitorConfig,
  type MonitorEvent,
  type MonitorInput,
  type MonitorTimings,
  type MonitoredWan,
} from './decision';

// Module-level aliases: under jest's vm context every global lookup (`Math`, `Number`) goes
// through an interceptor, which made the simulated day four times slower than in plain node.
const { floor: mFloor, imul: mImul } = Math;

/** mulberry32: small, fast, good enough for loss draws; same seed, same day. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = mImul(x ^ (x >>> 15), x | 1);
    x ^= x + mImul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SimOutage {
  readonly fromMs: number;
  readonly toMs: number;
}

export interface SimWan extends MonitoredWan {
  /** Independent loss per probe round trip, percent. */
  readonly lossPercent: number;
  readonly rttMs: number;
  /** Uniform extra RTT, 0..jitterMs. */
  readonly jitterMs: number;
  readonly outages: readonly SimOutage[];
  /** Targets that never answer (a monitor IP that blocks ping). */
  readonly deadTargets?: readonly string[];
}

export interface SimOptions {
  readonly seed: number;
  readonly durationMs: number;
  readonly wans: readonly SimWan[];
  readonly timings?: MonitorTimings;
  /** Safety bound on reducer calls. */
  readonly maxSteps?: number;
}

export interface OutageOutcome {
  readonly wan: string;
  readonly fromMs: number;
  readonly toMs: number;
  /** When the monitor marked the WAN down, ms after the outage began (null: never). */
  readonly detectedAfterMs: number | null;
  /** When the WAN left the active set, ms after the outage began (null: it was not active, or never). */
  readonly removedAfterMs: number | null;
  /** When the WAN was up again, ms after the outage ended (null: not within the run). */
  readonly restoredAfterMs: number | null;
}

export interface SimResult {
  readonly durationMs: number;
  readonly steps: number;
  readonly events: readonly MonitorEvent[];
  /** Times a WAN left the active set while it had no outage (nor one that ended ≤ 3 s before). */
  readonly falseFailovers: number;
  /** Times a WAN was marked down while it had no outage. */
  readonly falseDowns: number;
  readonly routingChanges: number;
  readonly outages: readonly OutageOutcome[];
  readonly probesSent: Readonly<Record<string, number>>;
  readonly probeBytes: Readonly<Record<string, number>>;
}

const OUTAGE_GRACE_MS = 3_000;

function inOutage(wan: SimWan, at: number, graceMs = 0): boolean {
  return wan.outages.some((o) => at >= o.fromMs && at < o.toMs + graceMs);
}

export function simulate(options: SimOptions): SimResult {
  const timings = options.timings ?? DEFAULT_MONITOR_TIMINGS;
  const config: MonitorConfig = { wans: options.wans, timings };
  const random = seededRandom(options.seed);
  const maxSteps = options.maxSteps ?? 20_000_000;
  const wanByName = new Map(options.wans.map((w) => [w.name, w]));

  // Replies in flight, ordered by arrival (a short array: a few per WAN at most).
  const replies: { at: number; seq: number }[] = [];
  const insertReply = (r: { at: number; seq: number }) => {
    let i = replies.length;
    while (i > 0 && replies[i - 1]!.at > r.at) i--;
    replies.splice(i, 0, r);
  };

  let state = initialMonitorState(config, 0);
  let wake = 0;
  const events: MonitorEvent[] = [];
  const probesSent: Record<string, number> = {};
  let steps = 0;

  for (; steps < maxSteps; steps++) {
    const next = replies[0];
    let input: MonitorInput;
    if (next !== undefined && next.at <= wake) {
      replies.shift();
      input = { type: 'reply', seq: next.seq, at: next.at };
    } else {
      input = { type: 'tick', at: wake };
    }
    if (input.at > options.durationMs) break;
    const step = stepMonitor(config, state, input);
    state = step.state;
    wake = step.nextWakeAt;
    for (const e of step.events) events.push(e);
    for (const p of step.probes) {
      const wan = wanByName.get(p.wan)!;
      probesSent[p.wan] = (probesSent[p.wan] ?? 0) + 1;
      const lost = inOutage(wan, p.sentAt) || (wan.deadTargets ?? []).includes(p.target) || random() * 100 < wan.lossPercent;
      const rtt = wan.rttMs + random() * wan.jitterMs;
      if (!lost && rtt <= p.listenMs) insertReply({ at: p.sentAt + rtt, seq: p.seq });
    }
  }
  if (steps >= maxSteps) throw new Error(`simulate: more than ${maxSteps} steps; the monitor is spinning`);

  let falseFailovers = 0;
  let falseDowns = 0;
  let routingChanges = 0;
  for (const e of events) {
    if (e.type === 'routing') {
      routingChanges++;
      for (const name of e.removed) if (!inOutage(wanByName.get(name)!, e.at, OUTAGE_GRACE_MS)) falseFailovers++;
    }
    if (e.type === 'wan-status' && e.to === 'down' && !inOutage(wanByName.get(e.wan)!, e.at, OUTAGE_GRACE_MS)) falseDowns++;
  }

  const outages: OutageOutcome[] = [];
  for (const w of options.wans) {
    for (const o of w.outages) {
      const down = events.find((e) => e.type === 'wan-status' && e.wan === w.name && e.to === 'down' && e.at >= o.fromMs);
      const removed = events.find((e) => e.type === 'routing' && e.removed.includes(w.name) && e.at >= o.fromMs);
      const up = events.find((e) => e.type === 'wan-status' && e.wan === w.name && e.to === 'up' && e.from !== 'suspect' && e.at >= o.toMs);
      outages.push({
        wan: w.name,
        fromMs: o.fromMs,
        toMs: o.toMs,
        detectedAfterMs: down ? down.at - o.fromMs : null,
        removedAfterMs: removed && removed.at <= o.toMs + OUTAGE_GRACE_MS ? removed.at - o.fromMs : null,
        restoredAfterMs: up ? up.at - o.toMs : null,
      });
    }
  }

  const probeBytes: Record<string, number> = {};
  for (const [name, n] of Object.entries(probesSent)) probeBytes[name] = n * timings.probeWireBytes;
  return { durationMs: options.durationMs, steps, events, falseFailovers, falseDowns, routingChanges, outages, probesSent, probeBytes };
}

/** Two WANs as in the lab (2:1 load balancing, one tier), with the given loss; a starting point for scenarios. */
export function labWans(lossPercent: number, overrides: Partial<Record<'isp1' | 'isp2', Partial<SimWan>>> = {}): SimWan[] {
  const base = (name: 'isp1' | 'isp2', targets: string[]): SimWan => ({
    name,
    targets,
    tier: 1,
    metered: false,
    probeBudgetMBPerMonth: 0,
    lossPercent,
    rttMs: 15,
    jitterMs: 10,
    outages: [],
    ...overrides[name],
  });
  return [base('isp1', ['198.51.100.1', '198.51.100.2']), base('isp2', ['198.51.100.3', '198.51.100.4'])];
}

export interface BlackholeStats {
  readonly samples: readonly number[];
  readonly min: number;
  readonly median: number;
  readonly max: number;
  /** Runs where the WAN never left the active set. */
  readonly missed: number;
}

/**
 * Detection time of a black hole on isp1 (total loss, link up), over `phases` outage start times
 * spread evenly across one steady probe interval, so the worst phase is included.
 */
export function blackholeDetection(options: { seed: number; phases: number; lossPercent?: number; timings?: MonitorTimings }): BlackholeStats {
  const timings = options.timings ?? DEFAULT_MONITOR_TIMINGS;
  const interval = timings.probeIntervalMs;
  const samples: number[] = [];
  let missed = 0;
  for (let k = 0; k < options.phases; k++) {
    const from = 20_000 + (k * interval) / options.phases;
    const result = simulate({
      seed: options.seed + k,
      durationMs: from + 10_000,
      timings,
      wans: labWans(options.lossPercent ?? 0, { isp1: { outages: [{ fromMs: from, toMs: from + 60_000 }] } }),
    });
    const removed = result.outages[0]?.removedAfterMs ?? null;
    if (removed === null) missed++;
    else samples.push(removed);
  }
  const sorted = samples.slice().sort((a, b) => a - b);
  return {
    samples,
    min: sorted[0] ?? Number.NaN,
    median: sorted[mFloor(sorted.length / 2)] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    missed,
  };
}
