import type { Diagnostic } from '../../core/diagnostics';
import type { DesiredState, ProxmoxCutover, WanUplink } from '../../core/desired';
import { missingPrivileges, requiredPrivileges } from './privileges';
import { cidrContains, type Discovery } from './discovery';
import { formatIpv4, parseCidr, parseIpv4, rangeContains } from '../../config/net';
import { isOwnedVm } from './naming';
import { importContentRemedy, isFileStorage } from './resources/image';

/** Rough size of an unpacked OPNsense nano image, for the free-space check before its upload. */
export const IMAGE_SPACE_ESTIMATE_BYTES = 4 * 1024 ** 3;
const GiB = 1024 ** 3;

interface NamedUplink {
  readonly name: string;
  readonly uplink: WanUplink;
  readonly path: string;
}

function uplinksOf(state: DesiredState): NamedUplink[] {
  return [
    ...state.wans.map((w, i) => ({ name: w.name, uplink: w.uplink, path: `wans.${i}.uplink` })),
    { name: 'lan', uplink: state.lan.uplink, path: 'lan.uplink' },
  ];
}

const slotOf = (pciId: string) => pciId.replace(/\.[0-9a-f]$/, '');
const isBridgeClass = (cls: string) => cls.startsWith('0x0604');
const deviceLabel = (d: { id: string; vendor_name?: string; device_name?: string }) =>
  `${d.id}${d.device_name ? ` (${d.device_name})` : d.vendor_name ? ` (${d.vendor_name})` : ''}`;

/**
 * Read-only checks before anything is written. Each finding names what is wrong, why it matters,
 * and what to do. Any error stops the run with nothing changed on the host.
 */
