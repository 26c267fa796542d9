// Runs the OPNsense stage against a simulated router the way `dualwan plan/apply` does (open →
// observe → pure plan → applyWithBackup), for the component tests and the bench.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Document } from 'yaml';
import { loadConfigFile } from '../../../src/config/load';
import type { DesiredState } from '../../../src/core/desired';
import type { ApplyReport, Plan } from '../../../src/core/plan';
import type { Answer, Notice, Question, Step, Ui } from '../../../src/core/ui';
import { applyWithBackup, opnsenseStage, type OpnsenseStageOptions } from '../../../src/flows/opnsense';
import { desiredHash } from '../../../src/flows/router-vm';
import type { StageEnv, StageSession } from '../../../src/flows/stage';
import { makePlan, observe } from '../../../src/plan/engine';
import { writeRouterPlaybook, type SimulatedRouter } from './simulated-router';

/** A quiet Ui that answers every question with its default and keeps the notices. */
export class QuietUi implements Ui {
  readonly notices: Notice[] = [];
  readonly steps: string[] = [];
  notify(n: Notice): void {
    this.notices.push(n);
  }
  async request<Q extends Question>(q: Q): Promise<Answer<Q>> {
    return q.default as Answer<Q>;
  }
  async runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    for (const s of steps) {
      this.steps.push(s.title);
      if (!s.skip) await s.run(ctx, () => undefined);
    }
  }
}

export interface RouterRun {
  readonly dir: string;
  readonly file: string;
  state: DesiredState;
  readonly env: StageEnv;
  readonly session: StageSession;
  plan(): Promise<Plan>;
  apply(plan: Plan): Promise<ApplyReport>;
  close(): Promise<void>;
}

export function loadState(file: string): DesiredState {
  const r = loadConfigFile(file);
  if (!r.state) throw new Error(`${file}: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return r.state;
}

/** Writes the playbook for the router into a temp dir, opens the stage (pinning on first use). */
export async function openRouterRun(router: SimulatedRouter, o: { playbook?: string; edit?: (doc: Document) => void; ui?: Ui; stage?: OpnsenseStageOptions } = {}): Promise<RouterRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-opnsense-'));
  const file = writeRouterPlaybook(router, dir, o.playbook, o.edit);
  const ui = o.ui ?? new QuietUi();
  let state = loadState(file);
  const env: StageEnv = { state, ui, trustOnFirstUse: true, credentialsFile: path.join(dir, 'no-credentials'), env: { ...router.env }, earlier: [] };
  const stage = opnsenseStage({ sleep: async () => undefined, gatewayListWaitMs: 2_000, revertBackoffMs: 0, client: { requestTimeoutMs: 10_000 }, ...o.stage });
  let session: StageSession;
  try {
    session = await stage.open(env);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  state = loadState(file); // now with the pinned fingerprint
  const run: RouterRun = {
    dir,
    file,
    state,
    env: { ...env, state },
    session,
    async plan() {
      const obs = await observe(session.ctx, session.handlers);
      return makePlan(session.handlers, obs, desiredHash(run.state), new Date().toISOString());
    },
    apply: (plan) => applyWithBackup(session, plan, { state: run.state, ui }),
    async close() {
      await session.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return run;
}
