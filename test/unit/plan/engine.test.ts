import { applyPlan, fingerprint, makePlan, observe, orderByDependencies, stableStringify } from '../../../src/plan/engine';
import type { ResourceHandler } from '../../../src/plan/handler';
import { StalePlanError } from '../../../src/core/errors';
import { TestUi } from '../../helpers/test-ui';

/** A toy system: a map of name → value; the handler converges it and counts writes. */
interface World {
  want: Record<string, { value: string; dependsOn?: string[] }>;
  have: Record<string, string>;
  writes: string[];
  /** What the system stores instead of what was sent, to test read-back checks. */
  corrupt?: string;
}

const handler: ResourceHandler<World, string, string> = {
  kind: 'toy.item',
  desired: (w) => Object.entries(w.want).map(([k, v]) => ({ address: `toy.item/${k}`, value: v.value, dependsOn: (v.dependsOn ?? []).map((d) => `toy.item/${d}`) })),
  observe: async (w) => Object.entries(w.have).map(([k, v]) => ({ address: `toy.item/${k}`, value: v })),
  diff: (d, o) =>
    o === undefined
      ? { action: 'create', properties: [{ path: 'value', before: null, after: d }], disruption: ['none'] }
      : o === d
        ? { action: 'noop', properties: [], disruption: [] }
        : { action: 'update', properties: [{ path: 'value', before: o, after: d }], disruption: ['kills-states'] },
  apply: async (w, c) => {
    const name = c.address.split('/')[1]!;
    w.writes.push(name);
    w.have[name] = w.corrupt ?? (c.desired as string);
    return w.have[name]!;
  },
};

async function planFor(w: World) {
  return makePlan([handler], await observe(w, [handler]), 'h1', '2026-01-01T00:00:00.000Z');
}

describe('plan engine', () => {
  it('plans creates and updates, orders by dependency, and is a JSON value', async () => {
    const w: World = { want: { b: { value: '2', dependsOn: ['a'] }, a: { value: '1' }, c: { value: '3' } }, have: { c: 'old' }, writes: [] };
    const plan = await planFor(w);
    expect(plan.changes.map((c) => `${c.action} ${c.address}`)).toEqual(['create toy.item/a', 'create toy.item/b', 'update toy.item/c']);
    expect(plan.changes[2]!.disruption).toEqual(['kills-states']);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it('is pure: the same inputs give the same plan', async () => {
    const w: World = { want: { a: { value: '1' } }, have: {}, writes: [] };
    expect(await planFor(w)).toEqual(await planFor(w));
  });

  it('applies, reads back, and a second run plans nothing and writes nothing', async () => {
    const w: World = { want: { a: { value: '1' }, b: { value: '2', dependsOn: ['a'] } }, have: { b: 'x' }, writes: [] };
    const ui = new TestUi();
    const report = await applyPlan(await planFor(w), 'h1', { ctx: w, handlers: [handler], ui, writeCalls: () => w.writes.length });
    expect(w.writes).toEqual(['a', 'b']);
    expect(report.writeCalls).toBe(2);
    const second = await planFor(w);
    expect(second.changes.every((c) => c.action === 'noop')).toBe(true);
    const again = await applyPlan(second, 'h1', { ctx: w, handlers: [handler], ui: new TestUi(), writeCalls: () => w.writes.length });
    expect(again.writeCalls).toBe(0);
  });

  it('refuses a stale plan before any write', async () => {
    const w: World = { want: { a: { value: '1' }, b: { value: '2' } }, have: { b: 'x' }, writes: [] };
    const plan = await planFor(w);
    w.have.b = 'changed by someone else';
    await expect(applyPlan(plan, 'h1', { ctx: w, handlers: [handler], ui: new TestUi(), writeCalls: () => w.writes.length })).rejects.toBeInstanceOf(StalePlanError);
    expect(w.writes).toEqual([]);
  });

  it('refuses a plan made from another configuration', async () => {
    const w: World = { want: { a: { value: '1' } }, have: {}, writes: [] };
    await expect(applyPlan(await planFor(w), 'other-hash', { ctx: w, handlers: [handler], ui: new TestUi(), writeCalls: () => 0 })).rejects.toThrow(/configuration changed/);
    expect(w.writes).toEqual([]);
  });

  it('fails when the read-back differs from what was wanted, naming the resource', async () => {
    const w: World = { want: { a: { value: '1' } }, have: {}, writes: [], corrupt: 'mangled' };
    await expect(applyPlan(await planFor(w), 'h1', { ctx: w, handlers: [handler], ui: new TestUi(), writeCalls: () => 0 })).rejects.toThrow(/Unable to create toy.item\/a: .*value="mangled"/);
  });

  it('refuses dependency cycles', () => {
    expect(() => orderByDependencies(['a', 'b'], (x) => (x === 'a' ? ['b'] : ['a']))).toThrow(/cycle: a → b → a/);
  });

  it('fingerprints ignore key order', () => {
    expect(stableStringify({ b: 1, a: [2, { d: 1, c: 2 }] })).toBe('{"a":[2,{"c":2,"d":1}],"b":1}');
    expect(fingerprint({ a: 1, b: 2 })).toBe(fingerprint({ b: 2, a: 1 }));
    expect(fingerprint({ a: 1 })).not.toBe(fingerprint({ a: 2 }));
  });
});
