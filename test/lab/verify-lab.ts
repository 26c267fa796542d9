/**
 * `dualwan verify`'s ports for the namespace lab: the failure is induced on the ISP side (ISP 1
 * drops everything, its link to the router stays up), the LAN client is the lab client in the LAN
 * namespace (a new UDP socket every 20 ms to the whoami service, which names the ISP), the router's
 * view is the monitor's state file, and DNS goes to each WAN's resolver from the WAN's address.
 */
import * as path from 'node:path';
import type { ClientProbe, ClientProber, FailureInjector, RouterView, VerifyWan } from '../../src/verify/linux';
import type { MonitorSnapshot } from '../../src/providers/linux/monitor/daemon';
import type { DualWanLab } from './lab';
import { labScriptsDir } from './runtime';
import { readMonitorState } from './units';

const ispOf = (lab: DualWanLab, wan: string): 'isp1' | 'isp2' => (wan === 'isp2' || wan === 'line2' ? 'isp2' : 'isp1') as 'isp1' | 'isp2';

export function labInjector(lab: DualWanLab): FailureInjector {
  return {
    describe: (wan) => `${ispOf(lab, wan)} drops everything from the router (nft in the ISP namespace), its link stays up`,
    induce: async (wan) => lab.impair(ispOf(lab, wan), { kind: 'blackhole' }),
    restore: async (wan) => lab.impair(ispOf(lab, wan), { kind: 'clear' }),
  };
}

export function labClientProber(lab: DualWanLab, intervalMs = 20, durationMs = 180_000): ClientProber {
  return {
    describe: `the LAN client opens a new UDP flow to ${lab.plan.server} every ${intervalMs} ms`,
    start() {
      const run = lab.clientAsync('lan', ['udpseries', lab.plan.server, '80', '--interval', String(intervalMs), '--duration', String(durationMs), '--wait', '1500'], durationMs + 10_000);
      return {
        async stop(): Promise<readonly ClientProbe[]> {
          const r = (await run.stop()) as unknown as { start: number; via: string[]; probes: [number, number, number][] };
          if (!Array.isArray(r.probes)) return [];
          return r.probes.map(([t, rtt, v]) => ({ at: r.start + t, ok: rtt >= 0, ...(v >= 0 ? { via: r.via[v] } : {}) }));
        },
      };
    },
  };
}

export function labRouterView(lab: DualWanLab): RouterView {
  return {
    monitorState: async () => readMonitorState(lab) as unknown as MonitorSnapshot | undefined,
    async dnsCheck(wan: VerifyWan, server: string) {
      const res = lab.client('router', ['dns', server, 'server.dualwan.test', '--bind', wan.address], 3_000);
      return res.ok ? { ok: true, detail: `server.dualwan.test → ${String(res.addresses)}` } : { ok: false, detail: String(res.error ?? res.rcode) };
    },
  };
}

export function labVerifyWans(lab: DualWanLab): VerifyWan[] {
  const p = lab.plan;
  return [
    { name: 'isp1', interface: 'wan1', address: p.wans[0].near, dnsServers: [p.dns[0]] },
    { name: 'isp2', interface: 'wan2', address: p.wans[1].near, dnsServers: [p.dns[1]] },
  ];
}

export const LAB_CLIENT = path.join(labScriptsDir(), 'lab-client.js');
