import type { DesiredState } from '../core/desired';
import { DualwanError, RemoteApiError, StalePlanError } from '../core/errors';
import type { ApplyReport, Plan } from '../core/plan';
import { applyPlan, makePlan, observe } from '../plan/engine';
import { desiredHash, proxmoxStage } from './router-vm';
import { opnsenseStage } from './opnsense';
import { linuxStage } from './linux';
import { bootstrapStage } from '../bootstrap/stage';
import { cutoverStage } from './cutover';
import type { PlanSet, Stage, StageEnv, StageSession } from './stage';

/** The stages of a backend, in the order they are applied. */
export function stagesFor(state: DesiredState): Stage[] {
  // The bootstrap sits between the VM and the REST configuration: it gives OPNsense its first
  // config.xml (and the API key the OPNsense stage then reads from the credentials file). The
  // guarded cutover (proxmox.cutover) comes last: the host's new path runs through a set-up router.
  if (state.backend === 'opnsense-vm') return [proxmoxStage(), bootstrapStage(), opnsenseStage(), ...(state.proxmox?.cutover ? [cutoverStage()] : [])];
  if (state.backend === 'linux') return [linuxStage()];
  throw new DualwanError('BACKEND_NOT_AVAILABLE', `The '${state.backend}' backend cannot be applied by this version of dualwan yet.`, {
    source: 'user',
    remedy: 'Use backend: opnsense-vm, or a newer dualwan.',
  });
}

export async function planStage(session: StageSession, state: DesiredState, now: () => Date = () => new Date()): Promise<Plan> {
  return makePlan(session.handlers, await observe(session.ctx, session.handlers), desiredHash(state), now().toISOString());
}

export async function applyStagePlan(session: StageSession, plan: Plan, env: StageEnv, stage?: Stage): Promise<ApplyReport> {
  if (stage?.apply) return stage.apply(session, plan, env);
  return applyPlan(plan, desiredHash(env.state), { ctx: session.ctx, handlers: session.handlers, ui: env.ui, writeCalls: () => session.writeCalls() });
}

/** Finds the saved plan of one stage, refusing a file made for other stages. */
export function savedPlanFor(set: PlanSet, stage: string): Plan {
  const hit = set.stages.find((s) => s.stage === stage);
  if (!hit) throw new StalePlanError(`stage ${stage}`, 'the saved plan has no part for it; it was saved before that stage could be planned');
  return hit.plan;
}

/**
 * A deferred stage that cannot be reached yet: the earlier stage just created or started what it
 * talks to. Anything else (a refused certificate, a wrong key, a validation error) is a real error.
 */
export function isUnreachable(e: unknown): boolean {
  if (e instanceof RemoteApiError) return e.status === undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && ['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET'].includes(code);
}
