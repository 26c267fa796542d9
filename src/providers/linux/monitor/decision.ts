/**
 * The health monitor's decisions, as a pure reducer: `stepMonitor(config, state, input)` takes a
 * clock tick or a probe reply and returns the next state, the probes to send now, what changed,
 * and when it next needs to be called. Same inputs, same outputs: the daemon and the simulator
 * (simulate.ts) drive the very same code, and the state is a bounded summary of the probe history.
 *
 * How it decides (the figures it is designed against are in shared/research/linux-lab.md §2):
 * - Steady probing is slow: one probe per WAN per `probeIntervalMs` (the profile's interval,
 *   like dpinger's one probe per interval), its targets in rotation.
 * - One lost probe proves little (a 10 %-lossy line loses one every 5 s), so it does not count
 *   against the WAN; it starts a short confirmation burst over all targets. Only when the trigger
 *   and every burst probe go unanswered (7 in a row across ≥ 2 targets, p⁷ = 10⁻⁷ at 10 % loss)
 *   is the WAN down. That gives dpinger-window robustness (< 0.05 false downs a day instead of the
 *   naive 200 ms checker's ~390) with naive-checker speed (≤ 1.35 s worst case, vs 15 s).
 * - Any reply, even a late one, during the burst cancels it: a latency spike of up to ~0.85 s
 *   (bufferbloat on a saturated uplink) is not an outage.
 * - A lossy but alive line is taken down by a long window (loss over 120 s clearly above the
 *   profile's threshold), never by a short one: OPNsense's 56-sample window flaps ~19 times a day
 *   at 10 %.
 * - Failback waits for a stable window (the profile's failbackAfterSeconds) with enough samples
 *   and acceptable loss; each further outage within 10 minutes doubles that window (flap damping).
 * - Routing uses the lowest tier that has a viable WAN. When no WAN is viable, nothing changes:
 *   withdrawing every route helps nobody.
 * - A metered WAN (phone hotspot) is probed at the rate its monthly probe budget allows, and
 *   probing stops growing once the budget is spent.
 */
import type { DesiredState, MonitorProfile } from '../../../core/desired';
import { DualwanError } from '../../../core/errors';

// Module-level aliases: under jest's vm context every global lookup (`Math`, `Number`) goes
// through an interceptor, which made the simulated day four times slower than in plain node.
const { floor: mFloor, max: mMax, min: mMin, round: mRound, sqrt: mSqrt } = Math;
const INFINITY = Number.POSITIVE_INFINITY;

export type WanStatus = 'up' | 'suspect' | 'down' | 'recovering';

export interface MonitorTimings {
  /**
   * Each WAN is probed once per this interval while healthy, its targets in rotation (the
   * profile's `intervalMs`; dpinger likewise sends one probe per interval per gateway). At the 1 s
   * default and 56 bytes a probe that is ~145 MB a month, within OPNsense's ~150 MB.
   */
  readonly probeIntervalMs: number;
  /** A probe with no reply after this long counts as lost (floor of the adaptive timeout). */
  readonly lossTimeoutMs: number;
  /** Ceiling of the adaptive timeout (3 × smoothed RTT). */
  readonly maxLossTimeoutMs: number;
  /** Probes in the confirmation burst after a first loss. */
  readonly confirmProbes: number;
  readonly confirmIntervalMs: number;
  /** Probe interval of a WAN that is down (non-metered), per WAN. */
  readonly downIntervalMs: number;
  /** Healthy time needed before failing back (the profile's `failbackAfterSeconds`). */
  readonly failbackStableMs: number;
  readonly failbackMinSamples: number;
  /** Outages remembered for flap damping, and the cap of the damped stable window. */
  readonly flapMemoryMs: number;
  readonly maxFailbackStableMs: number;
  /** Loss above this over `lossWindowMs` takes a WAN down (the profile's `lossDownPercent`). */
  readonly lossDownPercent: number;
  readonly lossWindowMs: number;
  readonly lossWindowMinSamples: number;
  /** Replies later than this are no longer matched to their probe. */
  readonly lateReplyMs: number;
  /** IP bytes per probe and its reply: 20 (IPv4) + 8 (ICMP echo, no payload), both ways. */
  readonly probeWireBytes: number;
  /** Share of a metered WAN's monthly probe budget planned for steady probing (the rest absorbs bursts). */
  readonly meteredBudgetShare: number;
  readonly meteredMinIntervalMs: number;
  readonly meteredMaxIntervalMs: number;
  /** Consecutive losses of one target, while another target answers, before it is set aside. */
  readonly targetDeadAfterLosses: number;
  readonly deadTargetRetryMs: number;
}

