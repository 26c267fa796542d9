import { isIP } from 'node:net';
import type { ProxmoxClient } from './client';
import type { ClusterVm, Mapping, NetworkIface, PciDevice, Permissions, Storage, UsbDevice } from './schemas';
import { pciFromPredictableName } from './propstring';

/** What the host is, read without changing anything. */
export interface Discovery {
  readonly version: { version: string; release: string };
  readonly node: string;
  readonly nodes: readonly string[];
  readonly pci: readonly PciDevice[];
  readonly usb: readonly UsbDevice[];
  readonly network: readonly NetworkIface[];
  readonly storages: readonly Storage[];
  readonly permissions: Permissions;
  readonly vms: readonly ClusterVm[];
  readonly pciMappings: readonly Mapping[];
  readonly usbMappings: readonly Mapping[];
  readonly management: ManagementPath;
}

/** The bridge (and the NICs behind it) that carry the host's management address. */
export interface ManagementPath {
  readonly bridge?: string;
  readonly address?: string;
  /** Physical ports of that bridge, with their PCI address when the name tells it. */
  readonly ports: readonly { readonly iface: string; readonly pci?: string }[];
  /** How it was found, for messages. */
  readonly how: string;
}

export async function discover(client: ProxmoxClient, connectHost: string): Promise<Discovery> {
  const [version, nodes, pci, usb, network, storages, permissions, vms, pciMappings, usbMappings] = await Promise.all([
    client.version(),
    client.nodes(),
    client.pciDevices(),
    client.usbDevices(),
    client.network(),
    client.storages(),
    client.permissions(),
    client.vmResources(),
    client.pciMappings(),
    client.usbMappings(),
  ]);
  return {
    version,
    node: client.node,
    nodes: nodes.map((n) => n.node),
    pci: [...pci].sort((a, b) => a.id.localeCompare(b.id)),
    usb,
    network: [...network].sort((a, b) => a.iface.localeCompare(b.iface)),
    storages,
    permissions,
    vms,
    pciMappings,
    usbMappings,
    management: findManagementPath(network, connectHost),
  };
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
}
export function cidrContains(cidr: string, ip: string): boolean {
  const [net, lenS] = cidr.split('/');
  const len = Number(lenS);
  if (!net || isIP(net) !== 4 || isIP(ip) !== 4 || !(len >= 0 && len <= 32)) return false;
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return (ipToInt(net) & mask) === (ipToInt(ip) & mask);
}

/**
 * The API never links a netdev to a PCI address. The management bridge is the interface whose
 * subnet holds the address we connect to; failing that (a name, NAT, a tunnel) the one with the
 * default gateway. Its ports map to PCI through predictable names (enp1s0 → 0000:01:00.0), or
 * their PVE 9 altnames; a port whose PCI address cannot be told is kept as unknown, and preflight
 * treats unknown as "might be any NIC".
 */
export function findManagementPath(network: readonly NetworkIface[], connectHost: string): ManagementPath {
  const withAddr = network.filter((i) => i.cidr);
  let iface = withAddr.find((i) => cidrContains(i.cidr!, connectHost));
  let how = `its subnet ${iface?.cidr ?? ''} holds ${connectHost}, the address dualwan connects to`;
  if (!iface) {
    iface = withAddr.find((i) => i.gateway);
    how = `it holds the host's default gateway (${iface?.gateway ?? ''}); ${connectHost} is in no local subnet`;
  }
  if (!iface) return { ports: [], how: 'no interface of the host has an address' };
  const byName = new Map(network.map((i) => [i.iface, i]));
  const portNames = iface.type === 'bridge' ? (iface.bridge_ports ?? '').split(/\s+/).filter(Boolean) : [iface.iface];
  const ports = portNames.map((p) => {
    const base = p.split('.')[0]!; // a VLAN port eno1.10 sits on eno1
    const names = [base, ...(byName.get(base)?.altnames ?? [])];
    const pci = names.map(pciFromPredictableName).find(Boolean);
    return { iface: p, pci };
  });
  return { bridge: iface.type === 'bridge' ? iface.iface : undefined, address: iface.cidr, ports, how };
}
