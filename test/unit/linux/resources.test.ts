import type { DesiredState } from '../../../src/core/desired';
import { CapabilityError } from '../../../src/core/errors';
import { renderedRuleCounts } from '../../../src/providers/linux/commands';
import { buildLinuxContext, type LinuxContext } from '../../../src/providers/linux/context';
import {
  defaultRouteHandler,
  desiredNatTable,
  desiredSysctls,
  natTableHandler,
  parseNatTable,
  routeKey,
  routeTableHandler,
  ruleHandler,
  ruleKey,
  sysctlHandler,
} from '../../../src/providers/linux/resources';
import { CannedShell, LAB_ROUTER_ADDR as ADDR } from '../../helpers/canned-shell';
import { ADDRESS_PLANS } from '../../lab/addressing';
import { labDesiredState } from '../../lab/desired';

const plan = ADDRESS_PLANS[0]!;

async function context(state: DesiredState = labDesiredState(plan, 'SHA256:x'), routes = '[]'): Promise<LinuxContext> {
  return buildLinuxContext(state, new CannedShell({ 'ip -j addr show': ADDR, 'ip -j route show table main': routes }));
}

describe('the Linux context', () => {
  it('numbers tables, rules and marks per WAN in config order', async () => {
    const ctx = await context();
    expect(ctx.wans.map((w) => [w.name, w.interface, w.address, w.subnet, w.gateway, w.table, w.sourceRulePriority, w.markRulePriority, w.mark])).toEqual([
      ['isp1', 'wan1', '100.64.1.2', '100.64.1.0/24', '100.64.1.1', 101, 1001, 1101, 1],
      ['isp2', 'wan2', '100.64.2.2', '100.64.2.0/24', '100.64.2.1', 102, 1002, 1102, 2],
    ]);
    expect(ctx.lan).toEqual({ interface: 'lan0', subnet: '192.168.77.0/24' });
  });

  it('finds a DHCP WAN’s address and gateway on the router, or says what is missing', async () => {
    const base = labDesiredState(plan, 'SHA256:x');
    const dhcp = { ...base, wans: [{ ...base.wans[0]!, addressing: { mode: 'dhcp' as const } }, base.wans[1]!] };
    const ctx = await context(dhcp, '[{"dst":"default","gateway":"100.64.1.254","dev":"wan1","protocol":"dhcp","metric":100,"flags":[]}]');
    expect(ctx.wans[0]).toMatchObject({ address: '100.64.1.2', gateway: '100.64.1.254', subnet: '100.64.1.0/24' });
    await expect(context(dhcp, '[]')).rejects.toBeInstanceOf(CapabilityError);
  });
});

