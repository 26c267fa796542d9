/**
 * `linux.nft-table/dualwan`: NAT on every WAN, stateful forwarding from the LAN, and connection
 * marks that keep a connection on the WAN it was NATed to (shared/research/linux-lab.md §3:
 * sticky marks plus a flush of the failed WAN's entries is the recommended combination).
 *
 * The table is replaced as a whole in one `nft -f` transaction. A later run recognises it by the
 * fingerprint of the rendered text, stored as a rule comment in a chain nothing jumps to, plus the
 * number of rules in each chain (so a rule added or removed by hand shows up as drift).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ResourceHandler } from '../../../plan/handler';
import { NFT_META_CHAIN, nftApplyStdin, nftListTable, renderNatRuleset, renderedRuleCounts, type NatRulesetSpec } from '../commands';
import { MARK_MASK, NFT_TABLE, type LinuxContext } from '../context';

export interface NatTableValue {
  readonly table: string;
  /** Fingerprint of the rendered ruleset; null when the table exists but was not written by us. */
  readonly fingerprint: string | null;
  readonly rulesPerChain: Readonly<Record<string, number>>;
}

export interface NatTableDesired extends NatTableValue {
  readonly ruleset: string;
}

const NOTE_PREFIX = 'dualwan ruleset';

export function natRulesetSpec(ctx: LinuxContext): NatRulesetSpec {
  const markOf = new Map(ctx.wans.map((w) => [w.name, w.mark]));
  return {
    table: NFT_TABLE,
    lanInterfaces: [ctx.lan.interface],
    wans: ctx.wans.map((w) => ({ name: w.name, interface: w.interface, mark: w.mark })),
    stickyConnections: ctx.state.policy.stickyConnections,
    stickyHosts: ctx.state.policy.stickyHosts.flatMap((h) => {
      const mark = markOf.get(h.wan);
      return mark === undefined ? [] : [{ destination: h.destination, mark }];
    }),
    forwardPolicy: 'drop',
    markMask: MARK_MASK,
  };
}

/** The ruleset text with its own fingerprint inside. */
export function desiredNatTable(ctx: LinuxContext): NatTableDesired {
  const spec = natRulesetSpec(ctx);
  const fingerprint = createHash('sha256').update(renderNatRuleset(spec)).digest('hex').slice(0, 16);
  const ruleset = renderNatRuleset({ ...spec, note: `${NOTE_PREFIX} ${fingerprint}` });
  return { table: spec.table, fingerprint, rulesPerChain: renderedRuleCounts(ruleset), ruleset };
}

const NftJson = z.object({
  nftables: z.array(
    z.object({
      rule: z.object({ chain: z.string(), comment: z.string().optional() }).optional(),
      chain: z.object({ name: z.string() }).optional(),
    }),
  ),
});

/** Reads `nft -j list table ip <name>` output. */
export function parseNatTable(table: string, json: string): NatTableValue {
  const parsed = NftJson.parse(JSON.parse(json));
  const rulesPerChain: Record<string, number> = {};
  let fingerprint: string | null = null;
  for (const item of parsed.nftables) {
    if (item.chain) rulesPerChain[item.chain.name] ??= 0;
    if (item.rule) {
      rulesPerChain[item.rule.chain] = (rulesPerChain[item.rule.chain] ?? 0) + 1;
      const note = item.rule.chain === NFT_META_CHAIN ? item.rule.comment : undefined;
      if (note?.startsWith(`${NOTE_PREFIX} `)) fingerprint = note.slice(NOTE_PREFIX.length + 1);
    }
  }
  return { table, fingerprint, rulesPerChain };
}

async function readTable(ctx: LinuxContext, table: string): Promise<NatTableValue | undefined> {
  // nft exits 1 ("No such file or directory") when the table does not exist.
  const res = await ctx.router.read(nftListTable('ip', table), [0, 1]);
  if (res.code === 1) return undefined;
  return parseNatTable(table, res.stdout);
}

export const natTableHandler: ResourceHandler<LinuxContext, NatTableDesired, NatTableValue> = {
  kind: 'linux.nft-table',
  desired(ctx) {
    return [{ address: `linux.nft-table/${NFT_TABLE}`, dependsOn: [], value: desiredNatTable(ctx) }];
  },
  async observe(ctx, desired) {
    const d = desired[0];
    if (!d) return [];
    const value = await readTable(ctx, d.value.table);
    return value ? [{ address: d.address, value }] : [];
  },
  diff(desired, observed) {
    const same = observed !== undefined && observed.fingerprint === desired.fingerprint && JSON.stringify(sortKeys(observed.rulesPerChain)) === JSON.stringify(sortKeys(desired.rulesPerChain));
    if (same) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: observed ? 'update' : 'create',
      properties: [
        { path: 'fingerprint', before: observed?.fingerprint ?? null, after: desired.fingerprint },
        { path: 'rulesPerChain', before: observed?.rulesPerChain ?? null, after: desired.rulesPerChain },
      ],
      disruption: ['reloads-firewall'],
      reason: 'the table is replaced in one transaction; connections already tracked keep flowing',
    };
  },
  async apply(ctx, change) {
    await ctx.router.write(nftApplyStdin(), { stdin: change.desired.ruleset });
    return (await readTable(ctx, change.desired.table)) ?? { table: change.desired.table, fingerprint: null, rulesPerChain: {} };
  },
};

function sortKeys(r: Readonly<Record<string, number>>): [string, number][] {
  return Object.entries(r).sort(([a], [b]) => a.localeCompare(b));
}
