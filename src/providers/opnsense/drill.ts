/**
 * What a `dualwan verify` drill leaves on OPNsense while it runs, and how any later run finds and
 * removes it when the drill could not (the tool was killed, the machine lost power):
 *
 * - the temporary firewall rule of `--method block`, recognised by its description, which carries
 *   the time after which it is stale. OPNsense has no API to make a rule expire by itself (rule
 *   schedules are legacy pages), so the expiry is honoured by the next dualwan run: `verify`
 *   removes any such rule before its drill, `apply` removes the expired ones before writing (and
 *   its rules handler never plans to change or delete one);
 * - `force_down` on a gateway (`--method force-down`): dualwan.yaml owns that field (always "0"),
 *   so `apply` resets it like any drift, and `verify` resets it before its drill, saying so.
 */
import type { Ui } from '../../core/ui';
import type { OpnsenseClient } from './client';
import type { OpnsenseContext } from './context';
import { DeletedSchema, FilterRuleRowSchema } from './schemas';

/** Every drill rule's description starts with this. */
export const DRILL_RULE_PREFIX = 'dualwan verify: temporary block';

export interface DrillRule {
  readonly uuid: string;
  readonly description: string;
  /** Epoch ms after which the rule is stale; NaN when the description was damaged. */
  readonly expiresAt: number;
}

export function drillRuleDescription(o: { gateway: string; monitor: string; expiresAt: number }): string {
  const iso = new Date(Math.ceil(o.expiresAt / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  return `${DRILL_RULE_PREFIX} of ${o.gateway} monitor probes to ${o.monitor}, stale after ${iso}`;
}

export function isDrillRuleDescription(description: string | undefined): boolean {
  return !!description && description.startsWith(DRILL_RULE_PREFIX);
}

/** The expiry written into a drill rule's description, epoch ms (NaN when unreadable: treat as stale). */
export function drillRuleExpiry(description: string): number {
  const m = /stale after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)/.exec(description);
  return m ? Date.parse(m[1]!) : Number.NaN;
}

export function drillRulesOf(rows: readonly { uuid: string; description?: string }[]): DrillRule[] {
  return rows.filter((r) => isDrillRuleDescription(r.description)).map((r) => ({ uuid: r.uuid, description: r.description!, expiresAt: drillRuleExpiry(r.description!) }));
}

export async function findDrillRules(client: OpnsenseClient): Promise<DrillRule[]> {
  const grid = await client.search('firewall/filter/search_rule', FilterRuleRowSchema, { rowCount: 9999 });
  return drillRulesOf(grid.rows);
}

/** Deletes the rules and reloads the filter once. Returns the descriptions removed. */
export async function deleteDrillRules(client: OpnsenseClient, rules: readonly DrillRule[]): Promise<string[]> {
  const removed: string[] = [];
  for (const r of rules) {
    const res = await client.write(`firewall/filter/del_rule/${encodeURIComponent(r.uuid)}`, {}, { verb: 'delete', resource: 'firewall rule', name: r.description }, DeletedSchema);
    removed.push(r.description);
    void res; // "not found": already gone
  }
  if (rules.length) await client.action('firewall/filter/apply', undefined, /^ok$/i);
  return removed;
}

// ---- apply's side: noted while observing, removed before the first write ----------------------

const noted = new WeakMap<object, DrillRule[]>();

/** Called by the rules handler with every rule it read: keeps the drill rules aside (never planned). */
export function noteDrillRules(ctx: OpnsenseContext, rows: readonly { uuid: string; description?: string }[]): void {
  const found = drillRulesOf(rows);
  const before = noted.get(ctx);
  noted.set(ctx, found);
  if (before || !found.length) return;
  const now = Date.now();
  for (const r of found) {
    const stale = !(r.expiresAt > now);
    ctx.ui.notify({
      code: 'OPNSENSE_DRILL_RULE_FOUND',
      level: 'warn',
      text: stale
        ? `A temporary rule of an interrupted verify drill is still on OPNsense ("${r.description}"); apply removes it before writing.`
        : `A verify drill seems to be running ("${r.description}"); apply leaves its rule alone, the drill removes it.`,
      data: { uuid: r.uuid, expiresAt: Number.isNaN(r.expiresAt) ? null : new Date(r.expiresAt).toISOString() },
    });
  }
}

/** Before apply writes anything: removes the stale drill rules the rules handler saw. */
export async function removeStaleDrillRules(ctx: OpnsenseContext, ui: Ui, now = Date.now()): Promise<number> {
  const stale = (noted.get(ctx) ?? []).filter((r) => !(r.expiresAt > now));
  if (!stale.length) return 0;
  const removed = await deleteDrillRules(ctx.client, stale);
  noted.set(ctx, (noted.get(ctx) ?? []).filter((r) => !stale.includes(r)));
  ui.notify({ code: 'OPNSENSE_DRILL_RULE_REMOVED', level: 'info', text: `Removed ${removed.length} stale temporary rule(s) of an interrupted verify drill: ${removed.map((d) => `"${d}"`).join(', ')}.` });
  return removed.length;
}
