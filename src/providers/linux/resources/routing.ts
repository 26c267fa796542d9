/**
 * Policy routing for two (or more) WANs, the classic split-access recipe (LARTC §4.2, and
 * shared/research/linux-lab.md "router recipe"):
 * - `linux.route-table/<wan>`: a table per WAN with its link, the LAN and a default via its gateway;
 * - `linux.rule/<priority>`: traffic from a WAN's own address uses that WAN's table, and so does
 *   traffic carrying that WAN's mark (connections pinned by the NAT ruleset, sticky hosts);
 * - `linux.default-route/main`: the weighted multipath default for new connections, over the WANs of
 *   the best tier.
 */
import type { PropertyChange } from '../../../core/plan';
import type { ResourceHandler } from '../../../plan/handler';
import { ipRouteDelete, ipRouteReplace, ipRouteShow, ipRuleAdd, ipRuleDeleteAtPriority, ipRuleShow, type RouteSpec } from '../commands';
import { MARK_MASK, type LinuxContext, type WanFacts } from '../context';
import { parseIpRoutes, parseIpRules, type IpRoute, type IpRule } from '../parse';

// ---------------------------------------------------------------------------------------------
// Per-WAN tables

export interface RouteTableValue {
  readonly wan: string;
  readonly table: number;
  /** Routes as `ip route replace` takes them (desired) or as read back (observed). */
  readonly routes: readonly RouteSpec[];
}

/** One comparable line per route: destination, gateway, device, source. */
export function routeKey(r: RouteSpec): string {
  const type = r.type !== undefined && r.type !== 'unicast' ? r.type : undefined;
  return [type, r.dst, r.via && `via ${r.via}`, r.dev && `dev ${r.dev}`, r.src && `src ${r.src}`, type && r.metric !== undefined && `metric ${r.metric}`].filter(Boolean).join(' ');
}

function fromIpRoute(r: IpRoute, table: number): RouteSpec {
  const type = r.type === 'unreachable' || r.type === 'blackhole' || r.type === 'prohibit' ? r.type : undefined;
  return { dst: r.dst, table, via: r.gateway, dev: r.dev, src: r.prefsrc, ...(type ? { type, metric: r.metric } : {}) };
}

/**
 * The last resort of a WAN's table: when the WAN's own default is ignored (link down, with
 * ignore_routes_with_linkdown), traffic that must use this WAN — its probes, sticky hosts — gets
 * "unreachable" instead of falling through to the main table and leaking out of the other WAN,
 * where it would be NATed to the wrong address and make a dead line look alive.
 */
export const WAN_TABLE_FALLBACK_METRIC = 65535;

/** A table's routes; a table that was never created reads as empty (ip exits 2: "FIB table does not exist"). */
async function readTable(ctx: LinuxContext, table: number): Promise<IpRoute[]> {
  const res = await ctx.router.read(ipRouteShow(table), [0, 2]);
  if (res.code === 2) {
    if (/does not exist/.test(res.stderr)) return [];
    await ctx.router.read(ipRouteShow(table)); // rethrows with the message
  }
  return parseIpRoutes(res.stdout);
}

function tableRoutes(ctx: LinuxContext, w: WanFacts): RouteSpec[] {
  return [
    { dst: w.subnet, table: w.table, dev: w.interface, src: w.address, scope: 'link' },
    { dst: ctx.lan.subnet, table: w.table, dev: ctx.lan.interface, scope: 'link' },
    { dst: 'default', table: w.table, via: w.gateway, dev: w.interface },
    { dst: 'default', table: w.table, type: 'unreachable', metric: WAN_TABLE_FALLBACK_METRIC },
  ];
}

function diffKeys(desired: readonly string[], observed: readonly string[]): PropertyChange[] {
  const d = [...desired].sort();
  const o = [...observed].sort();
  return JSON.stringify(d) === JSON.stringify(o) ? [] : [{ path: 'routes', before: o, after: d }];
}

