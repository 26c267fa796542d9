/**
 * IPv4 arithmetic for the config rules. Addresses are handled as unsigned 32-bit numbers; the
 * schema has already checked the textual form, so the parsers here return undefined rather than
 * throw on anything odd.
 */

export interface Ipv4Range {
  /** First address of the block (the network address for a subnet). */
  readonly first: number;
  /** Last address of the block (the broadcast address for a subnet). */
  readonly last: number;
  readonly prefix: number;
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
export const IPV4_PATTERN = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
export const CIDR_PATTERN = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}/(?:3[0-2]|[12]?\\d)$`);
export const ADDRESS_OR_CIDR_PATTERN = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}(?:/(?:3[0-2]|[12]?\\d))?$`);

export function parseIpv4(text: string): number | undefined {
  if (!IPV4_PATTERN.test(text)) return undefined;
  return text.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function formatIpv4(value: number): string {
  const v = value >>> 0;
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The block a CIDR names. "192.168.10.7/24" gives 192.168.10.0–192.168.10.255. */
export function parseCidr(text: string): Ipv4Range | undefined {
  if (!CIDR_PATTERN.test(text)) return undefined;
  const [addr, len] = text.split('/') as [string, string];
  const ip = parseIpv4(addr);
  if (ip === undefined) return undefined;
  const prefix = Number(len);
  const mask = maskOf(prefix);
  const first = (ip & mask) >>> 0;
  return { first, last: (first | (~mask >>> 0)) >>> 0, prefix };
}

/** A destination written as an address or a CIDR, as a block. */
export function parseAddressOrCidr(text: string): Ipv4Range | undefined {
  return text.includes('/') ? parseCidr(text) : parseCidr(`${text}/32`);
}

/** True when the CIDR's address part is the network address ("192.168.10.0/24", not ".1/24"). */
export function isNetworkAddress(text: string): boolean {
  const range = parseCidr(text);
  const ip = parseIpv4(text.split('/')[0] ?? '');
  return range !== undefined && ip === range.first;
}

export function formatCidr(range: Ipv4Range): string {
  return `${formatIpv4(range.first)}/${range.prefix}`;
}

export function rangesOverlap(a: Ipv4Range, b: Ipv4Range): boolean {
  return a.first <= b.last && b.first <= a.last;
}

export function rangeContains(range: Ipv4Range, ip: number): boolean {
  return ip >= range.first && ip <= range.last;
}

/** An address usable by a host: inside the block and neither its network nor broadcast address. */
export function isHostAddressIn(range: Ipv4Range, ip: number): boolean {
  if (range.prefix >= 31) return rangeContains(range, ip);
  return ip > range.first && ip < range.last;
}
