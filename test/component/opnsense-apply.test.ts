// The OPNsense stage against the simulated router: both story-1 playbooks apply cleanly, a second
// apply plans nothing and writes nothing, and the router then behaves as configured.
import { pendingChanges, type Plan } from '../../src/core/plan';
import { openRouterRun, type RouterRun } from '../doubles/opnsense/harness';
import { loadPlaybookState, startSimulatedRouter, type SimulatedRouter } from '../doubles/opnsense/simulated-router';

const summary = (p: Plan) => pendingChanges(p).map((c) => `${c.action} ${c.address}`);

async function applyTwice(router: SimulatedRouter, run: RouterRun) {
  const first = await run.plan();
  const report = await run.apply(first);
  const writesAfterFirst = router.controls.writeCount;
  const second = await run.plan();
  const again = await run.apply(second);
  return { first, report, writesAfterFirst, second, again };
}

describe('hotspot-failover.yaml', () => {
  let router: SimulatedRouter;
  let run: RouterRun;
  beforeAll(async () => {
    router = await startSimulatedRouter({ state: loadPlaybookState('hotspot-failover.yaml') });
    run = await openRouterRun(router, { playbook: 'hotspot-failover.yaml' });
  });
  afterAll(async () => {
    await run.close();
    await router.close();
  });

  it('applies cleanly; the second apply plans nothing and makes zero writes', async () => {
    const { first, report, writesAfterFirst, second, again } = await applyTwice(router, run);
    expect(summary(first)).toEqual([
      'update opnsense.interface/wan',
      'update opnsense.interface/opt1',
      'update opnsense.interface/lan',
      'update opnsense.gateway/WAN_DHCP',
      'update opnsense.gateway/WAN2_DHCP',
      'create opnsense.gateway-group/DUALWAN',
      'update opnsense.outbound-nat/mode',
      'create opnsense.outbound-nat/isp',
      'create opnsense.outbound-nat/hotspot',
      'create opnsense.filter-rule/lan-to-router',
      'update opnsense.filter-rule/lan-default',
    ]);
    // one reconfigure/apply per touched module, after the changes
    expect(report.postActions).toEqual(['interfaces/assignment/reconfigure', 'routing/settings/reconfigure', 'routing/group_settings/reconfigure', 'firewall/source_nat/apply', 'firewall/filter/apply']);
    expect(report.applied).toHaveLength(11);
    expect(report.writeCalls).toBe(11 + 5);
    expect(writesAfterFirst).toBe(report.writeCalls);
    expect(router.controls.unapplied()).toEqual([]);

    expect(pendingChanges(second)).toEqual([]);
    expect(second.postActions).toEqual([]);
    expect(again.writeCalls).toBe(0);
    expect(router.controls.writeCount).toBe(writesAfterFirst);
    expect(router.controls.requests.filter((r) => r.method === 'POST' && r.write).length).toBe(writesAfterFirst);
    expect(router.controls.contractViolations).toEqual([]);
  });

  it('leaves a router that fails over to the hotspot and back, killing states as asked', () => {
    const c = router.controls;
    const gw = Object.values(c.state.config.gateways);
    expect(gw.map((g) => [g.name, g.monitor_disable, g.monitor, g.priority, g.monitor_killstates, g.monitor_killstates_priority, g.interval])).toEqual([
      ['WAN_DHCP', '0', '1.1.1.1', '10', '1', '0', '1'],
      ['WAN2_DHCP', '0', '9.9.9.9', '20', '1', '1', '30'],
    ]);
    expect(Object.values(c.state.config.groups)).toEqual([expect.objectContaining({ name: 'DUALWAN', item: 'WAN_DHCP', item2: 'WAN2_DHCP', trigger: 'downlosslatency' })]);
    expect(c.openConnection({ src: '192.168.10.100', dst: '192.168.10.1', dport: 53 })).toMatchObject({ gateway: null }); // DNS stays local
    expect(c.openConnection({ src: '192.168.10.100', dst: '93.184.216.34' })).toMatchObject({ gateway: 'WAN_DHCP' });
    c.setLinkHealth('wan', { up: false });
    expect(c.state.states.filter((s) => s.gateway === 'WAN_DHCP')).toEqual([]); // failover states killed
    expect(c.openConnection({ src: '192.168.10.100', dst: '93.184.216.34' })).toMatchObject({ gateway: 'WAN2_DHCP', nat_addr: '192.168.43.101' });
    c.setLinkHealth('wan', { up: true });
    expect(c.state.states.filter((s) => s.gateway === 'WAN2_DHCP')).toEqual([]); // metered failback states killed
    expect(c.openConnection({ src: '192.168.10.100', dst: '93.184.216.34' })).toMatchObject({ gateway: 'WAN_DHCP' });
  });
});

describe('opnsense-loadbalance.yaml (2:1)', () => {
  let router: SimulatedRouter;
  let run: RouterRun;
  beforeAll(async () => {
    router = await startSimulatedRouter({ state: loadPlaybookState('opnsense-loadbalance.yaml') });
    run = await openRouterRun(router, { playbook: 'opnsense-loadbalance.yaml' });
  });
  afterAll(async () => {
    await run.close();
    await router.close();
  });

  it('applies cleanly with both WANs in tier 1, weights 2 and 1, sticky pool; a second apply writes nothing', async () => {
    const { first, again, second } = await applyTwice(router, run);
    const group = pendingChanges(first).find((c) => c.address === 'opnsense.gateway-group/DUALWAN')!;
    expect(group.desired).toMatchObject({ item: 'WAN2_DHCP,WAN_DHCP', item2: '', poolopts: 'round-robin sticky-address', descr: 'dualwan loadbalance' });
    expect(pendingChanges(second)).toEqual([]);
    expect(again.writeCalls).toBe(0);
    expect(router.controls.unapplied()).toEqual([]);
    expect(router.controls.contractViolations).toEqual([]);
    const gws = Object.values(router.controls.state.config.gateways);
    expect(gws.map((g) => [g.name, g.weight, g.monitor_killstates_priority])).toEqual([
      ['WAN_DHCP', '2', '0'],
      ['WAN2_DHCP', '1', '0'],
    ]);
  });

  it('spreads new clients 2:1 and keeps each client on its WAN', () => {
    const c = router.controls;
    const picks = Array.from({ length: 30 }, (_, i) => c.openConnection({ src: `192.168.10.${100 + i}`, dst: '93.184.216.34' })!.gateway);
    expect(picks.filter((g) => g === 'WAN_DHCP').length).toBe(20);
    expect(picks.filter((g) => g === 'WAN2_DHCP').length).toBe(10);
    const again = Array.from({ length: 30 }, (_, i) => c.openConnection({ src: `192.168.10.${100 + i}`, dst: '198.51.100.7' })!.gateway);
    expect(again).toEqual(picks);
  });
});
