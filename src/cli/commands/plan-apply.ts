import * as fs from 'node:fs';
import { DualwanError, UserAbortError } from '../../core/errors';
import type { ApplyReport, Plan } from '../../core/plan';
import { pendingChanges } from '../../core/plan';
import type { PlanSet, StageEnv } from '../../flows/stage';
import { applyStagePlan, isUnreachable, planStage, savedPlanFor, stagesFor } from '../../flows/stages';
import type { StageSession } from '../../flows/stage';
import type { Ui } from '../../core/ui';
import { redact } from '../../secrets/redact';
import type { GlobalOptions } from '../options';
import { renderPlan } from '../render';
import { loadState, terminalUi } from '../session';

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

export async function planCommand(o: PlanOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const ui = terminalUi(o);
  let state = loadState(o.config, ui);
  const planned: { stage: string; plan: Plan }[] = [];
  const deferred: { stage: string; reason: string }[] = [];
  for (const [i, stage] of stagesFor(state).entries()) {
    if (i > 0) state = loadState(o.config); // a certificate pinned by the stage before
    const senv: StageEnv = { state, ui, trustOnFirstUse: !!o.trustOnFirstUse, credentialsFile: o.credentials, env, earlier: planned };
    const why = stage.deferred?.(senv);
    if (why) {
      deferred.push({ stage: stage.name, reason: why });
      if (!o.json) print(`\n${stage.title}: planned when it can be reached — ${why}`);
      continue;
    }
    const session = await stage.open(senv);
    try {
      const plan = await planStage(session, state);
      planned.push({ stage: stage.name, plan });
      if (!o.json) print(`\n${stage.title}\n${renderPlan(plan)}`);
    } finally {
      await session.close();
    }
  }
  const set: PlanSet = { formatVersion: 1, stages: planned };
  if (o.out) fs.writeFileSync(o.out, `${JSON.stringify(set, null, 2)}\n`);
  if (o.json) print(JSON.stringify({ ...set, deferred }, null, 2));
  else if (o.out) print(`\nSaved the plan to ${o.out}; apply exactly this plan with: dualwan apply --plan ${o.out}`);
  const pending = planned.some((p) => pendingChanges(p.plan).length) || deferred.length > 0;
  return o.detailedExitcode && pending ? 2 : 0;
}

function readSavedPlan(file: string): PlanSet {
  let set: PlanSet;
  try {
    set = JSON.parse(fs.readFileSync(file, 'utf8')) as PlanSet;
  } catch (e) {
    throw new DualwanError('PLAN_FILE_UNREADABLE', `Cannot read the saved plan ${file}: ${(e as Error).message}`, { source: 'user', remedy: 'Save a plan with `dualwan plan --out FILE`.' });
  }
  if (set.formatVersion !== 1 || !Array.isArray(set.stages)) {
    throw new DualwanError('PLAN_FILE_FORMAT', `${file} is not a dualwan plan.`, { source: 'user', remedy: 'Save a plan with `dualwan plan --out FILE` using this version of dualwan.' });
  }
  return set;
}

export async function applyCommand(o: ApplyOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const ui = terminalUi(o);
  const { results, deferred, changed } = await applyStages({ ...o, ui, env, saved: o.plan ? readSavedPlan(o.plan) : undefined });
  if (o.json) print(JSON.stringify({ formatVersion: 1, stages: results, deferred }, null, 2));
  return o.detailedExitcode && (changed || deferred.length) ? 2 : 0;
}

/** One apply run over the stages of the backend (also the last part of `dualwan setup`). */
export interface ApplyRun {
  readonly config: string;
  readonly ui: Ui;
  readonly env: NodeJS.ProcessEnv;
  readonly yes?: boolean;
  readonly json?: boolean;
  readonly trustOnFirstUse?: boolean;
  readonly credentials?: string;
  readonly saved?: PlanSet;
}

/**
 * Each stage in order: open (read-only checks), plan, show, confirm unless `yes`, apply with
 * progress. Whatever stages the backend has run, so a stage added later needs no change here.
 */
export async function applyStages(o: ApplyRun): Promise<{ results: { stage: string; plan: Plan; report: ApplyReport }[]; deferred: { stage: string; reason: string }[]; changed: boolean }> {
  const { ui, env, saved } = o;
  let state = loadState(o.config, ui);
  const results: { stage: string; plan: Plan; report: ApplyReport }[] = [];
  const deferred: { stage: string; reason: string }[] = [];
  let changed = false;
  for (const [i, stage] of stagesFor(state).entries()) {
    // A stage may have recorded something in dualwan.yaml for the next one (a certificate pinned on
    // first contact, or OPNsense's read from its console by the bootstrap): each starts from the file.
    if (i > 0) state = loadState(o.config);
    const senv: StageEnv = { state, ui, trustOnFirstUse: !!o.trustOnFirstUse, credentialsFile: o.credentials, env, earlier: [] };
    // A stage that depends on what this run just created is tried, and deferred if it cannot be
    // reached yet (a router VM that is still booting); any other failure stops the run.
    const why = stage.deferred?.({ ...senv, earlier: results });
    let session: StageSession;
    try {
      session = await stage.open(senv);
    } catch (e) {
      if (!why || !isUnreachable(e)) throw e;
      deferred.push({ stage: stage.name, reason: why });
      ui.notify({ code: 'STAGE_DEFERRED', level: 'warn', text: `${stage.title}: not reachable yet (${why}). Run dualwan apply again once it is up.` });
      continue;
    }
    try {
      const plan = saved ? savedPlanFor(saved, stage.name) : await planStage(session, state);
      const pending = pendingChanges(plan);
      if (!o.json) print(`\n${stage.title}\n${renderPlan(plan)}`);
      if (!pending.length) {
        results.push({ stage: stage.name, plan, report: { applied: [], postActions: [], writeCalls: 0, durationMs: 0 } });
        continue;
      }
      if (!o.yes) {
        const ok = await ui.request({ code: 'APPLY_CONFIRM', kind: 'confirm', message: `Apply these ${pending.length} change${pending.length === 1 ? '' : 's'} to the ${stage.title}?`, default: false });
        if (!ok) throw new UserAbortError(results.length ? 'Stopped; the stages above were applied, nothing more was changed.' : 'Nothing was changed.');
      }
      const report = await applyStagePlan(session, plan, senv, stage);
      changed = true;
      results.push({ stage: stage.name, plan, report });
      if (!o.json) {
        ui.notify({
          code: 'APPLY_DONE',
          level: 'success',
          text: `${stage.title}: applied ${report.applied.length} change${report.applied.length === 1 ? '' : 's'} with ${report.writeCalls} write call${report.writeCalls === 1 ? '' : 's'} in ${(report.durationMs / 1000).toFixed(1)} s; every change was read back.`,
        });
      }
    } finally {
      await session.close();
    }
  }
  return { results, deferred, changed };
}
