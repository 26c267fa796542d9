/**
 * Benchmarks of the Linux backend in the namespace lab, side by side in one run, each figure
 * printed beside its target. Root only (network namespaces); after `npm run build`:
 *
 *   node dist/bench/linux-bench.js [--runs 10] [--soak] [--skip-throughput] [--only throughput|soak] [--json FILE]
 *
 * 1. Black hole with the link up (ISP 1 drops everything upstream): our monitor at its defaults
 *    (balanced profile) against a dpinger-equivalent prober at OPNsense's defaults, probing the
 *    same WAN in the same lab at the same time (linux-dpinger.ts says why not dpinger itself).
 *    Per run: fresh monitor, pre-filled dpinger window, random phase, cut, both detect, restore,
 *    our failback. Medians and p95 over the runs.
 * 2. Cable pull (ISP 1's link down): new client flows lost.
 * 3. False failovers at 10 % random loss: a simulated day through the same decision logic
 *    (ours, and the dpinger equivalent); with --soak also 5 live minutes (nftables numgen drop).
 * 4. Forwarding throughput (iperf3, offloads on and off): bare nft masquerade vs our ruleset.
 * 5. Probe traffic per month: the active WAN (live probe rate) and a metered standby (simulated).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { linuxStage } from '../src/flows/linux';
import { applyPlan, makePlan, observe } from '../src/plan/engine';
import { DEFAULT_MONITOR_TIMINGS } from '../src/providers/linux/monitor/decision';
import { labWans, simulate, type SimWan } from '../src/providers/linux/monitor/simulate';
import { connectSsh, type SshClient } from '../src/providers/linux/ssh';
import type { Answer, Notice, Question, Step, Ui } from '../src/core/ui';
import { labDesiredState } from '../test/lab/desired';
import { DualWanLab, reapStaleLabs, type LabProcess } from '../test/lab/lab';
import { checkoutScript } from '../test/lab/runtime';
import { labRouterOptions, readMonitorState, runRestoreUnit, startMonitorUnit, waitUntil } from '../test/lab/units';
import { simulateDpingerDay, simulateDpingerOutage } from './linux-dpinger';

const DAY = 86_400_000;
const MONTH_S = 30 * 86_400;

class QuietUi implements Ui {
  notify(_n: Notice): void {}
  async request<Q extends Question>(q: Q): Promise<Answer<Q>> {
    return q.default as Answer<Q>;
  }
  async runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    for (const s of steps) if (!s.skip) await s.run(ctx, () => undefined);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const p95 = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]!;
};
const secs = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : '—');

interface Row {
  readonly section: string;
  readonly metric: string;
  readonly ours: string;
  readonly reference: string;
  readonly target: string;
  readonly pass: boolean | null;
}

function arg(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function runLinuxBench(argv: readonly string[], print: (line: string) => void): Promise<number> {
  const uid = process.getuid?.();
  if (uid !== 0) {
    print(`linux-bench: skipped: needs root (running as uid ${String(uid)}): the lab uses network namespaces (CAP_SYS_ADMIN, CAP_NET_ADMIN).`);
    return 2;
  }
  const runs = Math.max(1, Math.min(50, Number(arg(argv, 'runs') ?? '10')));
  const soak = argv.includes('--soak') || arg(argv, 'only') === 'soak';
  const only = arg(argv, 'only');
  if (only !== undefined && only !== 'throughput' && only !== 'soak') throw new Error('--only takes: throughput, soak');
  const skipThroughput = argv.includes('--skip-throughput') || only === 'soak';
  const timed = only === undefined;
  const jsonOut = arg(argv, 'json');
  const rows: Row[] = [];
  const raw: Record<string, unknown> = { runs };
  const started = Date.now();
  reapStaleLabs();
  const lab = new DualWanLab({ maxLifetimeS: 3_600, log: (l) => print(`  ${l}`) });
  const onSignal = () => {
    lab.down();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let ssh: SshClient | undefined;
  try {
    print(`linux-bench: building the lab (${runs} runs per timed figure)`);
    lab.up();
    const state = labDesiredState(lab.plan, lab.sshTarget().hostKey); // the defaults: balanced profile
    const ui = new QuietUi();
    const session = await linuxStage({ router: labRouterOptions(lab), transport: () => lab.sshTransport() }).open({
      state,
      ui,
      trustOnFirstUse: false,
      credentialsFile: path.join(lab.dir, 'no-credentials'),
      env: { DUALWAN_SSH_PRIVATE_KEY_FILE: path.join(lab.dir, 'client_ed25519') },
      earlier: [],
    });
    try {
      const plan = makePlan(session.handlers, await observe(session.ctx, session.handlers), 'bench', new Date().toISOString());
      await applyPlan(plan, 'bench', { ctx: session.ctx, handlers: session.handlers, ui, writeCalls: () => session.writeCalls() });
    } finally {
      await session.close();
    }
    ssh = await connectSsh({ ...lab.sshTarget(), sock: lab.sshTransport() });
    const p = lab.plan;
    const window = state.policy.monitor.failbackAfterSeconds * 1000;

    let monitorPid: number | undefined;
    let dpinger: LabProcess | undefined;
    const stopAll = async () => {
      if (monitorPid !== undefined) lab.stopProcess(monitorPid);
      monitorPid = undefined;
      if (dpinger) await dpinger.stop();
      dpinger = undefined;
    };
    /** Fresh router state: monitor stopped, boot script run, monitor and dpinger started anew. */
    const reset = async (withDpinger: boolean) => {
      await stopAll();
      fs.rmSync(path.join(lab.routerRoot, 'run', 'dualwan', 'active-wans'), { force: true });
      await runRestoreUnit(lab, ssh!);
      const startAt = Date.now();
      monitorPid = startMonitorUnit(lab);
      if (withDpinger) {
        dpinger = lab.spawnIn('router', [...checkoutScript('bench/linux-dpinger.ts'), '--source', p.wans[0].near, '--target', p.monitors[0][0], '--duration', '300', '--prefill'], { timeoutMs: 320_000 });
      }
      await waitUntil(() => {
        const s = readMonitorState(lab);
        return s && s.startedAt >= startAt - 1_000 && s.wans.every((w) => w.status === 'up' && w.probesSent >= 3);
      }, 30_000, 'the monitor');
      await sleep(1_000);
    };
    const dpingerEvents = () =>
      (dpinger?.output() ?? '')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          try {
            return JSON.parse(l) as { event: string; at: number };
          } catch {
            return { event: '?', at: 0 };
          }
        });

    let perMonthMB = NaN;
    const opnsenseMB = (MONTH_S * 2 * (20 + 8 + 1)) / 1e6;
    if (timed) {
    // ---- 1. black hole, link up -------------------------------------------------------------
    const ours = { detect: [] as number[], failover: [] as number[], client: [] as number[], failback: [] as number[], flaps: 0, lostClient: [] as number[] };
    const dp = { detect: [] as number[] };
    for (let i = 0; i < runs; i++) {
      await reset(true);
      const series = lab.clientAsync('lan', ['udpseries', p.server, '80', '--interval', '20', '--duration', '120000', '--wait', '1500'], 130_000);
      await sleep(1_000 + Math.random() * 1_000);
      const cutAt = Date.now();
      lab.impair('isp1', { kind: 'blackhole' });
      const out = await waitUntil(() => readMonitorState(lab)?.events.find((e) => e.type === 'routing' && e.at >= cutAt && (e.removed ?? []).includes('isp1')), 20_000, 'our failover');
      const down = readMonitorState(lab)?.events.find((e) => e.type === 'wan-status' && e.wan === 'isp1' && e.to === 'down' && e.at >= cutAt);
      const alarm = await waitUntil(() => dpingerEvents().find((e) => e.event === 'alarm' && e.at >= cutAt), 40_000, 'the dpinger alarm').catch(() => undefined);
      const restoredAt = Date.now();
      lab.impair('isp1', { kind: 'clear' });
      const back = await waitUntil(() => readMonitorState(lab)?.events.find((e) => e.type === 'routing' && e.at >= restoredAt && (e.added ?? []).includes('isp1')), window * 2 + 30_000, 'our failback').catch(() => undefined);
      await sleep(1_000);
      const udp = (await series.stop()) as unknown as { start: number; probes: [number, number, number][] };
      const lost = (udp.probes ?? []).filter(([t, rtt]) => rtt < 0 && udp.start + t >= cutAt);
      const lastLost = lost.reduce((m, [t]) => Math.max(m, udp.start + t), cutAt);
      const isp1Changes = (readMonitorState(lab)?.events ?? []).filter((e) => e.type === 'wan-status' && e.wan === 'isp1' && e.at >= cutAt && e.to !== 'suspect' && !(e.to === 'up' && (e as { from?: string }).from === 'suspect'));
      ours.flaps += Math.max(0, isp1Changes.length - 3); // down → recovering → up is one outage
      if (down) ours.detect.push(down.at - cutAt);
      ours.failover.push(out.at - cutAt);
      ours.client.push(lastLost - cutAt + 20);
      ours.lostClient.push(lost.filter(([t]) => udp.start + t > out.at + 250 && (!back || udp.start + t < back.at)).length);
      if (back) ours.failback.push(back.at - restoredAt);
      if (alarm) dp.detect.push(alarm.at - cutAt);
      print(`  run ${i + 1}/${runs}: ours detect ${secs(down ? down.at - cutAt : NaN)}, failover ${secs(out.at - cutAt)}, failback ${secs(back ? back.at - restoredAt : NaN)}; dpinger-equivalent alarm ${secs(alarm ? alarm.at - cutAt : NaN)}`);
    }
    const dpOutage = [0, 200, 400, 600, 800].map((ph) => simulateDpingerOutage(120_000, ph));
    raw.blackhole = { ours, dpinger: dp, dpingerSimulated: dpOutage };
    rows.push(
      { section: 'black hole, link up', metric: 'detection, median', ours: secs(median(ours.detect)), reference: `${secs(median(dp.detect))} (dpinger≡, OPNsense defaults; anchor 15.7 s)`, target: '≤ 1.5 s', pass: median(ours.detect) <= 1_500 },
      { section: '', metric: 'detection, p95', ours: secs(p95(ours.detect)), reference: secs(p95(dp.detect)), target: '≤ 2.5 s', pass: p95(ours.detect) <= 2_500 },
      { section: '', metric: 'failover (route replaced), median', ours: secs(median(ours.failover)), reference: '—', target: '≤ 1.5 s', pass: median(ours.failover) <= 1_500 },
      { section: '', metric: 'client: new flows OK again, median', ours: secs(median(ours.client)), reference: '—', target: '≈ failover', pass: null },
      { section: '', metric: 'new flows lost after failover (stale)', ours: String(ours.lostClient.reduce((a, b) => a + b, 0)), reference: '—', target: '0', pass: ours.lostClient.every((n) => n === 0) },
      {
        section: 'failback',
        metric: `after ISP 1 returns (window ${window / 1000} s), median`,
        ours: secs(median(ours.failback)),
        reference: `${secs(median(dpOutage.map((o) => o.clearMs ?? NaN)))} (dpinger≡, simulated; anchor ~57 s)`,
        target: `≤ window + 10 s (${secs(window + 10_000)})`,
        pass: median(ours.failback) <= window + 10_000 && ours.failback.length === runs,
      },
      { section: '', metric: 'flapping during the runs', ours: String(ours.flaps), reference: '—', target: '0', pass: ours.flaps === 0 },
    );

    // ---- 2. cable pull ------------------------------------------------------------------------
    const pull: number[] = [];
    for (let i = 0; i < runs; i++) {
      await reset(false);
      const series = lab.clientAsync('lan', ['udpseries', p.server, '80', '--interval', '20', '--duration', '60000', '--wait', '1500'], 70_000);
      await sleep(1_000 + Math.random() * 500);
      const cutAt = Date.now();
      lab.impair('isp1', { kind: 'linkdown' });
      await sleep(3_000);
      const udp = (await series.stop()) as unknown as { start: number; probes: [number, number, number][] };
      lab.impair('isp1', { kind: 'clear' });
      pull.push((udp.probes ?? []).filter(([t, rtt]) => rtt < 0 && udp.start + t >= cutAt - 1_000).length);
    }
    raw.cablePull = pull;
    rows.push({ section: 'cable pull (link down)', metric: 'client probes lost (20 ms apart), total', ours: `${pull.reduce((a, b) => a + b, 0)} over ${runs} runs`, reference: '—', target: '0', pass: pull.every((n) => n === 0) });

    // ---- 5a. probe traffic, live -------------------------------------------------------------
    await reset(false);
    const s0 = readMonitorState(lab)!;
    const t0 = Date.now();
    await sleep(30_000);
    const s1 = readMonitorState(lab)!;
    const sent = (s1.wans.find((w) => w.name === 'isp1')?.probesSent ?? 0) - (s0.wans.find((w) => w.name === 'isp1')?.probesSent ?? 0);
    perMonthMB = ((sent / ((Date.now() - t0) / 1000)) * MONTH_S * DEFAULT_MONITOR_TIMINGS.probeWireBytes) / 1e6;
    await stopAll();

    // ---- 3. false failovers -------------------------------------------------------------------
    const seeds = [1, 2, 3, 4, 5];
    const ourDays = seeds.map((seed) => simulate({ seed, durationMs: DAY, wans: labWans(10) }));
    const dpDays = seeds.map((seed) => simulateDpingerDay(seed, 10));
    const ourFalse = ourDays.map((d) => d.falseFailovers);
    raw.falseFailovers = { ours: ourFalse, dpinger: dpDays.map((d) => d.alarms) };
    rows.push({
      section: 'false failovers, 10 % loss',
      metric: `simulated day × ${seeds.length} seeds, per day (max)`,
      ours: `${(ourFalse.reduce((a, b) => a + b, 0) / seeds.length).toFixed(1)} (${Math.max(...ourFalse)})`,
      reference: `${(dpDays.reduce((a, d) => a + d.alarms, 0) / seeds.length).toFixed(1)} (dpinger≡; anchors: ~19, 1 s×3 ~77, 200 ms×3 ~383)`,
      target: '≤ 1 per day',
      pass: Math.max(...ourFalse) <= 1,
    });
    }

    if (soak) {
      await reset(true);
      lab.impair('isp1', { kind: 'loss', percent: 10 });
      const soakStart = Date.now();
      print('  soak: 5 minutes at 10 % random loss on ISP 1 (nftables numgen)');
      await sleep(300_000);
      lab.impair('isp1', { kind: 'clear' });
      // The monitor's log has every event (the state file keeps only the last 50).
      const log = fs
        .readFileSync(path.join(lab.dir, 'monitor.log'), 'utf8')
        .split('\n')
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { event: string; eventAt?: number; removed?: string[]; wan?: string; to?: string }];
          } catch {
            return [];
          }
        })
        .filter((r) => (r.eventAt ?? 0) >= soakStart);
      const falseOut = log.filter((r) => r.event === 'routing' && (r.removed ?? []).includes('isp1')).length;
      const bursts = log.filter((r) => r.event === 'wan-status' && r.wan === 'isp1' && r.to === 'suspect').length;
      const dpAlarms = dpingerEvents().filter((e) => e.event === 'alarm' && e.at >= soakStart).length;
      raw.soak = { ours: falseOut, confirmationBursts: bursts, dpinger: dpAlarms };
      rows.push({ section: 'false failovers, 10 % loss', metric: `live soak, 5 min (${bursts} lost probes confirmed alive)`, ours: String(falseOut), reference: `${dpAlarms} (dpinger≡, live)`, target: '0', pass: falseOut === 0 });
      await stopAll();
    } else if (timed) {
      rows.push({ section: '', metric: 'live soak, 5 min', ours: 'not run (--soak)', reference: '', target: '0', pass: null });
    }

    // ---- 4. throughput ------------------------------------------------------------------------
    if (!skipThroughput) {
      const tp = await throughput(lab, runs, print);
      raw.throughput = tp;
      for (const off of [false, true]) {
        const cell = tp[off ? 'off' : 'on'];
        const bare = median(cell.bare);
        const full = median(cell.ours);
        const ratio = median(cell.ours.map((o, i) => o / cell.bare[i]!));
        rows.push({
          section: off ? '' : 'throughput (iperf3, 1 stream)',
          metric: `offloads ${off ? 'off' : 'on'}: ours vs bare masquerade (median of paired ratios)`,
          ours: `${(full / 1e9).toFixed(2)} Gbit/s`,
          reference: `${(bare / 1e9).toFixed(2)} Gbit/s bare → ${(ratio * 100).toFixed(1)} %`,
          target: '≥ 95 % of bare',
          pass: ratio >= 0.95,
        });
      }
    }

    // ---- 5b. probe traffic --------------------------------------------------------------------
    if (timed) {
    const standby: SimWan[] = [
      { ...labWans(0)[0]!, tier: 1 },
      { ...labWans(0)[1]!, tier: 2, metered: true, probeBudgetMBPerMonth: 5 },
    ];
    const meteredDay = simulate({ seed: 7, durationMs: DAY, wans: standby });
    const meteredMonthMB = ((meteredDay.probeBytes.isp2 ?? 0) * 30) / 1e6;
    raw.probeTraffic = { activeLiveMBPerMonth: perMonthMB, meteredSimMBPerMonth: meteredMonthMB };
    rows.push(
      { section: 'probe traffic per month', metric: 'active WAN, defaults (live rate)', ours: `${perMonthMB.toFixed(0)} MB`, reference: `${opnsenseMB.toFixed(0)} MB (OPNsense: 1/s, 1-byte payload)`, target: '≤ ~150 MB', pass: perMonthMB <= 155 },
      { section: '', metric: 'metered standby, budget 5 MB (simulated)', ours: `${meteredMonthMB.toFixed(2)} MB`, reference: '~520 MB (Firewalla probing a standby)', target: '≤ 5 MB', pass: meteredMonthMB <= 5 },
    );
    }
  } finally {
    await ssh?.close();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    lab.down();
  }

  print('');
  print(`Linux backend benchmarks — ${new Date().toISOString()}, ${runs} runs per timed figure, ${((Date.now() - started) / 60_000).toFixed(1)} min`);
  print('(dpinger≡ = a re-implementation of dpinger\'s alarm logic at OPNsense defaults, run live in the same lab; see bench/linux-dpinger.ts)');
  const header = ['', 'metric', 'ours', 'reference', 'target', ''];
  const table = rows.map((r) => [r.section, r.metric, r.ours, r.reference, r.target, r.pass === null ? '' : r.pass ? 'PASS' : 'MISS']);
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  print(line(header));
  for (const r of table) print(line(r));
  if (jsonOut) fs.writeFileSync(jsonOut, `${JSON.stringify({ rows, raw }, null, 2)}\n`);
  return rows.every((r) => r.pass !== false) ? 0 : 1;
}

