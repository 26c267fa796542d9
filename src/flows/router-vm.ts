import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { DesiredState } from '../core/desired';
import { hasErrors } from '../core/diagnostics';
import { PreflightError } from '../core/errors';
import type { Ui } from '../core/ui';
import { stableStringify } from '../plan/engine';
import { preflight } from '../providers/proxmox/preflight';
import { connectProxmox, proxmoxContext, proxmoxHandlers, type ProxmoxContext } from '../providers/proxmox/provider';
import type { ProxmoxClient } from '../providers/proxmox/client';
import { loadCredentials } from '../secrets/credentials';
import type { Stage, StageSession } from './stage';
import { ensurePinned } from './trust';

/** Hash of what the user asked for, positions and file name left out. */
export function desiredHash(state: DesiredState): string {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([k]) => k !== 'source' && k !== 'file').map(([k, x]) => [k, strip(x)]));
    }
    return v;
  };
  return createHash('sha256').update(stableStringify(strip(state))).digest('hex');
}

/** Discovery and preflight, read-only. Refuses (PreflightError, nothing written) on any error. */
export async function prepareProxmox(state: DesiredState, client: ProxmoxClient, ui: Ui): Promise<ProxmoxContext> {
  const { ctx, discovery } = await proxmoxContext(state, client);
  const nics = discovery.pci.filter((p) => p.class.startsWith('0x02')).length;
  ui.notify({
    code: 'DISCOVERY',
    level: 'info',
    text: `Proxmox VE ${discovery.version.version} on node ${discovery.node}: ${nics} NICs, management on ${discovery.management.bridge ?? '?'} (${discovery.management.address ?? '?'})`,
    data: { version: discovery.version, management: discovery.management },
  });
  const findings = preflight(state, discovery);
  for (const f of findings.filter((x) => x.severity === 'warning')) ui.notify({ code: f.code, level: 'warn', text: `${f.message}\n  remedy: ${f.remedy}`, data: f });
  if (hasErrors(findings)) throw new PreflightError(findings);
  ui.notify({ code: 'PREFLIGHT_OK', level: 'success', text: 'Preflight passed: IOMMU, groups, management NIC, storage, privileges, VM id.' });
  return ctx;
}

/** The Proxmox host: PCI/USB mappings, the OPNsense image, the router VM and its power state. */
export function proxmoxStage(): Stage {
  return {
    name: 'proxmox',
    title: 'Proxmox VE host',
    async open(env): Promise<StageSession<ProxmoxContext>> {
      const { state, ui } = env;
      const creds = loadCredentials({ env: env.env, file: env.credentialsFile });
      const secret = creds.require('DUALWAN_PROXMOX_TOKEN_SECRET', `The Proxmox API token ${state.proxmox?.tokenId ?? ''}`);
      const t = state.proxmox!;
      const fingerprint = await ensurePinned({
        system: 'Proxmox VE',
        host: t.host,
        port: t.port,
        pinned: t.fingerprint,
        trustOnFirstUse: env.trustOnFirstUse,
        ui,
        record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['proxmox', 'fingerprint'] } : undefined,
        compareWith: 'pvenode cert info',
      });
      const conn = connectProxmox(state, secret, fingerprint);
      try {
        const ctx = await prepareProxmox(state, conn.client, ui);
        return { ctx, handlers: proxmoxHandlers(), writeCalls: () => conn.transport.writeCalls, close: () => conn.close() };
      } catch (e) {
        await conn.close();
        throw e;
      }
    },
  };
}
