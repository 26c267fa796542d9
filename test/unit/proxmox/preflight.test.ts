import * as path from 'node:path';
import { loadConfigFile } from '../../../src/config/load';
import type { DesiredState } from '../../../src/core/desired';
import type { Discovery } from '../../../src/providers/proxmox/discovery';
import { cidrContains, findManagementPath } from '../../../src/providers/proxmox/discovery';
import { preflight } from '../../../src/providers/proxmox/preflight';
import * as S from '../../../src/providers/proxmox/schemas';
import { sampleData } from '../../helpers/pve-samples';

function state(): DesiredState {
  const r = loadConfigFile(path.resolve(__dirname, '../../../playbooks/hotspot-failover.yaml'));
  if (!r.state) throw new Error('playbook does not load');
  return r.state;
}

function discovery(over: Partial<Discovery> = {}): Discovery {
  const network = S.NetworkIfaceSchema.array().parse(sampleData('network-n100-default-install.json'));
  const perms = S.PermissionsSchema.parse(sampleData('access-permissions-token.json'));
  perms['/mapping'] = { 'Mapping.Modify': 1, 'Mapping.Use': 1 };
  for (const k of Object.keys(perms)) if (k.startsWith('/mapping/')) delete perms[k];
  return {
    version: { version: '9.1.2', release: '9.1' },
    node: 'pve',
    nodes: ['pve'],
    pci: S.PciDeviceSchema.array().parse(sampleData('hardware-pci-n100-2x-i226.json')),
    usb: S.UsbDeviceSchema.array().parse(sampleData('hardware-usb-with-tethered-phone.json')),
    network,
    storages: S.StorageSchema.array().parse(sampleData('storage-list-and-import-content.json')),
    permissions: perms,
    vms: [],
    pciMappings: [],
    usbMappings: [],
    management: findManagementPath(network, '192.168.1.10'),
    ...over,
  };
}

const all = (s: DesiredState, d: Discovery) => preflight(s, d).map((x) => `${x.severity} ${x.code}`);
// The playbook's LAN shares vmbr0 with the host's address outside it: that warning is tested on its
// own below and left out of the other cases' lists.
const codes = (s: DesiredState, d: Discovery) => all(s, d).filter((c) => c !== 'warning PREFLIGHT_HOST_OFF_NEW_LAN');
const pf = (s: DesiredState, d: Discovery) => preflight(s, d).filter((x) => x.code !== 'PREFLIGHT_HOST_OFF_NEW_LAN');

