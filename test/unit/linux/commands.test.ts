import {
  CommandArgumentError,
  conntrackCount,
  conntrackDelete,
  conntrackDeleteSucceeded,
  conntrackDeletedCount,
  conntrackFlushAll,
  ipAddrShow,
  ipRouteDelete,
  ipRouteFlushTable,
  ipRouteGet,
  ipRouteReplace,
  ipRouteShow,
  ipRuleAdd,
  ipRuleDelete,
  ipRuleDeleteAtPriority,
  ipRuleShow,
  nftApplyStdin,
  nftListRuleset,
  nftListTable,
  parseSysctlOutput,
  renderNatRuleset,
  renderedRuleCounts,
  sysctlRead,
  sysctlWrite,
  type NatRulesetSpec,
} from '../../../src/providers/linux/commands';

describe('ip builders', () => {
  it('read in JSON', () => {
    expect(ipAddrShow()).toEqual(['ip', '-j', 'addr', 'show']);
    expect(ipAddrShow('wan1')).toEqual(['ip', '-j', 'addr', 'show', 'dev', 'wan1']);
    expect(ipRouteShow()).toEqual(['ip', '-j', 'route', 'show', 'table', 'main']);
    expect(ipRouteShow(101)).toEqual(['ip', '-j', 'route', 'show', 'table', '101']);
    expect(ipRuleShow()).toEqual(['ip', '-j', 'rule', 'show']);
    expect(ipRouteGet('203.0.113.10', { from: '192.168.77.10', iif: 'lan0', mark: 1 })).toEqual([
      'ip', '-j', 'route', 'get', '203.0.113.10', 'from', '192.168.77.10', 'iif', 'lan0', 'mark', '0x1',
    ]);
  });

  it('build a weighted multipath default route', () => {
    expect(
      ipRouteReplace({
        dst: 'default',
        proto: 'static',
        nexthops: [
          { via: '100.64.1.1', dev: 'wan1', weight: 2 },
          { via: '100.64.2.1', dev: 'wan2', weight: 1 },
        ],
      }),
    ).toEqual(['ip', 'route', 'replace', 'default', 'proto', 'static', 'nexthop', 'via', '100.64.1.1', 'dev', 'wan1', 'weight', '2', 'nexthop', 'via', '100.64.2.1', 'dev', 'wan2', 'weight', '1']);
  });

  it('build per-ISP table routes and delete by selector only', () => {
    expect(ipRouteReplace({ dst: '100.64.1.0/24', dev: 'wan1', src: '100.64.1.2', table: 101, scope: 'link' })).toEqual([
      'ip', 'route', 'replace', '100.64.1.0/24', 'table', '101', 'scope', 'link', 'src', '100.64.1.2', 'dev', 'wan1',
    ]);
    expect(ipRouteDelete({ dst: 'default', table: 101, via: '100.64.1.1', dev: 'wan1' })).toEqual(['ip', 'route', 'del', 'default', 'table', '101']);
    expect(ipRouteReplace({ dst: '10.0.0.0/8', type: 'blackhole', table: 101 })).toEqual(['ip', 'route', 'replace', 'blackhole', '10.0.0.0/8', 'table', '101']);
    expect(ipRouteFlushTable(101)).toEqual(['ip', 'route', 'flush', 'table', '101']);
  });

  it('refuse bad routes', () => {
    const bad = (f: () => unknown) => expect(f).toThrow(CommandArgumentError);
    bad(() => ipRouteReplace({ dst: 'default; reboot', via: '1.2.3.4' }));
    bad(() => ipRouteReplace({ dst: 'default', via: '1.2.3.4; reboot' }));
    bad(() => ipRouteReplace({ dst: 'default', via: '256.1.1.1' }));
    bad(() => ipRouteReplace({ dst: 'default', dev: 'a b' }));
    bad(() => ipRouteReplace({ dst: 'default', dev: 'waytoolonginterfacename' }));
    bad(() => ipRouteReplace({ dst: 'default', nexthops: [] }));
    bad(() => ipRouteReplace({ dst: 'default', via: '1.2.3.4', nexthops: [{ via: '1.2.3.5', dev: 'x' }] }));
    bad(() => ipRouteReplace({ dst: 'default', nexthops: [{ via: '1.2.3.4', dev: 'wan1', weight: 0 }] }));
    bad(() => ipRouteReplace({ dst: 'default', nexthops: [{ via: '1.2.3.4', dev: 'wan1', weight: 257 }] }));
    bad(() => ipRouteReplace({ dst: 'default', via: '1.2.3.4', table: 254 }));
    bad(() => ipRouteReplace({ dst: 'default', via: '1.2.3.4', table: 0 }));
    bad(() => ipRouteFlushTable('main'));
  });

  it('build rules with priority, source, fwmark/mask and table', () => {
    expect(ipRuleAdd({ priority: 1001, from: '100.64.1.2', table: 101 })).toEqual(['ip', 'rule', 'add', 'priority', '1001', 'from', '100.64.1.2', 'table', '101']);
    expect(ipRuleAdd({ priority: 1100, fwmark: { value: 1, mask: 0xff }, table: 101 })).toEqual(['ip', 'rule', 'add', 'priority', '1100', 'fwmark', '0x1/0xff', 'table', '101']);
    expect(ipRuleDelete({ priority: 900, to: '203.0.113.7/32', iif: 'lan0', table: 102 })).toEqual(['ip', 'rule', 'del', 'priority', '900', 'to', '203.0.113.7/32', 'iif', 'lan0', 'table', '102']);
    expect(ipRuleAdd({ priority: 500, table: 'main', suppressPrefixLength: 0 })).toEqual(['ip', 'rule', 'add', 'priority', '500', 'table', 'main', 'suppress_prefixlength', '0']);
    expect(ipRuleDeleteAtPriority(1001)).toEqual(['ip', 'rule', 'del', 'priority', '1001']);
    expect(() => ipRuleDeleteAtPriority(32767)).toThrow(CommandArgumentError);
    expect(() => ipRuleAdd({ priority: 0, table: 101 })).toThrow(CommandArgumentError);
    expect(() => ipRuleAdd({ priority: 32766, table: 101 })).toThrow(CommandArgumentError);
    expect(() => ipRuleAdd({ priority: 10, from: '100.64.1.2 table 254', table: 101 })).toThrow(CommandArgumentError);
    expect(() => ipRuleAdd({ priority: 10, fwmark: { value: -1 }, table: 101 })).toThrow(CommandArgumentError);
  });
});

