import { connectPinnedProxmox } from './proxmox-connection';
import { createHash } from 'node:crypto';
import type { DesiredState } from '../core/desired';
import { hasErrors } from '../core/diagnostics';
import { PreflightError } from '../core/errors';
import type { Ui } from '../core/ui';
import { stableStringify } from '../plan/engine';
import { preflight } from '../providers/proxmox/preflight';
import { proxmoxContext, proxmoxHandlers, type ProxmoxConnection, type ProxmoxContext } from '../providers/proxmox/provider';
import type { CutoverIo } from '../providers/proxmox/resources/cutover';
import type { AnyHandler } from '../plan/engine';
import type { ProxmoxClient } from '../providers/proxmox/client';
import type { Stage, StageEnv, StageSession } from './stage';

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
    open: (env) => openProxmoxSession(env, proxmoxHandlers()),
  };
}

/**
 * Pins the API certificate, connects, discovers and runs the preflight (read-only), for the
 * `proxmox` stage and the `cutover` stage (src/flows/cutover.ts), which passes `cutoverIo` to add
 * SSH and the new-path API to the context. Connections opened later (the API at the host's new
 * address) are closed with the session.
 */
export async function openProxmoxSession(
  env: StageEnv,
  handlers: readonly AnyHandler<ProxmoxContext>[],
  cutoverIo?: (fingerprint: string, secret: string, opened: ProxmoxConnection[]) => CutoverIo | undefined,
): Promise<StageSession<ProxmoxContext>> {
  const { state, ui } = env;
  const { conn, secret, fingerprint } = await connectPinnedProxmox({ state, ui, env: env.env, credentialsFile: env.credentialsFile, trustOnFirstUse: env.trustOnFirstUse });
  const later: ProxmoxConnection[] = [];
  try {
    const prepared = await prepareProxmox(state, conn.client, ui);
    const io = cutoverIo?.(fingerprint, secret, later);
    const ctx: ProxmoxContext = io ? { ...prepared, cutover: io } : prepared;
    return {
      ctx,
      handlers,
      writeCalls: () => conn.transport.writeCalls + later.reduce((n, c) => n + c.transport.writeCalls, 0),
      close: async () => {
        for (const c of [conn, ...later]) await c.close();
      },
    };
  } catch (e) {
    await conn.close();
    throw e;
  }
}
