import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfigText } from '../../../src/config/load';
import * as rules from '../../../src/config/rules';
import { COMMON_UPSTREAM_RANGES, RULES, suggestLanSubnet } from '../../../src/config/rules';
import { edit, errors, FILE, LINUX_BASE, load, only, pos, VM_BASE } from './helpers';

describe('the base fixtures', () => {
  it.each([
    ['opnsense-vm', VM_BASE],
    ['linux', LINUX_BASE],
  ])('%s base is valid, so each test below seeds exactly one fault', (_name, text) => {
    const result = load(text);
    expect(result.diagnostics).toEqual([]);
    expect(result.state).toBeDefined();
  });
});

describe('rule registry', () => {
  it('exports every registered rule under its own name', () => {
    for (const { name, rule } of RULES) expect((rules as Record<string, unknown>)[name]).toBe(rule);
    expect(RULES.map((r) => r.name)).toEqual(
      expect.arrayContaining([
        'wanUplinksDistinct',
        'subnetsDoNotOverlap',
        'lanAvoidsCommonRanges',
        'lanNotCgnat',
        'monitorIpsUnique',
        'monitorIpsNotDns',
        'routerAddressInLan',
        'dhcpRangeInLan',
        'stickyHostsReferToWans',
        'tiersMakeSenseForMode',
        'backendTargetsPresent',
        'vmTemplateExists',
        'staticGatewayInSubnet',
      ]),
    );
  });
});

describe('backendTargetsPresent', () => {
  it('needs a proxmox section for opnsense-vm', () => {
    const text = edit(VM_BASE, 'proxmox:\n  host: 192.168.1.10\n  tokenId: dualwan@pve!setup\n', '');
    const result = load(text);
    const d = only(result, 'RULE_BACKEND_TARGET_MISSING');
    expect(d.location).toEqual(pos(text, 'opnsense-vm'));
    expect(d.message).toContain('proxmox');
    expect(result.state).toBeUndefined();
  });

  it('needs a vm section for opnsense-vm', () => {
    const text = edit(VM_BASE, 'vm:\n  vmid: 100\n', '');
    const d = only(load(text), 'RULE_BACKEND_TARGET_MISSING');
    expect(d.message).toContain('vm:');
    expect(d.remedy).toContain('vmid');
  });

  it('needs a linux section for linux', () => {
    const text = edit(LINUX_BASE, 'linux:\n  host: 192.168.10.1\n', '');
    const d = only(load(text), 'RULE_BACKEND_TARGET_MISSING');
    expect(d.location).toEqual(pos(text, 'linux\n'));
  });

  it('warns that sections of the other backend are ignored, at their key, and still loads', () => {
    const text = `${LINUX_BASE}proxmox:\n  host: 192.168.1.10\n  tokenId: dualwan@pve!setup\n`;
    const result = load(text);
    const d = only(result, 'RULE_SECTION_IGNORED');
    expect(d.severity).toBe('warning');
    expect(d.location).toEqual(pos(text, 'proxmox:'));
    expect(result.state?.proxmox).toBeUndefined();
  });

  it('refuses a linux.lanInterface that contradicts lan.uplink', () => {
    const text = edit(LINUX_BASE, '  host: 192.168.10.1\n', '  host: 192.168.10.1\n  lanInterface: eth9\n');
    const d = only(load(text), 'RULE_LINUX_LAN_INTERFACE_MISMATCH');
    expect(d.location).toEqual(pos(text, 'eth9'));
  });
});

describe('uplinkTypesMatchBackend', () => {
  it('refuses a Linux interface uplink on the OPNsense VM', () => {
    const text = edit(VM_BASE, '{ type: bridge, bridge: vmbr0 }', '{ type: interface, interface: eth0 }');
    const d = only(load(text), 'RULE_UPLINK_TYPE_BACKEND');
    expect(d.location).toEqual(pos(text, 'interface, interface: eth0'));
    expect(d.path).toBe('lan.uplink.type');
  });

  it('refuses a passed-through NIC on the linux backend', () => {
    const text = edit(LINUX_BASE, '{ type: interface, interface: eth2 }', '{ type: pci-nic, pci: "0000:03:00.0" }');
    const d = only(load(text), 'RULE_UPLINK_TYPE_BACKEND');
    expect(d.location).toEqual(pos(text, 'pci-nic'));
  });
});

