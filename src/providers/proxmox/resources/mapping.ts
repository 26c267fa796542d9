import type { ResourceHandler } from '../../../plan/handler';
import type { ProxmoxContext } from './context';
import { mappingId } from '../naming';
import { diffRecords } from './diffutil';

/** A cluster resource mapping (`/cluster/mapping/pci|usb`), the token-friendly way to pass devices. */
export interface MappingValue {
  readonly id: string;
  readonly description: string;
  /** This node's map entry, normalised: sorted `key=value` pairs. */
  readonly entry: string;
  /** Entries for other nodes, kept as they are. */
  readonly otherNodes?: readonly string[];
}

function normaliseEntry(entry: string): string {
  return entry
    .split(',')
    .filter(Boolean)
    .map((p) => p.trim())
    .sort()
    .join(',');
}
const nodeOf = (entry: string) => /(?:^|,)node=([^,]+)/.exec(entry)?.[1];

function desiredEntries(ctx: ProxmoxContext, type: 'pci' | 'usb'): { name: string; entry: string; label: string }[] {
  const node = ctx.discovery.node;
  const uplinks = [...ctx.state.wans.map((w) => ({ name: w.name, uplink: w.uplink, label: w.description })), { name: 'lan', uplink: ctx.state.lan.uplink, label: 'LAN' }];
  const out: { name: string; entry: string; label: string }[] = [];
  for (const u of uplinks) {
    if (type === 'pci' && u.uplink.type === 'pci-nic') {
      const pci = u.uplink.pci;
      const dev = ctx.discovery.pci.find((p) => p.id === pci);
      // The live device's ids and group must be in the entry, or VM start fails with
      // "missing expected property" (pve-guest-common Mapping/PCI.pm assert_valid).
      const parts = [`node=${node}`, `path=${pci}`];
      if (dev) {
        parts.push(`id=${dev.vendor.replace(/^0x/, '')}:${dev.device.replace(/^0x/, '')}`);
        if (dev.subsystem_vendor && dev.subsystem_device) parts.push(`subsystem-id=${dev.subsystem_vendor.replace(/^0x/, '')}:${dev.subsystem_device.replace(/^0x/, '')}`);
        if (dev.iommugroup !== -1) parts.push(`iommugroup=${dev.iommugroup}`);
      }
      out.push({ name: u.name, entry: normaliseEntry(parts.join(',')), label: u.label });
    }
    if (type === 'usb' && u.uplink.type === 'usb-tether') {
      out.push({ name: u.name, entry: normaliseEntry(`node=${node},id=${u.uplink.vendorId}:${u.uplink.productId}`), label: u.label });
    }
  }
  return out;
}

export function mappingHandler(type: 'pci' | 'usb'): ResourceHandler<ProxmoxContext, MappingValue, MappingValue> {
  const kind = `proxmox.${type}-mapping`;
  return {
    kind,
    desired(ctx) {
      return desiredEntries(ctx, type).map((e) => ({
        address: `${kind}/${mappingId(e.name)}`,
        dependsOn: [],
        value: { id: mappingId(e.name), description: `dualwan: ${e.label} (${e.name})`, entry: e.entry },
      }));
    },
    async observe(ctx, desired) {
      const list = type === 'pci' ? await ctx.client.pciMappings() : await ctx.client.usbMappings();
      const wanted = new Set(desired.map((d) => d.value.id));
      return list
        .filter((m) => wanted.has(m.id))
        .map((m) => {
          const mine = m.map.find((e) => nodeOf(e) === ctx.discovery.node);
          return {
            address: `${kind}/${m.id}`,
            value: {
              id: m.id,
              description: m.description ?? '',
              entry: mine ? normaliseEntry(mine) : '',
              otherNodes: m.map.filter((e) => nodeOf(e) !== ctx.discovery.node),
            },
          };
        });
    },
    diff(desired, observed) {
      if (!observed) return { action: 'create', properties: [{ path: 'map', before: null, after: desired.entry }], disruption: ['none'] };
      const props = diffRecords({ description: desired.description, entry: desired.entry }, { description: observed.description, entry: observed.entry });
      return props.length
        ? { action: 'update', properties: props, disruption: ['restarts-router-vm'], reason: 'a changed mapping takes effect when the router VM next starts' }
        : { action: 'noop', properties: [], disruption: [] };
    },
    async apply(ctx, change, observed) {
      const d = change.desired;
      if (!observed) await ctx.client.createMapping(type, d.id, [d.entry], d.description);
      else await ctx.client.updateMapping(type, d.id, [...(observed.otherNodes ?? []), d.entry], d.description);
      const back = await this.observe(ctx, [{ address: change.address, value: d, dependsOn: [] }]);
      return back[0]?.value ?? { id: d.id, description: '', entry: '' };
    },
  };
}