export function preflight(state: DesiredState, d: Discovery): Diagnostic[] {
  const out: Diagnostic[] = [];
  const err = (code: string, message: string, remedy: string, path?: string) => out.push({ severity: 'error', code, message, remedy, path });
  const warn = (code: string, message: string, remedy: string, path?: string) => out.push({ severity: 'warning', code, message, remedy, path });
  const vm = state.vm;
  if (!vm || !state.proxmox) return out;

  if (!d.nodes.includes(state.proxmox.node)) {
    err('PREFLIGHT_NODE_UNKNOWN', `The Proxmox host has no node named '${state.proxmox.node}' (nodes: ${d.nodes.join(', ')}).`, `Set proxmox.node to one of: ${d.nodes.join(', ')}.`, 'proxmox.node');
  }

  const nics = uplinksOf(state).filter((u): u is NamedUplink & { uplink: { type: 'pci-nic'; pci: string } } => u.uplink.type === 'pci-nic');

  // IOMMU: -1 on every device means the kernel has no IOMMU groups (hardware/pci, research §3).
  const iommuOff = d.pci.length > 0 && d.pci.every((p) => p.iommugroup === -1);
  if (nics.length && iommuOff) {
    err(
      'PREFLIGHT_IOMMU_OFF',
      'IOMMU is off on the Proxmox host: no PCI device has an IOMMU group, so no NIC can be passed through.',
      'Enable VT-d (Intel) or AMD-Vi in the firmware setup; on kernels older than 6.8 also add intel_iommu=on to the kernel command line; reboot the host and run dualwan again.',
    );
  }

  // The LAN on the management bridge (the model case: vmbr0 carries both) while the host's address
  // lies outside the new LAN: once the TP-Link is an access point behind the router, nothing on
  // the LAN reaches the host any more. Changing the host's address through the API without a
  // dead-man timer could lock the user out, and the API gives a bridge one IPv4 address only, so
  // dualwan says so before anything is written, with the lines to add on the host.
  const lanUplink = state.lan.uplink;
  if (!state.proxmox.cutover && lanUplink.type === 'bridge' && d.management.bridge && lanUplink.bridge === d.management.bridge && d.management.address) {
    const hostIp = d.management.address.split('/')[0]!;
    const lan = parseCidr(state.lan.subnet);
    const ip = parseIpv4(hostIp);
    if (lan && ip !== undefined && !rangeContains(lan, ip)) {
      const suggestion = freeLanAddress(state);
      warn(
        'PREFLIGHT_HOST_OFF_NEW_LAN',
        `The LAN ${state.lan.subnet} goes on ${d.management.bridge}, the bridge that carries the Proxmox host's address ${d.management.address}. After the re-cabling the LAN's devices get addresses from the router, and the host at ${hostIp} (outside the LAN) is no longer reachable from them.`,
        `Before re-cabling, give the host an address on the new LAN on its console (Proxmox: System → Network → ${d.management.bridge}): ${suggestion ? `${suggestion}/${lan.prefix}` : `an address of ${state.lan.subnet} outside the DHCP range`}, gateway ${state.lan.routerAddress}; apply, then set proxmox.host in dualwan.yaml to it. Or opt in to the guarded cutover (proxmox.cutover), which moves the host under a dead-man timer.`,
        'lan.subnet',
      );
    }
  }

  const mgmtPorts = d.management.ports;
  const mgmtPci = new Set(mgmtPorts.map((p) => p.pci).filter((x): x is string => !!x));
  const unknownMgmt = mgmtPorts.filter((p) => !p.pci);
  const cutover = state.proxmox.cutover;
  const cutoverNics: string[] = [];

  for (const nic of nics) {
    const dev = d.pci.find((p) => p.id === nic.uplink.pci);
    if (!dev) {
      err('PREFLIGHT_NIC_MISSING', `${nic.name}: no PCI device ${nic.uplink.pci} on node ${d.node}.`, `Choose one of the host's NICs: ${d.pci.filter((p) => p.class.startsWith('0x0200')).map(deviceLabel).join(', ') || 'none found'}.`, `${nic.path}.pci`);
      continue;
    }
    if (!dev.class.startsWith('0x02')) {
      err('PREFLIGHT_NOT_A_NIC', `${nic.name}: ${deviceLabel(dev)} is not a network controller (class ${dev.class}).`, 'Choose a network controller (class 0x02xxxx).', `${nic.path}.pci`);
    }
    // Never pass through the NIC behind the management bridge without the guarded cutover: the host
    // would lose its network the moment the VM starts (vfio rebinds the whole IOMMU group).
    if (mgmtPci.has(slotOf(dev.id) + '.0') || mgmtPci.has(dev.id)) {
      if (!cutover) {
        err(
          'PREFLIGHT_MANAGEMENT_NIC',
          `${nic.name}: ${deviceLabel(dev)} carries the Proxmox management bridge ${d.management.bridge ?? ''} (${d.management.address ?? ''}; found because ${d.management.how}). Passing it through would cut the host off the network and lock you out.`,
          `Pass through the other NIC and put this side on the bridge (set ${nic.path} to {type: bridge, bridge: ${d.management.bridge ?? 'vmbr0'}}), or opt in to the guarded cutover: add proxmox.cutover with the host's new address on a bridge the router VM joins (docs/cutover.md).`,
          `${nic.path}.pci`,
        );
      } else {
        cutoverNics.push(nic.name);
      }
    } else if (unknownMgmt.length) {
      err(
        'PREFLIGHT_MANAGEMENT_NIC_UNKNOWN',
        `${nic.name}: cannot tell whether ${deviceLabel(dev)} carries the management bridge ${d.management.bridge ?? ''}: its port(s) ${unknownMgmt.map((p) => p.iface).join(', ')} have names without a PCI address.`,
        `On the host run: readlink /sys/class/net/${unknownMgmt[0]!.iface}/device — if it ends in ${dev.id}, choose the other NIC; otherwise enable predictable interface names (enpXsY) so dualwan can tell.`,
        `${nic.path}.pci`,
      );
    }
    if (dev.iommugroup !== -1) {
      const peers = d.pci.filter((p) => p.iommugroup === dev.iommugroup && p.id !== dev.id && slotOf(p.id) !== slotOf(dev.id) && !isBridgeClass(p.class));
      const passedTogether = new Set(nics.map((n) => n.uplink.pci));
      const blocking = peers.filter((p) => !passedTogether.has(p.id) && !vm.allowIommuGroupPeers.includes(p.id));
      const mgmtPeer = peers.find((p) => mgmtPci.has(p.id));
      if (mgmtPeer) {
        err('PREFLIGHT_IOMMU_GROUP_MANAGEMENT', `${nic.name}: ${deviceLabel(dev)} shares IOMMU group ${dev.iommugroup} with the management NIC ${deviceLabel(mgmtPeer)}; starting the VM would take both from the host.`, 'Use a NIC in another IOMMU group (another slot), or enable ACS in the firmware so the ports get separate groups.', `${nic.path}.pci`);
      } else if (blocking.length) {
        err(
          'PREFLIGHT_IOMMU_GROUP_SHARED',
          `${nic.name}: ${deviceLabel(dev)} shares IOMMU group ${dev.iommugroup} with ${blocking.map(deviceLabel).join(', ')}; starting the VM binds every device of the group to vfio-pci, taking them from the host.`,
          `Use a NIC that is alone in its group, or, if the host can do without ${blocking.length === 1 ? 'that device' : 'those devices'}, name ${blocking.length === 1 ? 'it' : 'them'} in vm.allowIommuGroupPeers: [${blocking.map((b) => b.id).join(', ')}].`,
          `${nic.path}.pci`,
        );
      }
    }
  }

  if (cutover && cutoverNics.length) cutoverChecks(d, cutover, err);

  // q35 whenever pcie=1: accepted at create, fails only at start (PCI.pm), so check here.
  if (nics.length && !/^(q35|pc-q35-)/.test(vm.machine)) {
    err('PREFLIGHT_MACHINE_NOT_Q35', `The VM template '${vm.template}' uses machine '${vm.machine}', but PCIe passthrough (pcie=1) needs q35; the VM would be created and then fail to start.`, `Set machine: q35 in vm-templates/${vm.template}.yaml.`, 'vm.template');
  }

  // USB tethering: a USB mapping is checked at VM start; the phone must be there in tethering mode.
  for (const u of uplinksOf(state)) {
    if (u.uplink.type !== 'usb-tether') continue;
    const { vendorId, productId } = u.uplink;
    const exact = d.usb.find((x) => x.vendid === vendorId && x.prodid === productId);
    const sameVendor = d.usb.find((x) => x.vendid === vendorId && x.class !== 9);
    if (!exact) {
      const msg = sameVendor
        ? `${u.name}: the phone is attached as ${sameVendor.vendid}:${sameVendor.prodid} (${sameVendor.product ?? 'unknown'}), not as ${vendorId}:${productId}; phones change their USB id with the mode.`
        : `${u.name}: no USB device ${vendorId}:${productId} is attached to the host.`;
      const remedy = 'Plug the phone into the host and switch on USB tethering (the VM cannot start while a mapped USB device is missing), or set vm.start: false to create the VM now and start it later.';
      if (vm.start) err('PREFLIGHT_USB_ABSENT', msg, remedy, `${u.path}`);
      else warn('PREFLIGHT_USB_ABSENT', msg, remedy, `${u.path}`);
    }
  }

  // Storage: content types and free space.
  const diskSt = d.storages.find((s) => s.storage === vm.diskStorage);
  if (!diskSt) {
    err('PREFLIGHT_STORAGE_MISSING', `Storage '${vm.diskStorage}' (for the VM disk) does not exist on node ${d.node}.`, `Set vm.diskStorage to one of: ${d.storages.filter((s) => s.content.split(',').includes('images')).map((s) => s.storage).join(', ') || '(none holds images)'}.`, 'vm.diskStorage');
  } else {
    if (!diskSt.content.split(',').includes('images')) err('PREFLIGHT_STORAGE_CONTENT', `Storage '${vm.diskStorage}' does not hold VM disks (content: ${diskSt.content}).`, `Choose a storage with content 'images', or add it in Datacenter > Storage > ${vm.diskStorage} > Content.`, 'vm.diskStorage');
    if (diskSt.avail !== undefined && diskSt.avail < vm.diskGiB * GiB && !vmExists(state, d)) {
      err('PREFLIGHT_STORAGE_FULL', `Storage '${vm.diskStorage}' has ${(diskSt.avail / GiB).toFixed(1)} GiB free; the VM disk needs ${vm.diskGiB} GiB.`, 'Free space on that storage, choose another one, or lower diskGiB.', 'vm.diskStorage');
    }
  }
  const imgSt = d.storages.find((s) => s.storage === vm.imageStorage);
  const vmThere = vmExists(state, d);
  if (!imgSt) {
    err('PREFLIGHT_STORAGE_MISSING', `Storage '${vm.imageStorage}' (for the VM image and the seed CD) does not exist on node ${d.node}.`, `Set vm.imageStorage to one of: ${d.storages.filter((s) => isFileStorage(s.type)).map((s) => s.storage).join(', ') || '(no directory storage)'}.`, 'vm.imageStorage');
  } else {
    // the VM disk is imported from <storage>:import/<image>.raw, uploaded by dualwan (not needed once the VM exists)
    if (!vmThere && !imgSt.content.split(',').includes('import')) {
      err('PREFLIGHT_STORAGE_NO_IMPORT', `Storage '${vm.imageStorage}' does not accept disk images for import (content: ${imgSt.content || 'none'}); dualwan uploads the router's image there and imports the VM disk from it.`, importContentRemedy(imgSt), 'vm.imageStorage');
    }
    if (!imgSt.content.split(',').includes('iso')) err('PREFLIGHT_STORAGE_CONTENT', `Storage '${vm.imageStorage}' cannot hold the bootstrap's seed CD image (content: ${imgSt.content}; it needs 'iso').`, `Add 'ISO image' to the content of ${vm.imageStorage} (pvesm set ${vm.imageStorage} --content ${[...new Set([...imgSt.content.split(',').filter(Boolean), 'iso'])].join(',')}), or choose a storage that has it.`, 'vm.imageStorage');
    if (!vmThere && imgSt.avail !== undefined && imgSt.avail < IMAGE_SPACE_ESTIMATE_BYTES) {
      err('PREFLIGHT_STORAGE_FULL', `Storage '${vm.imageStorage}' has ${(imgSt.avail / GiB).toFixed(1)} GiB free; the unpacked image needs about ${IMAGE_SPACE_ESTIMATE_BYTES / GiB} GiB.`, 'Free space on that storage or choose another one.', 'vm.imageStorage');
    }
  }

  // Uploading .raw/.qcow2/.vmdk to `import` came with libpve-storage-perl 8.3.6 (Proxmox VE 8.4).
  const [major, minor] = d.version.version.split('.').map((n) => Number.parseInt(n, 10));
  if (major !== undefined && minor !== undefined && (major < 8 || (major === 8 && minor < 4)) && !vmThere) {
    err('PREFLIGHT_PVE_TOO_OLD', `Proxmox VE ${d.version.version} cannot take a disk image upload for import; that came with Proxmox VE 8.4.`, 'Upgrade the host to Proxmox VE 8.4 or later (as root: apt update && apt full-upgrade; see the Proxmox upgrade notes for a major version), then run dualwan again.');
  }

  // VM id: free, or already ours (tagged).
  const taken = d.vms.find((v) => v.vmid === vm.vmid);
  if (taken && !isOwnedVm(taken.tags)) {
    const used = new Set(d.vms.map((v) => v.vmid));
    let free = 100;
    while (used.has(free) && free < 1_000_000) free++;
    err('PREFLIGHT_VMID_TAKEN', `VM id ${vm.vmid} is already used by ${taken.type} '${taken.name ?? '?'}' on node ${taken.node}, which dualwan did not create.`, `Set vm.vmid to a free id, for example ${free}. dualwan never modifies a VM it did not create.`, 'vm.vmid');
  }

  // Privileges, all of them named.
  const missing = missingPrivileges(d.permissions, requiredPrivileges(state));
  if (missing.length) {
    err(
      'PREFLIGHT_PRIVILEGES',
      `The API token ${state.proxmox.tokenId} lacks ${missing.length} privilege${missing.length === 1 ? '' : 's'}:\n${missing.map((m) => `    ${m.anyOf.join(' or ')} on ${m.path} — to ${m.why}`).join('\n')}`,
      'Grant them to the token (and its user, for a privilege-separated token); docs/proxmox-token.md has the role and the pveum commands.',
    );
  }
  return out;
}

