import * as fs from 'node:fs';
import { loadConfigFile } from '../config/load';
import type { DesiredState } from '../core/desired';
import { DualwanError } from '../core/errors';
import type { Ui } from '../core/ui';
import { ensurePinned } from '../flows/trust';
import { connectProxmox, proxmoxContext } from '../providers/proxmox/provider';
import { loadCredentials } from '../secrets/credentials';
import { doctorHost, type Finding } from './host';

export type { Finding } from './host';

export interface DoctorOptions {
  readonly file: string;
  readonly ui: Ui;
  readonly env: NodeJS.ProcessEnv;
  readonly credentialsFile?: string;
  readonly trustOnFirstUse: boolean;
}

const fail = (area: Finding['area'], check: string, e: unknown): Finding => ({
  area,
  check,
  status: 'fail',
  message: e instanceof Error ? e.message : String(e),
  remedy: e instanceof DualwanError ? e.remedy : undefined,
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
    const where = d.location ? `${d.location.file}:${d.location.line}:${d.location.column}: ` : '';
    out.push({ area: d.code.startsWith('RULE_') ? 'topology' : 'config', check: d.code, status: d.severity === 'error' ? 'fail' : 'warn', message: `${where}${d.message}`, remedy: d.remedy });
  }
  if (!loaded.state) return out;
  const state: DesiredState = loaded.state;
  out.push({ area: 'config', check: 'config.valid', status: 'ok', message: `${o.file} is valid (${state.backend}, ${state.wans.length} WANs, ${state.policy.mode})` });

  if (state.backend === 'opnsense-vm' && state.proxmox && state.vm) {
    try {
      const secret = loadCredentials({ env: o.env, file: o.credentialsFile }).require('DUALWAN_PROXMOX_TOKEN_SECRET', `The Proxmox API token ${state.proxmox.tokenId}`);
      const fp = await ensurePinned({
        system: 'Proxmox VE',
        host: state.proxmox.host,
        port: state.proxmox.port,
        pinned: state.proxmox.fingerprint,
        trustOnFirstUse: o.trustOnFirstUse,
        ui: o.ui,
        record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['proxmox', 'fingerprint'] } : undefined,
        compareWith: 'pvenode cert info',
      });
      const conn = connectProxmox(state, secret, fp);
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
  out.push({
    area: 'router',
    check: 'router',
    status: 'skipped',
    message: state.backend === 'opnsense-vm' ? 'OPNsense checks (version, gateway monitoring, monitor IPs, states options, DNS per gateway) are not in this version yet.' : 'Linux router checks are not in this version yet.',
  });
  return out;
}

export function doctorExitCode(findings: readonly Finding[]): number {
  return findings.some((f) => f.status === 'fail') ? 1 : 0;
}
