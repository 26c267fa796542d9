/**
 * The health monitor daemon (`dualwan monitor`), running on the router itself, under
 * dualwan-monitor.service. It owns no decision: every clock tick and every probe reply goes
 * through the pure `stepMonitor` (decision.ts), and the daemon carries out what comes back:
 *
 * - probes: `ping` from each WAN's own address (probe.ts), so they leave through that WAN;
 * - a change of the WANs carrying new connections: one `ip route replace default …` (atomic: the
 *   kernel swaps the route in one netlink message, no moment without a default route), then the
 *   `active-wans` file the boot script and `dualwan plan` read;
 * - a WAN taken out because it is down: `conntrack -D --mark <its mark>` — its own connections
 *   only, never the whole table (linux-lab.md §3: sticky marks plus this flush gave 0 stale
 *   failures and a prompt reset of connections that cannot survive anyway);
 * - a metered WAN taken out because the primary came back (killMeteredStatesOnFailback): the same
 *   flush on the metered WAN, so it stops spending data;
 * - no viable WAN: nothing changes (the decision logic keeps the routes);
 * - every event: one JSON line to the log, and to the webhook when one is set;
 * - a state file (`/run/dualwan/monitor-state.json`) for `dualwan verify` and for people.
 *
 * Side effects run one at a time, in the order the events came, on a queue; probes are not
 * delayed by them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { conntrackDelete, conntrackDeletedCount, conntrackDeleteSucceeded, ipAddrShow, ipRouteReplace, ipRouteShow } from '../commands';
import { RouterSession } from '../context';
import { writeFileAtomic } from '../local';
import { ACTIVE_REFRESH_MS } from '../persist';
import { parseIpAddr, parseIpRoutes } from '../parse';
import { defaultNexthops, defaultRouteSpec, observedDefault } from '../resources/routing';
import type { RemoteShell } from '../ssh';
import { decisionConfig, type MonitorDaemonConfigParsed, type MonitorWanConfig } from './config';
import { resumeMonitorState, stepMonitor, type MonitorConfig, type MonitorEvent, type MonitorInput, type MonitorState, type ProbeRequest } from './decision';
import type { Prober } from './probe';

const STATE_WRITE_MS = 2_000;
const BUDGET_WRITE_MS = 60_000;
const FACTS_REFRESH_MS = 15_000;
const WEBHOOK_TIMEOUT_MS = 5_000;
const WEBHOOK_QUEUE_MAX = 100;
const RECENT_EVENTS = 50;

export interface WanLiveFacts {
  readonly name: string;
  readonly interface: string;
  readonly address?: string;
  readonly gateway?: string;
}

export interface DaemonLogRecord {
  readonly at: string;
  readonly event: string;
  readonly [key: string]: unknown;
}

export interface MonitorDaemonDeps {
  readonly config: MonitorDaemonConfigParsed;
  /** Commands on the router (LocalShell when the daemon runs there). */
  readonly shell: RemoteShell;
  readonly prober: Prober;
  /** One JSON record per event. */
  readonly log: (record: DaemonLogRecord) => void;
  /** POSTed one JSON event at a time; failures are logged, never retried forever. */
  readonly webhook?: string;
  readonly now?: () => number;
  /** Overrides for tests. */
  readonly post?: (url: string, body: string) => Promise<void>;
  /**
   * Follow carrier changes with `ip -o monitor link` (the daemon does; tests of the decisions need
   * not): when a WAN loses carrier the kernel stops using its next hop at once, and its tracked
   * connections are forgotten at once too, instead of after the probes confirm it (~1 s).
   */
  readonly watchLinks?: boolean;
}

