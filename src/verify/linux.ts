/**
 * `dualwan verify` for the Linux backend: a failover drill as data, run by a small runner with a
 * guaranteed restore, producing a report as data.
 *
 * The scenario: baseline (the monitor runs, every WAN up, new flows from a LAN client succeed) →
 * induce a black hole on one WAN with its link up → measure detection (the monitor marks it down),
 * failover (it leaves the default route) and what the LAN client saw → restore → failback (it
 * returns after the stable window) → DNS through each WAN.
 *
 * How the failure is induced depends on where we are (FailureInjector): in the namespace lab the
 * ISP drops everything (test/lab), on a real router a temporary nftables table drops everything
 * leaving the WAN; its interface sits in a set whose element times out by itself, so even a
 * `kill -9` of dualwan cannot leave the line blocked for longer than the drill's bound.
 *
 * Restore is guaranteed three ways: `finally`, a SIGINT/SIGTERM/SIGHUP handler that restores and
 * then lets the signal take its course, and (real router) the set element's own timeout.
 */
import type { MonitorSnapshot } from '../providers/linux/monitor/daemon';
import type { Argv } from '../providers/linux/shell';
import type { ExecOptions, ExecResult } from '../providers/linux/ssh';

export type VerifyStepId = 'baseline' | 'induce' | 'detect' | 'failover' | 'hold' | 'restore' | 'failback' | 'settle' | 'dns';

export interface VerifyStep {
  readonly id: VerifyStepId;
  readonly title: string;
  /** Upper bound of the step, ms (measured from the step's start). */
  readonly timeoutMs: number;
}

/** The drill, in order. Bounds are generous; failback's is set from the monitor's stable window. */
export function linuxFailoverScenario(o: { failbackWindowMs: number; holdMs?: number }): readonly VerifyStep[] {
  return [
    { id: 'baseline', title: 'baseline: monitor running, every WAN up, new flows from the LAN succeed', timeoutMs: 15_000 },
    { id: 'induce', title: 'induce: black-hole the WAN with its link up', timeoutMs: 15_000 },
    { id: 'detect', title: 'detect: the monitor marks the WAN down', timeoutMs: 30_000 },
    { id: 'failover', title: 'failover: the WAN leaves the default route', timeoutMs: 30_000 },
    { id: 'hold', title: 'hold the outage', timeoutMs: o.holdMs ?? 3_000 },
    { id: 'restore', title: 'restore the WAN', timeoutMs: 15_000 },
    { id: 'failback', title: 'failback: the WAN returns after its stable window', timeoutMs: o.failbackWindowMs + 30_000 },
    { id: 'settle', title: 'settle: new flows keep succeeding on every WAN', timeoutMs: 3_000 },
    { id: 'dns', title: 'DNS through each WAN', timeoutMs: 30_000 },
  ];
}

export interface FailureInjector {
  /** What it does, for the report ("ISP 1 drops everything (lab)", "nft drop on wan1, expires in 120 s"). */
  describe(wan: string): string;
  induce(wan: string): Promise<void>;
  restore(wan: string): Promise<void>;
}

export interface ClientProbe {
  /** Epoch ms the probe was sent. */
  readonly at: number;
  readonly ok: boolean;
  /** What the far end said about us (the lab's whoami: which ISP), when it says. */
  readonly via?: string;
}

export interface ClientProbeRun {
  stop(): Promise<readonly ClientProbe[]>;
}

/** New flows from a LAN client, one every few tens of milliseconds, each on a new socket. */
export interface ClientProber {
  readonly describe: string;
  start(): ClientProbeRun;
}

export interface RouterView {
  monitorState(): Promise<MonitorSnapshot | undefined>;
  dnsCheck(wan: VerifyWan, server: string): Promise<{ ok: boolean; detail: string; skipped?: boolean }>;
}

export interface VerifyWan {
  readonly name: string;
  readonly interface: string;
  readonly address: string;
  readonly dnsServers: readonly string[];
}

export interface DnsResult {
  readonly wan: string;
  readonly server: string;
  readonly ok: boolean;
  readonly skipped: boolean;
  readonly detail: string;
}

