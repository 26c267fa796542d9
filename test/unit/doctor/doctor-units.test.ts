import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LanProbe } from '../../../src/accesspoint/checks';
import { loadConfigFile } from '../../../src/config/load';
import type { DesiredState } from '../../../src/core/desired';
import { systemSettings } from '../../../src/doctor/opnsense-config';
import { chooseLanAccess, lanTopology } from '../../../src/doctor/topology';
import { configXml, type Config } from '../../doubles/opnsense/state';

const ROOT = path.resolve(__dirname, '../../..');
const state = (): DesiredState => {
  const r = loadConfigFile(path.join(ROOT, 'playbooks', 'hotspot-failover.yaml'));
  if (!r.state) throw new Error('playbook does not load');
  return r.state;
};

describe('config.xml settings the API does not offer', () => {
  it('reads the factory config: sticky connections and shared forwarding on, no gateway switching, no DNS', () => {
    const xml = fs.readFileSync(path.join(ROOT, 'test/fixtures/upstream/opnsense/config.xml.sample'), 'utf8');
    expect(systemSettings(xml)).toEqual({ gatewaySwitching: false, stickyConnections: true, sharedForwarding: true, skipRulesGatewayDown: false, dnsServers: [] });
  });

  it('pairs each dnsserver with its dns<N>gw, "none" meaning unbound; "0" counts as off', () => {
    const config: Config = {
      interfaces: {},
      gateways: {},
      groups: {},
      rules: {},
      snatRules: {},
      snatMode: 'automatic',
      system: { gw_switch_default: true, lb_use_sticky: false, dns: [{ server: '1.0.0.1', gateway: 'WAN_DHCP' }, { server: '9.9.9.10', gateway: 'none' }] },
    };
    expect(systemSettings(configXml(config))).toEqual({
      gatewaySwitching: true,
      stickyConnections: false,
      sharedForwarding: false,
      skipRulesGatewayDown: false,
      dnsServers: [{ server: '1.0.0.1', gateway: 'WAN_DHCP' }, { server: '9.9.9.10' }],
    });
    expect(systemSettings('<opnsense><system><gw_switch_default>0</gw_switch_default></system></opnsense>').gatewaySwitching).toBe(false);
    expect(() => systemSettings('<opnsense/>')).toThrow(/no <system>/);
  });
});

describe('how the doctor gets onto the LAN', () => {
  const probe: LanProbe = { ping: async () => ({ reply: false }), dhcpOffers: async () => [] };

  it('from this machine when one of its addresses is in the LAN', () => {
    const a = chooseLanAccess(state(), 'auto', { eth0: ['192.168.1.20'], wlan0: ['192.168.10.57'] }, () => probe);
    expect(a).toEqual({ probe, from: '192.168.10.57 on wlan0' });
  });

  it('skipped, naming this machine\'s addresses and what to do, when it is elsewhere or the checks are off', () => {
    const a = chooseLanAccess(state(), 'auto', { eth0: ['10.0.0.5'] }, () => probe);
    expect(a).toEqual({ skipped: expect.stringMatching(/not on the LAN 192\.168\.10\.0\/24 \(its addresses: 10\.0\.0\.5\)/), remedy: expect.stringMatching(/from a computer on the LAN .* as root/) });
    expect(chooseLanAccess(state(), 'off', { wlan0: ['192.168.10.57'] }, () => probe)).toMatchObject({ skipped: expect.stringMatching(/switched off/) });
  });

  it('the access-point checks become topology findings: a second DHCP server and double NAT fail with what to change', async () => {
    const s = state();
    const lanProbe: LanProbe = {
      async ping(a, ttl) {
        if (!ttl) return { reply: a === '192.168.10.2' };
        return ttl === 1 ? { reply: false, exceededFrom: '192.168.0.1' } : ttl === 2 ? { reply: false, exceededFrom: '192.168.10.1' } : { reply: true };
      },
      dhcpOffers: async () => [
        { server: '192.168.10.1', offered: '192.168.10.120', router: '192.168.10.1', dns: [] },
        { server: '192.168.10.2', offered: '192.168.0.100', router: '192.168.0.1', dns: [] },
      ],
    };
    const f = await lanTopology(s, { probe: lanProbe, from: '192.168.10.57 on wlan0' });
    expect(f.map((x) => [x.check, x.status])).toEqual([
      ['topology.ap-address', 'ok'],
      ['topology.single-dhcp', 'fail'],
      ['topology.no-double-nat', 'fail'],
    ]);
    expect(f[1]!.remedy).toMatch(/Switch off the DHCP server of the device at 192\.168\.10\.2/);
    expect(f[2]!.remedy).toMatch(/Switch it to Access Point mode/);
    expect(f[0]!.message).toMatch(/seen from 192\.168\.10\.57 on wlan0/);
  });
});