export const DEFAULT_MONITOR_TIMINGS: MonitorTimings = Object.freeze({
  probeIntervalMs: 1_000,
  lossTimeoutMs: 250,
  maxLossTimeoutMs: 1_000,
  confirmProbes: 6,
  confirmIntervalMs: 70,
  downIntervalMs: 1_000,
  failbackStableMs: 30_000,
  failbackMinSamples: 20,
  flapMemoryMs: 600_000,
  maxFailbackStableMs: 300_000,
  lossDownPercent: 20,
  lossWindowMs: 120_000,
  lossWindowMinSamples: 120,
  lateReplyMs: 3_000,
  probeWireBytes: 56,
  meteredBudgetShare: 0.8,
  meteredMinIntervalMs: 15_000,
  meteredMaxIntervalMs: 600_000,
  targetDeadAfterLosses: 6,
  deadTargetRetryMs: 30_000,
});

/** A monitor profile from dualwan.yaml (src/config/monitor-profiles.ts) in this engine's terms. */
export function timingsFromProfile(profile: MonitorProfile, base: MonitorTimings = DEFAULT_MONITOR_TIMINGS): MonitorTimings {
  return {
    ...base,
    probeIntervalMs: profile.intervalMs,
    lossDownPercent: profile.lossDownPercent,
    failbackStableMs: profile.failbackAfterSeconds * 1_000,
  };
}

export interface MonitoredWan {
  readonly name: string;
  /** ≥ 2 addresses, unique across WANs, probed through this WAN only. */
  readonly targets: readonly string[];
  readonly tier: number;
  readonly metered: boolean;
  readonly probeBudgetMBPerMonth: number;
}

export interface MonitorConfig {
  readonly wans: readonly MonitoredWan[];
  readonly timings: MonitorTimings;
}

export function monitorConfigFromDesired(desired: DesiredState): MonitorConfig {
  return validateMonitorConfig({
    wans: desired.wans.map((w) => ({ name: w.name, targets: w.monitorIps, tier: w.tier, metered: w.metered, probeBudgetMBPerMonth: w.probeBudgetMBPerMonth })),
    timings: timingsFromProfile(desired.policy.monitor),
  });
}