export const routeTableHandler: ResourceHandler<LinuxContext, RouteTableValue, RouteTableValue> = {
  kind: 'linux.route-table',
  desired(ctx) {
    return ctx.wans.map((w) => ({ address: `linux.route-table/${w.name}`, dependsOn: [], value: { wan: w.name, table: w.table, routes: tableRoutes(ctx, w) } }));
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      const routes = (await readTable(ctx, d.value.table)).filter((r) => ['unicast', 'unreachable', 'blackhole', 'prohibit'].includes(r.type ?? 'unicast'));
      if (routes.length > 0) out.push({ address: d.address, value: { wan: d.value.wan, table: d.value.table, routes: routes.map((r) => fromIpRoute(r, d.value.table)) } });
    }
    return out;
  },
  diff(desired, observed) {
    const props = diffKeys(desired.routes.map(routeKey), (observed?.routes ?? []).map(routeKey));
    if (props.length === 0) return { action: 'noop', properties: [], disruption: [] };
    return { action: observed ? 'update' : 'create', properties: props, disruption: ['none'], reason: `routing table ${desired.table} for WAN ${desired.wan}` };
  },
  async apply(ctx, change, observed) {
    const want = change.desired;
    const have = new Set((observed?.routes ?? []).map(routeKey));
    // Add or overwrite first, then remove leftovers, so the table never lacks its default route.
    for (const r of want.routes) if (!have.has(routeKey(r))) await ctx.router.write(ipRouteReplace(r));
    const wanted = new Set(want.routes.map(routeKey));
    const wantedDst = new Set(want.routes.map((r) => `${r.type ?? 'unicast'} ${r.dst} ${r.metric ?? 0}`));
    for (const r of observed?.routes ?? []) {
      if (wanted.has(routeKey(r)) || wantedDst.has(`${r.type ?? 'unicast'} ${r.dst} ${r.metric ?? 0}`)) continue;
      await ctx.router.write(ipRouteDelete({ dst: r.dst, table: want.table, ...(r.type ? { type: r.type } : {}), ...(r.metric !== undefined ? { metric: r.metric } : {}) }));
    }
    const back = (await readTable(ctx, want.table)).map((r) => fromIpRoute(r, want.table));
    return { wan: want.wan, table: want.table, routes: back };
  },
};

// ---------------------------------------------------------------------------------------------
// Rules

export interface RuleValue {
  readonly priority: number;
  /** What the rule at this priority must say, e.g. `from 100.64.1.2 lookup 101`. */
  readonly rule: string;
  readonly from?: string;
  readonly fwmark?: { readonly value: number; readonly mask: number };
  readonly table: number;
}

export interface ObservedRules {
  readonly priority: number;
  /** Every rule found at this priority (more than one is drift too). */
  readonly rules: readonly string[];
}

export function ruleKey(r: IpRule): string {
  const parts: string[] = [];
  if (r.src !== undefined && r.src !== 'all') parts.push(`from ${r.src}${r.srclen !== undefined && r.srclen !== 32 ? `/${r.srclen}` : ''}`);
  if (r.dst !== undefined && r.dst !== 'all') parts.push(`to ${r.dst}${r.dstlen !== undefined && r.dstlen !== 32 ? `/${r.dstlen}` : ''}`);
  if (r.fwmark !== undefined) parts.push(`fwmark ${r.fwmark}/${r.fwmask ?? '0xffffffff'}`);
  if (r.iif !== undefined) parts.push(`iif ${r.iif}`);
  parts.push(`lookup ${r.table ?? '?'}`);
  return parts.join(' ');
}

function desiredRules(ctx: LinuxContext): RuleValue[] {
  return ctx.wans.flatMap((w) => [
    { priority: w.sourceRulePriority, rule: `from ${w.address} lookup ${w.table}`, from: w.address, table: w.table },
    { priority: w.markRulePriority, rule: `fwmark 0x${w.mark.toString(16)}/0x${MARK_MASK.toString(16)} lookup ${w.table}`, fwmark: { value: w.mark, mask: MARK_MASK }, table: w.table },
  ]);
}

async function rulesAt(ctx: LinuxContext, priorities: readonly number[]): Promise<Map<number, string[]>> {
  const all = parseIpRules((await ctx.router.read(ipRuleShow())).stdout);
  const out = new Map<number, string[]>();
  for (const r of all) {
    if (!priorities.includes(r.priority)) continue;
    out.set(r.priority, [...(out.get(r.priority) ?? []), ruleKey(r)]);
  }
  return out;
}

export const ruleHandler: ResourceHandler<LinuxContext, RuleValue, ObservedRules> = {
  kind: 'linux.rule',
  desired(ctx) {
    return desiredRules(ctx).map((value) => ({ address: `linux.rule/${value.priority}`, dependsOn: [], value }));
  },
  async observe(ctx, desired) {
    const found = await rulesAt(
      ctx,
      desired.map((d) => d.value.priority),
    );
    return desired.flatMap((d) => {
      const rules = found.get(d.value.priority);
      return rules ? [{ address: d.address, value: { priority: d.value.priority, rules } }] : [];
    });
  },
  diff(desired, observed) {
    if (observed && observed.rules.length === 1 && observed.rules[0] === desired.rule) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: observed ? 'update' : 'create',
      properties: [{ path: `priority ${desired.priority}`, before: observed ? observed.rules : null, after: [desired.rule] }],
      disruption: ['none'],
    };
  },
  async apply(ctx, change, observed) {
    const want = change.desired;
    // Whatever sits at our priority goes; the count is known, so the loop is bounded.
    for (let i = 0; i < (observed?.rules.length ?? 0); i++) await ctx.router.write(ipRuleDeleteAtPriority(want.priority), { accept: () => true });
    await ctx.router.write(ipRuleAdd({ priority: want.priority, from: want.from, fwmark: want.fwmark, table: want.table }));
    const back = (await rulesAt(ctx, [want.priority])).get(want.priority) ?? [];
    return { priority: want.priority, rules: back };
  },
};