function vmExists(state: DesiredState, d: Discovery): boolean {
  return !!state.vm && d.vms.some((v) => v.vmid === state.vm!.vmid);
}

/**
 * With the opt-in cutover: the bridge that keeps the host's new address is not the one that carries
 * it now (unless the cutover is done: then it is, with the new address), and the new subnet is not
 * the current management subnet (two interfaces of the host in one subnet cannot be told apart).
 */
function cutoverChecks(
  d: Discovery,
  c: ProxmoxCutover,
  err: (code: string, message: string, remedy: string, path?: string) => void,
): void {
  const done = d.management.bridge === c.bridge && d.management.address === c.hostAddress;
  if (done) return;
  if (d.management.bridge === c.bridge) {
    err('PREFLIGHT_CUTOVER_BRIDGE', `proxmox.cutover.bridge ${c.bridge} is the bridge that carries the management address now (${d.management.address ?? '?'}); the cutover moves the address to a bridge without the NIC that goes to the VM.`, 'Name another bridge in proxmox.cutover.bridge (and vm.bridgeNic.bridge), e.g. vmbr1; dualwan creates it.', 'proxmox.cutover.bridge');
  }
  const ip = c.hostAddress.split('/')[0] ?? '';
  if (d.management.address && cidrContains(d.management.address, ip)) {
    err('PREFLIGHT_CUTOVER_SUBNET', `proxmox.cutover.hostAddress ${c.hostAddress} is in the current management subnet ${d.management.address}; the host cannot keep two interfaces in one subnet during the change.`, 'Choose a subnet of its own for the host and the router, e.g. 10.10.99.2/24 with gateway 10.10.99.1.', 'proxmox.cutover.hostAddress');
  }
}
/** The first address of the LAN that is not the router's, the access point's, or in the DHCP range. */
export function freeLanAddress(state: DesiredState): string | undefined {
  const lan = parseCidr(state.lan.subnet);
  if (!lan) return undefined;
  const taken = new Set([state.lan.routerAddress, state.accessPoint?.address].filter((x): x is string => !!x));
  const start = parseIpv4(state.lan.dhcp.rangeStart);
  const end = parseIpv4(state.lan.dhcp.rangeEnd);
  for (let i = 2; i < 255; i++) {
    const ip = lan.first + i;
    if (ip >= lan.last) return undefined;
    const text = formatIpv4(ip);
    if (taken.has(text)) continue;
    if (state.lan.dhcp.enabled && start !== undefined && end !== undefined && ip >= start && ip <= end) continue;
    return text;
  }
  return undefined;
}
