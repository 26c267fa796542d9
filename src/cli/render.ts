import type { Change, Plan } from '../core/plan';
import { pendingChanges } from '../core/plan';
import { symbol } from '../plan/engine';
import { DualwanError } from '../core/errors';
import { redact } from '../secrets/redact';

const show = (v: unknown) => (v === null || v === undefined ? '(none)' : typeof v === 'string' ? v : JSON.stringify(v));

export function renderChange(c: Change): string {
  const lines = [`  ${symbol(c.action)} ${c.address}${c.action === 'create' ? '' : ` (${c.action})`}`];
  for (const p of c.properties) {
    lines.push(c.action === 'create' ? `      ${p.path} = ${show(p.after)}` : `      ${p.path}: ${show(p.before)} → ${show(p.after)}`);
  }
  const d = c.disruption.filter((x) => x !== 'none');
  if (d.length) lines.push(`      ! disrupts: ${d.join(', ')}`);
  if (c.reason) lines.push(`      why: ${c.reason}`);
  return lines.join('\n');
}

export function renderPlan(plan: Plan): string {
  const pending = pendingChanges(plan);
  if (!pending.length) return `No changes: all ${plan.changes.length} resources match dualwan.yaml.`;
  const count = (a: Change['action']) => pending.filter((c) => c.action === a).length;
  const out = [`Plan: ${count('create')} to create, ${count('update')} to change, ${count('replace')} to replace, ${count('delete')} to delete.`, ''];
  for (const c of pending) out.push(renderChange(c));
  const disruptive = pending.filter((c) => c.disruption.some((d) => d !== 'none'));
  if (disruptive.length) {
    out.push('', `${disruptive.length} change${disruptive.length === 1 ? '' : 's'} will disrupt the network or take time (marked with !).`);
  }
  if (plan.postActions.length) out.push('', 'Then:', ...plan.postActions.map((p) => `  → ${p.title}`));
  return out.join('\n');
}

export function renderError(e: unknown, debug: boolean): string {
  if (e instanceof DualwanError) {
    const parts = [e.soft ? e.message : `Error: ${e.message}`];
    if (e.remedy) parts.push(`  remedy: ${e.remedy}`);
    if (debug && e.stack) parts.push(e.stack);
    if (debug && e.cause instanceof Error && e.cause.stack) parts.push(`caused by: ${e.cause.stack}`);
    return redact(parts.join('\n'));
  }
  const msg = e instanceof Error ? (debug && e.stack ? e.stack : e.message) : String(e);
  return redact(`Error: unexpected failure: ${msg}${debug ? '' : '\n  (run again with --debug for details, and please report it)'}`);
}
