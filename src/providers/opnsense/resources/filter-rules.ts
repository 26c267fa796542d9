import { DualwanError, ValidationError } from '../../../core/errors';
import type { ResourceHandler } from '../../../plan/handler';
import type { OpnsenseContext } from '../context';
import { isDrillRuleDescription, noteDrillRules } from '../drill';
import { FilterRuleRowSchema, SavedSchema, type FilterRuleRow } from '../schemas';
import { diffValues, step } from './common';

/** The `rule` fields dualwan sets on a LAN filter rule (firewall/filter). */
export interface RuleFields {
  readonly enabled: string;
  readonly action: string;
  readonly quick: string;
  readonly interface: string;
  readonly direction: string;
  readonly ipprotocol: string;
  readonly protocol: string;
  readonly source_net: string;
  readonly destination_net: string;
  /** "" = normal routing; a gateway or gateway-group name = policy routing */
  readonly gateway: string;
  readonly sequence: string;
  readonly description: string;
}
export interface RuleDesired {
  readonly fields: RuleFields;
  /** Descriptions by which an existing rule is taken over, ours first (e.g. the factory LAN rule). */
  readonly match: readonly string[];
}
export interface RuleObserved extends RuleFields {
  readonly uuid: string;
}

/** The factory "Default allow LAN to any rule" (an API-editable MVC rule since 26.7). */
export const FACTORY_LAN_RULE = 'Default allow LAN to any rule';

const base = { enabled: '1', action: 'pass', quick: '1', interface: 'lan', direction: 'in', ipprotocol: 'inet', protocol: 'any', source_net: 'lan' };

/**
 * The rule that lets the Proxmox host's own traffic out of the cutover link (proxmox.cutover). The
 * bootstrap seeds it (OPNsense passes nothing on a new interface without a rule, and before the
 * cutover dualwan reaches the router through that very link); this stage then finds it by this
 * description and keeps it.
 */
export function hostOutRuleDescription(linkDescr: string): string {
  return `dualwan: Proxmox host network (${linkDescr}) out, no gateway`;
}

/**
 * LAN rules, in evaluation order (lower sequence first):
 * 1. traffic to the router itself (DNS, GUI, NTP…) with no gateway — a policy-routed rule would
 *    send local DNS out of a WAN (OPNsense multi-WAN how-to); with proxmox.cutover also the LAN
 *    to the host's network and, on that interface, the host's traffic out (both no gateway);
 * 2. one rule per sticky host, routed to its WAN's gateway;
 * 3. the LAN default rule (the factory rule, taken over) routed through the gateway group.
 */
export function ruleSet(ctx: Pick<OpnsenseContext, 'state' | 'layout'>): { key: string; value: RuleDesired; dependsOn: string[] }[] {
  const out: { key: string; value: RuleDesired; dependsOn: string[] }[] = [];
  const toRouter = `dualwan: LAN to this router (DNS, GUI), no gateway`;
  out.push({ key: 'lan-to-router', value: { fields: { ...base, destination_net: 'lanip', gateway: '', sequence: '10', description: toRouter }, match: [toRouter] }, dependsOn: ['opnsense.interface/lan'] });
  const link = ctx.layout.hostLink;
  if (link) {
    // proxmox.cutover: the host's network behind the router. LAN to it before any policy-routed
    // rule (the gateway group would send it out of a WAN); the host's own traffic out, no gateway.
    const toHost = `dualwan: LAN to the Proxmox host network (${link.descr}), no gateway`;
    out.push({
      key: 'lan-to-host',
      value: { fields: { ...base, destination_net: link.identifier, gateway: '', sequence: '11', description: toHost }, match: [toHost] },
      dependsOn: ['opnsense.interface/lan', `opnsense.interface/${link.identifier}`],
    });
    const hostOut = hostOutRuleDescription(link.descr);
    out.push({
      key: 'host-out',
      value: { fields: { ...base, interface: link.identifier, source_net: link.identifier, destination_net: 'any', gateway: '', sequence: '12', description: hostOut }, match: [hostOut] },
      dependsOn: [`opnsense.interface/${link.identifier}`],
    });
  }
  ctx.state.policy.stickyHosts.forEach((h, i) => {
    const w = ctx.layout.wans.find((x) => x.wan.name === h.wan);
    if (!w) return;
    const description = `dualwan: ${h.destination} always via ${w.gatewayName} (${w.wan.name})`;
    out.push({
      key: `sticky-${i + 1}`,
      value: { fields: { ...base, destination_net: h.destination, gateway: w.gatewayName, sequence: String(20 + i), description }, match: [description] },
      dependsOn: [`opnsense.gateway/${w.gatewayName}`, 'opnsense.interface/lan'],
    });
  });
  const group = ctx.layout.groupName;
  const lanDefault = `dualwan: LAN to any via ${group} (was: ${FACTORY_LAN_RULE})`;
  out.push({
    key: 'lan-default',
    value: { fields: { ...base, destination_net: 'any', gateway: group, sequence: '100', description: lanDefault }, match: [lanDefault, FACTORY_LAN_RULE] },
    dependsOn: [`opnsense.gateway-group/${group}`, 'opnsense.interface/lan'],
  });
  return out;
}

