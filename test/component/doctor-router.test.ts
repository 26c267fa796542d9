import type { LanProbe } from '../../src/accesspoint/checks';
import type { Finding } from '../../src/doctor/run';
import { doctorExitCode } from '../../src/doctor/run';
import { presentFault, ROUTER_FAULTS, type RouterFault } from '../doubles/opnsense/faults';
import { doctorRig, findingsOf, type DoctorRig } from '../helpers/doctor-rig';

jest.setTimeout(120_000);

/** Each seeded fault, the check that must flag it, and how (hotspot-failover playbook unless said). */
const EXPECT: Record<RouterFault, { check: string; status: 'fail' | 'warn'; message: RegExp; loadbalance?: true }> = {
  'monitoring-off': { check: 'router.monitoring', status: 'fail', message: /WAN_DHCP .* is not monitored/ },
  'duplicate-monitor-ip': { check: 'router.monitor-unique', status: 'fail', message: /WAN_DHCP and WAN2_DHCP probe the same monitor IP 1\.1\.1\.1/ },
  'monitor-via-other-wan': { check: 'router.monitor-route', status: 'fail', message: /no host route to the monitor IP 9\.9\.9\.9 of WAN2_DHCP .*now through WAN/ },
  'monitor-is-dns': { check: 'router.monitor-dns', status: 'warn', message: /monitor IP 1\.0\.0\.1 of WAN_DHCP .* is also a DNS server/ },
  'monitor-is-modem': { check: 'router.monitor-target', status: 'warn', message: /probes 192\.168\.1\.1, its own gateway/ },
  'no-dns-per-gateway': { check: 'router.dns-per-gateway', status: 'fail', message: /No DNS server is bound to WAN_DHCP/ },
  'kill-states-off': { check: 'router.kill-states', status: 'fail', message: /"Failover States" off/ },
  'failback-states-off': { check: 'router.kill-states', status: 'warn', message: /WAN2_DHCP .* is metered but keeps its connections/ },
  'gateway-switching-off': { check: 'router.gateway-switching', status: 'fail', message: /Default gateway switching is off/ },
  'group-missing': { check: 'router.gateway-group', status: 'fail', message: /no gateway group DUALWAN/ },
  'group-tiers-wrong': { check: 'router.gateway-group', status: 'fail', message: /has tier 1: WAN2_DHCP,WAN_DHCP; dualwan\.yaml \(failover\) wants tier 1: WAN_DHCP; tier 2: WAN2_DHCP/ },
  'lan-rule-default-route': { check: 'router.lan-rule', status: 'fail', message: /No enabled LAN rule sends traffic through the gateway group DUALWAN/ },
  'pool-not-sticky': { check: 'router.sticky', status: 'warn', message: /not sticky/, loadbalance: true },
  'shared-forwarding-on': { check: 'router.shared-forwarding', status: 'warn', message: /Shared forwarding is on/, loadbalance: true },
  'equal-priorities': { check: 'router.default-gateway', status: 'fail', message: /with equal priorities the later interface takes the default route/ },
  'isp-down': { check: 'router.gateway-status', status: 'fail', message: /WAN_DHCP .* is Offline/ },
  'isp-forced-down': { check: 'router.gateway-status', status: 'fail', message: /WAN_DHCP .* is Offline \(forced\)/ },
  'same-gateway-ip': { check: 'topology.same-gateway-ip', status: 'fail', message: /reach the internet through 192\.168\.1\.1/ },
  'wan-in-lan': { check: 'topology.wan-subnet', status: 'fail', message: /inside the LAN 192\.168\.10\.0\/24/ },
  'isp-cgnat': { check: 'topology.wan-cgnat', status: 'warn', message: /carrier-grade NAT address 100\.64\.23\.7/ },
  'old-version': { check: 'router.version', status: 'fail', message: /OPNsense 26\.1\.9 is older than 26\.7/ },
};

function expectRemedies(f: readonly Finding[]): void {
  const without = f.filter((x) => x.status !== 'ok' && !x.remedy);
  expect(without).toEqual([]);
}

async function doctorReadOnly(rig: DoctorRig, o?: Parameters<DoctorRig['doctor']>[0]): Promise<Finding[]> {
  const routerWrites = rig.h.router.controls.writeCount;
  const hostWrites = rig.h.host.writeCount;
  const requests = rig.h.router.controls.requests.length;
  const f = await rig.doctor(o);
  expect(rig.h.router.controls.writeCount).toBe(routerWrites);
  expect(rig.h.host.writeCount).toBe(hostWrites);
  expect(rig.h.router.controls.requests.slice(requests).filter((r) => r.write)).toEqual([]);
  expect(rig.h.router.controls.contractViolations).toEqual([]);
  expectRemedies(f);
  return f;
}

