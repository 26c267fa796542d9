import { errors, load, only } from './helpers';

/**
 * One malformed file per case, with the exact line:column the diagnostic must point at, counted by
 * hand in the fixture (columns are 1-based).
 */
describe('malformed dualwan.yaml', () => {
  it('points a wrong type at the value', () => {
    const text = [
      'version: 1', //                                        1
      'backend: linux', //                                    2
      'linux: { host: 192.168.10.1 }', //                     3
      'wans:', //                                             4
      '  - name: line1', //                                   5
      '    uplink: { type: interface, interface: eth1 }', //  6
      '    tier: first', //                                   7
      '  - name: line2', //                                   8
      '    uplink: { type: interface, interface: eth2 }', //  9
      'lan: { uplink: { type: interface, interface: eth0 } }',
      'policy: { mode: loadbalance }',
      '',
    ].join('\n');
    const result = load(text);
    const d = only(result, 'CONFIG_WRONG_TYPE');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 7, column: 11 });
    expect(d.path).toBe('wans.0.tier');
    expect(d.message).toBe('wans.0.tier must be a number, not the string "first".');
    expect(d.remedy).toMatch(/^Expected: Failover tier/);
    expect(result.state).toBeUndefined();
  });

  it('tells to quote a USB id that YAML read as a number', () => {
    const text = [
      'version: 1',
      'backend: opnsense-vm',
      'proxmox: { host: 192.168.1.10, tokenId: dualwan@pve!setup }',
      'vm: { vmid: 100 }',
      'wans:',
      '  - name: isp',
      '    uplink: { type: pci-nic, pci: "0000:02:00.0" }',
      '  - name: dongle',
      '    uplink: { type: usb-tether, vendorId: 0781, productId: "5581" }', // line 9
      '    tier: 2',
      'lan: { uplink: { type: bridge, bridge: vmbr0 } }',
      'policy: { mode: failover }',
      '',
    ].join('\n');
    const d = only(load(text), 'CONFIG_WRONG_TYPE');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 9, column: 43 });
    expect(d.remedy).toContain('vendorId: "0781"');
  });

  it('points an unknown key at the key itself and suggests the right spelling', () => {
    const text = [
      'version: 1',
      'backend: linux',
      'linux:',
      '  host: 192.168.10.1',
      'wans:',
      '  - name: line1',
      '    uplink: { type: interface, interface: eth1 }',
      '    monitorIPs: [1.1.1.1]', // line 8, key at column 5
      '  - name: line2',
      '    uplink: { type: interface, interface: eth2 }',
      'lan: { uplink: { type: interface, interface: eth0 } }',
      'policy: { mode: loadbalance }',
      '',
    ].join('\n');
    const d = only(load(text), 'CONFIG_UNKNOWN_KEY');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 8, column: 5 });
    expect(d.path).toBe('wans.0.monitorIPs');
    expect(d.remedy).toMatch(/^Did you mean "monitorIps"\?/);
  });

  it('points a missing key at the map that lacks it', () => {
    const text = [
      'version: 1',
      'backend: linux',
      'linux: { host: 192.168.10.1 }',
      'wans:',
      '  - name: line1',
      '    uplink: { type: interface, interface: eth1 }',
      '  - name: line2', // line 7: the map of wans.1 starts at "name", column 5
      '    weight: 1',
      'lan: { uplink: { type: interface, interface: eth0 } }',
      'policy: { mode: loadbalance }',
      '',
    ].join('\n');
    const d = only(load(text), 'CONFIG_MISSING_KEY');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 7, column: 5 });
    expect(d.path).toBe('wans.1.uplink');
    expect(d.message).toBe('Missing required key "uplink" in wans.1.');
  });

  it('reports a missing top-level section at the top-level map', () => {
    const text = '# comment\nversion: 1\nbackend: linux\nlinux: { host: r1 }\nwans: []\nlan: { uplink: { type: interface, interface: eth0 } }\n';
    const result = load(text);
    const d = only(result, 'CONFIG_MISSING_KEY');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 2, column: 1 });
    expect(d.path).toBe('policy');
    const few = only(result, 'CONFIG_OUT_OF_RANGE');
    expect(few.location).toEqual({ file: 'dualwan.yaml', line: 5, column: 7 });
    expect(few.message).toBe('wans has 0 items; it needs at least 2.');
  });

  it('points a bad CIDR and a subnet with host bits at their values', () => {
    const text = [
      'version: 1',
      'backend: linux',
      'linux: { host: 192.168.10.1 }',
      'wans:',
      '  - name: line1',
      '    uplink: { type: interface, interface: eth1 }',
      '    upstreamSubnet: 192.168.1.0/33', // line 7, value at column 21
      '  - name: line2',
      '    uplink: { type: interface, interface: eth2 }',
      'lan:',
      '  uplink: { type: interface, interface: eth0 }',
      '  subnet: 192.168.10.1/24', // line 12, value at column 11
      'policy: { mode: loadbalance }',
      '',
    ].join('\n');
    const result = load(text);
    const bad = only(result, 'CONFIG_INVALID_FORMAT');
    expect(bad.location).toEqual({ file: 'dualwan.yaml', line: 7, column: 21 });
    expect(bad.message).toBe('wans.0.upstreamSubnet "192.168.1.0/33" must be an IPv4 CIDR such as 192.168.10.0/24.');
    const hostBits = only(result, 'CONFIG_INVALID_VALUE');
    expect(hostBits.location).toEqual({ file: 'dualwan.yaml', line: 12, column: 11 });
    expect(hostBits.message).toContain('write the network address, 192.168.10.0/24');
  });

  it('points overlapping subnets at the LAN subnet', () => {
    const text = [
      'version: 1',
      'backend: linux',
      'linux: { host: 10.0.0.1 }',
      'wans:',
      '  - name: line1',
      '    uplink: { type: interface, interface: eth1 }',
      '    upstreamSubnet: 10.0.0.0/16',
      '  - name: line2',
      '    uplink: { type: interface, interface: eth2 }',
      'lan:',
      '  uplink: { type: interface, interface: eth0 }',
      '  subnet: 10.0.7.0/24', // line 12
      'policy: { mode: loadbalance }',
      '',
    ].join('\n');
    const d = only(load(text), 'RULE_SUBNET_OVERLAP');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 12, column: 11 });
    expect(d.message).toContain('(line 7)');
  });

  it('points a duplicate monitor IP at the second occurrence', () => {
    const text = [
      'version: 1',
      'backend: linux',
      'linux: { host: 192.168.10.1 }',
      'wans:',
      '  - name: line1',
      '    uplink: { type: interface, interface: eth1 }',
      '    monitorIps: [8.8.4.4]',
      '  - name: line2',
      '    uplink: { type: interface, interface: eth2 }',
      '    monitorIps:',
      '      - 208.67.222.222',
      '      - 8.8.4.4', // line 12, value at column 9
      'lan: { uplink: { type: interface, interface: eth0 } }',
      'policy: { mode: loadbalance }',
      '',
    ].join('\n');
    const d = only(load(text), 'RULE_MONITOR_IP_DUPLICATE');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 12, column: 9 });
    expect(d.path).toBe('wans.1.monitorIps.1');
    expect(d.message).toContain('(line 7)');
  });

  it('refuses a secret key, at the key, with a remedy naming the environment and the 0600 file', () => {
    const text = [
      'version: 1',
      'backend: opnsense-vm',
      'proxmox:',
      '  host: 192.168.1.10',
      '  tokenId: dualwan@pve!setup',
      '  tokenSecret: 1f9c3a52-0d6e-4b8a-9c7e-2a4b6d8f0e1c', // line 6, key at column 3
      'vm: { vmid: 100 }',
      'wans:',
      '  - name: isp',
      '    uplink: { type: pci-nic, pci: "0000:02:00.0" }',
      '  - name: hotspot',
      '    uplink: { type: usb-tether, vendorId: "18d1", productId: "4ee3" }',
      '    tier: 2',
      'lan: { uplink: { type: bridge, bridge: vmbr0 } }',
      'policy: { mode: failover }',
      '',
    ].join('\n');
    const result = load(text);
    expect(errors(result).map((d) => d.code)).toEqual(['CONFIG_SECRET_IN_FILE']);
    const d = only(result, 'CONFIG_SECRET_IN_FILE');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 6, column: 3 });
    expect(d.remedy).toMatch(/environment \(here DUALWAN_PROXMOX_TOKEN_SECRET\)/);
    expect(d.remedy).toMatch(/credentials file, mode 0600/);
    expect(JSON.stringify(result)).not.toContain('1f9c3a52');
  });

  it.each([
    ['password', 'opnsense:\n  password: hunter2\n'],
    ['apiKey', 'opnsense:\n  apiKey: abc\n'],
    ['privateKey', 'linux:\n  privateKey: abc\n'],
    ['api_secret', 'extra:\n  - api_secret: abc\n'],
  ])('refuses %s anywhere in the file', (key, section) => {
    const text = `version: 1\n${section}`;
    const d = only(load(text), 'CONFIG_SECRET_IN_FILE');
    expect(d.path).toMatch(new RegExp(`${key}$`));
    expect(d.location?.line).toBe(3);
  });

  it('refuses a token id with its secret appended, at the value', () => {
    const text = 'version: 1\nproxmox:\n  tokenId: dualwan@pve!setup=1f9c3a52-0d6e\n';
    const result = load(text);
    const d = only(result, 'CONFIG_SECRET_IN_FILE');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 3, column: 12 });
    expect(result.diagnostics.filter((x) => x.path === 'proxmox.tokenId')).toHaveLength(1);
  });

  it('reports YAML syntax errors with their line and column and stops there', () => {
    const text = 'version: 1\nbackend: linux\nwans:\n  - name: a\n   bad: indent\n';
    const result = load(text);
    const d = errors(result)[0];
    expect(d?.code).toBe('CONFIG_YAML_SYNTAX');
    expect(d?.location).toEqual({ file: 'dualwan.yaml', line: 5, column: 4 });
    expect(result.diagnostics.every((x) => x.code.startsWith('CONFIG_YAML'))).toBe(true);
  });

  it('reports a duplicate key as a YAML error at the second key', () => {
    const text = 'version: 1\nbackend: linux\nbackend: opnsense-vm\n';
    const d = only(load(text), 'CONFIG_YAML_SYNTAX');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 3, column: 1 });
    expect(d.remedy).toMatch(/duplicate|Keep one/);
  });

  it('reports an unsupported version', () => {
    const d = only(load('version: 2\n'), 'CONFIG_UNSUPPORTED_VERSION');
    expect(d.location).toEqual({ file: 'dualwan.yaml', line: 1, column: 10 });
  });

  it('reports an empty file and a file that is not a map', () => {
    expect(only(load('# nothing yet\n'), 'CONFIG_EMPTY').remedy).toContain('dualwan setup');
    const notMap = only(load('- a\n- b\n'), 'CONFIG_WRONG_TYPE');
    expect(notMap.location).toEqual({ file: 'dualwan.yaml', line: 1, column: 1 });
  });

  it('reports an unknown uplink type with the allowed ones', () => {
    const text = [
      'version: 1',
      'backend: linux',
      'linux: { host: r1 }',
      'wans:',
      '  - name: a',
      '    uplink: { type: wifi, interface: wlan0 }', // line 6, "wifi" at column 21
      '  - name: b',
      '    uplink: { interface: eth2 }', // line 8: the flow map starts at column 13
      'lan: { uplink: { type: interface, interface: eth0 } }',
      'policy: { mode: loadbalance }',
      '',
    ].join('\n');
    const result = load(text);
    const choice = only(result, 'CONFIG_INVALID_CHOICE');
    expect(choice.location).toEqual({ file: 'dualwan.yaml', line: 6, column: 21 });
    expect(choice.message).toContain('"pci-nic", "usb-tether", "bridge", "interface"');
    const missing = only(result, 'CONFIG_MISSING_KEY');
    expect(missing.location).toEqual({ file: 'dualwan.yaml', line: 8, column: 13 });
    expect(missing.path).toBe('wans.1.uplink.type');
  });

  it('never throws, whatever the input', () => {
    const inputs = ['', ':', '[', '{a: *b}', '!!binary x', 'version: 1\n'.repeat(3), '\u0000', 'a: &x [*x]', '- - - -'];
    for (const text of inputs) {
      expect(() => load(text)).not.toThrow();
      expect(load(text).state).toBeUndefined();
      for (const d of load(text).diagnostics) {
        expect(d.code).toMatch(/^(CONFIG|RULE)_[A-Z_]+$/);
        expect(d.message.length).toBeGreaterThan(0);
        expect(d.remedy.length).toBeGreaterThan(0);
        expect(typeof d.path).toBe('string');
      }
    }
  });
});