export interface VerifyReport {
  readonly formatVersion: 1;
  readonly backend: 'linux';
  readonly wan: string;
  readonly injected: string;
  readonly client: string;
  readonly steps: readonly { readonly id: VerifyStepId; readonly title: string; readonly ok: boolean; readonly ms: number; readonly detail?: string }[];
  /** Outage start → the monitor marked the WAN down, ms. */
  readonly detectionMs: number | null;
  /** Outage start → the WAN left the default route, ms. */
  readonly failoverMs: number | null;
  /** Outage start → from then on every new client flow succeeded, ms. */
  readonly clientRecoveredMs: number | null;
  /** Restore → the WAN back in the default route, ms. */
  readonly failbackMs: number | null;
  readonly clientProbes: { readonly total: number; readonly lostBeforeFailover: number; readonly lostAfterFailover: number; readonly lostAfterFailback: number };
  readonly dns: readonly DnsResult[];
  readonly restored: boolean;
  readonly interrupted: boolean;
  /** Failover behaved: detected, switched, client recovered, failed back, DNS through every WAN. */
  readonly behaved: boolean;
  readonly problems: readonly string[];
}

export interface LinuxVerifyDeps {
  readonly wans: readonly VerifyWan[];
  /** The WAN to break (default: the first WAN). */
  readonly wan?: string;
  readonly injector: FailureInjector;
  readonly client: ClientProber;
  readonly router: RouterView;
  readonly scenario: readonly VerifyStep[];
  readonly now?: () => number;
  readonly log?: (line: string) => void;
  /** Signals that trigger the restore before the process ends (default SIGINT, SIGTERM, SIGHUP). */
  readonly signals?: readonly NodeJS.Signals[];
  /** Process the signal handlers are installed on (tests pass an EventEmitter). */
  readonly processLike?: Pick<NodeJS.Process, 'once' | 'removeListener' | 'kill' | 'pid' | 'listenerCount'>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function poll<T>(fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(everyMs);
  }
  return undefined;
}

/**
 * Runs `body` with `restore` guaranteed: on return, on throw, and on SIGINT/SIGTERM/SIGHUP (the
 * restore runs, then the signal is raised again so the process ends as it would have).
 */
export async function withGuaranteedRestore<T>(
  restore: () => Promise<void>,
  body: (restored: () => void) => Promise<T>,
  opts: { signals?: readonly NodeJS.Signals[]; processLike?: LinuxVerifyDeps['processLike']; onInterrupt?: (signal: NodeJS.Signals) => void } = {},
): Promise<T> {
  const proc = opts.processLike ?? process;
  const signals = opts.signals ?? ['SIGINT', 'SIGTERM', 'SIGHUP'];
  let done = false;
  let restoring: Promise<void> | undefined;
  const doRestore = () => (restoring ??= restore());
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const s of signals) {
    const h = () => {
      opts.onInterrupt?.(s);
      const finish = () => {
        for (const [sig, fn] of handlers) proc.removeListener(sig, fn);
        // Raise it again, now without our handler, so the process ends the way it would have.
        if (proc.listenerCount(s) === 0) proc.kill(proc.pid, s);
      };
      if (done) finish();
      else void doRestore().then(finish, finish);
    };
    handlers.set(s, h);
    proc.once(s, h);
  }
  try {
    return await body(() => {
      done = true;
    });
  } finally {
    if (!done) await doRestore();
    for (const [sig, fn] of handlers) proc.removeListener(sig, fn);
  }
}

