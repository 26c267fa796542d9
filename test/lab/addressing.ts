/**
 * Address plans for the dual-WAN lab, and the choice of one that collides with nothing on this
 * machine. The lab never links to the root namespace, so a collision could not leak packets; it
 * would still make a command run in the wrong namespace look like it worked, and make the lab's
 * addresses ambiguous in logs. Pure: the caller passes in what `ip -j addr` / `ip -j route` said.
 */

export interface LabLinkAddresses {
  readonly subnet: string;
  /** The router-side (or client-side) address. */
  readonly near: string;
  /** The address at the other end (ISP gateway, internet side). */
  readonly far: string;
  readonly prefix: number;
}

export interface LabAddressPlan {
  readonly name: string;
  /** LAN: router `lan0` = near, client `eth0` = far. */
  readonly lan: LabLinkAddresses;
  /** Router `wan1`/`wan2` = near, ISP `down0` = far (the gateway the router sees). */
  readonly wans: readonly [LabLinkAddresses, LabLinkAddresses];
  /** ISP `up0` = near (its NAT address), internet `isp1`/`isp2` = far. */
  readonly upstreams: readonly [LabLinkAddresses, LabLinkAddresses];
  /** Blocks the internet namespace answers for as a whole (`ip route add local … dev lo`). */
  readonly internetBlocks: readonly string[];
  /** A server answering TCP/UDP whoami and echo. */
  readonly server: string;
  /** A second whoami server, used as a sticky host (always via WAN 1): `.23` of the first block. */
  readonly stickyServer: string;
  /** DNS resolvers, one per WAN in dualwan.yaml terms. */
  readonly dns: readonly [string, string];
  /** Two monitor targets per WAN, unique across WANs. */
  readonly monitors: readonly [readonly [string, string], readonly [string, string]];
}

function link(subnet: string, near: number, far: number): LabLinkAddresses {
  const [net, len] = subnet.split('/') as [string, string];
  const base = net.split('.').slice(0, 3).join('.');
  return { subnet, near: `${base}.${near}`, far: `${base}.${far}`, prefix: Number(len) };
}

function plan(name: string, lan: string, wan1: string, wan2: string, up1: string, up2: string, blockA: string, blockB: string): LabAddressPlan {
  const a = blockA.split('/')[0]!.split('.').slice(0, 3).join('.');
  const b = blockB.split('/')[0]!.split('.').slice(0, 3).join('.');
  return {
    name,
    lan: link(lan, 1, 10),
    wans: [link(wan1, 2, 1), link(wan2, 2, 1)],
    upstreams: [link(up1, 1, 2), link(up2, 1, 2)],
    internetBlocks: [blockA, blockB],
    server: `${b}.10`,
    stickyServer: `${a}.23`,
    dns: [`${b}.53`, `${b}.54`],
    monitors: [
      [`${a}.1`, `${a}.2`],
      [`${a}.3`, `${a}.4`],
    ],
  };
}

/**
 * Candidates, best first. Documentation (RFC 5737), benchmarking (RFC 2544, 198.18.0.0/15) and
 * shared-address (RFC 6598, 100.64.0.0/10) ranges never appear on a real LAN, so they are fine
 * inside namespaces; the first plan mirrors shared/research/linux-lab.md.
 */
export const ADDRESS_PLANS: readonly LabAddressPlan[] = [
  plan('a', '192.168.77.0/24', '100.64.1.0/24', '100.64.2.0/24', '198.18.1.0/24', '198.18.2.0/24', '198.51.100.0/24', '203.0.113.0/24'),
  plan('b', '10.231.77.0/24', '100.100.1.0/24', '100.100.2.0/24', '198.19.101.0/24', '198.19.102.0/24', '198.51.100.0/24', '203.0.113.0/24'),
  plan('c', '172.31.177.0/24', '100.127.1.0/24', '100.127.2.0/24', '198.19.201.0/24', '198.19.202.0/24', '198.19.250.0/24', '198.19.251.0/24'),
];

export function planSubnets(p: LabAddressPlan): string[] {
  return [p.lan.subnet, ...p.wans.map((w) => w.subnet), ...p.upstreams.map((u) => u.subnet), ...p.internetBlocks];
}

interface Range {
  readonly first: number;
  readonly last: number;
}

function toRange(cidr: string): Range | undefined {
  const [addr, lenText] = cidr.includes('/') ? (cidr.split('/') as [string, string]) : [cidr, '32'];
  const parts = addr.split('.').map(Number);
  const len = Number(lenText);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255) || !Number.isInteger(len) || len < 0 || len > 32) return undefined;
  const ip = parts.reduce((acc, p) => acc * 256 + p, 0);
  const size = 2 ** (32 - len);
  const first = Math.floor(ip / size) * size;
  return { first, last: first + size - 1 };
}

export function cidrsOverlap(a: string, b: string): boolean {
  const ra = toRange(a);
  const rb = toRange(b);
  return ra !== undefined && rb !== undefined && ra.first <= rb.last && rb.first <= ra.last;
}

/** IPv4 prefixes in use in the root namespace, from `ip -j addr` and `ip -j route show table all` JSON. */
export function hostPrefixes(addrJson: unknown, routeJson: unknown): string[] {
  const out: string[] = [];
  if (Array.isArray(addrJson)) {
    for (const link of addrJson as { addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[]) {
      for (const a of link.addr_info ?? []) {
        if (a.family === 'inet' && typeof a.local === 'string' && typeof a.prefixlen === 'number') out.push(`${a.local}/${a.prefixlen}`);
      }
    }
  }
  if (Array.isArray(routeJson)) {
    for (const r of routeJson as { dst?: string }[]) {
      // A default route covers everything by definition; it says nothing about what is in use.
      if (typeof r.dst === 'string' && r.dst !== 'default' && !r.dst.includes(':')) out.push(r.dst);
    }
  }
  // Loopback is per namespace and never collides with anything routed.
  return out.filter((p) => !cidrsOverlap(p, '127.0.0.0/8') && p !== '0.0.0.0/0');
}

/** The first plan none of whose subnets overlaps a host prefix; the reasons for skipping the others. */
export function chooseAddressPlan(
  hostInUse: readonly string[],
  candidates: readonly LabAddressPlan[] = ADDRESS_PLANS,
): { plan: LabAddressPlan; skipped: string[] } | { plan: undefined; skipped: string[] } {
  const skipped: string[] = [];
  for (const candidate of candidates) {
    const clash = planSubnets(candidate).flatMap((s) => hostInUse.filter((h) => cidrsOverlap(s, h)).map((h) => `${s} overlaps ${h}`));
    if (clash.length === 0) return { plan: candidate, skipped };
    skipped.push(`plan ${candidate.name}: ${clash.join(', ')}`);
  }
  return { plan: undefined, skipped };
}
