import { formatCidr, isHostAddressIn, isNetworkAddress, parseAddressOrCidr, parseCidr, parseIpv4, rangesOverlap } from '../../../src/config/net';

describe('IPv4 helpers', () => {
  it('parses addresses and refuses malformed ones', () => {
    expect(parseIpv4('192.168.10.1')).toBe(0xc0a80a01);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4 ', 'a.b.c.d']) expect(parseIpv4(bad)).toBeUndefined();
  });

  it('turns CIDRs into blocks', () => {
    const r = parseCidr('172.20.10.5/28');
    expect(r && formatCidr(r)).toBe('172.20.10.0/28');
    expect(r?.last).toBe(parseIpv4('172.20.10.15'));
    expect(parseCidr('0.0.0.0/0')).toEqual({ first: 0, last: 0xffffffff, prefix: 0 });
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
    expect(parseAddressOrCidr('198.51.100.7')).toEqual({ first: parseIpv4('198.51.100.7'), last: parseIpv4('198.51.100.7'), prefix: 32 });
  });

  it('tells network addresses, host addresses and overlaps apart', () => {
    expect(isNetworkAddress('192.168.10.0/24')).toBe(true);
    expect(isNetworkAddress('192.168.10.1/24')).toBe(false);
    const lan = parseCidr('192.168.10.0/24');
    if (!lan) throw new Error('parse');
    expect(isHostAddressIn(lan, parseIpv4('192.168.10.0') ?? 0)).toBe(false);
    expect(isHostAddressIn(lan, parseIpv4('192.168.10.254') ?? 0)).toBe(true);
    expect(isHostAddressIn(lan, parseIpv4('192.168.10.255') ?? 0)).toBe(false);
    const cgnat = parseCidr('100.64.0.0/10');
    const inside = parseCidr('100.127.255.0/24');
    const outside = parseCidr('100.128.0.0/24');
    if (!cgnat || !inside || !outside) throw new Error('parse');
    expect(rangesOverlap(cgnat, inside)).toBe(true);
    expect(rangesOverlap(cgnat, outside)).toBe(false);
  });
});
