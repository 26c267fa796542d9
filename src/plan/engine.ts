import { createHash } from 'node:crypto';
import type { ApplyReport, Change, Plan, PostAction } from '../core/plan';
import { pendingChanges } from '../core/plan';
import { ApplyStepError, DualwanError, StalePlanError } from '../core/errors';
import type { Step, Ui } from '../core/ui';
import type { DesiredInstance, ObservedInstance, ResourceHandler } from './handler';
import { TOOL_USER_AGENT } from '../version';

// Handlers of different resource kinds live in one list; their value types differ.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyHandler<C> = ResourceHandler<C, any, any>;

/** JSON with sorted keys, so equal values always hash equal. */
export function stableStringify(v: unknown): string {
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`)
    .join(',')}}`;
}

export function fingerprint(v: unknown): string {
  return createHash('sha256').update(stableStringify(v)).digest('hex').slice(0, 16);
}

export interface Observation {
  readonly desired: ReadonlyMap<string, { handler: string; instance: DesiredInstance<unknown> }>;
  readonly observed: ReadonlyMap<string, ObservedInstance<unknown>>;
}

/** Read-only: asks every handler what it wants and what is there. */
export async function observe<C>(ctx: C, handlers: readonly AnyHandler<C>[]): Promise<Observation> {
  const desired = new Map<string, { handler: string; instance: DesiredInstance<unknown> }>();
  const observed = new Map<string, ObservedInstance<unknown>>();
  for (const h of handlers) {
    const want = h.desired(ctx);
    for (const d of want) {
      if (desired.has(d.address)) throw new DualwanError('PLAN_DUPLICATE_ADDRESS', `Two resources claim the address ${d.address}`, { source: 'tool' });
      desired.set(d.address, { handler: h.kind, instance: d });
    }
    for (const o of await h.observe(ctx, want)) observed.set(o.address, o);
  }
  return { desired, observed };
}

/** Orders addresses so every change comes after what it depends on; refuses cycles. */
export function orderByDependencies(addresses: readonly string[], deps: (a: string) => readonly string[]): string[] {
  const known = new Set(addresses);
  const out: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (a: string, trail: string[]) => {
    const s = state.get(a);
    if (s === 'done') return;
    if (s === 'visiting') throw new DualwanError('PLAN_CYCLE', `Resources depend on each other in a cycle: ${[...trail, a].join(' → ')}`, { source: 'tool' });
    state.set(a, 'visiting');
    for (const d of deps(a)) if (known.has(d)) visit(d, [...trail, a]);
    state.set(a, 'done');
    out.push(a);
  };
  for (const a of addresses) visit(a, []);
  return out;
}

/**
 * The plan: a pure function of what is wanted and what is there. No I/O, no clock except the
 * timestamp passed in.
 */
export function makePlan<C>(handlers: readonly AnyHandler<C>[], obs: Observation, desiredHash: string, createdAt: string): Plan {
  const byKind = new Map(handlers.map((h) => [h.kind, h]));
  const changes = new Map<string, Change>();
  for (const [address, { handler, instance }] of obs.desired) {
    const h = byKind.get(handler)!;
    const before = obs.observed.get(address);
    const d = h.diff(instance.value, before?.value);
    changes.set(address, {
      address,
      kind: h.kind,
      action: d.action,
      properties: d.properties,
      disruption: d.disruption,
      reason: d.reason,
      dependsOn: instance.dependsOn,
      observedFingerprint: before ? fingerprint(before.value) : null,
      desired: instance.value,
    });
  }
  const order = orderByDependencies([...changes.keys()], (a) => changes.get(a)?.dependsOn ?? []);
  const ordered = order.map((a) => changes.get(a)!);
  const postActions: PostAction[] = [];
  for (const h of handlers) {
    const mine = ordered.filter((c) => c.kind === h.kind && c.action !== 'noop');
    if (mine.length && h.postActions) {
      for (const p of h.postActions(mine)) postActions.push({ id: p.id, title: p.title, after: mine.map((c) => c.address) });
    }
  }
  return { formatVersion: 1, tool: TOOL_USER_AGENT, createdAt, desiredHash, changes: ordered, postActions };
}

export interface ApplyDeps<C> {
  readonly ctx: C;
  readonly handlers: readonly AnyHandler<C>[];
  readonly ui: Ui;
  /** Write calls made so far (the client's counter). */
  readonly writeCalls: () => number;
  readonly now?: () => number;
}

/**
 * Executes a plan and nothing else. First re-reads everything and refuses a stale plan before any
 * write; then applies each pending change in order, reading back after each write and checking
 * that the system now says what was wanted; then runs post-actions once.
 */
export async function applyPlan<C>(plan: Plan, currentDesiredHash: string, deps: ApplyDeps<C>): Promise<ApplyReport> {
  const now = deps.now ?? Date.now;
  const started = now();
  const writesBefore = deps.writeCalls();
  if (plan.desiredHash !== currentDesiredHash) {
    throw new StalePlanError('dualwan.yaml', 'the configuration changed after the plan was made');
  }
  const fresh = await observe(deps.ctx, deps.handlers);
  for (const c of plan.changes) {
    const o = fresh.observed.get(c.address);
    const fp = o ? fingerprint(o.value) : null;
    if (fp !== c.observedFingerprint) {
      throw new StalePlanError(c.address, c.observedFingerprint === null ? 'it appeared' : fp === null ? 'it disappeared' : 'its settings changed');
    }
  }
  const byKind = new Map(deps.handlers.map((h) => [h.kind, h]));
  const applied: { address: string; action: Change['action']; readBack: unknown }[] = [];
  const steps: Step<C>[] = plan.changes.map((c) => ({
    title: `${symbol(c.action)} ${c.action} ${c.address}`,
    skip: c.action === 'noop' ? 'already as wanted' : undefined,
    run: async (ctx: C, report: (output: string) => void) => {
      const h = byKind.get(c.kind);
      if (!h) throw new DualwanError('PLAN_UNKNOWN_KIND', `The plan names a resource kind this version does not know: ${c.kind}`, { source: 'user' });
      let readBack: unknown;
      try {
        readBack = await h.apply(ctx, c, fresh.observed.get(c.address)?.value, report);
      } catch (e) {
        throw e instanceof ApplyStepError ? e : new ApplyStepError(c.action, c.address, e);
      }
      const check = h.diff(c.desired, readBack);
      if (check.action !== 'noop') {
        throw new ApplyStepError(
          c.action,
          c.address,
          new DualwanError('READ_BACK_MISMATCH', `after the write the system reports: ${check.properties.map((p) => `${p.path}=${JSON.stringify(p.before)} (wanted ${JSON.stringify(p.after)})`).join(', ')}`, {
            source: 'remote',
          }),
        );
      }
      applied.push({ address: c.address, action: c.action, readBack });
    },
  }));
  const posts: string[] = [];
  for (const h of deps.handlers) {
    const mine = pendingChanges(plan).filter((c) => c.kind === h.kind);
    if (!mine.length || !h.postActions) continue;
    for (const p of h.postActions(mine)) {
      steps.push({ title: p.title, run: async (ctx) => { await p.run(ctx); posts.push(p.id); } });
    }
  }
  await deps.ui.runSteps(deps.ctx, steps);
  return { applied, postActions: posts, writeCalls: deps.writeCalls() - writesBefore, durationMs: now() - started };
}

export function symbol(a: Change['action']): string {
  return { create: '+', update: '~', replace: '-/+', delete: '-', noop: ' ' }[a];
}
