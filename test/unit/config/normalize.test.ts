import { MONITOR_PROFILES } from '../../../src/config/monitor-profiles';
import { defaultDhcpRange, defaultRouterAddress, normalizeConfig } from '../../../src/config/normalize';
import { DEFAULT_DNS_SERVERS, DEFAULT_MONITOR_IPS, WrittenConfigSchema } from '../../../src/config/schema';
import { loadVmTemplate } from '../../../src/config/templates';
import { edit, load, VM_BASE, LINUX_BASE } from './helpers';

describe('derived defaults', () => {
  it.each([
    ['192.168.10.0/24', '192.168.10.1', '192.168.10.100', '192.168.10.249'],
    ['10.20.0.0/16', '10.20.0.1', '10.20.0.100', '10.20.0.249'],
    ['192.168.77.16/28', '192.168.77.17', '192.168.77.24', '192.168.77.30'],
    ['192.168.5.0/30', '192.168.5.1', '192.168.5.2', '192.168.5.2'],
  ])('%s: router %s, DHCP %s–%s', (subnet, router, start, end) => {
    expect(defaultRouterAddress(subnet)).toBe(router);
    expect(defaultDhcpRange(subnet)).toEqual({ rangeStart: start, rangeEnd: end });
  });

  it('fills the LAN from a written subnet alone', () => {
    const text = edit(VM_BASE, '  uplink: { type: bridge, bridge: vmbr0 }\n', '  uplink: { type: bridge, bridge: vmbr0 }\n  subnet: 10.44.0.0/24\n');
    expect(load(text).state?.lan).toEqual({
      uplink: { type: 'bridge', bridge: 'vmbr0' },
      subnet: '10.44.0.0/24',
      routerAddress: '10.44.0.1',
      dhcp: { enabled: true, rangeStart: '10.44.0.100', rangeEnd: '10.44.0.249' },
    });
  });

  it('gives each WAN position its own monitor IP and DNS server, never overlapping', () => {
    expect(new Set(DEFAULT_MONITOR_IPS).size).toBe(4);
    expect(new Set(DEFAULT_DNS_SERVERS).size).toBe(4);
    expect(DEFAULT_MONITOR_IPS.filter((ip) => (DEFAULT_DNS_SERVERS as readonly string[]).includes(ip))).toEqual([]);
    const state = load(VM_BASE).state;
    expect(state?.wans.map((w) => [w.monitorIps, w.dnsServers])).toEqual([
      [['1.1.1.1'], ['1.0.0.1']],
      [['9.9.9.9'], ['149.112.112.112']],
    ]);
  });

  it('fills WAN defaults: description, DHCP, tier, weight, budget; source at the list item', () => {
    const wan = load(VM_BASE).state?.wans[0];
    expect(wan).toEqual({
      name: 'isp',
      description: 'isp',
      uplink: { type: 'pci-nic', pci: '0000:02:00.0' },
      addressing: { mode: 'dhcp' },
      monitorIps: ['1.1.1.1'],
      dnsServers: ['1.0.0.1'],
      tier: 1,
      weight: 1,
      metered: false,
      probeBudgetMBPerMonth: 5,
      source: { file: 'dualwan.yaml', line: 9, column: 5 },
    });
  });

  it('resolves the policy: profile numbers, sticky connections by mode, sticky hosts as CIDRs', () => {
    const failover = load(VM_BASE).state?.policy;
    expect(failover).toEqual({
      mode: 'failover',
      monitor: MONITOR_PROFILES.balanced,
      trigger: 'packet-loss-or-high-latency',
      killStatesOnFailover: true,
      killMeteredStatesOnFailback: true,
      stickyConnections: false,
      stickyHosts: [],
    });
    const text = edit(LINUX_BASE, '  mode: loadbalance\n', '  mode: loadbalance\n  monitorProfile: fast\n  stickyHosts: [{ destination: 198.51.100.7, wan: line1 }]\n');
    const lb = load(text).state?.policy;
    expect(lb?.stickyConnections).toBe(true);
    expect(lb?.monitor).toEqual({ name: 'fast', intervalMs: 500, lossDownPercent: 20, latencyHighMs: 300, failbackAfterSeconds: 10 });
    expect(lb?.stickyHosts).toEqual([{ destination: '198.51.100.7/32', wan: 'line1' }]);
  });

  it('points OPNsense at the LAN router address unless told otherwise', () => {
    const moved = edit(VM_BASE, '  uplink: { type: bridge, bridge: vmbr0 }\n', '  uplink: { type: bridge, bridge: vmbr0 }\n  routerAddress: 192.168.10.254\n');
    expect(load(moved).state?.opnsense).toEqual({ host: '192.168.10.254', port: 443, sshPort: 22, hostname: 'dualwan-router', domain: 'home.arpa' });
    const pinned = `${VM_BASE}opnsense: { host: fw.home.arpa, fingerprint: "${'AB:'.repeat(31)}CD" }\n`;
    expect(load(pinned).state?.opnsense).toEqual({ host: 'fw.home.arpa', port: 443, sshPort: 22, fingerprint: `${'AB:'.repeat(31)}CD`, hostname: 'dualwan-router', domain: 'home.arpa' });
  });
});

