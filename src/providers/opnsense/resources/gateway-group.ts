import type { ResourceHandler } from '../../../plan/handler';
import type { OpnsenseContext } from '../context';
import { TRIGGER_OPTION } from '../layout';
import { GroupRowSchema, SavedSchema } from '../schemas';
import { diffValues, sortedList, step } from './common';

/** The `gateway_group` fields (routing/group_settings, 26.7+). Tiers hold gateway names. */
export interface GroupFields {
  readonly name: string;
  readonly item: string;
  readonly item2: string;
  readonly item3: string;
  readonly item4: string;
  readonly item5: string;
  readonly trigger: string;
  readonly poolopts: string;
  readonly descr: string;
}
export interface GroupObserved extends GroupFields {
  readonly uuid: string;
}

const TIER_KEYS = ['item', 'item2', 'item3', 'item4', 'item5'] as const;

/**
 * Failover: one WAN per tier (ISP tier 1, hotspot tier 2). Load balancing: several WANs in one
 * tier, each repeated `weight` times in pf's round-robin pool (2:1 = weights 2 and 1). The pool
 * option is written out (sticky or plain round-robin) rather than left to the system-wide
 * "sticky connections" default.
 */
export function groupFields(ctx: Pick<OpnsenseContext, 'state' | 'layout'>): GroupFields {
  const tiers: string[][] = [[], [], [], [], []];
  for (const w of ctx.layout.wans) tiers[Math.min(5, Math.max(1, w.wan.tier)) - 1]!.push(w.gatewayName);
  const list = (i: number) => sortedList(tiers[i]!.join(','));
  const p = ctx.state.policy;
  return {
    name: ctx.layout.groupName,
    item: list(0),
    item2: list(1),
    item3: list(2),
    item4: list(3),
    item5: list(4),
    trigger: TRIGGER_OPTION[p.trigger],
    poolopts: p.stickyConnections ? 'round-robin sticky-address' : 'round-robin',
    descr: `dualwan ${p.mode}`,
  };
}

const normalise = (k: string, v: string) => ((TIER_KEYS as readonly string[]).includes(k) ? sortedList(v) : v);

async function readGroup(ctx: OpnsenseContext, name: string): Promise<GroupObserved | undefined> {
  const grid = await ctx.client.search('routing/group_settings/search', GroupRowSchema);
  const r = grid.rows.find((x) => x.name === name);
  if (!r) return undefined;
  return {
    uuid: r.uuid,
    name: r.name,
    item: r.item ?? '',
    item2: r.item2 ?? '',
    item3: r.item3 ?? '',
    item4: r.item4 ?? '',
    item5: r.item5 ?? '',
    trigger: r.trigger ?? '',
    poolopts: r.poolopts ?? '',
    descr: r.descr ?? '',
  };
}

export const gatewayGroupHandler: ResourceHandler<OpnsenseContext, GroupFields, GroupObserved> = {
  kind: 'opnsense.gateway-group',
  desired(ctx) {
    return [
      {
        address: `opnsense.gateway-group/${ctx.layout.groupName}`,
        dependsOn: ctx.layout.wans.map((w) => `opnsense.gateway/${w.gatewayName}`),
        value: groupFields(ctx),
      },
    ];
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      const o = await readGroup(ctx, d.value.name);
      if (o) out.push({ address: d.address, value: o });
    }
    return out;
  },
  diff(desired, observed) {
    if (!observed) {
      return { action: 'create', properties: Object.entries(desired).map(([k, v]) => ({ path: k, before: null, after: v })), disruption: ['reloads-firewall'] };
    }
    const properties = diffValues({ ...desired }, { ...observed }, normalise);
    return properties.length ? { action: 'update', properties, disruption: ['reloads-firewall'] } : { action: 'noop', properties: [], disruption: [] };
  },
  async apply(ctx, change, observed) {
    const d = change.desired;
    const verb = observed ? 'update' : 'create';
    await step(verb, `gateway group ${d.name}`, () => {
      const meta = { verb, resource: 'gateway group', name: d.name };
      const body = { gateway_group: { ...d } };
      return observed
        ? ctx.client.write(`routing/group_settings/set/${encodeURIComponent(observed.uuid)}`, body, meta, SavedSchema)
        : ctx.client.write('routing/group_settings/add', body, meta, SavedSchema);
    });
    const back = await readGroup(ctx, d.name);
    if (!back) throw new Error(`gateway group ${d.name} is not listed after the write`);
    return back;
  },
  postActions() {
    return [
      {
        id: 'routing/group_settings/reconfigure',
        title: 'apply gateway groups: routes, monitors, filter reload (routing/group_settings/reconfigure)',
        run: async (ctx) => void (await ctx.client.action('routing/group_settings/reconfigure')),
      },
    ];
  },
};
