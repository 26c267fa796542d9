import { createHash } from 'node:crypto';
import type { DesiredState } from '../core/desired';
import { hasErrors } from '../core/diagnostics';
import { PreflightError } from '../core/errors';
import type { ApplyReport, Plan } from '../core/plan';
import type { Ui } from '../core/ui';
import { applyPlan, makePlan, observe, stableStringify } from '../plan/engine';
import type { ProxmoxClient } from '../providers/proxmox/client';
import { preflight } from '../providers/proxmox/preflight';
import { proxmoxContext, proxmoxHandlers, type ProxmoxContext } from '../providers/proxmox/provider';

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

export interface RouterVmPlan {
  readonly plan: Plan;
  readonly ctx: ProxmoxContext;
}

/** Discovery and preflight (read-only), then the plan. Refuses before any write if preflight fails. */
export async function planRouterVm(state: DesiredState, client: ProxmoxClient, ui: Ui, now: () => Date = () => new Date()): Promise<RouterVmPlan> {
  const { ctx, discovery } = await proxmoxContext(state, client);
  ui.notify({ code: 'DISCOVERY', level: 'info', text: `Proxmox VE ${discovery.version.version} on node ${discovery.node}: ${discovery.pci.filter((p) => p.class.startsWith('0x02')).length} NICs, management on ${discovery.management.bridge ?? '?'} (${discovery.management.address ?? '?'})`, data: { version: discovery.version, management: discovery.management } });
  const findings = preflight(state, discovery);
  for (const f of findings.filter((x) => x.severity === 'warning')) ui.notify({ code: f.code, level: 'warn', text: `${f.message}\n  remedy: ${f.remedy}`, data: f });
  if (hasErrors(findings)) throw new PreflightError(findings);
  ui.notify({ code: 'PREFLIGHT_OK', level: 'success', text: 'Preflight passed: IOMMU, groups, management NIC, storage, privileges, VM id.' });
  const obs = await observe(ctx, proxmoxHandlers());
  return { plan: makePlan(proxmoxHandlers(), obs, desiredHash(state), now().toISOString()), ctx };
}

export async function applyRouterVm(plan: Plan, state: DesiredState, ctx: ProxmoxContext, ui: Ui, writeCalls: () => number): Promise<ApplyReport> {
  return applyPlan(plan, desiredHash(state), { ctx, handlers: proxmoxHandlers(), ui, writeCalls });
}
