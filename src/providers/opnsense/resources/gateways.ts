import type { ResourceHandler } from '../../../plan/handler';
import type { OpnsenseContext } from '../context';
import { dpingerSettings, gatewayPriority } from '../layout';
import { GatewayRowSchema, SavedSchema, type GatewayRow } from '../schemas';
import { diffValues, step } from './common';

/** The `gateway_item` fields dualwan sets, as OPNsense's strings. */
export interface GatewayFields {
  readonly name: string;
  readonly descr: string;
  readonly interface: string;
  readonly ipprotocol: string;
  /** "" = dynamic (taken from DHCP) */
  readonly gateway: string;
  readonly disabled: string;
  /** "Upstream gateway": a candidate for the default route. */
  readonly defaultgw: string;
  /** OPNsense leaves monitoring off for DHCP gateways ("1"); dualwan switches it on. */
  readonly monitor_disable: string;
  readonly monitor_noroute: string;
  readonly monitor: string;
  /** Failover states: kill this gateway's states when it goes down. */
  readonly monitor_killstates: string;
  /** Failback states: kill this gateway's states when a preferred gateway returns. */
  readonly monitor_killstates_priority: string;
  readonly force_down: string;
  readonly priority: string;
  readonly weight: string;
  readonly interval: string;
  readonly loss_interval: string;
  readonly time_period: string;
  readonly latencylow: string;
  readonly latencyhigh: string;
  readonly losslow: string;
  readonly losshigh: string;
}

export interface GatewayObserved extends Partial<GatewayFields> {
  /** config uuid once stored; absent for a virtual gateway */
  readonly uuid?: string;
  /** OPNsense derived it from DHCP and has not stored it */
  readonly virtual: boolean;
}

export function gatewayFields(ctx: Pick<OpnsenseContext, 'state' | 'layout'>, index: number): GatewayFields {
  const { state, layout } = ctx;
  const w = layout.wans[index]!;
  const wan = w.wan;
  const dp = dpingerSettings(state.policy.monitor, wan);
  const s = (n: number) => String(n);
  return {
    name: w.gatewayName,
    descr: wan.description,
    interface: w.identifier,
    ipprotocol: 'inet',
    gateway: wan.addressing.mode === 'static' ? wan.addressing.gateway : '',
    disabled: '0',
    defaultgw: '1',
    monitor_disable: '0',
    monitor_noroute: '0',
    monitor: wan.monitorIps[0] ?? '',
    monitor_killstates: state.policy.killStatesOnFailover ? '1' : '0',
    monitor_killstates_priority: wan.metered && state.policy.killMeteredStatesOnFailback ? '1' : '0',
    force_down: '0',
    priority: s(gatewayPriority(state, index)),
    weight: s(wan.weight),
    interval: s(dp.interval),
    loss_interval: s(dp.loss_interval),
    time_period: s(dp.time_period),
    latencylow: s(dp.latencylow),
    latencyhigh: s(dp.latencyhigh),
    losslow: s(dp.losslow),
    losshigh: s(dp.losshigh),
  };
}

/** A search_gateway row in the same terms as the fields dualwan posts. */
export function observedFromRow(r: GatewayRow): GatewayObserved {
  const virtual = r.virtual ?? false;
  return {
    ...(virtual || !r.uuid ? {} : { uuid: r.uuid }),
    virtual,
    name: r.name,
    descr: r.descr ?? '',
    interface: r.interface,
    ipprotocol: r.ipprotocol,
    // Rows show a dynamic gateway's current address; the stored value is empty.
    gateway: r.dynamic ? '' : (r.gateway ?? ''),
    disabled: r.disabled ? '1' : '0',
    defaultgw: r.upstream ? '1' : '0',
    monitor_disable: r.monitor_disable ?? '1',
    monitor_noroute: r.monitor_noroute ?? '0',
    monitor: r.monitor ?? '',
    monitor_killstates: r.monitor_killstates ?? '0',
    monitor_killstates_priority: r.monitor_killstates_priority ?? '0',
    force_down: r.force_down ?? '0',
    priority: r.priority ?? '',
    weight: r.weight ?? '',
    interval: r.interval ?? '',
    loss_interval: r.loss_interval ?? '',
    time_period: r.time_period ?? '',
    latencylow: r.latencylow ?? '',
    latencyhigh: r.latencyhigh ?? '',
    losslow: r.losslow ?? '',
    losshigh: r.losshigh ?? '',
  };
}

async function readGateways(ctx: OpnsenseContext): Promise<Map<string, GatewayObserved>> {
  const grid = await ctx.client.search('routing/settings/search_gateway', GatewayRowSchema);
  return new Map(grid.rows.map((r) => [r.name, observedFromRow(r)]));
}

export const gatewayHandler: ResourceHandler<OpnsenseContext, GatewayFields, GatewayObserved> = {
  kind: 'opnsense.gateway',
  desired(ctx) {
    return ctx.layout.wans.map((w, i) => ({
      address: `opnsense.gateway/${w.gatewayName}`,
      dependsOn: [`opnsense.interface/${w.identifier}`],
      value: gatewayFields(ctx, i),
    }));
  },
  async observe(ctx, desired) {
    const all = await readGateways(ctx);
    return desired.flatMap((d) => {
      const o = all.get(d.value.name);
      return o ? [{ address: d.address, value: o }] : [];
    });
  },
  diff(desired, observed) {
    if (!observed) {
      return {
        action: 'create',
        properties: Object.entries(desired).map(([k, v]) => ({ path: k, before: null, after: v })),
        disruption: ['reloads-firewall'],
        reason: desired.gateway === '' ? 'OPNsense derives this gateway from DHCP once the interface has its description; stored with monitoring on' : undefined,
      };
    }
    const { virtual: _v, uuid: _u, ...fields } = observed;
    const properties = diffValues({ ...desired }, fields);
    if (!properties.length) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: 'update',
      properties,
      disruption: ['reloads-firewall'],
      reason: observed.virtual ? 'stores the gateway OPNsense derives from DHCP (monitoring is off until then)' : undefined,
    };
  },
  async apply(ctx, change, observed) {
    const d = change.desired;
    const verb = observed ? 'update' : 'create';
    await step(verb, `gateway ${d.name}`, async () => {
      const meta = { verb, resource: 'gateway', name: d.name };
      const body = { gateway_item: { ...d } };
      if (observed?.uuid) return ctx.client.write(`routing/settings/set_gateway/${encodeURIComponent(observed.uuid)}`, body, meta, SavedSchema);
      // A DHCP gateway is stored by naming it in the path: set_gateway/<name> generates a uuid.
      if (d.gateway === '') return ctx.client.write(`routing/settings/set_gateway/${encodeURIComponent(d.name)}`, body, meta, SavedSchema);
      return ctx.client.write('routing/settings/add_gateway', body, meta, SavedSchema);
    });
    const back = (await readGateways(ctx)).get(d.name);
    if (!back) throw new Error(`gateway ${d.name} is not listed after the write`);
    return back;
  },
  postActions() {
    return [
      {
        id: 'routing/settings/reconfigure',
        title: 'apply gateways: routes, monitors, filter reload (routing/settings/reconfigure)',
        run: async (ctx) => void (await ctx.client.action('routing/settings/reconfigure')),
      },
    ];
  },
};