describe('dualwan doctor: router checks against the simulated OPNsense (failover playbook)', () => {
  let rig: DoctorRig;
  beforeAll(async () => {
    rig = await doctorRig();
  });
  afterAll(() => rig.close());

  it('a router only bootstrapped: the DHCP gateways unmonitored and not stored, no group, no routed LAN rule', async () => {
    const f = await doctorReadOnly(rig);
    expect(findingsOf(f, 'router.reachable').map((x) => x.status)).toEqual(['ok']);
    expect(findingsOf(f, 'router.gateways').map((x) => x.status)).toEqual(['fail', 'fail']);
    expect(findingsOf(f, 'router.gateways')[0]!.remedy).toMatch(/dualwan apply/);
    expect(findingsOf(f, 'router.monitoring').map((x) => x.status)).toEqual(['fail', 'fail']);
    expect(findingsOf(f, 'router.gateway-group').map((x) => x.status)).toEqual(['fail']);
    expect(findingsOf(f, 'router.lan-rule').map((x) => x.status)).toEqual(['fail']);
    expect(doctorExitCode(f)).toBe(1);
  });

  it('a clean router (applied from dualwan.yaml): no failures, no warnings, exit 0, zero writes', async () => {
    await rig.resetRouter();
    const f = await doctorReadOnly(rig);
    const notOk = f.filter((x) => x.status === 'fail' || x.status === 'warn');
    expect(notOk).toEqual([]);
    const checks = new Set(f.map((x) => x.check));
    for (const c of [
      'router.reachable', 'router.version', 'router.gateways', 'router.monitoring', 'router.monitor-unique', 'router.monitor-target', 'router.monitor-dns', 'router.monitor-route',
      'router.gateway-status', 'router.default-gateway', 'router.kill-states', 'router.gateway-group', 'router.lan-rule', 'router.gateway-switching', 'router.dns-per-gateway',
      'router.sticky', 'router.shared-forwarding', 'topology.same-gateway-ip', 'topology.wan-subnet', 'topology.overlaps', 'topology.lan-cgnat',
    ]) expect(checks).toContain(c);
    // the LAN checks need this machine on the LAN: skipped here, with what to do
    expect(findingsOf(f, 'topology.single-dhcp')).toEqual([expect.objectContaining({ status: 'skipped', remedy: expect.stringMatching(/from a computer on the LAN/) })]);
    expect(doctorExitCode(f)).toBe(0);
  });

  const failover = ROUTER_FAULTS.filter((x) => !EXPECT[x].loadbalance);
  it.each(failover)('flags the seeded fault %s with a remedy', async (fault) => {
    await rig.resetRouter();
    const before = await rig.doctor();
    const e = EXPECT[fault];
    expect(findingsOf(before, e.check).filter((x) => x.status === e.status)).toEqual([]);
    presentFault(rig.h.router.controls, fault);
    const f = await doctorReadOnly(rig);
    const hits = findingsOf(f, e.check).filter((x) => x.status === e.status);
    expect(hits.map((x) => x.message)).toEqual(expect.arrayContaining([expect.stringMatching(e.message)]));
    for (const x of hits) expect(x.remedy).toEqual(expect.any(String));
    if (e.status === 'fail') expect(doctorExitCode(f)).toBe(1);
  });

  it('from a machine on the LAN: the access-point checks run through its probe (a second DHCP server flagged)', async () => {
    await rig.resetRouter();
    const probe: LanProbe = {
      ping: async (a, ttl) => (ttl ? (ttl === 1 ? { reply: false, exceededFrom: '192.168.10.1' } : { reply: true }) : { reply: a === '192.168.10.2' }),
      dhcpOffers: async () => [
        { server: '192.168.10.1', offered: '192.168.10.120', router: '192.168.10.1', dns: [] },
        { server: '192.168.10.2', offered: '192.168.0.100', router: '192.168.0.1', dns: [] },
      ],
    };
    const f = await doctorReadOnly(rig, { lan: probe });
    expect(findingsOf(f, 'topology.single-dhcp')).toEqual([expect.objectContaining({ status: 'fail', remedy: expect.stringMatching(/192\.168\.10\.2/) })]);
    expect(findingsOf(f, 'topology.no-double-nat').map((x) => x.status)).toEqual(['ok']);
    expect(findingsOf(f, 'topology.ap-address').map((x) => x.status)).toEqual(['ok']);
    expect(doctorExitCode(f)).toBe(1);
  });

  it('a wrong API secret: router.reachable fails naming the credentials, the secret is not shown', async () => {
    const wrong = 'not-the-secret-0123456789';
    const f = await rig.doctor({ env: { ...rig.h.env, DUALWAN_OPNSENSE_API_SECRET: wrong } });
    const r = findingsOf(f, 'router.reachable');
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ status: 'fail', remedy: expect.stringMatching(/DUALWAN_OPNSENSE_API_SECRET/) });
    expect(JSON.stringify(f)).not.toContain(wrong);
    expect(f.some((x) => x.check.startsWith('router.') && x.check !== 'router.reachable')).toBe(false);
  });
});

describe('dualwan doctor: load-balancing checks (both WANs in one tier)', () => {
  let rig: DoctorRig;
  beforeAll(async () => {
    rig = await doctorRig((d) => {
      d.setIn(['policy', 'mode'], 'loadbalance');
      d.setIn(['policy', 'stickyConnections'], true);
      d.setIn(['policy', 'killMeteredStatesOnFailback'], false);
      d.setIn(['wans', 1, 'tier'], 1);
      d.setIn(['wans', 0, 'weight'], 2);
    });
  });
  afterAll(() => rig.close());

  const lb = ROUTER_FAULTS.filter((x) => EXPECT[x].loadbalance);
  it.each(lb)('flags the seeded fault %s with a remedy', async (fault) => {
    await rig.resetRouter();
    rig.h.router.controls.state.config.system.pf_share_forward = false; // as after the GUI change the guide asks for
    rig.h.router.controls.state.save('shared forwarding off (GUI)');
    const before = await rig.doctor();
    const e = EXPECT[fault];
    expect(findingsOf(before, e.check).map((x) => x.status)).toEqual(['ok']);
    presentFault(rig.h.router.controls, fault);
    const f = await doctorReadOnly(rig);
    const hits = findingsOf(f, e.check).filter((x) => x.status === e.status);
    expect(hits.map((x) => x.message)).toEqual(expect.arrayContaining([expect.stringMatching(e.message)]));
  });
});