export interface MonitorSnapshot {
  readonly updatedAt: number;
  readonly pid: number;
  readonly startedAt: number;
  readonly active: readonly string[];
  readonly noViableWan: boolean;
  readonly wans: readonly {
    readonly name: string;
    readonly status: string;
    readonly since: number;
    readonly address?: string;
    readonly gateway?: string;
    readonly probesSent: number;
    readonly budgetSpentBytes: number;
  }[];
  readonly events: readonly MonitorEvent[];
  readonly actions: readonly { readonly at: number; readonly what: string; readonly ok: boolean; readonly detail?: string; readonly durationMs: number }[];
}

async function defaultPost(url: string, body: string): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
}

export class MonitorDaemon {
  private readonly cfg: MonitorDaemonConfigParsed;
  private readonly decision: MonitorConfig;
  private readonly router: RouterSession;
  private readonly now: () => number;
  private state!: MonitorState;
  private facts = new Map<string, WanLiveFacts>();
  private timer: NodeJS.Timeout | undefined;
  private readonly intervals: NodeJS.Timeout[] = [];
  private queue: Promise<void> = Promise.resolve();
  private webhookQueue: Promise<void> = Promise.resolve();
  private webhookPending = 0;
  private stopped = false;
  private readonly recent: MonitorEvent[] = [];
  private readonly actions: MonitorSnapshot['actions'][number][] = [];
  private startedAt = 0;
  private lastStateWrite = 0;
  private linkWatcher: ChildProcess | undefined;
  private linkWatcherStarts = 0;
  private readonly carrierLost = new Set<string>();

  constructor(private readonly deps: MonitorDaemonDeps) {
    this.cfg = deps.config;
    this.decision = decisionConfig(deps.config);
    this.router = new RouterSession(deps.shell);
    this.now = deps.now ?? Date.now;
  }

  /** Reads the WANs' live addresses and gateways (DHCP ones may change at any lease). */
  async refreshFacts(): Promise<Map<string, WanLiveFacts>> {
    const links = parseIpAddr((await this.router.read(ipAddrShow())).stdout);
    const main = parseIpRoutes((await this.router.read(ipRouteShow('main'))).stdout);
    const facts = new Map<string, WanLiveFacts>();
    for (const w of this.cfg.wans) {
      if (w.addressing === 'static') {
        facts.set(w.name, { name: w.name, interface: w.interface, address: w.address, gateway: w.gateway });
        continue;
      }
      const inet = links.find((l) => l.ifname === w.interface)?.addr_info.find((a) => a.family === 'inet' && a.scope !== 'host');
      let gateway = main.find((r) => r.dst === 'default' && r.dev === w.interface && r.gateway !== undefined)?.gateway;
      if (gateway === undefined) {
        const own = await this.router.read(ipRouteShow(w.table), [0, 1, 2]);
        if (own.code === 0) gateway = parseIpRoutes(own.stdout).find((r) => r.dst === 'default' && r.gateway !== undefined)?.gateway;
      }
      // Last resort: the gateway the default route uses now for this interface.
      gateway ??= observedDefault(main)?.nexthops.find((h) => h.dev === w.interface && h.via !== '')?.via;
      facts.set(w.name, { name: w.name, interface: w.interface, address: inet?.local, gateway });
    }
    this.facts = facts;
    return facts;
  }

  private refreshPending = false;
  private lastRefreshRequest = 0;

  /**
   * Re-reads the WAN addresses soon (SIGHUP from the DHCP hook, or a probe whose source address
   * vanished); several requests within half a second make one read.
   */
  requestRefresh(why: string, minGapMs = 0): void {
    if (this.refreshPending || this.stopped) return;
    if (minGapMs > 0 && this.now() - this.lastRefreshRequest < minGapMs) return;
    this.lastRefreshRequest = this.now();
    this.refreshPending = true;
    setTimeout(() => {
      this.refreshPending = false;
      this.enqueue(`refresh (${why})`, async () => {
        const before = JSON.stringify([...this.facts.values()]);
        await this.refreshFacts();
        const after = JSON.stringify([...this.facts.values()]);
        if (before !== after) this.logRecord('wan-facts', { why, wans: [...this.facts.values()] });
      });
    }, 100).unref();
  }