describe('sysctl', () => {
  it('writes and reads keys, refusing odd ones', () => {
    expect(sysctlWrite('net.ipv4.ip_forward', 1)).toEqual(['sysctl', '-w', 'net.ipv4.ip_forward=1']);
    expect(sysctlWrite('net.ipv4.conf.wan1.rp_filter', '2')).toEqual(['sysctl', '-w', 'net.ipv4.conf.wan1.rp_filter=2']);
    expect(sysctlRead(['net.ipv4.ip_forward', 'net.ipv4.fib_multipath_hash_policy'])).toEqual(['sysctl', '-e', 'net.ipv4.ip_forward', 'net.ipv4.fib_multipath_hash_policy']);
    expect(() => sysctlWrite('net.ipv4.ip_forward=0 kernel.x', 1)).toThrow(CommandArgumentError);
    expect(() => sysctlWrite('../../etc/passwd', 1)).toThrow(CommandArgumentError);
    expect(() => sysctlWrite('net.ipv4.ip_forward', '1\nkernel.panic=1')).toThrow(CommandArgumentError);
    expect(() => sysctlRead([])).toThrow(CommandArgumentError);
  });

  it('parses sysctl output', () => {
    const out = parseSysctlOutput('net.ipv4.ip_forward = 0\nnet.ipv4.fib_multipath_hash_policy = 1\n\ngarbage\n');
    expect(Object.fromEntries(out)).toEqual({ 'net.ipv4.ip_forward': '0', 'net.ipv4.fib_multipath_hash_policy': '1' });
  });
});

