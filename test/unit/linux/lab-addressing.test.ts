import { ADDRESS_PLANS, chooseAddressPlan, cidrsOverlap, hostPrefixes, planSubnets } from '../../lab/addressing';

describe('lab address plans', () => {
  it('have no overlapping subnets inside one plan', () => {
    for (const plan of ADDRESS_PLANS) {
      const subnets = planSubnets(plan);
      for (let i = 0; i < subnets.length; i++) for (let j = i + 1; j < subnets.length; j++) expect(cidrsOverlap(subnets[i]!, subnets[j]!)).toBe(false);
      expect(plan.monitors.flat()).toHaveLength(4);
      expect(new Set(plan.monitors.flat()).size).toBe(4);
    }
  });

  it('detect overlaps between prefixes', () => {
    expect(cidrsOverlap('192.168.77.0/24', '192.168.0.0/16')).toBe(true);
    expect(cidrsOverlap('192.168.77.0/24', '192.168.78.0/24')).toBe(false);
    expect(cidrsOverlap('10.0.0.1', '10.0.0.0/8')).toBe(true);
    expect(cidrsOverlap('0.0.0.0/0', '1.2.3.4/32')).toBe(true);
    expect(cidrsOverlap('nonsense', '1.2.3.4/32')).toBe(false);
  });

  it('read the prefixes in use from ip -j output, ignoring loopback and the default route', () => {
    const addr = [
      { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
      { ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }, { family: 'inet6', local: 'fd00::2', prefixlen: 64 }] },
    ];
    const routes = [{ dst: 'default', gateway: '192.0.2.1' }, { dst: '192.0.2.0/24' }, { dst: '100.64.0.0/10' }, { dst: '127.0.0.0/8' }];
    expect(hostPrefixes(addr, routes)).toEqual(['192.0.2.2/24', '192.0.2.0/24', '100.64.0.0/10']);
    expect(hostPrefixes(undefined, 'garbage')).toEqual([]);
  });

  it('pick the first plan that collides with nothing on the machine, and say why others were skipped', () => {
    expect(chooseAddressPlan(['192.0.2.2/24']).plan?.name).toBe('a');
    const second = chooseAddressPlan(['192.168.77.5/24']);
    expect(second.plan?.name).toBe('b');
    expect(second.skipped[0]).toContain('192.168.77.0/24 overlaps 192.168.77.5/24');
    expect(chooseAddressPlan(['192.168.0.0/16', '10.0.0.0/8']).plan?.name).toBe('c');
    expect(chooseAddressPlan(['0.0.0.0/1', '128.0.0.0/1']).plan).toBeUndefined();
  });
});
