import { connectPinnedProxmox } from '../flows/proxmox-connection';
import { loadConfigFile } from '../config/load';
import type { DesiredState } from '../core/desired';
import { DualwanError } from '../core/errors';
import type { Ui } from '../core/ui';
import { proxmoxContext } from '../providers/proxmox/provider';
import type { LanProbe } from '../accesspoint/checks';
import { doctorHost, type Finding } from './host';
import { doctorLinux, type LinuxDoctorOptions } from './linux';
import { doctorOpnsense, type OpnsenseDoctorOptions } from './router';
import { chooseLanAccess, configTopology, lanTopology, TOPOLOGY_CONFIG_CODES, type LocalAddresses } from './topology';

export type { Finding } from './host';

export interface DoctorOptions {
  readonly file: string;
  readonly ui: Ui;
  readonly env: NodeJS.ProcessEnv;
  readonly credentialsFile?: string;
  readonly trustOnFirstUse: boolean;
  /**
   * The LAN checks (a second DHCP server, double NAT, the access point): 'auto' (default) runs
   * them from this machine when one of its addresses is in the LAN; 'off' skips them; a probe is
   * used as given (tests, recorded runs).
   */
  readonly lan?: 'auto' | 'off' | LanProbe;
  /** This machine's addresses, for 'auto' (default: os.networkInterfaces()). */
  readonly localAddresses?: LocalAddresses;
  readonly linux?: LinuxDoctorOptions;
  readonly opnsenseClient?: OpnsenseDoctorOptions['client'];
}

const AREA_ORDER: readonly Finding['area'][] = ['config', 'host', 'router', 'topology'];

const fail = (area: Finding['area'], check: string, e: unknown): Finding => ({
  area,
  check,
  status: 'fail',
  message: e instanceof Error ? e.message : String(e),
  remedy: (e instanceof DualwanError ? e.remedy : undefined) ?? (area === 'host' ? 'Check that the Proxmox VE API answers at proxmox.host:port from this machine, and the token in DUALWAN_PROXMOX_TOKEN_SECRET.' : 'See the message; then run dualwan doctor again.'),
});

/**
 * Read-only checks of the configuration, the host and the router. Every problem found is a finding
 * with a remedy; nothing is changed (the only write is pinning a certificate seen for the first
 * time, when asked to).
 */
export async function runDoctor(o: DoctorOptions): Promise<Finding[]> {
  const out: Finding[] = [];
  const loaded = loadConfigFile(o.file);
  for (const d of loaded.diagnostics) {
    if (loaded.state && TOPOLOGY_CONFIG_CODES.includes(d.code)) continue; // reported as topology.* below
    const where = d.location ? `${d.location.file}:${d.location.line}:${d.location.column}: ` : '';
    out.push({ area: d.code.startsWith('RULE_') ? 'topology' : 'config', check: d.code, status: d.severity === 'error' ? 'fail' : 'warn', message: `${where}${d.message}`, remedy: d.remedy ?? `Fix ${o.file} at the place named, then run dualwan doctor again.` });
  }
  if (!loaded.state) return out;
  const state: DesiredState = loaded.state;
  out.push({ area: 'config', check: 'config.valid', status: 'ok', message: `${o.file} is valid (${state.backend}, ${state.wans.length} WANs, ${state.policy.mode})` });

  if (state.backend === 'opnsense-vm' && state.proxmox && state.vm) {
    try {
      const { conn } = await connectPinnedProxmox({ state, ui: o.ui, env: o.env, credentialsFile: o.credentialsFile, trustOnFirstUse: o.trustOnFirstUse });
      try {
        const { discovery } = await proxmoxContext(state, conn.client);
        out.push(...(await doctorHost(state, discovery, conn.client)));
      } finally {
        await conn.close();
      }
    } catch (e) {
      out.push(fail('host', 'host.reachable', e));
    }
  }
  if (state.backend === 'opnsense-vm') {
    out.push(...(await doctorOpnsense(state, { ui: o.ui, env: o.env, credentialsFile: o.credentialsFile, trustOnFirstUse: o.trustOnFirstUse, ...(o.opnsenseClient ? { client: o.opnsenseClient } : {}) })));
  } else {
    out.push(...(await doctorLinux({ state, ui: o.ui, env: o.env, credentialsFile: o.credentialsFile, trustOnFirstUse: o.trustOnFirstUse, earlier: [] }, o.linux)));
  }

  out.push(...configTopology(state, loaded.diagnostics));
  const lan = o.lan ?? 'auto';
  const access = typeof lan === 'object' ? { probe: lan, from: 'the given probe' } : chooseLanAccess(state, lan, o.localAddresses);
  out.push(...(await lanTopology(state, access)));
  // Stable order by area, so the report reads config, host, router, topology.
  return out.map((f, i) => ({ f, i })).sort((a, b) => AREA_ORDER.indexOf(a.f.area) - AREA_ORDER.indexOf(b.f.area) || a.i - b.i).map((x) => x.f);
}

export function doctorExitCode(findings: readonly Finding[]): number {
  return findings.some((f) => f.status === 'fail') ? 1 : 0;
}
