import type { DesiredState } from '../core/desired';
import type { ApplyReport, Plan } from '../core/plan';
import type { Ui } from '../core/ui';
import type { AnyHandler } from '../plan/engine';

/**
 * A stage is one system dualwan converges: the Proxmox host, the OPNsense router, or a Linux
 * router. `apply` runs the stages of a backend in order — each one opened (connect, pin, discover,
 * preflight: all read-only), planned, shown, confirmed, applied — because a later stage can only be
 * observed once an earlier one exists (OPNsense answers only after its VM runs).
 */
export interface StageEnv {
  readonly state: DesiredState;
  readonly ui: Ui;
  readonly trustOnFirstUse: boolean;
  /** Credentials file given with --credentials (else the default location). */
  readonly credentialsFile?: string;
  /** The environment secrets are read from. */
  readonly env: NodeJS.ProcessEnv;
  /**
   * Plans of earlier stages that are not applied yet (`plan` shows all stages before any write;
   * `apply` applies each stage before opening the next, so there it is empty).
   */
  readonly earlier: readonly { readonly stage: string; readonly plan: Plan }[];
}

export interface StageSession<C = unknown> {
  readonly ctx: C;
  readonly handlers: readonly AnyHandler<C>[];
  /** Write calls made through this session's client so far. */
  writeCalls(): number;
  close(): Promise<void>;
}

export interface Stage {
  /** Stable name, also used in saved plans: 'proxmox' | 'opnsense' | 'linux'. */
  readonly name: string;
  readonly title: string;
  /**
   * Why this stage cannot be planned yet (e.g. the router VM it talks to is still to be created),
   * or undefined when it can. A deferred stage is shown as such by `plan` and planned by `apply`
   * once the earlier stages are applied.
   */
  deferred?(env: StageEnv): string | undefined;
  /** Connects and checks, read-only. Throws PreflightError (nothing written) when it must not go on. */
  open(env: StageEnv): Promise<StageSession>;
  /**
   * Applies a plan of this stage. Default: the plan engine's applyPlan. A stage overrides it to
   * wrap the apply, e.g. OPNsense takes a config backup first and restores it on failure.
   */
  apply?(session: StageSession, plan: Plan, env: StageEnv): Promise<ApplyReport>;
}

/** A saved plan: one plan per stage, in order. */
export interface PlanSet {
  readonly formatVersion: 1;
  readonly stages: readonly { readonly stage: string; readonly plan: Plan }[];
}