// ---------------------------------------------------------------------------------------------
// The multipath default route

export interface DefaultRouteValue {
  /** Next hops in dualwan.yaml order; a single next hop has weight 1. */
  readonly nexthops: readonly { readonly via: string; readonly dev: string; readonly weight: number }[];
}

/**
 * The WANs new connections use: those the running health monitor reports healthy, or, when no
 * monitor runs, those of the best (lowest) tier.
 */
export function activeWans(ctx: LinuxContext): WanFacts[] {
  if (ctx.monitorActive && ctx.monitorActive.length > 0) {
    const fromMonitor = ctx.wans.filter((w) => ctx.monitorActive!.includes(w.name));
    if (fromMonitor.length > 0) return fromMonitor;
  }
  const tier = Math.min(...ctx.wans.map((w) => w.tier));
  return ctx.wans.filter((w) => w.tier === tier);
}

/** The next hops of the default route over these WANs (what the boot script and the monitor write too). */
export function defaultNexthops(active: readonly Pick<WanFacts, 'gateway' | 'interface' | 'weight'>[]): DefaultRouteValue['nexthops'] {
  return active.map((w) => ({ via: w.gateway, dev: w.interface, weight: active.length === 1 ? 1 : w.weight }));
}

/** `ip route replace` argv for the default route over these next hops: one atomic change. */
export function defaultRouteSpec(hops: DefaultRouteValue['nexthops']): RouteSpec {
  const only = hops.length === 1 ? hops[0] : undefined;
  return only ? { dst: 'default', proto: 'static', via: only.via, dev: only.dev } : { dst: 'default', proto: 'static', nexthops: hops };
}

export function observedDefault(routes: readonly IpRoute[]): DefaultRouteValue | undefined {
  // Ours has no metric; a DHCP client's own default routes carry one and are left alone.
  const r = routes.find((x) => x.dst === 'default' && (x.metric === undefined || x.metric === 0));
  if (!r) return undefined;
  if (r.nexthops) return { nexthops: r.nexthops.map((n) => ({ via: n.gateway ?? '', dev: n.dev ?? '', weight: n.weight ?? 1 })) };
  return { nexthops: [{ via: r.gateway ?? '', dev: r.dev ?? '', weight: 1 }] };
}

function sortedHops(v: DefaultRouteValue): string[] {
  return v.nexthops.map((n) => `via ${n.via} dev ${n.dev} weight ${n.weight}`).sort();
}

export const defaultRouteHandler: ResourceHandler<LinuxContext, DefaultRouteValue, DefaultRouteValue> = {
  kind: 'linux.default-route',
  desired(ctx) {
    const active = activeWans(ctx);
    const nexthops = defaultNexthops(active);
    return [
      {
        address: 'linux.default-route/main',
        // The WAN tables and rules first, so marked and WAN-sourced traffic is never sent the wrong way.
        dependsOn: [...ctx.wans.map((w) => `linux.route-table/${w.name}`), ...ctx.wans.map((w) => `linux.rule/${w.sourceRulePriority}`)],
        value: { nexthops },
      },
    ];
  },
  async observe(ctx, desired) {
    const value = observedDefault(parseIpRoutes((await ctx.router.read(ipRouteShow('main'))).stdout));
    return value && desired[0] ? [{ address: desired[0].address, value }] : [];
  },
  diff(desired, observed) {
    const after = sortedHops(desired);
    const before = observed ? sortedHops(observed) : null;
    if (JSON.stringify(before) === JSON.stringify(after)) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: observed ? 'update' : 'create',
      properties: [{ path: 'nexthops', before, after }],
      disruption: ['none'],
      reason: 'new connections are spread over these next hops by weight; open connections keep their path',
    };
  },
  async apply(ctx, change) {
    await ctx.router.write(ipRouteReplace(defaultRouteSpec(change.desired.nexthops)));
    return observedDefault(parseIpRoutes((await ctx.router.read(ipRouteShow('main'))).stdout)) ?? { nexthops: [] };
  },
};
