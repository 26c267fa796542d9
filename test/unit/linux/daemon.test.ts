import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseMonitorDaemonConfig } from '../../../src/providers/linux/monitor/config';
import { MonitorDaemon, type DaemonLogRecord } from '../../../src/providers/linux/monitor/daemon';
import type { ProbeOrder, Prober } from '../../../src/providers/linux/monitor/probe';
import type { Argv } from '../../../src/providers/linux/shell';
import type { ExecOptions, ExecResult, RemoteShell } from '../../../src/providers/linux/ssh';

const ADDR =
  '[{"ifindex":3,"ifname":"wan1","flags":["UP"],"addr_info":[{"family":"inet","local":"100.64.1.2","prefixlen":24,"scope":"global"}]},' +
  '{"ifindex":4,"ifname":"wan2","flags":["UP"],"addr_info":[{"family":"inet","local":"100.64.2.2","prefixlen":24,"scope":"global"}]}]';

/** The router: answers reads, records writes, keeps the default route it was given. */
class RouterDouble implements RemoteShell {
  readonly target = 'localhost';
  readonly writes: string[] = [];
  private readonly dhcp = '{"dst":"default","gateway":"100.64.2.1","dev":"wan2","protocol":"dhcp","metric":1025,"flags":[]}';
  route = `[{"dst":"default","protocol":"static","flags":[],"nexthops":[{"gateway":"100.64.1.1","dev":"wan1","weight":2,"flags":[]},{"gateway":"100.64.2.1","dev":"wan2","weight":1,"flags":[]}]},${this.dhcp}]`;
  async exec(argv: Argv, _o?: ExecOptions): Promise<ExecResult> {
    const key = argv.join(' ');
    const ok = (stdout = '', stderr = '') => ({ code: 0, stdout, stderr, timedOut: false, truncated: false, durationMs: 1 });
    if (key === 'ip -j addr show') return ok(ADDR);
    if (key === 'ip -j route show table main') return ok(this.route);
    this.writes.push(key);
    if (key.startsWith('ip route replace default proto static via 100.64.2.1 dev wan2')) {
      this.route = `[{"dst":"default","gateway":"100.64.2.1","dev":"wan2","protocol":"static","flags":[]},${this.dhcp}]`;
    }
    if (key.startsWith('conntrack -D')) return { code: 0, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 7 flow entries have been deleted.\n', timedOut: false, truncated: false, durationMs: 1 };
    return ok();
  }
  async writeFile(): Promise<void> {}
  async readFile(): Promise<string | undefined> {
    return undefined;
  }
  async close(): Promise<void> {}
}

/** Answers every probe after 2 ms, except to targets in `dead`. */
class ProberDouble implements Prober {
  readonly dead = new Set<string>();
  readonly sources = new Set<string>();
  inFlight = 0;
  send(order: ProbeOrder, onReply: (at: number) => void): void {
    this.sources.add(order.source);
    if (this.dead.has(order.target)) return;
    setTimeout(() => onReply(Date.now()), 2);
  }
  close(): void {}
}

describe('the monitor daemon', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-daemon-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('fails over with one route replace, flushes only the dead WAN by its mark, publishes and notifies', async () => {
    const config = parseMonitorDaemonConfig(
      JSON.stringify({
        kind: 'dualwan-monitor',
        version: 1,
        lanInterface: 'lan0',
        markMask: 255,
        profile: { name: 'fast', intervalMs: 500, lossDownPercent: 20, latencyHighMs: 300, failbackAfterSeconds: 10 },
        killStatesOnFailover: true,
        killMeteredStatesOnFailback: true,
        activeFile: path.join(dir, 'active-wans'),
        stateFile: path.join(dir, 'state.json'),
        budgetFile: path.join(dir, 'budget.json'),
        pidFile: path.join(dir, 'monitor.pid'),
        wans: [
          { name: 'isp1', interface: 'wan1', addressing: 'static', address: '100.64.1.2', gateway: '100.64.1.1', table: 101, mark: 1, weight: 2, tier: 1, targets: ['198.51.100.1', '198.51.100.2'], metered: false, probeBudgetMBPerMonth: 0 },
          { name: 'isp2', interface: 'wan2', addressing: 'dhcp', table: 102, mark: 2, weight: 1, tier: 1, targets: ['198.51.100.3', '198.51.100.4'], metered: false, probeBudgetMBPerMonth: 0 },
        ],
      }),
      'monitor.json',
    );
    const router = new RouterDouble();
    const prober = new ProberDouble();
    const logs: DaemonLogRecord[] = [];
    const posted: string[] = [];
    const daemon = new MonitorDaemon({ config, shell: router, prober, log: (r) => logs.push(r), webhook: 'https://hooks.example/x', post: async (_u, body) => void posted.push(body) });
    await daemon.start();
    try {
      await new Promise((r) => setTimeout(r, 1_200));
      expect(prober.sources).toEqual(new Set(['100.64.1.2', '100.64.2.2'])); // the DHCP WAN's address read from the router
      expect(fs.readFileSync(path.join(dir, 'active-wans'), 'utf8')).toBe('isp1\nisp2\n');
      const cutAt = Date.now();
      prober.dead.add('198.51.100.1').add('198.51.100.2');
      for (let i = 0; i < 60 && !router.writes.some((w) => w.startsWith('conntrack')); i++) await new Promise((r) => setTimeout(r, 50));
      expect(Date.now() - cutAt).toBeLessThan(2_500);
      expect(router.writes).toEqual(['ip route replace default proto static via 100.64.2.1 dev wan2', 'conntrack -D -f ipv4 --mark 0x1/0xff']);
      expect(fs.readFileSync(path.join(dir, 'active-wans'), 'utf8')).toBe('isp2\n');
      const state = daemon.snapshot();
      expect(state.active).toEqual(['isp2']);
      expect(state.actions.map((a) => a.what)).toEqual(['default route via isp2 (routing)', 'conntrack flush of isp1 (failover)']);
      expect(state.actions[1]!.detail).toBe('7 entries');
      expect(logs.map((l) => l.event)).toEqual(expect.arrayContaining(['monitor-started', 'wan-status', 'routing', 'action']));
      await new Promise((r) => setTimeout(r, 50));
      expect(posted.map((b) => (JSON.parse(b) as { type: string }).type)).toEqual(expect.arrayContaining(['wan-status', 'routing']));
    } finally {
      await daemon.stop();
    }
    expect(fs.existsSync(path.join(dir, 'monitor.pid'))).toBe(false);
  }, 15_000);
});
