/**
 * A dpinger-equivalent prober, for comparing our monitor with "dpinger at OPNsense's defaults" in
 * the same lab. Debian 12 has no dpinger package (`apt-cache policy dpinger`: no candidate), so
 * this re-implements the alarm logic exactly as shared/research/linux-lab.md §2 describes it
 * (read from dpinger.c) — it is not dpinger itself, and like the research it leaves out
 * OPNsense's alarm scripts, which add route and filter reload time on a real appliance:
 *
 * - one probe per `interval` to ONE target; the ring holds time_period / interval probes;
 * - at each alert check (every alert_interval) a probe with no reply older than loss_interval
 *   counts as lost; younger unanswered ones are not counted at all;
 * - loss % = floor(lost · 100 / (received + lost));
 * - the alarm goes on when loss % > loss_high, and clears after 10 consecutive checks at or below
 *   it (ALARM_DECAY_PERIODS);
 * - OPNsense defaults (GatewayField::getDpingerDefaults): interval 1 s, loss interval 4 s, time
 *   period 60 s, alert interval 1 s, loss high 20 %.
 * - tests of a window-based checker must pre-fill the window (steady state), or the first seconds
 *   show a startup artefact: detection looks 3× faster than it is (linux-lab.md §2).
 *
 * Run live inside the router namespace:
 *   node dist/bench/linux-dpinger.js --source <wan address> --target <ip> --duration <s> [--prefill]
 * It prints one JSON line per alarm change and a summary when it ends (SIGTERM or --duration).
 */
import { PingProber } from '../src/providers/linux/monitor/probe';

export interface DpingerSettings {
  readonly intervalMs: number;
  readonly lossIntervalMs: number;
  readonly timePeriodMs: number;
  readonly alertIntervalMs: number;
  readonly lossHighPercent: number;
  readonly decayPeriods: number;
}

export const OPNSENSE_DPINGER_DEFAULTS: DpingerSettings = Object.freeze({
  intervalMs: 1_000,
  lossIntervalMs: 4_000,
  timePeriodMs: 60_000,
  alertIntervalMs: 1_000,
  lossHighPercent: 20,
  decayPeriods: 10,
});

interface Slot {
  sentAt: number;
  replied: boolean;
}

export class DpingerWindow {
  private readonly ring: Slot[] = [];
  private readonly size: number;
  alarm = false;
  private okChecks = 0;

  constructor(readonly settings: DpingerSettings = OPNSENSE_DPINGER_DEFAULTS) {
    this.size = Math.floor(settings.timePeriodMs / settings.intervalMs);
  }

  /** A steady-state window: as if every probe of the last time period had been answered. */
  prefill(now: number): void {
    this.ring.length = 0;
    for (let i = this.size - 1; i >= 1; i--) this.ring.push({ sentAt: now - i * this.settings.intervalMs, replied: true });
  }

  send(at: number): Slot {
    const slot = { sentAt: at, replied: false };
    this.ring.push(slot);
    if (this.ring.length > this.size) this.ring.shift();
    return slot;
  }

  /** One alert check; returns the loss and whether the alarm changed. */
  check(now: number): { lossPercent: number; changed: boolean } {
    let lost = 0;
    let received = 0;
    for (const s of this.ring) {
      if (s.replied) received++;
      else if (now - s.sentAt > this.settings.lossIntervalMs) lost++;
    }
    const lossPercent = received + lost === 0 ? 0 : Math.floor((lost * 100) / (received + lost));
    const before = this.alarm;
    if (lossPercent > this.settings.lossHighPercent) {
      this.alarm = true;
      this.okChecks = 0;
    } else if (this.alarm) {
      this.okChecks++;
      if (this.okChecks >= this.settings.decayPeriods) {
        this.alarm = false;
        this.okChecks = 0;
      }
    }
    return { lossPercent, changed: before !== this.alarm };
  }
}

