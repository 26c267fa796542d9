import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfigFile } from '../../../src/config/load';
import { findPackageRoot } from '../../../src/config/templates';

const root = findPackageRoot();
const playbook = (name: string): string => path.join(root, 'playbooks', name);

describe('shipped playbooks', () => {
  const files = fs.readdirSync(path.join(root, 'playbooks')).filter((f) => f.endsWith('.yaml'));

  it('include both stories', () => {
    expect(files).toEqual(expect.arrayContaining(['hotspot-failover.yaml', 'two-lines-loadbalance.yaml']));
  });

  it.each(files)('%s loads without errors or warnings and points editors at the schema', (name) => {
    const result = loadConfigFile(playbook(name));
    expect(result.diagnostics).toEqual([]);
    expect(result.state).toBeDefined();
    const firstLine = fs.readFileSync(playbook(name), 'utf8').split('\n')[0];
    expect(firstLine).toBe('# yaml-language-server: $schema=../schema/dualwan.schema.json');
  });
});

describe('hotspot-failover.yaml (story 1)', () => {
  const file = playbook('hotspot-failover.yaml');
  const state = loadConfigFile(file).state;
  if (!state) throw new Error('playbook did not load');

  it('builds an OPNsense VM on the Proxmox host from the nano image', () => {
    expect(state.backend).toBe('opnsense-vm');
    expect(state.file).toBe(file);
    expect(state.proxmox).toEqual({ host: '192.168.1.10', port: 8006, node: 'pve', tokenId: 'dualwan@pve!setup' });
    expect(state.vm).toMatchObject({ template: 'opnsense', vmid: 100, machine: 'q35', bios: 'seabios', serialConsole: true, onboot: true });
    expect(state.vm?.image).toMatchObject({ compression: 'bz2', checksumAlgorithm: 'sha256' });
    expect(state.vm?.image.url).toMatch(/OPNsense-26\.7-nano-amd64\.img\.bz2$/);
    expect(state.vm?.image.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(state.opnsense).toEqual({ host: '192.168.10.1', port: 443, sshPort: 22, hostname: 'dualwan-router', domain: 'home.arpa' });
    expect(state.linux).toBeUndefined();
  });

  it('passes through the second NIC only; the management NIC stays with the host', () => {
    const [isp, hotspot] = state.wans;
    expect(isp).toMatchObject({ name: 'isp', uplink: { type: 'pci-nic', pci: '0000:02:00.0' }, tier: 1, metered: false });
    expect(state.wans.some((w) => w.uplink.type === 'pci-nic' && w.uplink.pci === '0000:01:00.0')).toBe(false);
    expect(hotspot).toMatchObject({
      name: 'hotspot',
      uplink: { type: 'usb-tether', vendorId: '18d1', productId: '4ee3' },
      upstreamSubnet: '192.168.43.0/24',
      tier: 2,
      metered: true,
      probeBudgetMBPerMonth: 5,
    });
    expect(isp?.source).toEqual({ file, line: 23, column: 5 });
  });

  it('keeps the LAN on vmbr0 and the TP-Link outside the DHCP pool', () => {
    expect(state.lan).toEqual({
      uplink: { type: 'bridge', bridge: 'vmbr0' },
      subnet: '192.168.10.0/24',
      routerAddress: '192.168.10.1',
      dhcp: { enabled: true, rangeStart: '192.168.10.100', rangeEnd: '192.168.10.249' },
    });
    expect(state.accessPoint).toEqual({ vendor: 'tp-link', address: '192.168.10.2' });
  });

  it('fails over with state kills and distinct monitor and DNS addresses', () => {
    expect(state.policy).toMatchObject({ mode: 'failover', trigger: 'packet-loss-or-high-latency', killStatesOnFailover: true, killMeteredStatesOnFailback: true });
    expect(state.policy.monitor.name).toBe('balanced');
    const monitors = state.wans.flatMap((w) => w.monitorIps);
    const dns = state.wans.flatMap((w) => w.dnsServers);
    expect(new Set(monitors).size).toBe(monitors.length);
    expect(monitors.filter((ip) => dns.includes(ip))).toEqual([]);
  });
});

describe('two-lines-loadbalance.yaml (story 2)', () => {
  const state = loadConfigFile(playbook('two-lines-loadbalance.yaml')).state;
  if (!state) throw new Error('playbook did not load');

  it('targets a Linux router with eth0 as LAN', () => {
    expect(state.backend).toBe('linux');
    expect(state.proxmox).toBeUndefined();
    expect(state.vm).toBeUndefined();
    expect(state.opnsense).toBeUndefined();
    expect(state.linux).toEqual({ host: '192.168.10.1', port: 22, user: 'root', lanInterface: 'eth0' });
    expect(state.lan.uplink).toEqual({ type: 'interface', interface: 'eth0' });
  });

  it('balances 2:1 over eth1 and eth2 in tier 1', () => {
    expect(state.wans.map((w) => [w.name, w.uplink, w.tier, w.weight])).toEqual([
      ['line1', { type: 'interface', interface: 'eth1' }, 1, 2],
      ['line2', { type: 'interface', interface: 'eth2' }, 1, 1],
    ]);
    expect(state.policy.mode).toBe('loadbalance');
    expect(state.policy.stickyConnections).toBe(true);
  });

  it('pins the IRC server and the VPN endpoints to line1, as CIDRs in documentation ranges', () => {
    expect(state.policy.stickyHosts).toEqual([
      { destination: '198.51.100.23/32', wan: 'line1' },
      { destination: '203.0.113.0/28', wan: 'line1' },
    ]);
  });
});
