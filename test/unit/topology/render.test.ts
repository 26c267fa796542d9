import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfigFile, loadConfigText } from '../../../src/config/load';
import { findPackageRoot } from '../../../src/config/templates';
import type { DesiredState } from '../../../src/core/desired';
import { describeTopology, renderTopology, renderTopologyMermaid } from '../../../src/topology/render';
import { LINUX_BASE, VM_BASE } from '../config/helpers';

const root = findPackageRoot();
const GOLDEN_DIR = path.join(root, 'test/fixtures/golden');

function playbook(name: string): DesiredState {
  const r = loadConfigFile(path.join(root, 'playbooks', name));
  if (!r.state) throw new Error(`${name}: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return r.state;
}

function fromText(text: string): DesiredState {
  const r = loadConfigText(text, 'dualwan.yaml');
  if (!r.state) throw new Error(r.diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
  return r.state;
}

/** Compares with a golden file; UPDATE_GOLDEN=1 rewrites it. A missing golden file fails. */
function expectGolden(name: string, actual: string): void {
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(file, actual);
  expect(fs.existsSync(file)).toBe(true);
  expect(actual).toBe(fs.readFileSync(file, 'utf8'));
}

/** The lines of the picture that hold `text`. */
function linesWith(picture: string, text: string): string[] {
  return picture.split('\n').filter((l) => l.includes(text));
}

/**
 * Every box is closed and straight: for each top-left corner, the line below it has a vertical
 * border in the same column, down to the bottom-left corner, and the right edge lines up too.
 */
function expectWellFormedBoxes(picture: string): void {
  const lines = picture.split('\n').map((l) => Array.from(l));
  const at = (r: number, c: number) => lines[r]?.[c] ?? ' ';
  let boxes = 0;
  lines.forEach((line, r) => {
    line.forEach((ch, c) => {
      if (ch !== '┌') return;
      boxes++;
      const right = line.indexOf('┐', c);
      expect(right).toBeGreaterThan(c);
      let bottom = r + 1;
      while (at(bottom, c) !== '└') {
        expect('│├'.includes(at(bottom, c))).toBe(true);
        expect('│├┤'.includes(at(bottom, right))).toBe(true);
        bottom++;
        expect(bottom).toBeLessThan(lines.length);
      }
      expect(at(bottom, right)).toBe('┘');
    });
  });
  expect(boxes).toBeGreaterThanOrEqual(4);
}

describe('the topology picture of each shipped playbook', () => {
  it('hotspot-failover.yaml: modem and phone, their devices, the VM on its node, the LAN and the TP-Link', () => {
    const pic = renderTopology(playbook('hotspot-failover.yaml'));
    expect(pic.split('\n')[0]).toBe('hotspot-failover.yaml · backend opnsense-vm · failover');
    // WAN 1: the ISP modem on the passed-through I226-V
    expect(linesWith(pic, 'ISP modem ─')[0]).toContain('Fibre (ISP modem)');
    expect(pic).toContain('igc0 ◄ PCI 0000:02:00.0 passed through');
    expect(pic).toContain('(mapping dualwan-isp)');
    expect(pic).toContain('DHCP · gateway WAN_DHCP');
    expect(pic).toContain('monitor 1.1.1.1 ');
    expect(pic).toContain('DNS 1.0.0.1 ');
    expect(pic).toContain('tier 1 · weight 1 ');
    // WAN 2: the phone, metered, probed within its budget (56 B × 30 days / 5 MB → every 30 s)
    expect(linesWith(pic, 'phone (USB tethering) ─')[0]).toContain('Android phone (USB tethering)');
    expect(pic).toContain('ue0 ◄ USB 18d1:4ee3 passed through');
    expect(pic).toContain('192.168.43.0/24');
    expect(pic).toContain('DHCP · gateway WAN2_DHCP');
    expect(pic).toContain('monitor 9.9.9.9 ');
    expect(pic).toContain('probe every 30 s (5 MB/month budget)');
    expect(pic).toContain('tier 2 · weight 1 · metered');
    // the router
    expect(pic).toContain('Proxmox VE · node pve · API 192.168.1.10:8006');
    expect(pic).toContain('OPNsense VM 100 · opnsense');
    expect(pic).toContain('REST API https://192.168.10.1:443');
    expect(pic).toContain('gateway group DUALWAN: failover, trigger packet-loss-or-high-latency');
    expect(pic).toMatch(/tier 1: WAN_DHCP \(isp\)\s+│/);
    expect(pic).toMatch(/tier 2: WAN2_DHCP \(hotspot\)\s+│/);
    expect(pic).toContain('on failback: connections on hotspot are dropped');
    // LAN and access point, in that order below the router
    const iRouter = pic.indexOf('OPNsense VM 100');
    const iLan = pic.indexOf('LAN · vtnet0 ◄ virtio NIC on bridge vmbr0');
    const iAp = pic.indexOf('TP-Link in access-point mode · 192.168.10.2');
    expect(iRouter).toBeGreaterThan(0);
    expect(iLan).toBeGreaterThan(iRouter);
    expect(iAp).toBeGreaterThan(iLan);
    expect(pic).toContain('192.168.10.0/24 · router 192.168.10.1');
    expect(pic).toContain('DHCP 192.168.10.100–192.168.10.249');
    expect(pic.trimEnd().endsWith('home devices')).toBe(true);
    expectWellFormedBoxes(pic);
  });

  it('opnsense-loadbalance.yaml: both WANs in tier 1 with weights 2 and 1, sticky, no access point', () => {
    const pic = renderTopology(playbook('opnsense-loadbalance.yaml'));
    expect(pic).toContain('tier 1 · weight 2 (2/3 of tier 1)');
    expect(pic).toContain('tier 1 · weight 1 (1/3 of tier 1)');
    expect(pic).toContain('tier 1: WAN_DHCP (isp) ×2, WAN2_DHCP (hotspot) ×1');
    expect(pic).toContain('gateway group DUALWAN: loadbalance');
    expect(pic).toContain('sticky: a client stays on one WAN');
    // not metered here: probed at the profile's rate, and no failback flush
    expect(pic).not.toContain('metered');
    expect(pic).not.toContain('on failback');
    expect(pic).not.toContain('TP-Link');
    expectWellFormedBoxes(pic);
  });

  it('two-lines-loadbalance.yaml: the Linux router with its interfaces, tables, weights and pinned hosts', () => {
    const pic = renderTopology(playbook('two-lines-loadbalance.yaml'));
    expect(pic.split('\n')[0]).toBe('two-lines-loadbalance.yaml · backend linux · loadbalance');
    expect(linesWith(pic, 'ISP modem ─')).toHaveLength(2);
    expect(pic).toContain('192.168.1.0/24');
    expect(pic).toContain('192.168.2.0/24');
    expect(pic).toMatch(/│ eth1\s+│/);
    expect(pic).toMatch(/│ eth2\s+│/);
    expect(pic).toContain('DHCP · table 101');
    expect(pic).toContain('DHCP · table 102');
    expect(pic).toContain('monitor 1.1.1.1, 8.8.4.4');
    expect(pic).toContain('monitor 9.9.9.9, 208.67.222.222');
    expect(pic).toContain('tier 1 · weight 2 (2/3 of tier 1)');
    expect(pic).toContain('tier 1 · weight 1 (1/3 of tier 1)');
    expect(pic).toContain('Linux router · SSH root@192.168.10.1:22');
    expect(pic).toContain('tier 1: line1 (eth1) ×2, line2 (eth2) ×1');
    expect(pic).toContain('pinned: 198.51.100.23/32 → line1');
    expect(pic).toContain('pinned: 203.0.113.0/28 → line1');
    expect(pic).toContain('LAN · eth0');
    // the Linux backend runs no DHCP server: the picture must not claim one
    expect(pic).toContain('(not served by dualwan)');
    expect(pic).not.toContain('Proxmox');
    expect(pic).not.toContain('access-point');
    expectWellFormedBoxes(pic);
  });

  it.each(['hotspot-failover', 'two-lines-loadbalance'])('%s.yaml matches its golden picture', (name) => {
    expectGolden(`topology.${name}.txt`, renderTopology(playbook(`${name}.yaml`)));
  });
});

describe('pictures of other files', () => {
  it('a static WAN shows its gateway upstream and its stored OPNsense gateway; a PCI LAN its device', () => {
    const state = fromText(
      VM_BASE.replace(
        '  - name: isp\n    uplink: { type: pci-nic, pci: "0000:02:00.0" }',
        '  - name: isp\n    uplink: { type: pci-nic, pci: "0000:02:00.0" }\n    addressing: { mode: static, address: 203.0.113.2/29, gateway: 203.0.113.1 }',
      ).replace('lan:\n  uplink: { type: bridge, bridge: vmbr0 }', 'lan:\n  uplink: { type: pci-nic, pci: "0000:03:00.0" }\n  dhcp: { enabled: false }'),
    );
    const pic = renderTopology(state);
    expect(linesWith(pic, 'gateway 203.0.113.1 ─')).toHaveLength(1);
    expect(pic).toContain('static 203.0.113.2/29 via 203.0.113.1 · gateway WAN_GW');
    expect(pic).toContain('LAN · igc1 ◄ PCI 0000:03:00.0 passed through (mapping dualwan-lan)');
    expect(pic).toContain('DHCP: off');
    expect(pic).not.toContain('access-point');
    expectWellFormedBoxes(pic);
  });

  it('the VM extra bridge NIC gets the next virtio device; a cutover shows the host management path', () => {
    const state = fromText(
      VM_BASE.replace('  tokenId: dualwan@pve!setup\n', '  tokenId: dualwan@pve!setup\n  cutover: { hostAddress: 10.10.99.2/24, gateway: 10.10.99.1 }\n').replace(
        'vm:\n  vmid: 100\n',
        'vm:\n  vmid: 100\n  bridgeNic: { bridge: vmbr1 }\n',
      ),
    );
    const pic = renderTopology(state);
    expect(pic).toContain('extra NIC vtnet1 on bridge vmbr1');
    expect(pic).toContain('LAN · vtnet0 ◄ virtio NIC on bridge vmbr0');
    expect(pic).toContain('management after the cutover: 10.10.99.2/24 on vmbr1,');
    expect(pic).toContain('gateway 10.10.99.1 (the router)');
    expectWellFormedBoxes(pic);
    expect(renderTopologyMermaid(state)).toContain('management after the cutover: 10.10.99.2/24 on vmbr1,<br/>gateway 10.10.99.1 (the router)');
  });

  it('four WANs stack and all join the router', () => {
    const state = fromText(
      LINUX_BASE.replace(
        'lan:',
        `  - name: line3
    uplink: { type: interface, interface: eth3 }
    monitorIps: [9.9.9.10, 76.76.2.0]
    tier: 2
  - name: phone
    uplink: { type: interface, interface: usb0 }
    monitorIps: [94.140.14.14, 94.140.15.15]
    tier: 3
    metered: true
    probeBudgetMBPerMonth: 10
lan:`,
      ),
    );
    const pic = renderTopology(state);
    for (const n of ['WAN1 · line1', 'WAN2 · line2', 'WAN3 · line3', 'WAN4 · phone']) expect(pic).toContain(n);
    // one bus: ┐ for the first WAN, ┤ for the others
    expect(pic.match(/├──┐/g)).toHaveLength(1);
    expect(pic.match(/├──┤/g)).toHaveLength(3);
    expect(pic).toContain('tier 2: line3 (eth3)');
    expect(pic).toContain('tier 3: phone (usb0)');
    // the Linux monitor probes a metered WAN no more often than every 15 s
    const every = Number(/phone[\s\S]*?probe every ([\d.]+) s \(10 MB\/month budget\)/.exec(pic)?.[1]);
    expect(every).toBeGreaterThanOrEqual(15);
    expectWellFormedBoxes(pic);
  });

  it('describeTopology gives the same facts as data', () => {
    const v = describeTopology(playbook('hotspot-failover.yaml'));
    expect(v.wans.map((w) => [w.label, w.name, w.device, w.route, w.tier, w.weight, w.metered])).toEqual([
      ['WAN1', 'isp', 'igc0', 'gateway WAN_DHCP', 1, 1, false],
      ['WAN2', 'hotspot', 'ue0', 'gateway WAN2_DHCP', 2, 1, true],
    ]);
    expect(v.wans[1]?.probeEverySeconds).toBe(30);
    expect(v.lan).toMatchObject({ device: 'vtnet0', subnet: '192.168.10.0/24', routerAddress: '192.168.10.1' });
    expect(v.accessPoint?.address).toBe('192.168.10.2');
    expect(v.router.kind).toBe('opnsense-vm');
  });

  it('a title can be given', () => {
    expect(renderTopology(playbook('hotspot-failover.yaml'), { title: 'My house' }).split('\n')[0]).toBe('My house');
  });
});

describe('the Mermaid flowchart', () => {
  it('has one node per WAN and its upstream, edges with tier and weight, the VM inside its node', () => {
    const m = renderTopologyMermaid(playbook('hotspot-failover.yaml'));
    const lines = m.trimEnd().split('\n');
    expect(lines[0]).toBe('flowchart TD');
    expect(m).toContain('subgraph host["Proxmox VE · node pve · API 192.168.1.10:8006"]');
    // the router is declared inside the subgraph, before any edge names it
    const sub = lines.findIndex((l) => l.startsWith('  subgraph host'));
    const routerDecl = lines.findIndex((l) => l.includes('router["OPNsense VM 100'));
    const end = lines.indexOf('  end');
    expect(sub).toBeLessThan(routerDecl);
    expect(routerDecl).toBeLessThan(end);
    expect(lines.findIndex((l) => l.includes('--> router'))).toBeGreaterThan(end);
    expect(m).toContain('up_isp --> wan_isp');
    expect(m).toContain('wan_isp -- "tier 1 · weight 1" --> router');
    expect(m).toContain('wan_hotspot -- "tier 2 · weight 1 · metered" --> router');
    expect(m).toContain('monitor 9.9.9.9 every 30 s');
    expect(m).toContain('router --> lan');
    expect(m).toContain('lan --> ap');
    expect(m).toContain('ap --> devices');
    // labels are quoted; no raw double quote or angle bracket inside a label
    for (const l of lines.filter((x) => x.includes('["'))) {
      const label = l.slice(l.indexOf('["') + 2, l.lastIndexOf('"]'));
      expect(label.replace(/<br\/>/g, '')).not.toMatch(/["<>]/);
    }
  });

  it('escapes quotes and angle brackets in descriptions', () => {
    const state = fromText(VM_BASE.replace('  - name: hotspot\n', '  - name: hotspot\n    description: \'The "spare" <phone>\'\n'));
    const m = renderTopologyMermaid(state);
    expect(m).toContain('The #quot;spare#quot; #lt;phone#gt;');
    expect(m).not.toContain('"spare"');
  });

  it('the Linux router has no Proxmox subgraph, and no access point when none is configured', () => {
    const m = renderTopologyMermaid(playbook('two-lines-loadbalance.yaml'));
    expect(m).not.toContain('subgraph');
    expect(m).toContain('router["Linux router · SSH root@192.168.10.1:22');
    expect(m).toContain('lan --> devices');
    expect(m).toContain('wan_line1 -- "tier 1 · weight 2 (2/3)" --> router');
  });
});