export async function runLinuxVerify(deps: LinuxVerifyDeps): Promise<VerifyReport> {
  const now = deps.now ?? Date.now;
  const log = deps.log ?? (() => undefined);
  const target = deps.wans.find((w) => w.name === (deps.wan ?? deps.wans[0]?.name));
  if (!target) throw new Error(`verify: no WAN named ${deps.wan ?? '(none)'}`);
  const step = (id: VerifyStepId) => deps.scenario.find((s) => s.id === id) ?? { id, title: id, timeoutMs: 30_000 };
  const steps: { id: VerifyStepId; title: string; ok: boolean; ms: number; detail?: string }[] = [];
  const problems: string[] = [];
  const record = (id: VerifyStepId, startedAt: number, ok: boolean, detail?: string) => {
    const s = step(id);
    steps.push({ id, title: s.title, ok, ms: now() - startedAt, ...(detail ? { detail } : {}) });
    log(`${ok ? 'ok  ' : 'FAIL'} ${s.title}${detail ? `: ${detail}` : ''}`);
    if (!ok) problems.push(`${s.title}${detail ? `: ${detail}` : ''}`);
  };

  let detectionMs: number | null = null;
  let failoverMs: number | null = null;
  let failbackMs: number | null = null;
  let clientRecoveredMs: number | null = null;
  let cutAt = 0;
  let failoverAt = 0;
  let restoreAt = 0;
  let failbackAt = 0;
  let restored = false;
  let interrupted = false;
  let probes: readonly ClientProbe[] = [];
  const dns: DnsResult[] = [];

  // Baseline.
  let t = now();
  const base = await deps.router.monitorState();
  const fresh = base !== undefined && now() - base.updatedAt < 15_000;
  const allUp = fresh && base.wans.every((w) => w.status === 'up');
  const inRoute = fresh && base.active.includes(target.name);
  const warm = deps.client.start();
  await sleep(Math.min(2_000, step('baseline').timeoutMs));
  const warmProbes = await warm.stop();
  const warmOk = warmProbes.filter((p) => p.ok).length;
  const baselineOk = allUp && inRoute && warmProbes.length > 0 && warmOk / warmProbes.length >= 0.95;
  record(
    'baseline',
    t,
    baselineOk,
    !fresh
      ? 'the health monitor is not running (no fresh state file); start dualwan-monitor first'
      : !allUp
        ? `not every WAN is up: ${base.wans.map((w) => `${w.name} ${w.status}`).join(', ')}`
        : !inRoute
          ? `${target.name} does not carry traffic now (active: ${base.active.join(', ')})`
          : `${warmOk}/${warmProbes.length} client flows answered`,
  );
  if (!baselineOk) {
    return finishReport();
  }

  await withGuaranteedRestore(
    async () => {
      if (restored) return;
      await deps.injector.restore(target.name);
      restored = true;
      log(`restored ${target.name}`);
    },
    async (markRestored) => {
      const run = deps.client.start();
      try {
        await sleep(500);
        t = now();
        cutAt = now();
        await deps.injector.induce(target.name);
        record('induce', t, true, deps.injector.describe(target.name));

        t = now();
        const down = await poll(async () => (await deps.router.monitorState())?.events.find((e) => e.type === 'wan-status' && e.wan === target.name && e.to === 'down' && e.at >= cutAt), step('detect').timeoutMs);
        detectionMs = down ? down.at - cutAt : null;
        record('detect', t, down !== undefined, down ? `${detectionMs} ms` : 'the monitor never marked it down');

        t = now();
        const out = await poll(async () => (await deps.router.monitorState())?.events.find((e) => e.type === 'routing' && e.removed.includes(target.name) && e.at >= cutAt), step('failover').timeoutMs);
        failoverMs = out ? out.at - cutAt : null;
        failoverAt = out?.at ?? 0;
        record('failover', t, out !== undefined, out ? `${failoverMs} ms` : 'it stayed in the default route');

        t = now();
        await sleep(step('hold').timeoutMs);
        record('hold', t, true);

        t = now();
        restoreAt = now();
        await deps.injector.restore(target.name);
        restored = true;
        markRestored();
        record('restore', t, true);

        t = now();
        const back = await poll(async () => (await deps.router.monitorState())?.events.find((e) => e.type === 'routing' && e.added.includes(target.name) && e.at >= restoreAt), step('failback').timeoutMs, 250);
        failbackMs = back ? back.at - restoreAt : null;
        failbackAt = back?.at ?? 0;
        record('failback', t, back !== undefined, back ? `${failbackMs} ms after the restore` : 'it did not come back within the bound');

        t = now();
        await sleep(step('settle').timeoutMs);
        record('settle', t, true);
      } finally {
        probes = await run.stop();
      }
    },
    {
      signals: deps.signals,
      processLike: deps.processLike,
      onInterrupt: (s) => {
        interrupted = true;
        log(`${s}: restoring ${target.name} before stopping`);
      },
    },
  );

  // DNS through each WAN (from the router, sourced from the WAN's address).
  t = now();
  for (const w of deps.wans) {
    for (const server of w.dnsServers) {
      const r = await deps.router.dnsCheck(w, server);
      dns.push({ wan: w.name, server, ok: r.ok, skipped: r.skipped ?? false, detail: r.detail });
    }
  }
  const dnsFailed = dns.filter((d) => !d.ok && !d.skipped);
  record('dns', t, dnsFailed.length === 0, dns.map((d) => `${d.wan} via ${d.server}: ${d.skipped ? 'skipped' : d.ok ? 'ok' : 'FAILED'} (${d.detail})`).join('; '));

  return finishReport();

  function finishReport(): VerifyReport {
    // The client's view: lost flows before the failover are the outage itself; after the failover
    // (plus 500 ms for replies in flight) each lost flow is a stale path or entry.
    const settleMs = 500;
    const lostBefore = probes.filter((p) => !p.ok && p.at >= cutAt && (failoverAt === 0 || p.at <= failoverAt + settleMs)).length;
    const lostAfter = failoverAt ? probes.filter((p) => !p.ok && p.at > failoverAt + settleMs && (failbackAt === 0 || p.at < failbackAt)).length : 0;
    const lostAfterBack = failbackAt ? probes.filter((p) => !p.ok && p.at >= failbackAt).length : 0;
    if (cutAt > 0) {
      const lastLoss = probes.filter((p) => !p.ok && p.at >= cutAt).reduce((m, p) => Math.max(m, p.at), 0);
      clientRecoveredMs = lastLoss === 0 ? 0 : lastLoss - cutAt + 20;
    }
    const offsets = (from: number, list: readonly ClientProbe[]) => list.slice(0, 5).map((p) => `+${p.at - from} ms`).join(', ');
    if (lostAfter > 0) problems.push(`${lostAfter} new client flows failed after the failover (stale paths or entries), at ${offsets(failoverAt, probes.filter((p) => !p.ok && p.at > failoverAt + settleMs && (failbackAt === 0 || p.at < failbackAt)))}`);
    if (lostAfterBack > 0) problems.push(`${lostAfterBack} new client flows failed after the failback, at ${offsets(failbackAt, probes.filter((p) => !p.ok && p.at >= failbackAt))}`);
    if (interrupted) problems.push('interrupted; the WAN was restored');
    const behaved = problems.length === 0 && detectionMs !== null && failoverMs !== null && failbackMs !== null && restored;
    return {
      formatVersion: 1,
      backend: 'linux',
      wan: target!.name,
      injected: deps.injector.describe(target!.name),
      client: deps.client.describe,
      steps,
      detectionMs,
      failoverMs,
      clientRecoveredMs,
      failbackMs,
      clientProbes: { total: probes.length, lostBeforeFailover: lostBefore, lostAfterFailover: lostAfter, lostAfterFailback: lostAfterBack },
      dns,
      restored: restored || cutAt === 0,
      interrupted,
      behaved,
      problems,
    };
  }
}