/** Alarms per simulated day at `lossPercent` random loss (steady state from the start). */
export function simulateDpingerDay(seed: number, lossPercent: number, durationMs = 86_400_000, settings = OPNSENSE_DPINGER_DEFAULTS): { alarms: number; alarmedMs: number } {
  let a = seed >>> 0;
  const random = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const w = new DpingerWindow(settings);
  w.prefill(0);
  let alarms = 0;
  let alarmedMs = 0;
  const pending: { at: number; slot: Slot }[] = [];
  for (let t = 0; t < durationMs; t += settings.intervalMs) {
    const slot = w.send(t);
    if (random() * 100 >= lossPercent) pending.push({ at: t + 20, slot });
    // Alert checks happen once per interval here (alert interval = interval at the defaults), just before the next probe.
    const checkAt = t + settings.alertIntervalMs - 1;
    while (pending.length > 0 && pending[0]!.at <= checkAt) pending.shift()!.slot.replied = true;
    const c = w.check(checkAt);
    if (c.changed && w.alarm) alarms++;
    if (w.alarm) alarmedMs += settings.alertIntervalMs;
  }
  return { alarms, alarmedMs };
}

/** Outage of `outageMs` from steady state: when the alarm goes on (after the start) and off (after the end). */
export function simulateDpingerOutage(outageMs: number, phaseMs: number, settings = OPNSENSE_DPINGER_DEFAULTS): { detectMs: number | null; clearMs: number | null } {
  const w = new DpingerWindow(settings);
  const start = 120_000 + phaseMs;
  w.prefill(0);
  let detectMs: number | null = null;
  let clearMs: number | null = null;
  const pending: { at: number; slot: Slot }[] = [];
  for (let t = 0; t < start + outageMs + 200_000; t += settings.intervalMs) {
    const slot = w.send(t);
    const inOutage = t >= start && t < start + outageMs;
    if (!inOutage) pending.push({ at: t + 1, slot });
    const checkAt = t + settings.alertIntervalMs - 1;
    while (pending.length > 0 && pending[0]!.at <= checkAt) pending.shift()!.slot.replied = true;
    const c = w.check(checkAt);
    if (c.changed && w.alarm && detectMs === null && checkAt >= start) detectMs = checkAt - start;
    if (c.changed && !w.alarm && detectMs !== null && clearMs === null) clearMs = checkAt - (start + outageMs);
  }
  return { detectMs, clearMs };
}

function arg(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** The live prober (run inside the router namespace). */
export async function runLiveDpinger(argv: readonly string[]): Promise<void> {
  const source = arg(argv, 'source');
  const target = arg(argv, 'target');
  const durationS = Number(arg(argv, 'duration') ?? '600');
  if (!source || !target) throw new Error('usage: linux-dpinger --source ADDR --target IP [--duration S] [--prefill]');
  const s = OPNSENSE_DPINGER_DEFAULTS;
  const w = new DpingerWindow(s);
  if (argv.includes('--prefill')) w.prefill(Date.now());
  const prober = new PingProber({ maxInFlight: 16 });
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  let sent = 0;
  let alarms = 0;
  let seq = 0;
  out({ event: 'started', at: Date.now(), source, target, settings: s });
  const probe = setInterval(() => {
    const slot = w.send(Date.now());
    sent++;
    prober.send({ seq: ++seq, source, target, listenMs: s.lossIntervalMs }, () => {
      slot.replied = true;
    });
  }, s.intervalMs);
  const check = setInterval(() => {
    const now = Date.now();
    const c = w.check(now);
    if (c.changed) {
      if (w.alarm) alarms++;
      out({ event: w.alarm ? 'alarm' : 'clear', at: now, lossPercent: c.lossPercent });
    }
  }, s.alertIntervalMs);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
    setTimeout(resolve, durationS * 1000);
  });
  clearInterval(probe);
  clearInterval(check);
  prober.close();
  out({ event: 'summary', at: Date.now(), sent, alarms, alarm: w.alarm });
}

if (require.main === module) {
  runLiveDpinger(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
