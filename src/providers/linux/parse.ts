/**
 * Parsers for what the router prints (`ip -j …`). Parsed with zod at the boundary, so a change in
 * iproute2's JSON shape fails loudly here instead of deep inside a diff. Unknown fields are kept
 * out; only what the backend reads is modelled.
 */
import { z } from 'zod';
import { DualwanError } from '../../core/errors';

const AddrInfo = z.object({
  family: z.string(),
  local: z.string(),
  prefixlen: z.number().int(),
  scope: z.string().optional(),
  label: z.string().optional(),
});

const Link = z.object({
  ifindex: z.number().int(),
  ifname: z.string(),
  flags: z.array(z.string()).default([]),
  mtu: z.number().int().optional(),
  operstate: z.string().optional(),
  link_type: z.string().optional(),
  address: z.string().optional(),
  addr_info: z.array(AddrInfo).default([]),
});

const Nexthop = z.object({
  gateway: z.string().optional(),
  dev: z.string().optional(),
  weight: z.number().int().optional(),
  flags: z.array(z.string()).default([]),
});

const Route = z.object({
  type: z.string().optional(),
  dst: z.string(),
  gateway: z.string().optional(),
  dev: z.string().optional(),
  protocol: z.string().optional(),
  scope: z.string().optional(),
  prefsrc: z.string().optional(),
  metric: z.number().int().optional(),
  table: z.string().optional(),
  flags: z.array(z.string()).default([]),
  nexthops: z.array(Nexthop).optional(),
});

const Rule = z.object({
  priority: z.number().int(),
  src: z.string().optional(),
  srclen: z.number().int().optional(),
  dst: z.string().optional(),
  dstlen: z.number().int().optional(),
  fwmark: z.string().optional(),
  fwmask: z.string().optional(),
  iif: z.string().optional(),
  oif: z.string().optional(),
  table: z.string().optional(),
  suppress_prefixlen: z.number().int().optional(),
});

export type IpLink = z.infer<typeof Link>;
export type IpRoute = z.infer<typeof Route>;
export type IpRule = z.infer<typeof Rule>;

function parseJson<T>(what: string, text: string, schema: z.ZodType<T>): T {
  let data: unknown;
  try {
    data = JSON.parse(text.trim() === '' ? '[]' : text);
  } catch (error) {
    throw new DualwanError('ROUTER_OUTPUT_UNREADABLE', `The router's ${what} output is not JSON: ${text.slice(0, 120)}`, { source: 'remote', cause: error });
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new DualwanError(
      'ROUTER_OUTPUT_UNEXPECTED',
      `The router's ${what} output has an unexpected shape${first ? ` at ${first.path.join('.')}: ${first.message}` : ''}.`,
      { source: 'remote', remedy: 'Check that iproute2 on the router is version 5.x or newer (ip -V).' },
    );
  }
  return parsed.data;
}

/** `ip -j addr show` / `ip -j link show`. */
export function parseIpAddr(text: string): IpLink[] {
  return parseJson('ip -j addr', text, z.array(Link));
}

/** `ip -j route show [table N]`. */
export function parseIpRoutes(text: string): IpRoute[] {
  return parseJson('ip -j route', text, z.array(Route));
}

/** `ip -j rule show`. */
export function parseIpRules(text: string): IpRule[] {
  return parseJson('ip -j rule', text, z.array(Rule));
}

/** The IPv4 addresses of one interface, as CIDRs ("100.64.1.2/24"). */
export function ipv4Addresses(link: IpLink): string[] {
  return link.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}
