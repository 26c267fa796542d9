/**
 * Typed builders for the commands the Linux backend runs on the router. Each returns an argv
 * array (never a shell string); `ssh.ts` quotes it. Values are checked here even though the config
 * layer already validated them, because some of them end up inside an nftables ruleset, where no
 * shell quoting protects anything: a bad value is refused, never escaped.
 */
import { DualwanError } from '../../core/errors';
import type { Argv } from './shell';

export class CommandArgumentError extends DualwanError {
  constructor(message: string) {
    super('COMMAND_ARGUMENT_INVALID', message, { source: 'tool' });
  }
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const CIDR_RE = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}/(?:3[0-2]|[12]?\\d)$`);
/** Linux interface names: at most 15 bytes, no slash, no whitespace; we also refuse quotes. */
const IFNAME_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;
const SYSCTL_KEY_RE = /^[a-z0-9_]+(?:[./][A-Za-z0-9_.@:-]+)+$/;
const NFT_IDENT_RE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
/** Words nft 1.0.x will not take as a chain name (see shared/research/linux-lab.md §5). */
const NFT_RESERVED = new Set(['fwd', 'mark', 'table', 'chain', 'rule', 'set', 'map', 'meta', 'ct', 'ip', 'inet', 'filter', 'nat', 'route', 'type', 'hook']);

function check(ok: boolean, message: string): void {
  if (!ok) throw new CommandArgumentError(message);
}

export function isIpv4(text: string): boolean {
  return IPV4_RE.test(text);
}
export function isCidr(text: string): boolean {
  return CIDR_RE.test(text);
}
export function isInterfaceName(text: string): boolean {
  return IFNAME_RE.test(text) && text !== '.' && text !== '..';
}

function ipv4(text: string, what: string): string {
  check(isIpv4(text), `${what} is not an IPv4 address: ${JSON.stringify(text)}`);
  return text;
}
function prefixOrAddress(text: string, what: string): string {
  check(isIpv4(text) || isCidr(text), `${what} is not an IPv4 address or CIDR: ${JSON.stringify(text)}`);
  return text;
}
function ifname(text: string, what = 'interface'): string {
  check(isInterfaceName(text), `${what} is not a valid interface name: ${JSON.stringify(text)}`);
  return text;
}
function uint(value: number, max: number, what: string): number {
  check(Number.isInteger(value) && value >= 0 && value <= max, `${what} must be an integer from 0 to ${max}, got ${String(value)}`);
  return value;
}

/** A routing table: a number (recommended: 1–252, see linux-lab.md on rt_tables) or a builtin name. */
export type RouteTable = number | 'main' | 'local' | 'default';

function table(t: RouteTable): string {
  if (typeof t === 'number') {
    check(Number.isInteger(t) && t >= 1 && t <= 0xffffffff && t !== 253 && t !== 254 && t !== 255, `routing table must be 1–2^32-1 and not a reserved number (253–255), got ${t}`);
    return String(t);
  }
  return t;
}

/** A mark with an optional mask, as ip-rule and conntrack write it: `0x1/0xff`. */
export interface Mark {
  readonly value: number;
  readonly mask?: number;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
function mark(m: Mark, what: string): string {
  uint(m.value, 0xffffffff, `${what} value`);
  if (m.mask === undefined) return hex(m.value);
  uint(m.mask, 0xffffffff, `${what} mask`);
  return `${hex(m.value)}/${hex(m.mask)}`;
}

// ---------------------------------------------------------------------------------------------
// ip: reading

export function ipAddrShow(dev?: string): Argv {
  return dev === undefined ? ['ip', '-j', 'addr', 'show'] : ['ip', '-j', 'addr', 'show', 'dev', ifname(dev)];
}

export function ipLinkShow(dev?: string): Argv {
  return dev === undefined ? ['ip', '-j', 'link', 'show'] : ['ip', '-j', 'link', 'show', 'dev', ifname(dev)];
}

export function ipRouteShow(t: RouteTable = 'main'): Argv {
  return ['ip', '-j', 'route', 'show', 'table', table(t)];
}

export function ipRuleShow(): Argv {
  return ['ip', '-j', 'rule', 'show'];
}

/** Which route the kernel picks for a packet (the same question `failover.sh` asks in the lab note). */
export function ipRouteGet(dst: string, opts: { from?: string; iif?: string; mark?: number } = {}): Argv {
  const argv: string[] = ['ip', '-j', 'route', 'get', ipv4(dst, 'destination')];
  if (opts.from !== undefined) argv.push('from', ipv4(opts.from, 'source'));
  if (opts.iif !== undefined) argv.push('iif', ifname(opts.iif));
  if (opts.mark !== undefined) argv.push('mark', hex(uint(opts.mark, 0xffffffff, 'mark')));
  return argv as unknown as Argv;
}

// ---------------------------------------------------------------------------------------------
// ip: routes

export interface Nexthop {
  readonly via: string;
  readonly dev: string;
  /** 1–256; the share of new flows is weight / sum of weights. */
  readonly weight?: number;
  /** Keep the next hop even when the kernel thinks the gateway is not on-link. */
  readonly onlink?: boolean;
}

export interface RouteSpec {
  /** `default` or a CIDR. */
  readonly dst: string;
  readonly table?: RouteTable;
  readonly type?: 'unicast' | 'blackhole' | 'unreachable' | 'prohibit';
  readonly proto?: 'static' | 'boot' | 'kernel' | number;
  readonly metric?: number;
  readonly scope?: 'global' | 'link' | 'host';
  readonly src?: string;
  /** A single next hop (`via` and/or `dev`); mutually exclusive with `nexthops`. */
  readonly via?: string;
  readonly dev?: string;
  readonly nexthops?: readonly Nexthop[];
}

function routeSelector(r: RouteSpec, withAttributes: boolean): string[] {
  const argv: string[] = [];
  if (r.type !== undefined && r.type !== 'unicast') argv.push(r.type);
  check(r.dst === 'default' || isCidr(r.dst) || isIpv4(r.dst), `route destination must be "default" or a CIDR, got ${JSON.stringify(r.dst)}`);
  argv.push(r.dst);
  if (r.table !== undefined) argv.push('table', table(r.table));
  if (r.metric !== undefined) argv.push('metric', String(uint(r.metric, 0xffffffff, 'metric')));
  if (!withAttributes) return argv;
  if (r.proto !== undefined) argv.push('proto', typeof r.proto === 'number' ? String(uint(r.proto, 255, 'proto')) : r.proto);
  if (r.scope !== undefined) argv.push('scope', r.scope);
  if (r.src !== undefined) argv.push('src', ipv4(r.src, 'route src'));
  const single = r.via !== undefined || r.dev !== undefined;
  check(!(single && r.nexthops !== undefined), 'a route has either via/dev or nexthops, not both');
  if (r.via !== undefined) argv.push('via', ipv4(r.via, 'gateway'));
  if (r.dev !== undefined) argv.push('dev', ifname(r.dev));
  if (r.nexthops !== undefined) {
    check(r.nexthops.length > 0, 'a multipath route needs at least one next hop');
    for (const nh of r.nexthops) {
      argv.push('nexthop', 'via', ipv4(nh.via, 'next hop'), 'dev', ifname(nh.dev));
      if (nh.weight !== undefined) {
        check(Number.isInteger(nh.weight) && nh.weight >= 1 && nh.weight <= 256, `next hop weight must be 1–256, got ${nh.weight}`);
        argv.push('weight', String(nh.weight));
      }
      if (nh.onlink) argv.push('onlink');
    }
  }
  return argv;
}

/** `ip route replace …`: creates or overwrites the route with this destination/table/metric. */
export function ipRouteReplace(route: RouteSpec): Argv {
  return ['ip', 'route', 'replace', ...routeSelector(route, true)];
}

/** `ip route del …`, selecting by destination, table and metric (and type). */
export function ipRouteDelete(route: RouteSpec): Argv {
  return ['ip', 'route', 'del', ...routeSelector(route, false)];
}

/** Removes every route of a table (for tables this tool owns). */
export function ipRouteFlushTable(t: RouteTable): Argv {
  check(t !== 'main' && t !== 'local' && t !== 'default', `refusing to flush the ${String(t)} table`);
  return ['ip', 'route', 'flush', 'table', table(t)];
}

// ---------------------------------------------------------------------------------------------
// ip: rules

export interface RuleSpec {
  /** 1–32765 (0, 32766 and 32767 hold the kernel's local/main/default rules). */
  readonly priority: number;
  readonly from?: string;
  readonly to?: string;
  readonly fwmark?: Mark;
  readonly iif?: string;
  readonly oif?: string;
  readonly table: RouteTable;
  /** `suppress_prefixlength 0`: ignore this table's default route (the "main without default" idiom). */
  readonly suppressPrefixLength?: number;
}

function ruleArgs(r: RuleSpec): string[] {
  check(Number.isInteger(r.priority) && r.priority >= 1 && r.priority <= 32765, `rule priority must be 1–32765, got ${r.priority}`);
  const argv: string[] = ['priority', String(r.priority)];
  if (r.from !== undefined) argv.push('from', r.from === 'all' ? 'all' : prefixOrAddress(r.from, 'rule from'));
  if (r.to !== undefined) argv.push('to', r.to === 'all' ? 'all' : prefixOrAddress(r.to, 'rule to'));
  if (r.fwmark !== undefined) argv.push('fwmark', mark(r.fwmark, 'fwmark'));
  if (r.iif !== undefined) argv.push('iif', ifname(r.iif));
  if (r.oif !== undefined) argv.push('oif', ifname(r.oif));
  argv.push('table', table(r.table));
  if (r.suppressPrefixLength !== undefined) argv.push('suppress_prefixlength', String(uint(r.suppressPrefixLength, 32, 'suppress_prefixlength')));
  return argv;
}

export function ipRuleAdd(rule: RuleSpec): Argv {
  return ['ip', 'rule', 'add', ...ruleArgs(rule)];
}

/** Deletes the rule matching all these selectors (ip rule del matches on what is given). */
export function ipRuleDelete(rule: RuleSpec): Argv {
  return ['ip', 'rule', 'del', ...ruleArgs(rule)];
}

/** Deletes one rule at this priority, whatever it says (run once per rule found there). */
export function ipRuleDeleteAtPriority(priority: number): Argv {
  check(Number.isInteger(priority) && priority >= 1 && priority <= 32765, `rule priority must be 1–32765, got ${priority}`);
  return ['ip', 'rule', 'del', 'priority', String(priority)];
}

// ---------------------------------------------------------------------------------------------
// sysctl

function sysctlKey(key: string): string {
  check(SYSCTL_KEY_RE.test(key), `not a sysctl key: ${JSON.stringify(key)}`);
  return key;
}

export function sysctlWrite(key: string, value: string | number): Argv {
  const text = String(value);
  check(/^[A-Za-z0-9 _.:,/-]*$/.test(text) && !text.includes('\n'), `sysctl value for ${key} has unexpected characters: ${JSON.stringify(text)}`);
  return ['sysctl', '-w', `${sysctlKey(key)}=${text}`];
}

/** `sysctl -e k1 k2 …` prints `key = value` lines; `-e` ignores keys the kernel does not have. */
export function sysctlRead(keys: readonly string[]): Argv {
  check(keys.length > 0, 'sysctlRead needs at least one key');
  return ['sysctl', '-e', ...keys.map(sysctlKey)];
}

/** Parses `sysctl` output (`net.ipv4.ip_forward = 1`) into a map. */
export function parseSysctlOutput(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf(' = ');
    if (eq <= 0) continue;
    out.set(line.slice(0, eq).trim(), line.slice(eq + 3).trim());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// nftables

export function nftListRuleset(): Argv {
  return ['nft', '-j', 'list', 'ruleset'];
}

export function nftListTable(family: 'ip' | 'inet', name: string): Argv {
  return ['nft', '-j', 'list', 'table', family, nftIdent(name, 'table')];
}

/** `nft -f -`: applies the ruleset given on standard input as one transaction. */
export function nftApplyStdin(): Argv {
  return ['nft', '-f', '-'];
}

/** `nft -c -f -`: checks a ruleset without applying it. */
export function nftCheckStdin(): Argv {
  return ['nft', '-c', '-f', '-'];
}

export function nftDeleteTable(family: 'ip' | 'inet', name: string): Argv {
  return ['nft', 'delete', 'table', family, nftIdent(name, 'table')];
}

function nftIdent(name: string, what: string): string {
  check(NFT_IDENT_RE.test(name) && !NFT_RESERVED.has(name), `${what} name is not a safe nftables identifier: ${JSON.stringify(name)}`);
  return name;
}

/** The chain that only carries the ruleset's note; no rule jumps to it, so it costs nothing. */
export const NFT_META_CHAIN = 'dualwan_meta';

/** Rules per chain in a ruleset rendered by `renderNatRuleset` (what `nft -j list table` should show back). */
export function renderedRuleCounts(ruleset: string): Record<string, number> {
  const counts: Record<string, number> = {};
  let chain: string | undefined;
  for (const line of ruleset.split('\n')) {
    const open = /^ {2}chain ([A-Za-z0-9_]+) \{$/.exec(line);
    if (open) {
      chain = open[1]!;
      counts[chain] = 0;
    } else if (line === '  }') {
      chain = undefined;
    } else if (chain !== undefined && line.startsWith('    ') && !line.startsWith('    type ')) {
      counts[chain] = (counts[chain] ?? 0) + 1;
    }
  }
  return counts;
}

export interface NatWan {
  /** The WAN's name in dualwan.yaml; only used in comments. */
  readonly name: string;
  readonly interface: string;
  /** Connection mark given to connections NATed out of this WAN (non-zero, unique). */
  readonly mark: number;
}

export interface NatRulesetSpec {
  /** Table name (family `ip`), owned entirely by this tool. */
  readonly table: string;
  readonly lanInterfaces: readonly string[];
  readonly wans: readonly NatWan[];
  /**
   * Copy each connection's mark to its packets before routing, so a connection keeps leaving
   * through the WAN it was NATed to while routes change (linux-lab.md §3, "sticky").
   */
  readonly stickyConnections: boolean;
  /** Destinations whose new connections are marked for one WAN (pair with an `ip rule fwmark`). */
  readonly stickyHosts: readonly { readonly destination: string; readonly mark: number }[];
  /**
   * A note stored as the comment of the one rule of a chain nothing jumps to (`dualwan_meta`):
   * nft 1.0.6 prints rule comments in its JSON but not table comments, and this is how a later
   * run recognises its own ruleset.
   */
  readonly note?: string;
  /** Forwarding policy for traffic that is neither from the LAN nor a reply: `drop` for a router. */
  readonly forwardPolicy: 'drop' | 'accept';
  /**
   * The mark bits this tool reads. Marks are written whole (nft 1.0.6 cannot combine two
   * registers in one expression), so the router must not run other software that marks packets.
   */
  readonly markMask: number;
}

function nftString(text: string, what: string): string {
  // Interface names are already limited to [A-Za-z0-9_.:@-]; quoting keeps nft from reading them as keywords.
  return `"${ifname(text, what)}"`;
}

/**
 * The ruleset for NAT, forwarding and connection marks, generated from data. It starts by
 * creating and deleting the table so that `nft -f` replaces it atomically whether it exists or not.
 */
export function renderNatRuleset(spec: NatRulesetSpec): string {
  const t = nftIdent(spec.table, 'table');
  check(spec.wans.length > 0, 'the NAT ruleset needs at least one WAN');
  check(spec.lanInterfaces.length > 0, 'the NAT ruleset needs at least one LAN interface');
  uint(spec.markMask, 0xffffffff, 'mark mask');
  check(spec.markMask !== 0, 'mark mask must not be 0');
  const marks = new Set<number>();
  for (const w of spec.wans) {
    uint(w.mark, 0xffffffff, `mark of WAN ${w.name}`);
    check(w.mark !== 0 && (w.mark & ~spec.markMask) === 0, `mark of WAN ${w.name} must be non-zero and inside the mask`);
    check(!marks.has(w.mark), `mark ${w.mark} is used by two WANs`);
    marks.add(w.mark);
    check(/^[a-z0-9][a-z0-9_-]{0,31}$/.test(w.name), `WAN name is not a safe comment: ${JSON.stringify(w.name)}`);
  }
  const mask = hex(spec.markMask);
  const lan = spec.lanInterfaces.map((i) => nftString(i, 'LAN interface')).join(', ');
  const lines: string[] = [];
  lines.push(`table ip ${t} {}`, `delete table ip ${t}`, `table ip ${t} {`);

  // Per-packet cost matters (the router forwards every packet through these hooks): an
  // established packet meets one rule in prerouting and one in forward; marking and NAT happen in
  // the nat chain, which only sees the first packet of each connection.
  lines.push('  chain prerouting_marks {', '    type filter hook prerouting priority mangle; policy accept;');
  if (spec.stickyHosts.length > 0) lines.push(`    ct state new iifname { ${lan} } jump sticky_hosts`);
  if (spec.stickyConnections || spec.stickyHosts.length > 0) {
    lines.push(`    ct mark & ${mask} != 0 meta mark set ct mark & ${mask}`);
  }
  lines.push('  }');
  if (spec.stickyHosts.length > 0) {
    lines.push('  chain sticky_hosts {');
    for (const h of spec.stickyHosts) {
      check(marks.has(h.mark), `sticky host ${h.destination} uses a mark no WAN has`);
      lines.push(`    ip daddr ${prefixOrAddress(h.destination, 'sticky host')} ct mark set ${hex(h.mark)}`);
    }
    lines.push('  }');
  }

  lines.push('  chain forward_filter {', `    type filter hook forward priority filter; policy ${spec.forwardPolicy};`);
  lines.push('    ct state established,related accept', '    ct state invalid drop', `    iifname { ${lan} } accept`, '  }');

  lines.push('  chain postrouting_nat {', '    type nat hook postrouting priority srcnat; policy accept;');
  for (const w of spec.wans) {
    const oif = nftString(w.interface, `interface of WAN ${w.name}`);
    // A connection is marked with the WAN it was NATed out of (unless a sticky host marked it first).
    lines.push(`    oifname ${oif} ct mark & ${mask} == 0 ct mark set ${hex(w.mark)} comment "mark ${w.name}"`);
    lines.push(`    oifname ${oif} masquerade comment "wan ${w.name}"`);
  }
  lines.push('  }');
  if (spec.note !== undefined) {
    check(/^[A-Za-z0-9 :._-]{1,100}$/.test(spec.note), `ruleset note has unexpected characters: ${JSON.stringify(spec.note)}`);
    lines.push(`  chain ${NFT_META_CHAIN} {`, `    counter comment "${spec.note}"`, '  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// conntrack

export interface ConntrackFilter {
  readonly protocol?: 'tcp' | 'udp' | 'icmp';
  /** Original direction source (the LAN client). */
  readonly origSrc?: string;
  readonly origDst?: string;
  /** Reply direction source (the server) and destination (our NAT address on a WAN). */
  readonly replySrc?: string;
  readonly replyDst?: string;
  readonly mark?: Mark;
}

function conntrackFilterArgs(f: ConntrackFilter): string[] {
  const argv: string[] = ['-f', 'ipv4'];
  if (f.protocol !== undefined) argv.push('-p', f.protocol);
  if (f.origSrc !== undefined) argv.push('--orig-src', ipv4(f.origSrc, 'conntrack orig-src'));
  if (f.origDst !== undefined) argv.push('--orig-dst', ipv4(f.origDst, 'conntrack orig-dst'));
  if (f.replySrc !== undefined) argv.push('--reply-src', ipv4(f.replySrc, 'conntrack reply-src'));
  if (f.replyDst !== undefined) argv.push('--reply-dst', ipv4(f.replyDst, 'conntrack reply-dst'));
  if (f.mark !== undefined) argv.push('--mark', mark(f.mark, 'conntrack mark'));
  return argv;
}

/**
 * `conntrack -D` with at least one filter: deleting every entry is a different, explicit call.
 * conntrack exits 1 when nothing matched; use `conntrackDeleteSucceeded` to read the result.
 */
export function conntrackDelete(filter: ConntrackFilter): Argv {
  const argv = conntrackFilterArgs(filter);
  check(argv.length > 2, 'conntrackDelete needs a filter; use conntrackFlushAll to delete every entry');
  return ['conntrack', '-D', ...argv];
}

export function conntrackFlushAll(): Argv {
  return ['conntrack', '-F'];
}

export function conntrackCount(filter: ConntrackFilter = {}): Argv {
  return ['conntrack', '-L', ...conntrackFilterArgs(filter)];
}

/** How many entries `conntrack -D` says it deleted, or undefined when its output is not understood. */
export function conntrackDeletedCount(stderr: string): number | undefined {
  const m = /(\d+) flow entries have been deleted/.exec(stderr);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** Exit 0 (some deleted) and exit 1 with "0 flow entries" (none matched) are both success. */
export function conntrackDeleteSucceeded(result: { code: number | null; stderr: string }): boolean {
  if (result.code === 0) return true;
  return result.code === 1 && conntrackDeletedCount(result.stderr) === 0;
}
