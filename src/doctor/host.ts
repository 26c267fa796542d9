import type { DesiredState } from '../core/desired';
import type { Diagnostic } from '../core/diagnostics';
import type { Discovery } from '../providers/proxmox/discovery';
import { mappingId, isOwnedVm } from '../providers/proxmox/naming';
import { preflight } from '../providers/proxmox/preflight';
import type { ProxmoxClient } from '../providers/proxmox/client';

export type FindingStatus = 'ok' | 'warn' | 'fail' | 'skipped';

/** One line of the doctor's report. */
export interface Finding {
  readonly area: 'config' | 'host' | 'router' | 'topology';
  /** Stable id, e.g. host.iommu */
  readonly check: string;
  readonly status: FindingStatus;
  readonly message: string;
  readonly remedy?: string;
}

/** The host checks, as data: which preflight findings belong to which check, and what "ok" says. */
const HOST_CHECKS: readonly { check: string; codes: readonly string[]; ok: (s: DesiredState, d: Discovery) => string }[] = [
  { check: 'host.node', codes: ['PREFLIGHT_NODE_UNKNOWN'], ok: (s) => `node ${s.proxmox!.node} exists` },
  { check: 'host.iommu', codes: ['PREFLIGHT_IOMMU_OFF'], ok: (_s, d) => `IOMMU on (${new Set(d.pci.map((p) => p.iommugroup)).size} groups)` },
  { check: 'host.nics', codes: ['PREFLIGHT_NIC_MISSING', 'PREFLIGHT_NOT_A_NIC'], ok: () => 'every passed-through device is a NIC present on the host' },
  { check: 'host.iommu-groups', codes: ['PREFLIGHT_IOMMU_GROUP_SHARED', 'PREFLIGHT_IOMMU_GROUP_MANAGEMENT'], ok: () => 'each passed-through NIC is alone in its IOMMU group (or its peers are named)' },
  { check: 'host.management-nic', codes: ['PREFLIGHT_MANAGEMENT_NIC', 'PREFLIGHT_MANAGEMENT_NIC_UNKNOWN'], ok: (_s, d) => `the management bridge ${d.management.bridge ?? '?'} (${d.management.ports.map((p) => p.iface).join(', ')}) stays with the host` },
  { check: 'host.machine', codes: ['PREFLIGHT_MACHINE_NOT_Q35'], ok: (s) => `machine ${s.vm!.machine} supports PCIe passthrough` },
  { check: 'host.usb-phone', codes: ['PREFLIGHT_USB_ABSENT'], ok: () => 'the tethered phone is attached with the expected USB id' },
  { check: 'host.storage', codes: ['PREFLIGHT_STORAGE_MISSING', 'PREFLIGHT_STORAGE_CONTENT', 'PREFLIGHT_STORAGE_NO_IMPORT', 'PREFLIGHT_STORAGE_FULL'], ok: (s) => `storages ${s.vm!.diskStorage} (disk) and ${s.vm!.imageStorage} (image import and seed CD) are usable` },
  { check: 'host.vm-id', codes: ['PREFLIGHT_VMID_TAKEN'], ok: (s) => `VM id ${s.vm!.vmid} is free or dualwan's` },
  { check: 'host.privileges', codes: ['PREFLIGHT_PRIVILEGES'], ok: (s) => `the token ${s.proxmox!.tokenId} has every privilege dualwan needs` },
];

function fromDiagnostics(found: readonly Diagnostic[]): (codes: readonly string[]) => Diagnostic[] {
  return (codes) => found.filter((f) => codes.includes(f.code));
}

