import { DualwanError } from '../../../core/errors';
import type { ResourceHandler } from '../../../plan/handler';
import type { OpnsenseContext } from '../context';
import { SavedSchema, SnatGeneralSchema, SnatRuleRowSchema } from '../schemas';
import { diffValues, step } from './common';

/**
 * Outbound NAT (firewall/source_nat, one controller, one apply): the mode, and one explicit rule
 * per WAN translating the LAN to that WAN's own address.
 *
 * The mode is `hybrid`: OPNsense's automatic rules stay (they already cover DHCP WANs), and the
 * explicit per-WAN rules make the translation written down — visible in the plan and checkable by
 * verify — instead of inferred. Since 26.1.11/26.7 explicit (MVC) rules are only loaded in hybrid
 * or manual mode, so the rules depend on the mode. `target: ""` means the outbound interface's
 * address (26.7+), which follows a DHCP lease.
 */
export type NatValue =
  | { readonly type: 'mode'; readonly snat_mode: string }
  | {
      readonly type: 'rule';
      readonly enabled: string;
      readonly nonat: string;
      readonly sequence: string;
      readonly interface: string;
      readonly ipprotocol: string;
      readonly protocol: string;
      readonly source_net: string;
      readonly destination_net: string;
      readonly target: string;
      readonly description: string;
    };
export type NatObserved = NatValue & { readonly uuid?: string };

export const NAT_MODE = 'hybrid';
const RULE_KEYS = ['enabled', 'nonat', 'sequence', 'interface', 'ipprotocol', 'protocol', 'source_net', 'destination_net', 'target', 'description'] as const;

function fieldsOf(v: NatValue): Record<string, string> {
  if (v.type === 'mode') return { snat_mode: v.snat_mode };
  return Object.fromEntries(RULE_KEYS.map((k) => [k, v[k]]));
}

async function readMode(ctx: OpnsenseContext): Promise<string> {
  const g = await ctx.client.get('firewall/source_nat/get', SnatGeneralSchema);
  const selected = Object.entries(g.filter.general.snat_mode).find(([, o]) => o.selected);
  return selected?.[0] ?? '';
}

async function readRules(ctx: OpnsenseContext): Promise<Map<string, NatObserved>> {
  const grid = await ctx.client.search('firewall/source_nat/search_rule', SnatRuleRowSchema);
  const out = new Map<string, NatObserved>();
  for (const r of grid.rows) {
    if (r.is_automatic || !r.description) continue; // synthetic rows of the automatic generator
    out.set(r.description, {
      type: 'rule',
      uuid: r.uuid,
      enabled: r.enabled ?? '',
      nonat: r.nonat ?? '',
      sequence: r.sequence ?? '',
      interface: r.interface ?? '',
      ipprotocol: r.ipprotocol ?? '',
      protocol: r.protocol ?? '',
      source_net: r.source_net ?? '',
      destination_net: r.destination_net ?? '',
      target: r.target ?? '',
      description: r.description,
    });
  }
  return out;
}

export const outboundNatHandler: ResourceHandler<OpnsenseContext, NatValue, NatObserved> = {
  kind: 'opnsense.outbound-nat',
  desired(ctx) {
    const mode = { address: 'opnsense.outbound-nat/mode', dependsOn: [], value: { type: 'mode', snat_mode: NAT_MODE } as NatValue };
    const rules = ctx.layout.wans.map((w, i) => ({
      address: `opnsense.outbound-nat/${w.wan.name}`,
      dependsOn: ['opnsense.outbound-nat/mode', `opnsense.interface/${w.identifier}`],
      value: {
        type: 'rule',
        enabled: '1',
        nonat: '0',
        sequence: String(100 + i),
        interface: w.identifier,
        ipprotocol: 'inet',
        protocol: 'any',
        source_net: 'lan',
        destination_net: 'any',
        target: '',
        description: `dualwan: LAN out of ${w.descr} (${w.wan.name})`,
      } as NatValue,
    }));
    return [mode, ...rules];
  },
  async observe(ctx, desired) {
    const out = [];
    const mode = desired.find((d) => d.value.type === 'mode');
    if (mode) out.push({ address: mode.address, value: { type: 'mode', snat_mode: await readMode(ctx) } as NatObserved });
    const wanted = desired.filter((d) => d.value.type === 'rule');
    if (wanted.length) {
      const rules = await readRules(ctx);
      for (const d of wanted) {
        const o = d.value.type === 'rule' ? rules.get(d.value.description) : undefined;
        if (o) out.push({ address: d.address, value: o });
      }
    }
    return out;
  },
  diff(desired, observed) {
    if (!observed) {
      return { action: 'create', properties: Object.entries(fieldsOf(desired)).map(([k, v]) => ({ path: k, before: null, after: v })), disruption: ['reloads-firewall'] };
    }
    const properties = diffValues(fieldsOf(desired), fieldsOf(observed));
    return properties.length ? { action: 'update', properties, disruption: ['reloads-firewall'] } : { action: 'noop', properties: [], disruption: [] };
  },
  async apply(ctx, change, observed) {
    const d = change.desired;
    if (d.type === 'mode') {
      await step('set', `outbound NAT mode ${d.snat_mode}`, () =>
        ctx.client.write('firewall/source_nat/set', { filter: { general: { snat_mode: d.snat_mode } } }, { verb: 'set', resource: 'outbound NAT mode', name: d.snat_mode }, SavedSchema),
      );
      return { type: 'mode', snat_mode: await readMode(ctx) };
    }
    const verb = observed ? 'update' : 'create';
    const name = change.address.slice(change.address.indexOf('/') + 1);
    await step(verb, `outbound NAT rule ${name}`, () => {
      const meta = { verb, resource: 'outbound NAT rule', name };
      const body = { rule: fieldsOf(d) };
      return observed?.uuid
        ? ctx.client.write(`firewall/source_nat/set_rule/${encodeURIComponent(observed.uuid)}`, body, meta, SavedSchema)
        : ctx.client.write('firewall/source_nat/add_rule', body, meta, SavedSchema);
    });
    const back = (await readRules(ctx)).get(d.description);
    if (!back) throw new DualwanError('READ_BACK_MISSING', `outbound NAT rule "${d.description}" is not listed after the write`, { source: 'remote' });
    return back;
  },
  postActions() {
    return [{ id: 'firewall/source_nat/apply', title: 'load the outbound NAT rules (firewall/source_nat/apply)', run: async (ctx) => void (await ctx.client.action('firewall/source_nat/apply', undefined, /^ok$/i)) }];
  },
};
