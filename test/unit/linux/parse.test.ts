import { DualwanError } from '../../../src/core/errors';
import { ipv4Addresses, parseIpAddr, parseIpRoutes, parseIpRules } from '../../../src/providers/linux/parse';

// Recorded in the lab router namespace (iproute2 6.1, Debian 12).
const ADDR_WAN1 =
  '[{"ifindex":3,"link_index":2,"ifname":"wan1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"a6:88:6f:7d:11:71","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":1,"addr_info":[{"family":"inet","local":"100.64.1.2","prefixlen":24,"scope":"global","label":"wan1","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::a488:6fff:fe7d:1171","prefixlen":64,"scope":"link","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]';
const ROUTES_MAIN =
  '[{"dst":"default","protocol":"static","flags":[],"nexthops":[{"gateway":"100.64.1.1","dev":"wan1","weight":2,"flags":[]},{"gateway":"100.64.2.1","dev":"wan2","weight":1,"flags":[]}]},{"dst":"100.64.1.0/24","dev":"wan1","protocol":"kernel","scope":"link","prefsrc":"100.64.1.2","flags":[]},{"dst":"192.168.77.0/24","dev":"lan0","protocol":"kernel","scope":"link","prefsrc":"192.168.77.1","flags":[]}]';
const ROUTES_101 = '[{"dst":"default","gateway":"100.64.1.1","dev":"wan1","flags":[]}]';
const RULES =
  '[{"priority":0,"src":"all","table":"local"},{"priority":1001,"src":"100.64.1.2","table":"101"},{"priority":1100,"src":"all","fwmark":"0x1","fwmask":"0xff","table":"101"},{"priority":32766,"src":"all","table":"main"},{"priority":32767,"src":"all","table":"default"}]';

describe('ip -j parsers', () => {
  it('reads interfaces and their IPv4 addresses', () => {
    const [wan1] = parseIpAddr(ADDR_WAN1);
    expect(wan1?.ifname).toBe('wan1');
    expect(wan1?.flags).toContain('UP');
    expect(ipv4Addresses(wan1!)).toEqual(['100.64.1.2/24']);
  });

  it('reads a weighted multipath route and a plain one', () => {
    const [def, link] = parseIpRoutes(ROUTES_MAIN);
    expect(def?.nexthops?.map((n) => [n.gateway, n.dev, n.weight])).toEqual([
      ['100.64.1.1', 'wan1', 2],
      ['100.64.2.1', 'wan2', 1],
    ]);
    expect(link).toMatchObject({ dst: '100.64.1.0/24', dev: 'wan1', prefsrc: '100.64.1.2', scope: 'link' });
    expect(parseIpRoutes(ROUTES_101)).toEqual([{ dst: 'default', gateway: '100.64.1.1', dev: 'wan1', flags: [] }]);
    expect(parseIpRoutes('')).toEqual([]);
  });

  it('reads rules with sources and fwmarks', () => {
    const rules = parseIpRules(RULES);
    expect(rules.find((r) => r.priority === 1001)).toMatchObject({ src: '100.64.1.2', table: '101' });
    expect(rules.find((r) => r.priority === 1100)).toMatchObject({ fwmark: '0x1', fwmask: '0xff', table: '101' });
  });

  it('fails with a clear error on text that is not JSON or has another shape', () => {
    expect(() => parseIpAddr('Device "x" does not exist.')).toThrow(DualwanError);
    expect(() => parseIpRoutes('{"dst": 1}')).toThrow(/unexpected shape/);
    expect(() => parseIpRules('[{"table":"main"}]')).toThrow(/priority/);
  });
});