async function throughput(lab: DualWanLab, runs: number, print: (l: string) => void): Promise<{ on: { bare: number[]; ours: number[] }; off: { bare: number[]; ours: number[] } }> {
  const p = lab.plan;
  if (lab.exec('lan', ['sh', '-c', 'command -v iperf3']).code !== 0) throw new Error('iperf3 is not installed: apt-get install -y iperf3');
  const hasEthtool = lab.exec('lan', ['sh', '-c', 'command -v ethtool']).code === 0;
  const server = lab.startProcess('internet', ['timeout', '900', 'iperf3', '-s', '-B', p.server], 'iperf3.log');
  await sleep(500);
  const ours = fs.readFileSync(path.join(lab.routerRoot, 'etc', 'dualwan', 'dualwan.nft'), 'utf8');
  const bare = ['table ip dwbench_bare {}', 'delete table ip dwbench_bare', 'table ip dwbench_bare {', '  chain postrouting_nat {', '    type nat hook postrouting priority srcnat; policy accept;', '    oifname "wan1" masquerade', '    oifname "wan2" masquerade', '  }', '}', ''].join('\n');
  const useBare = () => {
    lab.exec('router', ['nft', '-f', '-'], { input: bare });
    lab.exec('router', ['nft', 'delete', 'table', 'ip', 'dualwan']);
  };
  const useOurs = () => {
    lab.exec('router', ['nft', 'delete', 'table', 'ip', 'dwbench_bare']);
    lab.exec('router', ['nft', '-f', '-'], { input: ours });
  };
  const offload = (on: boolean) => {
    const devs: [Parameters<DualWanLab['exec']>[0], string][] = [
      ['lan', 'eth0'],
      ['router', 'lan0'],
      ['router', 'wan1'],
      ['router', 'wan2'],
      ['isp1', 'down0'],
      ['isp1', 'up0'],
      ['isp2', 'down0'],
      ['isp2', 'up0'],
      ['internet', 'isp1'],
      ['internet', 'isp2'],
    ];
    for (const [node, dev] of devs) lab.exec(node, ['ethtool', '-K', dev, 'tso', on ? 'on' : 'off', 'gso', on ? 'on' : 'off', 'gro', on ? 'on' : 'off']);
  };
  const once = (): number => {
    const res = lab.exec('lan', ['iperf3', '-c', p.server, '-t', '3', '-O', '1', '-J'], { timeoutMs: 30_000 });
    try {
      return (JSON.parse(res.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
    } catch {
      return NaN;
    }
  };
  const out = { on: { bare: [] as number[], ours: [] as number[] }, off: { bare: [] as number[], ours: [] as number[] } };
  try {
    for (const mode of ['on', 'off'] as const) {
      if (mode === 'off' && !hasEthtool) {
        print('  throughput: ethtool missing, offloads-off cells skipped (apt-get install ethtool)');
        continue;
      }
      offload(mode === 'on');
      // Paired runs in ABBA order, so drift over the series (the machine warming up, other load)
      // and any first-run-after-reload effect fall on both rulesets alike.
      for (let i = 0; i < runs; i++) {
        if (i % 2 === 0) {
          useBare();
          out[mode].bare.push(once());
          useOurs();
          out[mode].ours.push(once());
        } else {
          useOurs();
          out[mode].ours.push(once());
          useBare();
          out[mode].bare.push(once());
        }
      }
      print(`  throughput, offloads ${mode}: bare ${out[mode].bare.map((b) => (b / 1e9).toFixed(2)).join(' ')}; ours ${out[mode].ours.map((b) => (b / 1e9).toFixed(2)).join(' ')} Gbit/s`);
    }
  } finally {
    if (hasEthtool) offload(true);
    useOurs();
    lab.stopProcess(server);
  }
  return out;
}

if (require.main === module) {
  runLinuxBench(process.argv.slice(2), (l) => process.stdout.write(`${l}\n`)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`linux-bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