  /** Starts probing. Resolves once the first state is in place. */
  async start(): Promise<void> {
    this.startedAt = this.now();
    if (this.cfg.pidFile) writeFileAtomic(this.cfg.pidFile, `${process.pid}\n`, 0o644);
    await this.refreshFacts();
    const current = observedDefault(parseIpRoutes((await this.router.read(ipRouteShow('main'))).stdout));
    const inRoute = new Set((current?.nexthops ?? []).map((h) => h.dev));
    // WANs of the best tier missing from the installed route were taken out before a restart.
    const bestTier = Math.min(...this.cfg.wans.map((w) => w.tier));
    const down = current ? this.cfg.wans.filter((w) => w.tier === bestTier && !inRoute.has(w.interface) && this.cfg.wans.some((o) => inRoute.has(o.interface))).map((w) => w.name) : [];
    this.state = resumeMonitorState(this.decision, this.now(), { down, budgetSpent: this.readBudget() });
    this.logRecord('monitor-started', {
      pid: process.pid,
      wans: this.cfg.wans.map((w) => ({ name: w.name, interface: w.interface, targets: w.targets, ...this.facts.get(w.name) })),
      active: this.state.active,
      resumedDown: down,
    });
    this.enqueue('initial route', () => this.installRoute(this.state.active, 'start'));
    this.intervals.push(setInterval(() => this.enqueue('refresh', () => this.refreshFacts().then(() => undefined)), FACTS_REFRESH_MS));
    this.intervals.push(setInterval(() => this.writeActive(this.state.active), ACTIVE_REFRESH_MS));
    this.intervals.push(setInterval(() => this.writeBudget(), BUDGET_WRITE_MS));
    this.intervals.push(setInterval(() => this.writeState(true), STATE_WRITE_MS));
    if (this.deps.watchLinks) this.watchLinks();
    this.feed({ type: 'tick', at: this.now() });
  }