describe('preflight (pure, on recorded host data)', () => {
  it('passes for the playbook on the sample N100, warning that the host will be off the new LAN', () => {
    expect(all(state(), discovery())).toEqual(['warning PREFLIGHT_HOST_OFF_NEW_LAN']);
  });

  it('warns, with the address to give the host, when the LAN goes on the management bridge and the host is outside it', () => {
    const [w] = preflight(state(), discovery());
    expect(w!.path).toBe('lan.subnet');
    expect(w!.message).toContain('192.168.10.0/24 goes on vmbr0');
    expect(w!.message).toContain('192.168.1.10/24');
    // the router is .1, the access point .2, the DHCP range .100–.249: the first free one is .3
    expect(w!.remedy).toContain('192.168.10.3/24, gateway 192.168.10.1');
    expect(w!.remedy).toContain('proxmox.cutover');
    // a LAN that holds the host's address, or a LAN on another bridge: nothing to say
    const s = state();
    const inside: DesiredState = { ...s, lan: { ...s.lan, subnet: '192.168.1.0/24', routerAddress: '192.168.1.1', dhcp: { enabled: true, rangeStart: '192.168.1.100', rangeEnd: '192.168.1.200' } } };
    expect(all(inside, discovery())).not.toContain('warning PREFLIGHT_HOST_OFF_NEW_LAN');
    const elsewhere: DesiredState = { ...s, lan: { ...s.lan, uplink: { type: 'bridge', bridge: 'vmbr7' } } };
    expect(all(elsewhere, discovery())).not.toContain('warning PREFLIGHT_HOST_OFF_NEW_LAN');
  });

  it('finds the management bridge by the address dualwan connects to, else by the default gateway', () => {
    const net = discovery().network;
    expect(findManagementPath(net, '192.168.1.10')).toMatchObject({ bridge: 'vmbr0', ports: [{ iface: 'enp1s0', pci: '0000:01:00.0' }] });
    expect(findManagementPath(net, 'pve.example').how).toMatch(/default gateway/);
    expect(cidrContains('192.168.1.0/24', '192.168.1.200')).toBe(true);
    expect(cidrContains('192.168.1.0/24', '192.168.2.1')).toBe(false);
  });

  it('refuses when the management port has a name that tells no PCI address', () => {
    const net = discovery().network.map((i) => (i.iface === 'vmbr0' ? { ...i, bridge_ports: 'eno1' } : i));
    const d = discovery({ management: findManagementPath(net, '192.168.1.10') });
    const f = pf(state(), d);
    expect(f.map((x) => x.code)).toEqual(['PREFLIGHT_MANAGEMENT_NIC_UNKNOWN']);
    expect(f[0]!.remedy).toContain('readlink /sys/class/net/eno1/device');
  });

  it('uses PVE 9 altnames of pinned names (nic0 → enp1s0)', () => {
    const net = discovery().network.map((i) => (i.iface === 'vmbr0' ? { ...i, bridge_ports: 'nic0' } : i.iface === 'enp1s0' ? { ...i, iface: 'nic0', altnames: ['enp1s0'] } : i));
    const d = discovery({ management: findManagementPath(net, '192.168.1.10') });
    expect(codes(state(), d)).toEqual([]);
    const s = state();
    const onMgmt = { ...s, wans: s.wans.map((w, i) => (i === 0 ? { ...w, uplink: { type: 'pci-nic' as const, pci: '0000:01:00.0' } } : w)) };
    expect(codes(onMgmt, d)).toEqual(['error PREFLIGHT_MANAGEMENT_NIC']);
  });

  it('refuses pcie passthrough on a machine that is not q35 (Proxmox would only fail at start)', () => {
    const s = state();
    expect(codes({ ...s, vm: { ...s.vm!, machine: 'pc-i440fx-9.0' } }, discovery())).toEqual(['error PREFLIGHT_MACHINE_NOT_Q35']);
    expect(codes({ ...s, vm: { ...s.vm!, machine: 'pc-q35-10.1+pve1' } }, discovery())).toEqual([]);
  });

  it('checks storage content and space', () => {
    const storages = discovery().storages.map((x) => (x.storage === 'local' ? { ...x, content: 'vztmpl,backup' } : { ...x, avail: 2 * 1024 ** 3 }));
    expect(codes(state(), discovery({ storages }))).toEqual(['error PREFLIGHT_STORAGE_FULL', 'error PREFLIGHT_STORAGE_NO_IMPORT', 'error PREFLIGHT_STORAGE_CONTENT']);
  });

  it('refuses an image storage without import content, with the exact pvesm command for its content list', () => {
    // a fresh install's local: no import (research note §8.4)
    const storages = discovery().storages.map((x) => (x.storage === 'local' ? { ...x, content: 'iso,vztmpl,backup' } : x));
    const f = pf(state(), discovery({ storages }));
    expect(f.map((x) => `${x.severity} ${x.code} ${x.path}`)).toEqual(['error PREFLIGHT_STORAGE_NO_IMPORT vm.imageStorage']);
    expect(f[0]!.message).toContain("Storage 'local' does not accept disk images for import (content: iso,vztmpl,backup)");
    expect(f[0]!.remedy).toContain('pvesm set local --content iso,vztmpl,backup,import');
    // not needed once the VM (and so its disk) exists
    const vms = [{ id: 'qemu/100', type: 'qemu', vmid: 100, name: 'opnsense', node: 'pve', tags: 'dualwan' }];
    expect(codes(state(), discovery({ storages, vms }))).toEqual([]);
  });

  it('an image storage that keeps no files: choose a directory storage instead', () => {
    const s = state();
    const f = pf({ ...s, vm: { ...s.vm!, imageStorage: 'local-lvm' } }, discovery());
    const imp = f.find((x) => x.code === 'PREFLIGHT_STORAGE_NO_IMPORT')!;
    expect(imp.remedy).toMatch(/keeps no files.*set vm\.imageStorage to a directory storage such as local/);
    expect(imp.remedy).not.toContain('pvesm set local-lvm');
  });

  it('refuses a Proxmox VE older than 8.4 (no image upload for import), unless the VM exists', () => {
    const f = pf(state(), discovery({ version: { version: '8.3.5', release: '8.3' } }));
    expect(f.map((x) => x.code)).toEqual(['PREFLIGHT_PVE_TOO_OLD']);
    expect(f[0]!.remedy).toMatch(/Upgrade the host to Proxmox VE 8\.4 or later/);
    expect(codes(state(), discovery({ version: { version: '8.4.1', release: '8.4' } }))).toEqual([]);
    const vms = [{ id: 'qemu/100', type: 'qemu', vmid: 100, name: 'opnsense', node: 'pve', tags: 'dualwan' }];
    expect(codes(state(), discovery({ version: { version: '8.3.5', release: '8.3' }, vms }))).toEqual([]);
  });

  it('a missing phone is a warning when the VM is not to be started', () => {
    const s = state();
    const usb = discovery().usb.filter((u) => u.vendid !== '18d1');
    expect(codes(s, discovery({ usb }))).toEqual(['error PREFLIGHT_USB_ABSENT']);
    expect(codes({ ...s, vm: { ...s.vm!, start: false } }, discovery({ usb }))).toEqual(['warning PREFLIGHT_USB_ABSENT']);
  });

  it('accepts a VM id already used by a VM dualwan created (tagged)', () => {
    const vms = [{ id: 'qemu/100', type: 'qemu', vmid: 100, name: 'opnsense', node: 'pve', tags: 'dualwan' }];
    expect(codes(state(), discovery({ vms }))).toEqual([]);
    expect(codes(state(), discovery({ vms: [{ ...vms[0]!, tags: 'prod' }] }))).toEqual(['error PREFLIGHT_VMID_TAKEN']);
  });
});
