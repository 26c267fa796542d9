/**
 * The dualwan.yaml a user of story 2 would write for the lab: two lines load-balanced 2:1 with
 * static addresses, the LAN on lan0, the router reached over SSH with its host key pinned.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import type { DesiredState } from '../../src/core/desired';
import type { LabAddressPlan } from './addressing';
import { repoRoot } from './runtime';

/** The lab's monitor profiles: the defaults (`balanced`) and `fast` (10 s failback window, for short CI runs). */
export const LAB_PROFILES = {
  balanced: { name: 'balanced', intervalMs: 1000, lossDownPercent: 20, latencyHighMs: 400, failbackAfterSeconds: 30 },
  fast: { name: 'fast', intervalMs: 500, lossDownPercent: 20, latencyHighMs: 300, failbackAfterSeconds: 10 },
} as const;

export interface LabDesiredOptions {
  /** WANs (by index) that take their address from a DHCP lease (see DualWanLab.dhcpLease) instead of static addressing. */
  readonly dhcpWans?: readonly (0 | 1)[];
  /** Where the YAML this state stands for lives (the host-key pin is recorded there). */
  readonly file?: string;
}

export function labDesiredState(plan: LabAddressPlan, hostKey: string | undefined, overrides: Partial<DesiredState['policy']> = {}, options: LabDesiredOptions = {}): DesiredState {
  const wan = (i: 0 | 1) => ({
    name: i === 0 ? 'isp1' : 'isp2',
    description: i === 0 ? 'Line 1 (lab)' : 'Line 2 (lab)',
    uplink: { type: 'interface' as const, interface: i === 0 ? 'wan1' : 'wan2' },
    addressing: (options.dhcpWans ?? []).includes(i)
      ? ({ mode: 'dhcp' } as const)
      : ({ mode: 'static', address: `${plan.wans[i].near}/${plan.wans[i].prefix}`, gateway: plan.wans[i].far } as const),
    upstreamSubnet: plan.wans[i].subnet,
    monitorIps: [...plan.monitors[i]],
    dnsServers: [plan.dns[i]],
    tier: 1,
    weight: i === 0 ? 2 : 1,
    metered: false,
    probeBudgetMBPerMonth: 0,
  });
  return {
    version: 1,
    file: options.file ?? 'lab.dualwan.yaml',
    backend: 'linux',
    linux: { host: plan.lan.near, port: 22, user: 'root', ...(hostKey === undefined ? {} : { hostKey }), lanInterface: 'lan0' },
    wans: [wan(0), wan(1)],
    lan: {
      uplink: { type: 'interface', interface: 'lan0' },
      subnet: plan.lan.subnet,
      routerAddress: plan.lan.near,
      dhcp: { enabled: false, rangeStart: plan.lan.far, rangeEnd: plan.lan.far },
    },
    policy: {
      mode: 'loadbalance',
      monitor: LAB_PROFILES.balanced,
      trigger: 'down',
      killStatesOnFailover: true,
      killMeteredStatesOnFailback: true,
      stickyConnections: true,
      stickyHosts: [{ destination: plan.stickyServer, wan: 'isp1' }],
      ...overrides,
    },
  };
}

/**
 * playbooks/two-lines-loadbalance.yaml as a user would adapt it to the lab, written to `file`
 * (comments kept): the router's LAN address, the lab's interfaces and subnets, its monitor targets
 * and resolvers, and the sticky host through line1.
 */
export function writeLabPlaybook(plan: LabAddressPlan, file: string): void {
  const doc = parseDocument(fs.readFileSync(path.join(repoRoot(), 'playbooks', 'two-lines-loadbalance.yaml'), 'utf8'));
  doc.setIn(['linux', 'host'], plan.lan.near);
  doc.setIn(['lan', 'uplink', 'interface'], 'lan0');
  doc.setIn(['lan', 'subnet'], plan.lan.subnet);
  for (const i of [0, 1] as const) {
    doc.setIn(['wans', i, 'uplink', 'interface'], i === 0 ? 'wan1' : 'wan2');
    doc.setIn(['wans', i, 'upstreamSubnet'], plan.wans[i].subnet);
    doc.setIn(['wans', i, 'monitorIps'], doc.createNode([...plan.monitors[i]], { flow: true }));
    doc.setIn(['wans', i, 'dnsServers'], doc.createNode([plan.dns[i]], { flow: true }));
  }
  doc.setIn(['policy', 'stickyHosts'], doc.createNode([{ destination: plan.stickyServer, wan: 'line1' }]));
  fs.writeFileSync(file, doc.toString());
}
