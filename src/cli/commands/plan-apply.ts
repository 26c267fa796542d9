import * as fs from 'node:fs';
import { DualwanError, UserAbortError } from '../../core/errors';
import type { Plan } from '../../core/plan';
import { pendingChanges } from '../../core/plan';
import { applyRouterVm, planRouterVm } from '../../flows/router-vm';
import { redact } from '../../secrets/redact';
import type { GlobalOptions } from '../options';
import { renderPlan } from '../render';
import { loadState, openProxmox, terminalUi } from '../session';

interface PlanOptions extends GlobalOptions {
  readonly config: string;
  readonly json?: boolean;
  readonly out?: string;
  readonly detailedExitcode?: boolean;
  readonly trustOnFirstUse?: boolean;
}
interface ApplyOptions extends PlanOptions {
  readonly yes?: boolean;
  readonly plan?: string;
}

const print = (s: string) => process.stdout.write(`${redact(s)}\n`);

export async function planCommand(o: PlanOptions): Promise<number> {
  const ui = terminalUi(o);
  const state = loadState(o.config);
  const conn = await openProxmox(state, o, ui);
  try {
    const { plan } = await planRouterVm(state, conn.client, ui);
    if (o.out) fs.writeFileSync(o.out, `${JSON.stringify(plan, null, 2)}\n`);
    print(o.json ? JSON.stringify(plan, null, 2) : renderPlan(plan));
    if (o.out && !o.json) print(`Saved the plan to ${o.out}; apply it with: dualwan apply --plan ${o.out}`);
    return o.detailedExitcode && pendingChanges(plan).length ? 2 : 0;
  } finally {
    await conn.close();
  }
}

function readSavedPlan(file: string): Plan {
  let plan: Plan;
  try {
    plan = JSON.parse(fs.readFileSync(file, 'utf8')) as Plan;
  } catch (e) {
    throw new DualwanError('PLAN_FILE_UNREADABLE', `Cannot read the saved plan ${file}: ${(e as Error).message}`, { source: 'user', remedy: 'Save a plan with `dualwan plan --out FILE`.' });
  }
  if (plan.formatVersion !== 1 || !Array.isArray(plan.changes)) {
    throw new DualwanError('PLAN_FILE_FORMAT', `${file} is not a dualwan plan (format ${String(plan.formatVersion)}).`, { source: 'user', remedy: 'Save a plan with `dualwan plan --out FILE` using this version of dualwan.' });
  }
  return plan;
}

export async function applyCommand(o: ApplyOptions): Promise<number> {
  const ui = terminalUi(o);
  const state = loadState(o.config);
  const conn = await openProxmox(state, o, ui);
  try {
    const fresh = await planRouterVm(state, conn.client, ui);
    const plan = o.plan ? readSavedPlan(o.plan) : fresh.plan;
    const pending = pendingChanges(plan);
    if (!o.json) print(renderPlan(plan));
    if (!pending.length) {
      if (o.json) print(JSON.stringify({ plan, report: { applied: [], postActions: [], writeCalls: 0 } }, null, 2));
      return 0;
    }
    if (!o.yes) {
      const ok = await ui.request({ code: 'APPLY_CONFIRM', kind: 'confirm', message: `Apply these ${pending.length} change${pending.length === 1 ? '' : 's'}?`, default: false });
      if (!ok) throw new UserAbortError('Nothing was changed.');
    }
    const report = await applyRouterVm(plan, state, fresh.ctx, ui, () => conn.transport.writeCalls);
    if (o.json) print(JSON.stringify({ plan, report }, null, 2));
    else ui.notify({ code: 'APPLY_DONE', level: 'success', text: `Applied ${report.applied.length} change${report.applied.length === 1 ? '' : 's'} with ${report.writeCalls} write call${report.writeCalls === 1 ? '' : 's'} in ${(report.durationMs / 1000).toFixed(1)} s; every change was read back.` });
    return o.detailedExitcode ? 2 : 0;
  } finally {
    await conn.close();
  }
}