describe('desired values', () => {
  it('sets forwarding, loose rp_filter, L4 hashing and linkdown handling', async () => {
    const values = Object.fromEntries(desiredSysctls(await context()).map((v) => [v.key, v.value]));
    expect(values).toMatchObject({
      'net.ipv4.ip_forward': '1',
      'net.ipv4.conf.all.rp_filter': '2',
      'net.ipv4.fib_multipath_hash_policy': '1',
      'net.ipv4.conf.all.ignore_routes_with_linkdown': '1',
      'net.ipv4.conf.wan1.rp_filter': '2',
    });
  });

  it('gives each WAN a table with its link, the LAN, its default and an unreachable fallback', async () => {
    const [t1] = routeTableHandler.desired(await context());
    // The fallback keeps a WAN's own traffic (probes, sticky hosts) from leaking out of the other WAN when its link is down.
    expect(t1!.value.routes.map(routeKey)).toEqual(['100.64.1.0/24 dev wan1 src 100.64.1.2', '192.168.77.0/24 dev lan0', 'default via 100.64.1.1 dev wan1', 'unreachable default metric 65535']);
  });

  it('routes by source address and by connection mark', async () => {
    expect(ruleHandler.desired(await context()).map((d) => `${d.value.priority} ${d.value.rule}`)).toEqual([
      '1001 from 100.64.1.2 lookup 101',
      '1101 fwmark 0x1/0xff lookup 101',
      '1002 from 100.64.2.2 lookup 102',
      '1102 fwmark 0x2/0xff lookup 102',
    ]);
  });

  it('weights the default route 2:1 over the best tier only, after the tables and rules', async () => {
    const [d] = defaultRouteHandler.desired(await context());
    expect(d!.value.nexthops).toEqual([
      { via: '100.64.1.1', dev: 'wan1', weight: 2 },
      { via: '100.64.2.1', dev: 'wan2', weight: 1 },
    ]);
    expect(d!.dependsOn).toEqual(['linux.route-table/isp1', 'linux.route-table/isp2', 'linux.rule/1001', 'linux.rule/1002']);
    const base = labDesiredState(plan, 'SHA256:x');
    const failover = { ...base, wans: [base.wans[0]!, { ...base.wans[1]!, tier: 2 }] };
    const [f] = defaultRouteHandler.desired(await context(failover));
    expect(f!.value.nexthops).toEqual([{ via: '100.64.1.1', dev: 'wan1', weight: 1 }]);
  });

  it('renders the NAT ruleset with sticky hosts and a fingerprint that changes with it', async () => {
    const a = desiredNatTable(await context());
    const b = desiredNatTable(await context(labDesiredState(plan, 'SHA256:x', { stickyHosts: [{ destination: '198.51.100.77/32', wan: 'isp2' }] })));
    expect(a.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(b.fingerprint).not.toBe(a.fingerprint);
    expect(b.ruleset).toContain('ip daddr 198.51.100.77/32 ct mark set 0x2');
    expect(a.ruleset).toContain(`counter comment "dualwan ruleset ${a.fingerprint!}"`);
    expect(a.rulesPerChain).toEqual(renderedRuleCounts(a.ruleset));
    expect(a.rulesPerChain.postrouting_nat).toBe(4);
  });
});

describe('diffs', () => {
  it('sysctl: noop when equal, update otherwise', () => {
    expect(sysctlHandler.diff({ key: 'k.a', value: '1' }, { key: 'k.a', value: '1' }).action).toBe('noop');
    expect(sysctlHandler.diff({ key: 'net.ipv4.ip_forward', value: '1' }, { key: 'net.ipv4.ip_forward', value: '0' })).toMatchObject({ action: 'update', reason: expect.stringContaining('forwarding') });
    expect(sysctlHandler.diff({ key: 'k.a', value: '1' }, undefined).action).toBe('create');
  });

  it('rules: anything but exactly our rule at our priority is drift', () => {
    const want = { priority: 1001, rule: 'from 100.64.1.2 lookup 101', from: '100.64.1.2', table: 101 };
    expect(ruleHandler.diff(want, { priority: 1001, rules: ['from 100.64.1.2 lookup 101'] }).action).toBe('noop');
    expect(ruleHandler.diff(want, { priority: 1001, rules: ['from 100.64.1.2 lookup 101', 'from 100.64.1.2 lookup 101'] }).action).toBe('update');
    expect(ruleHandler.diff(want, { priority: 1001, rules: ['from 10.0.0.1 lookup 101'] }).action).toBe('update');
    expect(ruleHandler.diff(want, undefined).action).toBe('create');
    expect(ruleKey({ priority: 1101, src: 'all', fwmark: '0x1', fwmask: '0xff', table: '101' })).toBe('fwmark 0x1/0xff lookup 101');
    expect(ruleKey({ priority: 5, src: '10.0.0.0', srclen: 8, table: 'main' })).toBe('from 10.0.0.0/8 lookup main');
  });

  it('default route: order of next hops does not matter, weights do', () => {
    const want = { nexthops: [{ via: 'a', dev: 'x', weight: 2 }, { via: 'b', dev: 'y', weight: 1 }] };
    expect(defaultRouteHandler.diff(want, { nexthops: [...want.nexthops].reverse() }).action).toBe('noop');
    expect(defaultRouteHandler.diff(want, { nexthops: [{ via: 'a', dev: 'x', weight: 1 }, { via: 'b', dev: 'y', weight: 1 }] }).action).toBe('update');
  });

  it('NAT table: recognises its own fingerprint and counts rules per chain', async () => {
    const want = desiredNatTable(await context());
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'ip', name: 'dualwan' } },
        ...Object.entries(want.rulesPerChain).flatMap(([chain, n]) => [
          { chain: { family: 'ip', table: 'dualwan', name: chain } },
          ...Array.from({ length: n }, (_, i) => ({ rule: { chain, ...(chain === 'dualwan_meta' && i === 0 ? { comment: `dualwan ruleset ${want.fingerprint!}` } : {}) } })),
        ]),
      ],
    });
    const seen = parseNatTable('dualwan', json);
    expect(natTableHandler.diff(want, seen).action).toBe('noop');
    expect(natTableHandler.diff(want, { ...seen, rulesPerChain: { ...seen.rulesPerChain, forward_filter: 4 } })).toMatchObject({ action: 'update', disruption: ['reloads-firewall'] });
    expect(natTableHandler.diff(want, { ...seen, fingerprint: null }).action).toBe('update');
    expect(natTableHandler.diff(want, undefined).action).toBe('create');
  });
});