describe('vmTemplateExists', () => {
  it('points at vm.template and lists the templates that exist', () => {
    const text = edit(VM_BASE, '  vmid: 100\n', '  vmid: 100\n  template: opnsence\n');
    const d = only(load(text), 'RULE_VM_TEMPLATE_MISSING');
    expect(d.location).toEqual(pos(text, 'opnsence'));
    expect(d.remedy).toContain('opnsense');
    expect(d.remedy).toContain('debian-router');
  });

  it('reports a broken template file at its own line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-templates-'));
    const broken = 'ostype: other\nbios: seabios\ncores: many\nmemoryMiB: 2048\ndiskGiB: 16\nimage:\n  url: https://example.org/x.img\n  filename: x.raw\n  checksum: abc\n  checksumAlgorithm: sha256\n';
    fs.writeFileSync(path.join(dir, 'opnsense.yaml'), broken);
    try {
      const result = loadConfigText(VM_BASE, FILE, { templatesDir: dir });
      const found = result.diagnostics.filter((d) => d.code === 'CONFIG_TEMPLATE_INVALID');
      expect(found.map((d) => [d.path, d.location?.line, d.location?.column])).toEqual([
        ['cores', 3, 8],
        ['image.checksum', 9, 13],
      ]);
      expect(found[0]?.location?.file).toBe(path.join(dir, 'opnsense.yaml'));
      expect(result.state).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('wanNamesUnique', () => {
  it('flags the second WAN with a taken name', () => {
    const text = edit(VM_BASE, 'name: hotspot', 'name: isp');
    const d = only(load(text), 'RULE_WAN_NAME_DUPLICATE');
    expect(d.location).toEqual(pos(text, 'isp', 2));
  });
});

describe('wanUplinksDistinct', () => {
  it('flags two WANs on one NIC', () => {
    const text = edit(VM_BASE, '{ type: usb-tether, vendorId: "18d1", productId: "4ee3" }', '{ type: pci-nic, pci: "0000:02:00.0" }');
    const d = only(load(text), 'RULE_UPLINK_SHARED');
    expect(d.location).toEqual(pos(text, '"0000:02:00.0"', 2));
    expect(d.message).toContain('WAN isp');
  });

  it('flags a WAN and the LAN on one bridge', () => {
    const text = edit(VM_BASE, '{ type: pci-nic, pci: "0000:02:00.0" }', '{ type: bridge, bridge: vmbr0 }');
    const d = only(load(text), 'RULE_UPLINK_SHARED');
    expect(d.location).toEqual(pos(text, 'vmbr0', 2));
    expect(d.path).toBe('lan.uplink.bridge');
  });

  it('compares PCI addresses case-insensitively', () => {
    const text = edit(
      edit(VM_BASE, '{ type: usb-tether, vendorId: "18d1", productId: "4ee3" }', '{ type: pci-nic, pci: "0000:0A:00.0" }'),
      '"0000:02:00.0"',
      '"0000:0a:00.0"',
    );
    expect(only(load(text), 'RULE_UPLINK_SHARED').path).toBe('wans.1.uplink.pci');
  });
});

describe('subnetsDoNotOverlap', () => {
  it('flags a LAN inside a WAN upstream subnet, at lan.subnet, with a subnet that fits', () => {
    const text = edit(
      edit(VM_BASE, '    metered: true\n', '    metered: true\n    upstreamSubnet: 10.20.0.0/16\n'),
      '  uplink: { type: bridge, bridge: vmbr0 }\n',
      '  uplink: { type: bridge, bridge: vmbr0 }\n  subnet: 10.20.30.0/24\n',
    );
    const d = only(load(text), 'RULE_SUBNET_OVERLAP');
    expect(d.location).toEqual(pos(text, '10.20.30.0/24'));
    expect(d.remedy).toMatch(/^Change lan\.subnet to e\.g\. 192\.168\.10\.0\/24, which overlaps none of 10\.20\.0\.0\/16/);
  });

  it('flags two WANs whose upstream networks overlap, at the second one', () => {
    const text = edit(
      edit(VM_BASE, '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n', '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n    upstreamSubnet: 192.168.100.0/24\n'),
      '    metered: true\n',
      '    metered: true\n    upstreamSubnet: 192.168.100.0/23\n',
    );
    const d = only(load(text), 'RULE_SUBNET_OVERLAP');
    expect(d.location).toEqual(pos(text, '192.168.100.0/23'));
    expect(d.path).toBe('wans.1.upstreamSubnet');
  });

  it('counts a static WAN address as an upstream network', () => {
    const text = edit(
      VM_BASE,
      '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n',
      '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n    addressing: { mode: static, address: 192.168.10.7/24, gateway: 192.168.10.254 }\n',
    );
    const d = only(load(text), 'RULE_SUBNET_OVERLAP');
    expect(d.path).toBe('lan.subnet');
    expect(d.message).toContain('wans.0.addressing.address');
  });
});

describe('lanAvoidsCommonRanges', () => {
  it.each(COMMON_UPSTREAM_RANGES.map((r) => [r.cidr, r.what]))('flags a LAN on %s', (cidr) => {
    const text = edit(VM_BASE, '  uplink: { type: bridge, bridge: vmbr0 }\n', `  uplink: { type: bridge, bridge: vmbr0 }\n  subnet: ${cidr}\n  dhcp: { enabled: false }\n`);
    const result = load(text);
    const d = only(result, 'RULE_LAN_COMMON_RANGE');
    expect(d.location).toEqual(pos(text, cidr));
    expect(d.remedy).toContain('192.168.10.0/24');
    expect(result.state).toBeUndefined();
  });

  it('catches a wider LAN that contains a common range', () => {
    const text = edit(VM_BASE, '  uplink: { type: bridge, bridge: vmbr0 }\n', '  uplink: { type: bridge, bridge: vmbr0 }\n  subnet: 192.168.32.0/19\n');
    expect(only(load(text), 'RULE_LAN_COMMON_RANGE').message).toContain('192.168.43.0/24');
  });

  it('suggests a subnet clear of every WAN, common range and CGNAT', () => {
    const text = edit(VM_BASE, '    metered: true\n', '    metered: true\n    upstreamSubnet: 192.168.10.0/23\n');
    const state = load(edit(text, '  uplink: { type: bridge, bridge: vmbr0 }\n', '  uplink: { type: bridge, bridge: vmbr0 }\n  subnet: 10.1.0.0/24\n')).state;
    expect(state).toBeDefined();
    if (state) expect(suggestLanSubnet(state)).toBe('192.168.20.0/24');
  });
});

describe('lanNotCgnat', () => {
  it('flags a LAN in 100.64.0.0/10', () => {
    const text = edit(VM_BASE, '  uplink: { type: bridge, bridge: vmbr0 }\n', '  uplink: { type: bridge, bridge: vmbr0 }\n  subnet: 100.100.0.0/24\n');
    const d = only(load(text), 'RULE_LAN_CGNAT');
    expect(d.location).toEqual(pos(text, '100.100.0.0/24'));
  });
});

describe('monitorIpsUnique', () => {
  it('flags a monitor IP shared by two WANs, at the second', () => {
    const text = edit(
      edit(VM_BASE, '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n', '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n    monitorIps: [8.8.4.4]\n'),
      '    metered: true\n',
      '    metered: true\n    monitorIps: [8.8.4.4]\n',
    );
    const d = only(load(text), 'RULE_MONITOR_IP_DUPLICATE');
    expect(d.location).toEqual(pos(text, '8.8.4.4', 2));
    expect(d.path).toBe('wans.1.monitorIps.0');
  });

  it('flags a written monitor IP that collides with another WAN\'s default', () => {
    const text = edit(VM_BASE, '    metered: true\n', '    metered: true\n    monitorIps: [1.1.1.1]\n');
    const d = only(load(text), 'RULE_MONITOR_IP_DUPLICATE');
    expect(d.location).toEqual(pos(text, '1.1.1.1'));
  });

  it('flags a repeat inside one WAN', () => {
    const text = edit(VM_BASE, '    metered: true\n', '    metered: true\n    monitorIps: [9.9.9.9, 9.9.9.9]\n');
    const d = only(load(text), 'RULE_MONITOR_IP_DUPLICATE');
    expect(d.location).toEqual(pos(text, '9.9.9.9', 2));
  });
});

describe('monitorIpsNotDns', () => {
  it('flags a monitor IP that is also another WAN\'s DNS server', () => {
    const text = edit(
      edit(VM_BASE, '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n', '    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n    dnsServers: [208.67.222.222]\n'),
      '    metered: true\n',
      '    metered: true\n    monitorIps: [208.67.222.222]\n',
    );
    const d = only(load(text), 'RULE_MONITOR_IP_IS_DNS');
    expect(d.location).toEqual(pos(text, '208.67.222.222', 2));
    expect(d.remedy).toMatch(/host route/);
  });
});

describe('dnsServersDistinct', () => {
  it('flags a DNS server listed under two WANs', () => {
    const text = edit(VM_BASE, '    metered: true\n', '    metered: true\n    dnsServers: [1.0.0.1]\n');
    const d = only(load(text), 'RULE_DNS_SERVER_DUPLICATE');
    expect(d.location).toEqual(pos(text, '1.0.0.1'));
  });
});

describe('routerAddressInLan', () => {
  it.each(['192.168.11.1', '192.168.10.0', '192.168.10.255'])('flags %s outside the LAN hosts', (address) => {
    const text = edit(VM_BASE, '  uplink: { type: bridge, bridge: vmbr0 }\n', `  uplink: { type: bridge, bridge: vmbr0 }\n  routerAddress: ${address}\n`);
    const d = only(load(text), 'RULE_ROUTER_ADDRESS_OUTSIDE_LAN');
    expect(d.location).toEqual(pos(text, address));
    expect(d.remedy).toContain('192.168.10.1');
  });
});

describe('accessPointInLan', () => {
  it('flags an access point outside the LAN', () => {
    const text = `${VM_BASE}accessPoint: { vendor: tp-link, address: 192.168.0.1 }\n`;
    const d = only(load(text), 'RULE_ACCESS_POINT_ADDRESS');
    expect(d.location).toEqual(pos(text, '192.168.0.1'));
  });

  it('flags an access point on the router address', () => {
    const text = `${VM_BASE}accessPoint: { vendor: other, address: 192.168.10.1 }\n`;
    expect(only(load(text), 'RULE_ACCESS_POINT_ADDRESS').message).toContain("router's own address");
  });
});

describe('dhcpRangeInLan', () => {
  const withDhcp = (dhcp: string): string =>
    edit(VM_BASE, '  uplink: { type: bridge, bridge: vmbr0 }\n', `  uplink: { type: bridge, bridge: vmbr0 }\n  dhcp: ${dhcp}\n`);

  it('flags a range end outside the LAN', () => {
    const text = withDhcp('{ rangeStart: 192.168.10.100, rangeEnd: 192.168.11.20 }');
    const d = only(load(text), 'RULE_DHCP_RANGE_OUTSIDE_LAN');
    expect(d.location).toEqual(pos(text, '192.168.11.20'));
  });

  it('flags a reversed range', () => {
    const text = withDhcp('{ rangeStart: 192.168.10.200, rangeEnd: 192.168.10.100 }');
    const d = only(load(text), 'RULE_DHCP_RANGE_ORDER');
    expect(d.location).toEqual(pos(text, '192.168.10.100'));
  });

  it('flags a range holding the router address', () => {
    const text = withDhcp('{ rangeStart: 192.168.10.1, rangeEnd: 192.168.10.50 }');
    const d = only(load(text), 'RULE_DHCP_RANGE_INCLUDES_ROUTER');
    expect(d.location).toEqual(pos(text, '192.168.10.1,'));
    expect(d.remedy).toContain('192.168.10.2');
  });

  it('flags a range holding the access point address, at the access point', () => {
    const text = `${withDhcp('{ rangeStart: 192.168.10.2, rangeEnd: 192.168.10.50 }')}accessPoint: { vendor: tp-link, address: 192.168.10.20 }\n`;
    const d = only(load(text), 'RULE_DHCP_RANGE_INCLUDES_ACCESS_POINT');
    expect(d.location).toEqual(pos(text, '192.168.10.20'));
  });

  it('ignores the range when DHCP is off', () => {
    expect(errors(load(withDhcp('{ enabled: false, rangeStart: 192.168.10.1, rangeEnd: 192.168.10.50 }')))).toEqual([]);
  });
});

describe('stickyHostsReferToWans', () => {
  it('flags an unknown WAN name and suggests the near one', () => {
    const text = `${LINUX_BASE}  stickyHosts:\n    - destination: 198.51.100.23\n      wan: lin1\n`;
    const d = only(load(text), 'RULE_STICKY_HOST_UNKNOWN_WAN');
    expect(d.location).toEqual(pos(text, 'lin1'));
    expect(d.remedy).toMatch(/Did you mean "line1"\?/);
  });
});

describe('tiersMakeSenseForMode', () => {
  it('flags failover with every WAN in one tier', () => {
    const text = edit(VM_BASE, '    tier: 2\n', '');
    const d = only(load(text), 'RULE_TIERS_FAILOVER');
    expect(d.location).toEqual(pos(text, 'failover'));
    expect(d.remedy).toContain('wans.1 (hotspot)');
  });

  it('flags loadbalance with a single WAN in tier 1', () => {
    const text = edit(LINUX_BASE, '    uplink: { type: interface, interface: eth2 }\n', '    uplink: { type: interface, interface: eth2 }\n    tier: 2\n');
    const d = only(load(text), 'RULE_TIERS_LOADBALANCE');
    expect(d.location).toEqual(pos(text, 'loadbalance'));
    expect(d.remedy).toContain('wans.1');
  });
});

describe('staticGatewayInSubnet / staticGatewaysDistinct', () => {
  const staticWans = (a: string, b: string): string =>
    edit(
      edit(LINUX_BASE, '    uplink: { type: interface, interface: eth1 }\n', `    uplink: { type: interface, interface: eth1 }\n    addressing: ${a}\n`),
      '    uplink: { type: interface, interface: eth2 }\n',
      `    uplink: { type: interface, interface: eth2 }\n    addressing: ${b}\n`,
    );

  it('flags a gateway outside the address subnet', () => {
    const text = staticWans('{ mode: static, address: 203.0.113.10/29, gateway: 203.0.113.17 }', '{ mode: dhcp }');
    const d = only(load(text), 'RULE_STATIC_GATEWAY_OUTSIDE_SUBNET');
    expect(d.location).toEqual(pos(text, '203.0.113.17'));
  });

  it('flags a gateway equal to the WAN address', () => {
    const text = staticWans('{ mode: static, address: 203.0.113.10/24, gateway: 203.0.113.10 }', '{ mode: dhcp }');
    expect(only(load(text), 'RULE_STATIC_GATEWAY_OUTSIDE_SUBNET').message).toContain("own address");
  });

  it('flags two WANs with one gateway address', () => {
    const text = staticWans(
      '{ mode: static, address: 203.0.113.10/24, gateway: 203.0.113.1 }',
      '{ mode: static, address: 198.51.100.10/24, gateway: 203.0.113.1 }',
    );
    const result = load(text);
    const d = only(result, 'RULE_GATEWAY_DUPLICATE');
    expect(d.location).toEqual(pos(text, '203.0.113.1 }', 2));
  });
});

describe('linuxMonitorTargets', () => {
  it('asks for two monitor IPs per WAN on the linux backend, at the list, with an example', () => {
    const text = edit(LINUX_BASE, 'monitorIps: [9.9.9.9, 208.67.222.222]', 'monitorIps: [9.9.9.9]');
    const d = only(load(text), 'RULE_MONITOR_TARGETS_TOO_FEW');
    expect(d.location).toEqual(pos(text, '[9.9.9.9]'));
    expect(d.message).toBe('WAN line2 has 1 monitor IP; the Linux health monitor needs at least two per WAN.');
    expect(d.remedy).toMatch(/monitorIps: \[9\.9\.9\.9, [0-9.]+\]/);
  });

  it('points at the WAN when the single monitor IP is a default, and leaves the OPNsense backend alone', () => {
    const text = edit(LINUX_BASE, '    monitorIps: [1.1.1.1, 8.8.4.4]\n', '');
    const d = only(load(text), 'RULE_MONITOR_TARGETS_TOO_FEW');
    expect(d.message).toContain('(the default for its position)');
    expect(d.location?.line).toBe(pos(text, '- name: line1').line);
    expect(errors(load(VM_BASE))).toEqual([]);
  });
});