export function renderVerifyReport(r: VerifyReport): string {
  const s = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(2)} s`);
  const lines = [
    `Failover drill on WAN ${r.wan}: ${r.injected}`,
    `LAN client: ${r.client}`,
    '',
    ...r.steps.map((x) => `  ${x.ok ? '✓' : '✗'} ${x.title}${x.detail ? ` — ${x.detail}` : ''}`),
    '',
    `  detection         ${s(r.detectionMs)}   (target ≤ 1.5 s median)`,
    `  failover          ${s(r.failoverMs)}`,
    `  client recovered  ${s(r.clientRecoveredMs)}   (${r.clientProbes.lostBeforeFailover} of ${r.clientProbes.total} new flows lost during detection)`,
    `  stale failures    ${r.clientProbes.lostAfterFailover} after failover, ${r.clientProbes.lostAfterFailback} after failback   (target 0)`,
    `  failback          ${s(r.failbackMs)} after the restore`,
    `  restored          ${r.restored ? 'yes' : 'NO — check the router'}`,
    '',
    r.behaved ? 'Failover behaved.' : `Failover did not behave:\n${r.problems.map((p) => `  - ${p}`).join('\n')}`,
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// A real router, over SSH

export interface RouterShell {
  exec(argv: Argv, options?: ExecOptions): Promise<ExecResult>;
  readFile(path: string): Promise<string | undefined>;
}

export const VERIFY_NFT_TABLE = 'dualwan_verify';

/** The temporary table of the drill: everything leaving the WAN is dropped until the element expires. */
export function renderBlockRuleset(iface: string, expiresS: number): string {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(iface)) throw new Error(`not an interface name: ${iface}`);
  if (!Number.isInteger(expiresS) || expiresS < 10 || expiresS > 3600) throw new Error('the block must expire within 10–3600 s');
  return [
    `table ip ${VERIFY_NFT_TABLE} {}`,
    `delete table ip ${VERIFY_NFT_TABLE}`,
    `table ip ${VERIFY_NFT_TABLE} {`,
    '  set blocked_wans {',
    '    type ifname; flags timeout;',
    `    elements = { "${iface}" timeout ${expiresS}s }`,
    '  }',
    '  chain output_block {',
    '    type filter hook output priority filter - 5; policy accept;',
    '    oifname @blocked_wans drop',
    '  }',
    '  chain forward_block {',
    '    type filter hook forward priority filter - 5; policy accept;',
    '    oifname @blocked_wans drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** On a real router: drop everything leaving the WAN with a self-expiring nftables set element. */
export class RouterNftInjector implements FailureInjector {
  constructor(
    private readonly shell: RouterShell,
    private readonly interfaceOf: (wan: string) => string,
    private readonly expiresS = 180,
  ) {}
  describe(wan: string): string {
    return `nftables drops everything leaving ${this.interfaceOf(wan)} (link stays up); the block expires by itself after ${this.expiresS} s`;
  }
  async induce(wan: string): Promise<void> {
    const res = await this.shell.exec(['nft', '-f', '-'], { timeoutMs: 15_000, stdin: renderBlockRuleset(this.interfaceOf(wan), this.expiresS) });
    if (res.code !== 0) throw new Error(`nft refused the drill's table: ${res.stderr.trim()}`);
  }
  async restore(): Promise<void> {
    const res = await this.shell.exec(['nft', 'delete', 'table', 'ip', VERIFY_NFT_TABLE], { timeoutMs: 15_000 });
    // Exit 1 with "No such file or directory": already gone (expired and removed, or never made).
    if (res.code !== 0 && !/No such file/.test(res.stderr)) throw new Error(`could not remove the drill's table: ${res.stderr.trim()}`);
  }
}