/** Read-only checks of the Proxmox host against dualwan.yaml, each with a remedy. */
export async function doctorHost(state: DesiredState, d: Discovery, client: ProxmoxClient): Promise<Finding[]> {
  const out: Finding[] = [];
  const release = Number(d.version.release);
  out.push(
    release >= 8.4
      ? { area: 'host', check: 'host.version', status: 'ok', message: `Proxmox VE ${d.version.version}` }
      : { area: 'host', check: 'host.version', status: 'fail', message: `Proxmox VE ${d.version.version} is older than 8.4, the oldest release dualwan knows.`, remedy: 'Upgrade the host to Proxmox VE 8.4 or 9.x.' },
  );
  const pick = fromDiagnostics(preflight(state, d));
  for (const c of HOST_CHECKS) {
    const hits = pick(c.codes);
    if (!hits.length) out.push({ area: 'host', check: c.check, status: 'ok', message: c.ok(state, d) });
    for (const h of hits) out.push({ area: 'host', check: c.check, status: h.severity === 'error' ? 'fail' : 'warn', message: h.message, remedy: h.remedy });
  }

  // Mappings dualwan made: still valid for the hardware as it is now?
  const uplinks = [...state.wans.map((w) => ({ name: w.name, uplink: w.uplink })), { name: 'lan', uplink: state.lan.uplink }];
  for (const u of uplinks) {
    if (u.uplink.type !== 'pci-nic' && u.uplink.type !== 'usb-tether') continue;
    const type = u.uplink.type === 'pci-nic' ? 'pci' : 'usb';
    const id = mappingId(u.name);
    const m = (type === 'pci' ? d.pciMappings : d.usbMappings).find((x) => x.id === id);
    const check = `host.mapping.${id}`;
    if (!m) {
      out.push({ area: 'host', check, status: 'warn', message: `The ${type.toUpperCase()} mapping ${id} does not exist yet.`, remedy: 'Run `dualwan apply` to create it.' });
      continue;
    }
    const problems = [...(m.checks ?? []), ...(m.errors ?? [])].filter((p) => p.severity === 'error' || p.severity === 'warning');
    if (!problems.length) out.push({ area: 'host', check, status: 'ok', message: `mapping ${id} matches the hardware` });
    for (const p of problems) {
      out.push({
        area: 'host',
        check,
        status: p.severity === 'error' ? 'fail' : 'warn',
        message: `Mapping ${id}: ${p.message.trim()}`,
        remedy: type === 'usb' ? 'Plug the phone in with USB tethering on (its USB id changes with the mode), then run `dualwan apply` if its id really changed.' : 'The hardware changed (another slot, a firmware update moving IOMMU groups): run `dualwan apply` to re-create the mapping from what the host reports now.',
      });
    }
  }

  // The router VM: there, ours, running, no changes waiting for a restart.
  const vmid = state.vm!.vmid;
  const res = d.vms.find((v) => v.vmid === vmid);
  if (!res) {
    out.push({ area: 'host', check: 'host.router-vm', status: 'warn', message: `VM ${vmid} does not exist yet.`, remedy: 'Run `dualwan apply`.' });
  } else if (isOwnedVm(res.tags)) {
    const [status, pending] = await Promise.all([client.vmStatus(vmid), client.vmPending(vmid)]);
    const waiting = pending.filter((p) => p.pending !== undefined || p.delete !== undefined).map((p) => p.key);
    out.push(
      status.status === 'running'
        ? { area: 'host', check: 'host.router-vm', status: 'ok', message: `VM ${vmid} (${res.name ?? ''}) is running` }
        : { area: 'host', check: 'host.router-vm', status: 'fail', message: `VM ${vmid} (${res.name ?? ''}) is stopped: the home network has no router.`, remedy: `Start it (qm start ${vmid}, or dualwan apply); if it fails to start, the task log on the host says why.` },
    );
    if (waiting.length) out.push({ area: 'host', check: 'host.router-vm-pending', status: 'warn', message: `VM ${vmid} has changes waiting for a restart: ${waiting.join(', ')}.`, remedy: 'Run `dualwan apply`, which restarts the VM to apply them (the network is down for about a minute).' });
  }
  return out;
}
