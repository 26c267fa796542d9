import type { Action, Change, Disruption, PropertyChange } from '../core/plan';

/** One resource the desired state asks for. */
export interface DesiredInstance<D> {
  readonly address: string;
  readonly value: D;
  readonly dependsOn: readonly string[];
}

/** One resource as the live system reports it (the live system is the state; no state file). */
export interface ObservedInstance<O> {
  readonly address: string;
  readonly value: O;
}

export interface Diff {
  readonly action: Action;
  readonly properties: readonly PropertyChange[];
  readonly disruption: readonly Disruption[];
  readonly reason?: string;
}

/**
 * One small handler per resource kind. `observe` is read-only; `diff` is pure; `apply` writes,
 * then reads back and returns what the system now reports (bpg ADR-005: report what the API
 * returned, not what was sent).
 */
export interface ResourceHandler<C, D, O> {
  readonly kind: string;
  desired(ctx: C): DesiredInstance<D>[];
  observe(ctx: C, desired: readonly DesiredInstance<D>[]): Promise<ObservedInstance<O>[]>;
  diff(desired: D, observed: O | undefined): Diff;
  /** `report` shows a line of progress under the step (long work: a download, an upload). */
  apply(ctx: C, change: Change & { desired: D }, observed: O | undefined, report?: (output: string) => void): Promise<O>;
  /** Post-actions to run once after all changes of this kind (e.g. OPNsense reconfigure). */
  postActions?(changes: readonly Change[]): { id: string; title: string; run(ctx: C): Promise<void> }[];
}