/** Reads the monitor's state file and asks resolvers through each WAN with `dig` on the router. */
export class SshRouterView implements RouterView {
  constructor(
    private readonly shell: RouterShell,
    private readonly stateFile: string,
    private readonly name = 'example.com',
  ) {}
  async monitorState(): Promise<MonitorSnapshot | undefined> {
    const text = await this.shell.readFile(this.stateFile);
    if (!text) return undefined;
    try {
      return JSON.parse(text) as MonitorSnapshot;
    } catch {
      return undefined;
    }
  }
  async dnsCheck(wan: VerifyWan, server: string): Promise<{ ok: boolean; detail: string; skipped?: boolean }> {
    const res = await this.shell.exec(['dig', '+short', '+time=2', '+tries=1', '-b', wan.address, `@${server}`, this.name, 'A'], { timeoutMs: 10_000 });
    if (res.code === 127 || /not found/.test(res.stderr)) return { ok: false, skipped: true, detail: 'dig is not installed on the router (apt-get install bind9-dnsutils)' };
    const answers = res.stdout.trim().split('\n').filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l));
    return res.code === 0 && answers.length > 0 ? { ok: true, detail: `${this.name} → ${answers.join(', ')}` } : { ok: false, detail: (res.stderr || res.stdout).trim().slice(0, 200) || `no answer for ${this.name}` };
  }
}
