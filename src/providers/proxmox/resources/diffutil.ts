import type { PropertyChange } from '../../../core/plan';

/** Property-by-property comparison of two flat records (only the keys of `desired`). */
export function diffRecords(desired: Record<string, unknown>, observed: Record<string, unknown> | undefined, equal: (k: string, d: unknown, o: unknown) => boolean = (_k, d, o) => JSON.stringify(d) === JSON.stringify(o)): PropertyChange[] {
  const out: PropertyChange[] = [];
  for (const [k, d] of Object.entries(desired)) {
    const o = observed?.[k];
    if (!equal(k, d, o)) out.push({ path: k, before: o ?? null, after: d });
  }
  return out;
}