describe('VM from template', () => {
  it('takes every unset value from the template and keeps the overrides', () => {
    const text = edit(VM_BASE, '  vmid: 100\n', '  vmid: 101\n  cores: 4\n  onboot: false\n  allowIommuGroupPeers: ["0000:00:1F.0"]\n  bridgeNic: { bridge: vmbr1 }\n');
    const vm = load(text).state?.vm;
    const t = loadVmTemplate('opnsense');
    if (t.status !== 'found') throw new Error('template missing');
    expect(vm).toEqual({
      template: 'opnsense',
      vmid: 101,
      name: 'opnsense',
      ostype: 'other',
      machine: 'q35',
      bios: 'seabios',
      cpu: 'host',
      cores: 4,
      memoryMiB: t.template.memoryMiB,
      diskGiB: t.template.diskGiB,
      diskStorage: 'local-lvm',
      imageStorage: 'local',
      image: t.template.image,
      onboot: false,
      startupOrder: 1,
      serialConsole: true,
      bridgeNic: { bridge: 'vmbr1', firewall: false },
      allowIommuGroupPeers: ['0000:00:1f.0'],
      start: true,
    });
  });

  it('lets the playbook pin another image', () => {
    const image = `  image:\n    url: https://pkg.opnsense.org/releases/26.7/OPNsense-26.7-nano-amd64.img.bz2\n    filename: nano.raw\n    checksum: ${'ab'.repeat(32)}\n    compression: bz2\n`;
    const vm = load(edit(VM_BASE, '  vmid: 100\n', `  vmid: 100\n${image}`)).state?.vm;
    expect(vm?.image).toEqual({
      url: 'https://pkg.opnsense.org/releases/26.7/OPNsense-26.7-nano-amd64.img.bz2',
      filename: 'nano.raw',
      checksum: 'ab'.repeat(32),
      checksumAlgorithm: 'sha256',
      compression: 'bz2',
    });
  });

  it('refuses a checksum whose length does not fit its algorithm', () => {
    const image = `  image: { url: "https://x.example/a.img", filename: a.raw, checksum: ${'ab'.repeat(32)}, checksumAlgorithm: sha512 }\n`;
    const result = load(edit(VM_BASE, '  vmid: 100\n', `  vmid: 100\n${image}`));
    expect(result.diagnostics.map((d) => [d.code, d.path])).toEqual([['CONFIG_INVALID_VALUE', 'vm.image.checksum']]);
  });

  it('refuses an image file name Proxmox cannot import a disk from (.img)', () => {
    const image = `  image: { url: "https://x.example/a.img.bz2", filename: a.img, checksum: ${'ab'.repeat(32)}, compression: bz2 }\n`;
    const result = load(edit(VM_BASE, '  vmid: 100\n', `  vmid: 100\n${image}`));
    expect(result.diagnostics.map((d) => [d.code, d.path])).toEqual([['CONFIG_INVALID_FORMAT', 'vm.image.filename']]);
    expect(result.diagnostics[0]!.message).toContain('must end in .raw, .qcow2 or .vmdk');
  });

  it('leaves the VM out when no template is given to normalise', () => {
    const written = WrittenConfigSchema.parse({
      version: 1,
      backend: 'opnsense-vm',
      proxmox: { host: 'pve', tokenId: 'root@pam!dualwan' },
      vm: {},
      wans: [
        { name: 'a', uplink: { type: 'bridge', bridge: 'vmbr1' } },
        { name: 'b', uplink: { type: 'bridge', bridge: 'vmbr2' }, tier: 2 },
      ],
      lan: { uplink: { type: 'bridge', bridge: 'vmbr0' } },
      policy: { mode: 'failover' },
    });
    const state = normalizeConfig(written, { file: 'x.yaml' });
    expect(state.vm).toBeUndefined();
    expect(state.proxmox).toEqual({ host: 'pve', port: 8006, node: 'pve', tokenId: 'root@pam!dualwan' });
    expect(state.wans[0]?.source).toBeUndefined();
  });
});