  /** `ip -o monitor link`: one line per link change; restarted if it ends, at most 20 times. */
  private watchLinks(): void {
    if (this.stopped || this.linkWatcherStarts >= 20) return;
    this.linkWatcherStarts++;
    const child = spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.linkWatcher = child;
    let buffer = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) this.onLinkLine(line);
    });
    child.on('error', () => undefined);
    child.on('close', () => {
      if (!this.stopped) setTimeout(() => this.watchLinks(), 5_000).unref();
    });
  }

  private onLinkLine(line: string): void {
    for (const w of this.cfg.wans) {
      const m = new RegExp(`^\\d+:\\s+${w.interface.replace(/[.]/g, '\\.')}(?:@\\S+)?:\\s+<([^>]*)>`).exec(line);
      if (!m) continue;
      const flags = m[1]!.split(',');
      const lost = flags.includes('NO-CARRIER') || !flags.includes('UP');
      if (lost && !this.carrierLost.has(w.name)) {
        this.carrierLost.add(w.name);
        this.logRecord('carrier-lost', { wan: w.name, interface: w.interface });
        if (this.cfg.killStatesOnFailover) this.enqueue(`flush ${w.name} (carrier lost)`, () => this.flushWan(w, 'carrier lost'));
      } else if (!lost && flags.includes('LOWER_UP') && this.carrierLost.delete(w.name)) {
        this.logRecord('carrier-back', { wan: w.name, interface: w.interface });
      }
    }
  }

  /** Stops probing and timers; side effects already queued finish first. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const i of this.intervals) clearInterval(i);
    this.linkWatcher?.kill('SIGTERM');
    this.deps.prober.close();
    await this.queue;
    this.writeBudget();
    this.writeState(true);
    if (this.cfg.pidFile) fs.rmSync(this.cfg.pidFile, { force: true });
    this.logRecord('monitor-stopped', { active: this.state.active });
    await Promise.race([this.webhookQueue, new Promise((r) => setTimeout(r, WEBHOOK_TIMEOUT_MS).unref())]);
  }

  snapshot(): MonitorSnapshot {
    return {
      updatedAt: this.now(),
      pid: process.pid,
      startedAt: this.startedAt,
      active: this.state.active,
      noViableWan: this.state.noViableWan,
      wans: this.state.wans.map((w) => {
        const f = this.facts.get(w.name);
        return { name: w.name, status: w.status, since: w.since, address: f?.address, gateway: f?.gateway, probesSent: w.probesSent, budgetSpentBytes: w.budgetSpentBytes };
      }),
      events: [...this.recent],
      actions: [...this.actions],
    };
  }

  private feed(input: MonitorInput): void {
    if (this.stopped) return;
    const step = stepMonitor(this.decision, this.state, input);
    this.state = step.state;
    for (const p of step.probes) this.sendProbe(p);
    for (const e of step.events) this.onEvent(e);
    if (step.events.length > 0) this.writeState(false);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.feed({ type: 'tick', at: this.now() }), Math.max(0, step.nextWakeAt - this.now()));
  }

  private sendProbe(p: ProbeRequest): void {
    const f = this.facts.get(p.wan);
    this.deps.prober.send({ seq: p.seq, source: f?.address ?? '', target: p.target, listenMs: p.listenMs }, (at) => this.feed({ type: 'reply', seq: p.seq, at }));
  }

  private onEvent(e: MonitorEvent): void {
    this.recent.push(e);
    if (this.recent.length > RECENT_EVENTS) this.recent.shift();
    const { type, at, ...rest } = e;
    this.logRecord(type, { eventAt: at, ...rest });
    if (e.type !== 'target-responsive') this.notifyWebhook(e);
    if (e.type !== 'routing') return;
    const removed = e.removed.map((name) => this.wanConfig(name));
    this.enqueue(`route ${e.active.join('+')}`, async () => {
      await this.refreshFacts();
      await this.installRoute(e.active, 'routing');
      for (const w of removed) {
        const status = this.state.wans.find((x) => x.name === w.name)?.status;
        const dead = status === 'down';
        if (dead && this.cfg.killStatesOnFailover) await this.flushWan(w, 'failover');
        else if (!dead && w.metered && this.cfg.killMeteredStatesOnFailback) await this.flushWan(w, 'metered-failback');
      }
    });
  }

  private wanConfig(name: string): MonitorWanConfig {
    const w = this.cfg.wans.find((x) => x.name === name);
    if (!w) throw new Error(`monitor: unknown WAN ${name}`);
    return w;
  }

  /** One `ip route replace` to the default route over these WANs, then the active-WAN file. */
  private async installRoute(active: readonly string[], why: string): Promise<void> {
    const wans = active.map((n) => this.wanConfig(n));
    const usable = wans.filter((w) => this.facts.get(w.name)?.gateway !== undefined);
    if (usable.length === 0) {
      this.logRecord('route-unchanged', { reason: 'no active WAN has a gateway yet', active });
      return;
    }
    const hops = defaultNexthops(usable.map((w) => ({ gateway: this.facts.get(w.name)!.gateway!, interface: w.interface, weight: w.weight })));
    const current = observedDefault(parseIpRoutes((await this.router.read(ipRouteShow('main'))).stdout));
    const key = (h: { via: string; dev: string; weight: number }[] | readonly { via: string; dev: string; weight: number }[]) => h.map((x) => `${x.via} ${x.dev} ${x.weight}`).sort().join(',');
    if (!current || key(current.nexthops) !== key(hops)) {
      const started = this.now();
      try {
        await this.router.write(ipRouteReplace(defaultRouteSpec(hops)));
        this.recordAction(`default route via ${usable.map((w) => w.name).join(', ')} (${why})`, true, started);
      } catch (error) {
        this.recordAction(`default route via ${usable.map((w) => w.name).join(', ')} (${why})`, false, started, error instanceof Error ? error.message : String(error));
      }
    }
    this.writeActive(active);
  }

  /** Deletes the conntrack entries of one WAN's connections (by its connection mark), nothing else. */
  private async flushWan(w: MonitorWanConfig, why: string): Promise<void> {
    const started = this.now();
    const res = await this.deps.shell.exec(conntrackDelete({ mark: { value: w.mark, mask: this.cfg.markMask } }), { timeoutMs: 10_000 });
    const ok = conntrackDeleteSucceeded(res);
    this.recordAction(`conntrack flush of ${w.name} (${why})`, ok, started, ok ? `${conntrackDeletedCount(res.stderr) ?? '?'} entries` : res.stderr.trim().slice(0, 200));
  }

  private recordAction(what: string, ok: boolean, started: number, detail?: string): void {
    const a = { at: started, what, ok, ...(detail === undefined ? {} : { detail }), durationMs: this.now() - started };
    this.actions.push(a);
    if (this.actions.length > RECENT_EVENTS) this.actions.shift();
    this.logRecord(ok ? 'action' : 'action-failed', a);
  }

  private enqueue(what: string, job: () => Promise<void>): void {
    this.queue = this.queue.then(job).catch((error: unknown) => {
      this.logRecord('error', { while: what, message: error instanceof Error ? error.message : String(error) });
    });
  }

  private writeActive(active: readonly string[]): void {
    if (this.stopped && active !== this.state.active) return;
    try {
      writeFileAtomic(this.cfg.activeFile, `${active.join('\n')}\n`, 0o644);
    } catch (error) {
      this.logRecord('error', { while: 'writing the active-WAN file', message: error instanceof Error ? error.message : String(error) });
    }
  }

  private writeState(force: boolean): void {
    const now = this.now();
    if (!force && now - this.lastStateWrite < 100) return;
    this.lastStateWrite = now;
    try {
      writeFileAtomic(this.cfg.stateFile, `${JSON.stringify(this.snapshot())}\n`, 0o644);
    } catch {
      // The state file is informative; the log has every event.
    }
  }

  private readBudget(): Record<string, { periodStart: number; bytes: number }> | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.cfg.budgetFile, 'utf8')) as Record<string, { periodStart: number; bytes: number }>;
    } catch {
      return undefined;
    }
  }

  private writeBudget(): void {
    const metered = this.state.wans.filter((w) => this.wanConfig(w.name).metered);
    if (metered.length === 0) return;
    const data = Object.fromEntries(metered.map((w) => [w.name, { periodStart: w.budgetPeriod.start, bytes: w.budgetSpentBytes }]));
    try {
      writeFileAtomic(this.cfg.budgetFile, `${JSON.stringify(data)}\n`, 0o644);
    } catch (error) {
      this.logRecord('error', { while: 'writing the probe budget', message: error instanceof Error ? error.message : String(error) });
    }
  }

  private logRecord(event: string, data: Record<string, unknown>): void {
    this.deps.log({ at: new Date(this.now()).toISOString(), event, ...data });
  }

  private notifyWebhook(e: MonitorEvent): void {
    const url = this.deps.webhook;
    if (!url) return;
    if (this.webhookPending >= WEBHOOK_QUEUE_MAX) {
      this.logRecord('webhook-dropped', { type: e.type, reason: `${WEBHOOK_QUEUE_MAX} notifications already waiting` });
      return;
    }
    this.webhookPending++;
    const body = JSON.stringify({ source: 'dualwan-monitor', ...e, time: new Date(e.at).toISOString() });
    const post = this.deps.post ?? defaultPost;
    this.webhookQueue = this.webhookQueue
      .then(() => post(url, body))
      .catch((error: unknown) => this.logRecord('webhook-failed', { type: e.type, message: error instanceof Error ? error.message : String(error) }))
      .finally(() => {
        this.webhookPending--;
      });
  }
}
