/**
 * The Linux half of `dualwan demo`: story 2 for real, in network namespaces on this machine.
 * Builds the lab, gives both WANs a DHCP-style lease, takes playbooks/two-lines-loadbalance.yaml
 * with only its machine-specific values pointed at the lab (interfaces, addresses, monitor IPs —
 * the Linux monitor needs two per WAN, the playbook names one), applies it through real SSH with
 * the host key pinned on first use, starts the health monitor from its unit, shows the 2:1 split
 * and the sticky host, breaks line 1 (black hole, link up) and measures failover and failback,
 * then tears everything down.
 *
 * Without root it does nothing and says so: `skipped: needs root (running as uid N)`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfigFile } from '../../src/config/load';
import { pendingChanges } from '../../src/core/plan';
import type { Answer, Notice, Question, Step, Ui } from '../../src/core/ui';
import { linuxStage } from '../../src/flows/linux';
import { applyPlan, makePlan, observe } from '../../src/plan/engine';
import { DualWanLab, reapStaleLabs } from './lab';
import { labScriptsDir } from './runtime';
import { labRouterOptions, readMonitorState, startMonitorUnit, waitUntil } from './units';
import { writeLabPlaybook } from './desired';

/** Notices are printed; questions take their defaults (the demo never waits for a person). */
class DemoUi implements Ui {
  constructor(private readonly print: (line: string) => void) {}
  notify(n: Notice): void {
    if (n.level !== 'debug') this.print(`  ${n.text.split('\n').join('\n  ')}`);
  }
  async request<Q extends Question>(q: Q): Promise<Answer<Q>> {
    return q.default as Answer<Q>;
  }
  async runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    for (const s of steps) {
      if (s.skip) continue;
      await s.run(ctx, () => undefined);
      this.print(`  ${s.title}`);
    }
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runLinuxLabDemo(print: (line: string) => void): Promise<string> {
  const uid = process.getuid?.();
  if (uid !== 0) return `skipped: needs root (running as uid ${String(uid)})`;
  const missing = ['/usr/sbin/sshd', '/usr/sbin/nft', '/usr/sbin/conntrack', '/usr/bin/ping'].filter((f) => !fs.existsSync(f));
  if (missing.length > 0) return `skipped: missing ${missing.join(', ')} (apt-get install -y openssh-server nftables conntrack iputils-ping)`;
  try {
    labScriptsDir();
  } catch (e) {
    return `skipped: ${e instanceof Error ? e.message : String(e)}`;
  }

  reapStaleLabs();
  const lab = new DualWanLab({ maxLifetimeS: 900 });
  let monitorPid: number | undefined;
  try {
    print('1. A home office with two lines, in network namespaces on this machine');
    const built = Date.now();
    lab.up();
    const p = lab.plan;
    const lease1 = lab.dhcpLease(0);
    const lease2 = lab.dhcpLease(1);
    print(`   LAN client ${p.lan.far} ─ router (lan0 ${p.lan.near}) ─ line1 wan1 ${lease1.address} via ${lease1.gateway} / line2 wan2 ${lease2.address} via ${lease2.gateway}`);
    print(`   each modem NATs; the "internet" answers for ${p.internetBlocks.join(', ')}; a real sshd on the router (${Date.now() - built} ms to build)`);

    print('\n2. playbooks/two-lines-loadbalance.yaml, pointed at the lab');
    const file = path.join(lab.dir, 'dualwan.yaml');
    writeLabPlaybook(p, file);
    const loaded = loadConfigFile(file);
    if (!loaded.state || loaded.diagnostics.some((d) => d.severity === 'error')) {
      throw new Error(`the lab copy of the playbook does not load: ${loaded.diagnostics.map((d) => d.message).join('; ')}`);
    }
    const state = loaded.state;
    print(`   ${state.wans.map((w) => `${w.name} (${w.uplink.type === 'interface' ? w.uplink.interface : '?'}, ${w.addressing.mode}, weight ${w.weight})`).join(', ')}; sticky: ${p.stickyServer} → line1`);

    print('\n3. Plan and apply through SSH (host key pinned on first use)');
    const ui = new DemoUi(print);
    const env = {
      ui,
      trustOnFirstUse: true,
      credentialsFile: path.join(lab.dir, 'no-credentials'),
      env: { DUALWAN_SSH_PRIVATE_KEY_FILE: path.join(lab.dir, 'client_ed25519') },
      earlier: [],
    };
    const stage = linuxStage({ router: labRouterOptions(lab), transport: () => lab.sshTransport() });
    let session = await stage.open({ ...env, state });
    let writes = 0;
    try {
      const plan = makePlan(session.handlers, await observe(session.ctx, session.handlers), 'demo', new Date().toISOString());
      print(`   ${pendingChanges(plan).length} changes: ${[...new Set(pendingChanges(plan).map((c) => c.kind))].join(', ')}`);
      const report = await applyPlan(plan, 'demo', { ctx: session.ctx, handlers: session.handlers, ui, writeCalls: () => session.writeCalls() });
      writes = report.writeCalls;
      print(`   applied ${report.applied.length} changes with ${report.writeCalls} write calls in ${(report.durationMs / 1000).toFixed(1)} s, each read back`);
    } finally {
      await session.close();
    }
    const pinned = loadConfigFile(file).state!;
    session = await stage.open({ ...env, state: pinned });
    let second = 0;
    try {
      const plan = makePlan(session.handlers, await observe(session.ctx, session.handlers), 'demo', new Date().toISOString());
      second = pendingChanges(plan).length;
      print(`   second plan: ${second} changes (host key pinned in ${file}: ${pinned.linux?.hostKey ?? '?'})`);
    } finally {
      await session.close();
    }

    print('\n4. The health monitor (dualwan-monitor.service\'s command line, in the router namespace)');
    monitorPid = startMonitorUnit(lab);
    await waitUntil(() => readMonitorState(lab)?.wans.every((w) => w.status === 'up' && w.probesSent >= 3), 30_000, 'the monitor');
    print('   both lines up; probing 2 targets per line, one probe a second per line');

    print('\n5. 300 new connections from one LAN client');
    const flows = lab.client('lan', ['flows', p.server, '300'], 60_000);
    const tally = (flows.tally ?? {}) as Record<string, number>;
    const l1 = tally[p.upstreams[0].near] ?? 0;
    const l2 = tally[p.upstreams[1].near] ?? 0;
    const share = l1 / Math.max(1, l1 + l2);
    print(`   line1 ${l1}, line2 ${l2}: line1 share ${share.toFixed(3)} (expected 0.667 ± 0.054 at 2σ for 300 flows)`);
    const sticky = (lab.client('lan', ['flows', p.stickyServer, '20'], 30_000).tally ?? {}) as Record<string, number>;
    print(`   sticky host ${p.stickyServer}: ${sticky[p.upstreams[0].near] ?? 0}/20 via line1`);

    print('\n6. Line 1 black-holes traffic (modem up, upstream dead)');
    const series = lab.clientAsync('lan', ['udpseries', p.server, '80', '--interval', '20', '--duration', '90000', '--wait', '1500'], 100_000);
    await sleep(1_500);
    const cutAt = Date.now();
    lab.impair('isp1', { kind: 'blackhole' });
    const out = await waitUntil(() => readMonitorState(lab)?.events.find((e) => e.type === 'routing' && e.at >= cutAt && (e.removed ?? []).includes('line1')), 20_000, 'failover');
    const down = readMonitorState(lab)?.events.find((e) => e.type === 'wan-status' && e.wan === 'line1' && e.to === 'down' && e.at >= cutAt);
    await sleep(2_000);
    const flush = readMonitorState(lab)?.actions.find((a) => a.what.startsWith('conntrack flush of line1'));
    print(`   detected in ${((down?.at ?? out.at) - cutAt) / 1000} s; default route replaced at ${(out.at - cutAt) / 1000} s; line1's connections flushed (${flush?.detail ?? 'none recorded'}), nothing else`);
    const restoredAt = Date.now();
    lab.impair('isp1', { kind: 'clear' });
    print('   line 1 restored; the monitor waits for its 30 s stable window before failing back…');
    const back = await waitUntil(() => readMonitorState(lab)?.events.find((e) => e.type === 'routing' && e.at >= restoredAt && (e.added ?? []).includes('line1')), 80_000, 'failback');
    await sleep(1_000);
    const udp = (await series.stop()) as unknown as { start: number; probes: [number, number, number][] };
    const lost = (udp.probes ?? []).filter(([t, rtt]) => rtt < 0 && udp.start + t >= cutAt);
    const lastLost = lost.reduce((m, [t]) => Math.max(m, udp.start + t), cutAt);
    const stale = lost.filter(([t]) => udp.start + t > out.at + 250).length;
    print(`   failed back ${((back.at - restoredAt) / 1000).toFixed(1)} s after the restore`);
    print(`   LAN client (a new flow every 20 ms): ${lost.length} of ${udp.probes?.length ?? 0} lost, all before ${((lastLost - cutAt) / 1000).toFixed(2)} s; ${stale} after the failover`);

    const ok = second === 0 && share > 0.55 && share < 0.78 && stale === 0;
    return `${ok ? 'ok' : 'not as expected'}: applied with ${writes} writes, second plan empty: ${second === 0}; split ${l1}:${l2}; failover ${((out.at - cutAt) / 1000).toFixed(2)} s; failback ${((back.at - restoredAt) / 1000).toFixed(1)} s after the restore`;
  } finally {
    if (monitorPid !== undefined) lab.stopProcess(monitorPid);
    lab.down();
    print('\nThe lab was removed (namespaces, processes, files).');
  }
}

if (require.main === module) {
  runLinuxLabDemo((l) => process.stdout.write(`${l}\n`)).then(
    (summary) => process.stdout.write(`${summary}\n`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