describe('nftables', () => {
  const spec: NatRulesetSpec = {
    table: 'dualwan',
    lanInterfaces: ['lan0'],
    wans: [
      { name: 'isp1', interface: 'wan1', mark: 1 },
      { name: 'isp2', interface: 'wan2', mark: 2 },
    ],
    stickyConnections: true,
    stickyHosts: [{ destination: '203.0.113.7/32', mark: 2 }],
    forwardPolicy: 'drop',
    markMask: 0xff,
  };

  it('lists and applies through argv', () => {
    expect(nftListRuleset()).toEqual(['nft', '-j', 'list', 'ruleset']);
    expect(nftListTable('ip', 'dualwan')).toEqual(['nft', '-j', 'list', 'table', 'ip', 'dualwan']);
    expect(nftApplyStdin()).toEqual(['nft', '-f', '-']);
    expect(() => nftListTable('ip', 'x; flush ruleset')).toThrow(CommandArgumentError);
  });

  it('renders a ruleset that replaces its own table atomically', () => {
    const text = renderNatRuleset(spec);
    expect(text.split('\n').slice(0, 3)).toEqual(['table ip dualwan {}', 'delete table ip dualwan', 'table ip dualwan {']);
    expect(text).toContain('oifname "wan1" masquerade comment "wan isp1"');
    expect(text).toContain('oifname "wan2" ct mark & 0xff == 0 ct mark set 0x2 comment "mark isp2"');
    expect(text).toContain('ct mark & 0xff != 0 meta mark set ct mark & 0xff');
    expect(text).toContain('ct state new iifname { "lan0" } jump sticky_hosts');
    expect(text).toContain('ip daddr 203.0.113.7/32 ct mark set 0x2');
    // Marks are set where NAT is decided: only the first packet of a connection pays for them.
    expect(text).not.toContain('hook postrouting priority mangle');
    expect(text).toContain('type filter hook forward priority filter; policy drop;');
    expect(text.endsWith('}\n')).toBe(true);
  });

  it('carries a note in a chain nothing jumps to, and counts rules per chain', () => {
    const text = renderNatRuleset({ ...spec, note: 'dualwan ruleset 0123abcd' });
    expect(text).toContain('  chain dualwan_meta {\n    counter comment "dualwan ruleset 0123abcd"\n  }');
    expect(renderedRuleCounts(text)).toEqual({ prerouting_marks: 2, sticky_hosts: 1, forward_filter: 3, postrouting_nat: 4, dualwan_meta: 1 });
    expect(() => renderNatRuleset({ ...spec, note: 'x" drop' })).toThrow(CommandArgumentError);
  });

  it('leaves out marks when nothing is sticky', () => {
    const text = renderNatRuleset({ ...spec, stickyConnections: false, stickyHosts: [], forwardPolicy: 'accept' });
    expect(text).not.toContain('meta mark set');
    expect(text).toContain('policy accept;');
  });

  it('refuses anything that could change the ruleset language', () => {
    const bad = (patch: Partial<NatRulesetSpec>) => expect(() => renderNatRuleset({ ...spec, ...patch })).toThrow(CommandArgumentError);
    bad({ table: 'dualwan { }' });
    bad({ table: 'mark' });
    bad({ lanInterfaces: ['lan0" accept; #'] });
    bad({ lanInterfaces: [] });
    bad({ wans: [] });
    bad({ wans: [{ name: 'isp1', interface: 'wan1\n', mark: 1 }] });
    bad({ wans: [{ name: 'isp1" drop', interface: 'wan1', mark: 1 }] });
    bad({ wans: [{ name: 'a', interface: 'wan1', mark: 1 }, { name: 'b', interface: 'wan2', mark: 1 }] });
    bad({ wans: [{ name: 'a', interface: 'wan1', mark: 0 }] });
    bad({ wans: [{ name: 'a', interface: 'wan1', mark: 0x100 }] });
    bad({ stickyHosts: [{ destination: '203.0.113.7/32 drop', mark: 2 }] });
    bad({ stickyHosts: [{ destination: '203.0.113.7', mark: 9 }] });
    bad({ markMask: 0 });
  });
});

describe('conntrack', () => {
  it('deletes with a filter only', () => {
    expect(conntrackDelete({ replyDst: '100.64.1.2' })).toEqual(['conntrack', '-D', '-f', 'ipv4', '--reply-dst', '100.64.1.2']);
    expect(conntrackDelete({ mark: { value: 1, mask: 0xff }, protocol: 'udp' })).toEqual(['conntrack', '-D', '-f', 'ipv4', '-p', 'udp', '--mark', '0x1/0xff']);
    expect(conntrackDelete({ origSrc: '192.168.77.10', origDst: '203.0.113.10', replySrc: '203.0.113.10' })).toEqual([
      'conntrack', '-D', '-f', 'ipv4', '--orig-src', '192.168.77.10', '--orig-dst', '203.0.113.10', '--reply-src', '203.0.113.10',
    ]);
    expect(() => conntrackDelete({})).toThrow(CommandArgumentError);
    expect(() => conntrackDelete({ origSrc: '1.2.3.4 -F' })).toThrow(CommandArgumentError);
    expect(conntrackFlushAll()).toEqual(['conntrack', '-F']);
    expect(conntrackCount()).toEqual(['conntrack', '-L', '-f', 'ipv4']);
  });

  it('reads conntrack -D results (exit 1 with nothing deleted is success)', () => {
    const none = 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n';
    expect(conntrackDeletedCount(none)).toBe(0);
    expect(conntrackDeleteSucceeded({ code: 1, stderr: none })).toBe(true);
    expect(conntrackDeleteSucceeded({ code: 0, stderr: 'conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted.\n' })).toBe(true);
    expect(conntrackDeleteSucceeded({ code: 1, stderr: 'conntrack v1.4.7 (conntrack-tools): Operation not permitted\n' })).toBe(false);
    expect(conntrackDeleteSucceeded({ code: null, stderr: '' })).toBe(false);
  });
});