const FIELD_KEYS = ['enabled', 'action', 'quick', 'interface', 'direction', 'ipprotocol', 'protocol', 'source_net', 'destination_net', 'gateway', 'sequence', 'description'] as const;

function observedOf(r: FilterRuleRow): RuleObserved {
  const v = Object.fromEntries(FIELD_KEYS.map((k) => [k, String(r[k] ?? '')])) as unknown as RuleFields;
  return { ...v, uuid: r.uuid };
}

async function readRules(ctx: OpnsenseContext, noteDrill = false): Promise<RuleObserved[]> {
  const grid = await ctx.client.search('firewall/filter/search_rule', FilterRuleRowSchema);
  // a verify drill's temporary rule is never planned: apply removes it only once stale (drill.ts)
  if (noteDrill) noteDrillRules(ctx, grid.rows);
  return grid.rows.filter((r) => !isDrillRuleDescription(r.description)).map(observedOf);
}

/** The rule a desired rule refers to: ours by description, else one to take over (IPv4 LAN rules only). */
function pick(rules: readonly RuleObserved[], d: RuleDesired, taken: Set<string>): RuleObserved | undefined {
  for (const m of d.match) {
    const hit = rules.find((r) => !taken.has(r.uuid) && r.description === m && r.interface === d.fields.interface && r.ipprotocol === d.fields.ipprotocol);
    if (hit) return hit;
  }
  return undefined;
}

export const filterRuleHandler: ResourceHandler<OpnsenseContext, RuleDesired, RuleObserved> = {
  kind: 'opnsense.filter-rule',
  desired(ctx) {
    return ruleSet(ctx).map((r) => ({ address: `opnsense.filter-rule/${r.key}`, dependsOn: r.dependsOn, value: r.value }));
  },
  async observe(ctx, desired) {
    const rules = await readRules(ctx, true);
    const taken = new Set<string>();
    const out = [];
    for (const d of desired) {
      const o = pick(rules, d.value, taken);
      if (!o) continue;
      taken.add(o.uuid);
      out.push({ address: d.address, value: o });
    }
    return out;
  },
  diff(desired, observed) {
    if (!observed) {
      return { action: 'create', properties: Object.entries(desired.fields).map(([k, v]) => ({ path: k, before: null, after: v })), disruption: ['reloads-firewall'] };
    }
    const properties = diffValues({ ...desired.fields }, { ...observed });
    if (!properties.length) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: 'update',
      properties,
      disruption: ['reloads-firewall'],
      reason: observed.description === FACTORY_LAN_RULE ? 'takes over the factory LAN rule: new connections leave through the gateway group' : undefined,
    };
  },
  async apply(ctx, change, observed) {
    const d = change.desired;
    const verb = observed ? 'update' : 'create';
    const name = change.address.slice(change.address.indexOf('/') + 1);
    const meta = { verb, resource: 'firewall rule', name };
    const body = { rule: { ...d.fields } };
    const write = () =>
      observed
        ? ctx.client.write(`firewall/filter/set_rule/${encodeURIComponent(observed.uuid)}`, body, meta, SavedSchema)
        : ctx.client.write('firewall/filter/add_rule', body, meta, SavedSchema);
    await step(verb, `firewall rule ${name}`, () => writeWaitingForGatewayList(ctx, d.fields.gateway, write));
    const rules = await readRules(ctx);
    const back = observed ? rules.find((r) => r.uuid === observed.uuid) : rules.find((r) => r.description === d.fields.description);
    if (!back) throw new DualwanError('READ_BACK_MISSING', `firewall rule "${d.fields.description}" is not listed after the write`, { source: 'remote' });
    return back;
  },
  postActions() {
    return [{ id: 'firewall/filter/apply', title: 'load the firewall rules (firewall/filter/apply)', run: async (ctx) => void (await ctx.client.action('firewall/filter/apply', undefined, /^ok$/i)) }];
  },
};

/**
 * configd caches OPNsense's list of gateways and groups for 20 s, so a rule naming a group stored
 * a moment ago can be refused ("rule.gateway"). Retry that one refusal, bounded, and say so.
 */
async function writeWaitingForGatewayList<T>(ctx: OpnsenseContext, gateway: string, write: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ctx.gatewayListWaitMs;
  let told = false;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (e) {
      const gatewayRefused = e instanceof ValidationError && Object.keys(e.validations).some((k) => k.endsWith('.gateway'));
      if (!gatewayRefused || !gateway || Date.now() >= deadline || attempt >= 30) throw e;
      if (!told) {
        ctx.ui.notify({ code: 'OPNSENSE_GATEWAY_LIST_WAIT', level: 'info', text: `OPNsense does not list ${gateway} yet (its gateway list is cached for up to 20 s); retrying for up to ${Math.round(ctx.gatewayListWaitMs / 1000)} s.` });
        told = true;
      }
      await ctx.sleep(Math.min(2_000, Math.max(0, deadline - Date.now())));
    }
  }
}
