import type { DesiredState } from '../../core/desired';
import type { Permissions } from './schemas';
import { mappingId } from './naming';

/** One privilege the tool needs, where, and for what (shown when it is missing). */
export interface Requirement {
  readonly path: string;
  /** Any one of these privileges satisfies the requirement. */
  readonly anyOf: readonly string[];
  readonly why: string;
}

/**
 * The privileges the router-VM workflow needs (Proxmox VE 9.1 API schema `permissions.check` of
 * each endpoint used, plus API2/Qemu.pm's per-option checks; see docs/proxmox-token.md).
 */
export function requiredPrivileges(state: DesiredState): Requirement[] {
  const vm = state.vm;
  if (!vm || !state.proxmox) return [];
  const node = state.proxmox.node;
  const vmPath = `/vms/${vm.vmid}`;
  const reqs: Requirement[] = [
    { path: '/', anyOf: ['Sys.Audit', 'Sys.Modify'], why: 'list PCI devices and IOMMU groups (hardware/pci)' },
    { path: '/', anyOf: ['Sys.Modify'], why: 'list USB devices (hardware/usb) and set the VM start order (startup)' },
    { path: vmPath, anyOf: ['VM.Allocate'], why: 'create the router VM' },
    { path: vmPath, anyOf: ['VM.Audit'], why: 'read the router VM configuration' },
    { path: vmPath, anyOf: ['VM.Config.Disk'], why: 'give the VM its disk (imported from the image) and grow it' },
    { path: vmPath, anyOf: ['VM.Config.CPU'], why: 'set CPU type and cores' },
    { path: vmPath, anyOf: ['VM.Config.Memory'], why: 'set memory and disable ballooning' },
    { path: vmPath, anyOf: ['VM.Config.HWType'], why: 'pass NICs through, add the serial console' },
    { path: vmPath, anyOf: ['VM.Config.Options'], why: 'set name, start at boot, tags' },
    { path: vmPath, anyOf: ['VM.PowerMgmt'], why: 'start and restart the VM' },
    { path: vmPath, anyOf: ['VM.Console'], why: 'drive the serial console during bootstrap' },
    { path: vmPath, anyOf: ['VM.Config.CDROM'], why: 'attach and eject the seed CD during bootstrap' },
    { path: `/storage/${vm.diskStorage}`, anyOf: ['Datastore.AllocateSpace'], why: `allocate the VM disk on ${vm.diskStorage}` },
    { path: `/storage/${vm.imageStorage}`, anyOf: ['Datastore.AllocateTemplate'], why: `upload the VM image and the seed CD to ${vm.imageStorage}` },
    { path: `/storage/${vm.imageStorage}`, anyOf: ['Datastore.Audit', 'Datastore.AllocateSpace'], why: `list images on ${vm.imageStorage} and import the VM disk from one` },
  ];
  const uplinks = [...state.wans.map((w) => ({ name: w.name, uplink: w.uplink })), { name: 'lan', uplink: state.lan.uplink }];
  const bridges = new Set<string>();
  for (const u of uplinks) {
    if (u.uplink.type === 'pci-nic') {
      reqs.push({ path: '/mapping/pci', anyOf: ['Mapping.Modify'], why: 'create the PCI resource mappings' });
      reqs.push({ path: `/mapping/pci/${mappingId(u.name)}`, anyOf: ['Mapping.Use'], why: `use the mapping of ${u.name}'s NIC` });
    } else if (u.uplink.type === 'usb-tether') {
      reqs.push({ path: '/mapping/usb', anyOf: ['Mapping.Modify'], why: 'create the USB resource mapping' });
      reqs.push({ path: `/mapping/usb/${mappingId(u.name)}`, anyOf: ['Mapping.Use'], why: `use the mapping of ${u.name}'s phone` });
    } else if (u.uplink.type === 'bridge') {
      bridges.add(u.uplink.bridge);
    }
  }
  if (vm.bridgeNic) bridges.add(vm.bridgeNic.bridge);
  if (state.proxmox.cutover) {
    reqs.push({ path: `/nodes/${node}`, anyOf: ['Sys.Modify'], why: 'stage and apply the host network change of the cutover (/nodes/{node}/network)' });
  }
  for (const b of bridges) {
    reqs.push({ path: `/sdn/zones/localnetwork/${b}`, anyOf: ['SDN.Use'], why: `attach the VM to bridge ${b}` });
    reqs.push({ path: vmPath, anyOf: ['VM.Config.Network'], why: 'add the virtio NIC' });
  }
  // one line per (path, privileges)
  const seen = new Set<string>();
  return reqs.filter((r) => {
    const k = `${r.path}|${r.anyOf.join('|')}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * Whether the effective permission map grants `priv` on `path`: an entry on the path itself, or on
 * an ancestor with propagation (value 1), as Proxmox's ACL inheritance works.
 */
export function hasPrivilege(perms: Permissions, path: string, priv: string): boolean {
  const parts = path.split('/').filter(Boolean);
  for (let i = parts.length; i >= 0; i--) {
    const p = '/' + parts.slice(0, i).join('/');
    const entry = perms[p];
    if (entry && priv in entry) {
      if (i === parts.length || entry[priv] === 1) return true;
    }
  }
  return false;
}

export function missingPrivileges(perms: Permissions, reqs: readonly Requirement[]): Requirement[] {
  return reqs.filter((r) => !r.anyOf.some((p) => hasPrivilege(perms, r.path, p)));
}
