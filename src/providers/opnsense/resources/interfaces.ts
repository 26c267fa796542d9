import { DualwanError } from '../../../core/errors';
import type { ResourceHandler } from '../../../plan/handler';
import type { OpnsenseContext } from '../context';
import { AssignmentRowSchema, SavedSchema } from '../schemas';
import { diffValues, step } from './common';

/** One interface assignment (`interfaces/assignment`, 26.7+): which device an identifier uses. */
export interface InterfaceValue {
  readonly identifier: string;
  /** the device, e.g. igc0, vtnet0, ue0 */
  readonly if: string;
  readonly descr: string;
  /** "1": the console does not ask to reassign at boot when the device is missing (a phone unplugged) */
  readonly lock: string;
}

const managed = (v: InterfaceValue) => ({ if: v.if, descr: v.descr, lock: v.lock });

async function readAssignments(ctx: OpnsenseContext, identifiers: readonly string[]): Promise<Map<string, InterfaceValue>> {
  const grid = await ctx.client.search('interfaces/assignment/search_item', AssignmentRowSchema);
  const out = new Map<string, InterfaceValue>();
  for (const r of grid.rows) {
    const id = r.identifier || r.uuid;
    if (identifiers.includes(id)) out.set(id, { identifier: id, if: r.if ?? '', descr: r.descr ?? '', lock: r.lock ?? '' });
  }
  return out;
}

export const interfaceHandler: ResourceHandler<OpnsenseContext, InterfaceValue, InterfaceValue> = {
  kind: 'opnsense.interface',
  desired(ctx) {
    // with proxmox.cutover, also the router's NIC on the host's cutover bridge (layout.hostLink)
    const link = ctx.layout.hostLink;
    return [...ctx.layout.interfaces, ...(link ? [link] : [])].map((i) => ({
      address: `opnsense.interface/${i.identifier}`,
      dependsOn: [],
      value: { identifier: i.identifier, if: i.device, descr: i.descr, lock: '1' },
    }));
  },
  async observe(ctx, desired) {
    const found = await readAssignments(
      ctx,
      desired.map((d) => d.value.identifier),
    );
    return desired.flatMap((d) => {
      const v = found.get(d.value.identifier);
      return v ? [{ address: d.address, value: v }] : [];
    });
  },
  diff(desired, observed) {
    if (!observed) {
      return {
        action: 'create',
        properties: [{ path: 'if', before: null, after: desired.if }],
        disruption: ['reloads-firewall'],
        reason: `${desired.identifier} is not assigned; the OPNsense API can add it but not enable it or give it an address (the bootstrap seeds that)`,
      };
    }
    const properties = diffValues(managed(desired), managed(observed));
    if (!properties.length) return { action: 'noop', properties: [], disruption: [] };
    const relink = properties.some((p) => p.path === 'if');
    return {
      action: 'update',
      properties,
      disruption: relink ? (desired.identifier === 'lan' ? ['drops-management-session', 'reloads-firewall'] : ['reloads-firewall']) : ['none'],
      reason: relink ? `${desired.identifier} moves to ${desired.if} when the assignment is applied` : undefined,
    };
  },
  async apply(ctx, change, observed) {
    const d = change.desired;
    if (!observed) {
      // add_item always takes the next free optN, disabled and without addresses (26.7.x).
      throw new DualwanError(
        'OPNSENSE_INTERFACE_MISSING',
        `OPNsense has no interface ${d.identifier} (${d.descr}); the API cannot create and enable it with an address.`,
        { source: 'user', remedy: `Assign ${d.if} as ${d.descr} with IPv4 ${ctx.layout.hostLink?.identifier === d.identifier ? `static ${ctx.layout.hostLink.address}/${ctx.layout.hostLink.prefix}` : 'DHCP'} in Interfaces > Assignments (or let the dualwan bootstrap seed it), then run apply again.` },
      );
    }
    const name = `${d.identifier} (${d.if})`;
    await step('update', `interface ${name}`, () =>
      ctx.client.write(`interfaces/assignment/set_item/${encodeURIComponent(d.identifier)}`, { interface: managed(d) }, { verb: 'update', resource: 'interface', name }, SavedSchema),
    );
    const back = (await readAssignments(ctx, [d.identifier])).get(d.identifier);
    if (!back) throw new DualwanError('READ_BACK_MISSING', `interface ${d.identifier} is gone after the write`, { source: 'remote' });
    return back;
  },
  postActions() {
    return [{ id: 'interfaces/assignment/reconfigure', title: 'apply interface assignments (interfaces/assignment/reconfigure)', run: async (ctx) => void (await ctx.client.action('interfaces/assignment/reconfigure')) }];
  },
};