export function validateMonitorConfig(config: MonitorConfig): MonitorConfig {
  if (config.wans.length === 0) throw new DualwanError('MONITOR_NO_WANS', 'The health monitor needs at least one WAN.', { source: 'user' });
  const seen = new Set<string>();
  for (const w of config.wans) {
    if (w.targets.length < 2) {
      throw new DualwanError('MONITOR_TARGETS_TOO_FEW', `WAN ${w.name} has ${w.targets.length} monitor IP(s); the monitor needs at least 2.`, {
        source: 'user',
        remedy: `Give wans.${w.name}.monitorIps two or more far addresses that answer ping (two different providers), so one target going silent cannot take the WAN down.`,
      });
    }
    for (const t of w.targets) {
      if (seen.has(t)) throw new DualwanError('MONITOR_TARGET_SHARED', `Monitor IP ${t} is used by two WANs; each WAN needs its own.`, { source: 'user' });
      seen.add(t);
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// State

interface InFlight {
  readonly seq: number;
  readonly target: string;
  readonly sentAt: number;
  readonly lossAt: number;
  /** The loss timeout passed and the probe was counted lost (a late reply may still come). */
  readonly counted: boolean;
}

/** Probe outcomes recorded within one second. */
interface Bucket {
  readonly sec: number;
  readonly n: number;
  readonly lost: number;
}

/**
 * Outcomes per second: finished seconds are shared between states and copied once a second; only
 * the current second changes per probe (a day at 2 probes/s per WAN stays fast to simulate).
 */
interface Samples {
  readonly closed: readonly Bucket[];
  readonly open: Bucket;
}

function addSample(s: Samples, at: number, lost: boolean): Samples {
  const sec = mFloor(at / 1000);
  if (sec === s.open.sec) return { closed: s.closed, open: { sec, n: s.open.n + 1, lost: s.open.lost + (lost ? 1 : 0) } };
  return { closed: s.open.n > 0 ? [...s.closed, s.open] : s.closed, open: { sec, n: 1, lost: lost ? 1 : 0 } };
}

interface TargetHealth {
  readonly address: string;
  readonly consecutiveLosses: number;
  /** When the target last answered (only updated after a loss: it is read as "has answered since"). */
  readonly lastReplyAt: number | null;
  readonly unresponsive: boolean;
  readonly nextRetryAt: number;
}

interface Confirm {
  readonly startedAt: number;
  readonly sent: number;
  readonly nextAt: number;
  readonly trigger: string;
}

export interface WanMonitorState {
  readonly name: string;
  readonly status: WanStatus;
  /** When the current up/down/recovering period began ('suspect' keeps the 'up' period's start). */
  readonly since: number;
  readonly nextProbeAt: number;
  readonly rotation: number;
  readonly inFlight: readonly InFlight[];
  readonly samples: Samples;
  readonly targets: readonly TargetHealth[];
  readonly confirm: Confirm | null;
  readonly srttMs: number | null;
  readonly downTimes: readonly number[];
  /** The budget month, [start, end) in ms. */
  readonly budgetPeriod: { readonly start: number; readonly end: number };
  readonly budgetSpentBytes: number;
  readonly budgetExhausted: boolean;
  readonly probesSent: number;
  /** The earliest time this WAN has something to do (a probe, a timeout, a failback check). */
  readonly wakeAt: number;
}

export interface MonitorState {
  readonly now: number;
  readonly nextSeq: number;
  readonly wans: readonly WanMonitorState[];
  /** WANs carrying new connections, in config order. */
  readonly active: readonly string[];
  readonly noViableWan: boolean;
}

export type MonitorInput = { readonly type: 'tick'; readonly at: number } | { readonly type: 'reply'; readonly seq: number; readonly at: number };

export interface ProbeRequest {
  readonly seq: number;
  readonly wan: string;
  readonly target: string;
  readonly sentAt: number;
  /** How long the prober should keep listening for the reply. */
  readonly listenMs: number;
}

export type MonitorEvent =
  | { readonly type: 'wan-status'; readonly at: number; readonly wan: string; readonly from: WanStatus; readonly to: WanStatus; readonly reason: string }
  | {
      readonly type: 'routing';
      readonly at: number;
      readonly active: readonly string[];
      readonly previous: readonly string[];
      readonly added: readonly string[];
      readonly removed: readonly string[];
    }
  | { readonly type: 'no-viable-wan'; readonly at: number; readonly kept: readonly string[] }
  | { readonly type: 'target-unresponsive' | 'target-responsive'; readonly at: number; readonly wan: string; readonly target: string }
  | { readonly type: 'probe-budget-exhausted'; readonly at: number; readonly wan: string; readonly spentBytes: number };

export interface MonitorStep {
  readonly state: MonitorState;
  readonly probes: readonly ProbeRequest[];
  readonly events: readonly MonitorEvent[];
  /** Call `stepMonitor` with a tick at this time at the latest. */
  readonly nextWakeAt: number;
}

const MONTH_MS = 31 * 86_400_000;

/** The calendar month (UTC) holding `at`, as [start, end) in ms: probe budgets are monthly. */
function budgetPeriodOf(at: number): { start: number; end: number } {
  const d = new Date(at);
  return { start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}

export function initialMonitorState(config: MonitorConfig, now: number): MonitorState {
  validateMonitorConfig(config);
  const n = config.wans.length;
  const wans = config.wans.map(
    (w, i): WanMonitorState => ({
      name: w.name,
      status: 'up',
      since: now,
      // Spread the WANs' probes over the interval so they do not leave together.
      nextProbeAt: now + mFloor((i * steadyIntervalMs(config, w)) / n),
      rotation: 0,
      inFlight: [],
      samples: { closed: [], open: { sec: mFloor(now / 1000), n: 0, lost: 0 } },
      targets: w.targets.map((address) => ({ address, consecutiveLosses: 0, lastReplyAt: null, unresponsive: false, nextRetryAt: 0 })),
      confirm: null,
      srttMs: null,
      downTimes: [],
      budgetPeriod: budgetPeriodOf(now),
      budgetSpentBytes: 0,
      budgetExhausted: false,
      probesSent: 0,
      wakeAt: now,
    }),
  );
  const routing = chooseActive(config, wans, []);
  return { now, nextSeq: 1, wans, active: routing.active, noViableWan: routing.noViable };
}

/**
 * The starting state of a monitor that (re)starts while some WANs are out of the default route
 * (a restart after a failover): those begin `down`, so they must earn their way back through the
 * stable window instead of being trusted blindly. `budgetSpent` restores this month's probe bytes
 * of metered WANs, kept on disk across restarts.
 */
export function resumeMonitorState(
  config: MonitorConfig,
  now: number,
  resume: { readonly down?: readonly string[]; readonly budgetSpent?: Readonly<Record<string, { readonly periodStart: number; readonly bytes: number }>> },
): MonitorState {
  const s = initialMonitorState(config, now);
  const down = resume.down ?? [];
  const wans = s.wans.map((w): WanMonitorState => {
    const spent = resume.budgetSpent?.[w.name];
    let x: WanMonitorState = w;
    if (spent && spent.periodStart === w.budgetPeriod.start && spent.bytes > 0) x = { ...x, budgetSpentBytes: spent.bytes };
    if (down.includes(w.name)) x = { ...x, status: 'down', since: now, nextProbeAt: now, wakeAt: now };
    return x;
  });
  const routing = chooseActive(config, wans, s.active);
  return { ...s, wans, active: routing.active, noViableWan: routing.noViable };
}

function steadyIntervalMs(config: MonitorConfig, _wan: MonitoredWan): number {
  return mMax(50, config.timings.probeIntervalMs);
}

/** Interval between probes of a metered WAN that keeps a month of probing within its budget. */
export function meteredIntervalMs(timings: MonitorTimings, budgetMBPerMonth: number): number {
  const budgetBytes = budgetMBPerMonth * 1_000_000 * timings.meteredBudgetShare;
  if (budgetBytes <= 0) return timings.meteredMaxIntervalMs;
  // Assume 10 % background loss: each lost probe adds a confirmation burst.
  const bytesPerSlot = timings.probeWireBytes * (1 + 0.1 * timings.confirmProbes);
  const interval = (MONTH_MS * bytesPerSlot) / budgetBytes;
  return mRound(mMin(timings.meteredMaxIntervalMs, mMax(timings.meteredMinIntervalMs, interval)));
}

const wanIndexCache = new WeakMap<MonitorConfig, Map<string, MonitoredWan>>();

function wanConfig(config: MonitorConfig, name: string): MonitoredWan {
  let index = wanIndexCache.get(config);
  if (!index) {
    index = new Map(config.wans.map((w) => [w.name, w]));
    wanIndexCache.set(config, index);
  }
  const w = index.get(name);
  if (!w) throw new Error(`monitor: unknown WAN ${name}`);
  return w;
}

function probeIntervalMs(config: MonitorConfig, w: WanMonitorState): number {
  const wc = wanConfig(config, w.name);
  const t = config.timings;
  if (wc.metered) return w.budgetExhausted ? t.meteredMaxIntervalMs : meteredIntervalMs(t, wc.probeBudgetMBPerMonth);
  if (w.status === 'down') return t.downIntervalMs;
  return steadyIntervalMs(config, wc);
}

function lossTimeoutMs(t: MonitorTimings, w: WanMonitorState): number {
  if (w.srttMs === null) return t.lossTimeoutMs;
  return mRound(mMin(t.maxLossTimeoutMs, mMax(t.lossTimeoutMs, 3 * w.srttMs)));
}

/** The failback window, doubled for each other outage within the flap memory. */
export function stableWindowMs(t: MonitorTimings, downTimes: readonly number[], now: number): number {
  const recent = downTimes.filter((d) => now - d <= t.flapMemoryMs).length;
  return mMin(t.maxFailbackStableMs, t.failbackStableMs * 2 ** mMax(0, recent - 1));
}

/**
 * True when `lost` of `n` is above `percent` by more than chance explains: a one-sided test at
 * three standard errors (0.13 % false alarms per independent window). Comparing the raw ratio
 * would take a 15 %-lossy line down several times a day against a 20 % threshold; this takes
 * down a 30 %-lossy line within about two minutes and a 10 %-lossy one never.
 */
export function lossClearlyAbove(lost: number, n: number, percent: number): boolean {
  if (n <= 0) return false;
  const p0 = percent / 100;
  return lost / n - p0 > 3 * mSqrt((p0 * (1 - p0)) / n);
}

/** Outcomes recorded from `from` (to the second) until now. */
function lossOver(samples: Samples, from: number): { n: number; lost: number } {
  const fromSec = mFloor(from / 1000);
  let n = 0;
  let lost = 0;
  for (const b of samples.closed) {
    if (b.sec < fromSec) continue;
    n += b.n;
    lost += b.lost;
  }
  if (samples.open.sec >= fromSec) {
    n += samples.open.n;
    lost += samples.open.lost;
  }
  return { n, lost };
}

function chooseActive(config: MonitorConfig, wans: readonly WanMonitorState[], previous: readonly string[]): { active: string[]; noViable: boolean } {
  const tierOf = (name: string) => wanConfig(config, name).tier;
  const viable = wans.filter((w) => w.status === 'up' || w.status === 'suspect');
  // Nothing healthy: a WAN that answers again, even before its stable window, beats nothing.
  const pool = viable.length > 0 ? viable : wans.filter((w) => w.status === 'recovering');
  if (pool.length === 0) return { active: [...previous], noViable: true };
  const tier = mMin(...pool.map((w) => tierOf(w.name)));
  return { active: pool.filter((w) => tierOf(w.name) === tier).map((w) => w.name), noViable: false };
}

// ---------------------------------------------------------------------------------------------
// The reducer

/** A fresh copy of one WAN's state that this step may change field by field before returning it. */
type Draft = { -readonly [K in keyof WanMonitorState]: WanMonitorState[K] };

interface StepContext {
  readonly config: MonitorConfig;
  readonly t: MonitorTimings;
  readonly now: number;
  readonly events: MonitorEvent[];
  readonly probes: ProbeRequest[];
  nextSeq: number;
}

function setStatus(ctx: StepContext, d: Draft, to: WanStatus, reason: string): void {
  ctx.events.push({ type: 'wan-status', at: ctx.now, wan: d.name, from: d.status, to, reason });
  const keepsPeriod = to === 'suspect' || (d.status === 'suspect' && to === 'up');
  d.status = to;
  if (!keepsPeriod) d.since = ctx.now;
}

function sendProbe(ctx: StepContext, d: Draft, target: string): void {
  const { now, t } = ctx;
  const seq = ctx.nextSeq++;
  ctx.probes.push({ seq, wan: d.name, target, sentAt: now, listenMs: t.lateReplyMs });
  d.inFlight = [...d.inFlight, { seq, target, sentAt: now, lossAt: now + lossTimeoutMs(t, d), counted: false }];
  if (now >= d.budgetPeriod.end) {
    d.budgetPeriod = budgetPeriodOf(now);
    d.budgetSpentBytes = 0;
    d.budgetExhausted = false;
  }
  d.budgetSpentBytes += t.probeWireBytes;
  d.probesSent += 1;
}

function liveTargets(w: WanMonitorState): readonly TargetHealth[] {
  const live = w.targets.filter((x) => !x.unresponsive);
  return live.length > 0 ? live : w.targets;
}

function recordDown(ctx: StepContext, d: Draft, reason: string): void {
  setStatus(ctx, d, 'down', reason);
  d.confirm = null;
  d.downTimes = [...d.downTimes.filter((x) => ctx.now - x <= ctx.t.flapMemoryMs), ctx.now];
  d.nextProbeAt = ctx.now + probeIntervalMs(ctx.config, d);
}

/** A reply to probe `seq` of this WAN. */
function onReply(ctx: StepContext, w: WanMonitorState, probe: InFlight): WanMonitorState {
  const { now } = ctx;
  const d: Draft = { ...w };
  const rtt = mMax(0, now - probe.sentAt);
  d.inFlight = w.inFlight.filter((p) => p.seq !== probe.seq);
  // A late reply was already counted lost for the loss statistics; it still proves life below.
  if (!probe.counted) d.samples = addSample(w.samples, now, false);
  d.srttMs = w.srttMs === null ? rtt : w.srttMs + (rtt - w.srttMs) / 8;
  const health = w.targets.find((x) => x.address === probe.target);
  if (health && (health.consecutiveLosses !== 0 || health.unresponsive || health.lastReplyAt === null)) {
    if (health.unresponsive) ctx.events.push({ type: 'target-responsive', at: now, wan: w.name, target: health.address });
    d.targets = w.targets.map((x) => (x === health ? { ...x, consecutiveLosses: 0, lastReplyAt: now, unresponsive: false } : x));
  }
  if (d.confirm !== null) {
    // Any answer during the burst: the WAN carries packets; the lost probe was noise.
    if (d.status === 'suspect') setStatus(ctx, d, 'up', `reply from ${probe.target} during the confirmation burst`);
    d.confirm = null;
    d.nextProbeAt = now + probeIntervalMs(ctx.config, d);
  }
  if (d.status === 'down') setStatus(ctx, d, 'recovering', `reply from ${probe.target}`);
  return d;
}

/** Timeouts, the confirmation burst, status changes and steady probes of one WAN at `now`. */
function advanceWan(ctx: StepContext, w: WanMonitorState): WanMonitorState {
  const { now, t, config } = ctx;
  const wc = wanConfig(config, w.name);
  let d: Draft | undefined;
  const draft = (): Draft => (d ??= { ...w });

  // Probes past their loss timeout count as lost; those past the late-reply window are forgotten.
  let lostNow = false;
  let due = false;
  for (const p of w.inFlight) if ((!p.counted && p.lossAt <= now) || p.sentAt + t.lateReplyMs <= now) due = true;
  if (due) {
    const x = draft();
    let trigger: string | undefined;
    for (const p of w.inFlight) {
      if (p.counted || p.lossAt > now) continue;
      lostNow = true;
      x.samples = addSample(x.samples, now, true);
      x.targets = x.targets.map((h) => (h.address === p.target ? { ...h, consecutiveLosses: h.consecutiveLosses + 1 } : h));
      const health = x.targets.find((h) => h.address === p.target);
      const othersAnswer = x.targets.some((h) => h.address !== p.target && h.consecutiveLosses === 0 && h.lastReplyAt !== null);
      if (health && !health.unresponsive && health.consecutiveLosses >= t.targetDeadAfterLosses && othersAnswer) {
        // One monitor IP went silent while the others answer: set it aside rather than doubt the WAN.
        x.targets = x.targets.map((h) => (h === health ? { ...h, unresponsive: true, nextRetryAt: now + t.deadTargetRetryMs } : h));
        ctx.events.push({ type: 'target-unresponsive', at: now, wan: w.name, target: p.target });
      } else if (health && !health.unresponsive && trigger === undefined) {
        trigger = p.target;
      }
    }
    x.inFlight = w.inFlight.filter((p) => p.sentAt + t.lateReplyMs > now).map((p) => (!p.counted && p.lossAt <= now ? { ...p, counted: true } : p));
    if (trigger !== undefined && x.confirm === null && (x.status === 'up' || x.status === 'recovering')) {
      const timeout = lossTimeoutMs(t, x);
      x.confirm = { startedAt: now, sent: 0, nextAt: now, trigger };
      if (x.status === 'up') setStatus(ctx, x, 'suspect', `no reply from ${trigger} within ${timeout} ms; confirming`);
    }
  }

  // The confirmation burst: send what is due; decide once every burst probe is answered or lost.
  const confirm = (d ?? w).confirm;
  if (confirm !== null) {
    let c = confirm;
    if (c.sent < t.confirmProbes && c.nextAt <= now) {
      const x = draft();
      for (let k = 0; k < t.confirmProbes && c.sent < t.confirmProbes && c.nextAt <= now; k++) {
        const live = liveTargets(x);
        x.rotation += 1;
        sendProbe(ctx, x, live[x.rotation % live.length]!.address);
        c = { ...c, sent: c.sent + 1, nextAt: c.nextAt + t.confirmIntervalMs };
      }
      x.confirm = c;
    }
    const cur = d ?? w;
    const pending = cur.inFlight.some((p) => !p.counted && p.sentAt >= c.startedAt);
    if (c.sent >= t.confirmProbes && !pending) {
      const x = draft();
      const targets = liveTargets(x).map((h) => h.address).join(', ');
      recordDown(ctx, x, `no reply to the probe of ${c.trigger} nor to ${t.confirmProbes} confirmation probes (${targets})`);
    }
  }

  // A lossy but alive line: loss over the long window, evaluated when a loss is counted.
  const afterBurst = d ?? w;
  if (afterBurst.status === 'up' && lostNow) {
    const from = mMax(afterBurst.since, now - t.lossWindowMs);
    const { n, lost } = lossOver(afterBurst.samples, from);
    if (n >= t.lossWindowMinSamples && lossClearlyAbove(lost, n, t.lossDownPercent)) {
      recordDown(ctx, draft(), `${mRound((lost * 100) / n)} % loss over the last ${mRound((now - from) / 1000)} s`);
    }
  }

  // Failback: stable long enough, with enough samples and acceptable loss.
  const cur = d ?? w;
  if (cur.status === 'recovering' && cur.confirm === null) {
    const window = stableWindowMs(t, cur.downTimes, now);
    if (now - cur.since >= window) {
      const { n, lost } = lossOver(cur.samples, now - mMin(window, t.lossWindowMs));
      const needed = wc.metered ? 3 : t.failbackMinSamples;
      if (n >= needed && lost * 100 <= t.lossDownPercent * n) {
        setStatus(ctx, draft(), 'up', `stable for ${mRound((now - cur.since) / 1000)} s (${n - lost}/${n} replies)`);
      }
    }
  }

  // Budget of a metered WAN.
  const b = d ?? w;
  if (wc.metered && !b.budgetExhausted && now < b.budgetPeriod.end && b.budgetSpentBytes >= wc.probeBudgetMBPerMonth * 1_000_000) {
    draft().budgetExhausted = true;
    ctx.events.push({ type: 'probe-budget-exhausted', at: now, wan: w.name, spentBytes: b.budgetSpentBytes });
  }

  // Steady probing.
  const s = d ?? w;
  if (s.confirm === null && s.nextProbeAt <= now) {
    const x = draft();
    const retry = x.targets.find((h) => h.unresponsive && h.nextRetryAt <= now);
    let target: string;
    if (retry) {
      target = retry.address;
      x.targets = x.targets.map((h) => (h === retry ? { ...h, nextRetryAt: now + t.deadTargetRetryMs } : h));
    } else {
      const live = liveTargets(x);
      x.rotation += 1;
      target = live[x.rotation % live.length]!.address;
    }
    const interval = probeIntervalMs(config, x);
    x.nextProbeAt = x.nextProbeAt + interval > now ? x.nextProbeAt + interval : now + interval;
    sendProbe(ctx, x, target);
  }

  // Keep only what a later decision can read; trimmed in 10 s steps so it is not a copy per call.
  const keepFromSec = mFloor((now - mMax(t.lossWindowMs, t.failbackStableMs)) / 1000);
  const oldest = (d ?? w).samples.closed[0];
  if (oldest !== undefined && oldest.sec < keepFromSec - 10) {
    const x = draft();
    x.samples = { closed: x.samples.closed.filter((bk) => bk.sec >= keepFromSec), open: x.samples.open };
  }
  const result = d ?? w;
  const wakeAt = wanWakeAt(t, result, now);
  if (wakeAt === result.wakeAt) return result;
  const x = draft();
  x.wakeAt = wakeAt;
  return x;
}

/** When a WAN next needs attention; later than `now`. */
function wanWakeAt(t: MonitorTimings, w: WanMonitorState, now: number): number {
  let at = INFINITY;
  if (w.confirm === null) at = mMin(at, w.nextProbeAt);
  else if (w.confirm.sent < t.confirmProbes) at = mMin(at, w.confirm.nextAt);
  for (const p of w.inFlight) at = mMin(at, p.counted ? p.sentAt + t.lateReplyMs : p.lossAt);
  if (w.status === 'recovering') {
    const due = w.since + stableWindowMs(t, w.downTimes, now);
    if (due > now) at = mMin(at, due);
  }
  return mMax(now + 1, at);
}

/** Advances the monitor by one input. Pure: `state` is not modified. */
export function stepMonitor(config: MonitorConfig, state: MonitorState, input: MonitorInput): MonitorStep {
  const now = mMax(state.now, input.at);
  const t = config.timings;
  const ctx: StepContext = { config, t, now, events: [], probes: [], nextSeq: state.nextSeq };

  let wans = state.wans;
  let touched = -1;
  if (input.type === 'reply') {
    for (let i = 0; i < wans.length; i++) {
      const w = wans[i]!;
      const probe = w.inFlight.find((p) => p.seq === input.seq);
      if (probe === undefined) continue;
      const replaced = wans.slice();
      replaced[i] = onReply(ctx, w, probe);
      wans = replaced;
      touched = i;
      break;
    }
  }
  // A WAN with nothing due and no reply is left as it is (most calls concern one WAN).
  wans = wans.map((w, i) => (i === touched || w.wakeAt <= now ? advanceWan(ctx, w) : w));

  // Routing (only a status change can change it).
  const statusChanged = wans.some((w, i) => w.status !== state.wans[i]!.status);
  const routing = statusChanged ? chooseActive(config, wans, state.active) : { active: state.active, noViable: state.noViableWan };
  const changed = routing.active.length !== state.active.length || routing.active.some((a, i) => state.active[i] !== a);
  if (changed) {
    ctx.events.push({
      type: 'routing',
      at: now,
      active: routing.active,
      previous: state.active,
      added: routing.active.filter((a) => !state.active.includes(a)),
      removed: state.active.filter((a) => !routing.active.includes(a)),
    });
  }
  if (routing.noViable && !state.noViableWan) ctx.events.push({ type: 'no-viable-wan', at: now, kept: routing.active });

  let nextWakeAt = INFINITY;
  for (const w of wans) nextWakeAt = mMin(nextWakeAt, w.wakeAt);
  nextWakeAt = mMax(now + 1, nextWakeAt);

  return {
    state: { now, nextSeq: ctx.nextSeq, wans, active: changed ? routing.active : state.active, noViableWan: routing.noViable },
    probes: ctx.probes,
    events: ctx.events,
    nextWakeAt,
  };
}
