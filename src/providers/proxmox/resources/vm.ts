import type { DesiredState } from '../../../core/desired';
import type { Disruption, PropertyChange } from '../../../core/plan';
import type { ResourceHandler } from '../../../plan/handler';
import type { ProxmoxContext } from './context';
import { imageVolid, mappingId, OWNER_TAG, isOwnedVm } from '../naming';
import type { ManagementPath } from '../discovery';
import { parsePropertyString, subsetMatches } from '../propstring';

/** The VM settings dualwan manages, as Proxmox config keys and string values. */
export interface VmDesired {
  readonly vmid: number;
  readonly config: Readonly<Record<string, string>>;
  /**
   * The boot disk, created with the VM by importing the image (`<storage>:0,import-from=<volid>`
   * plus options), then grown to `sizeGiB`; never replaced afterwards, only grown.
   */
  readonly disk: { readonly key: string; readonly create: string; readonly sizeGiB: number };
  /**
   * hostpci keys of management NICs held back for the cutover stage (proxmox.cutover): not set
   * here, and not removed when that stage has set them.
   */
  readonly leftToCutover?: readonly string[];
}

export interface VmObserved {
  /** Managed keys (and any extra hostpci/usb/net devices) as Proxmox reports them, pending values included. */
  readonly config: Readonly<Record<string, string>>;
  readonly hasDisk: boolean;
  /** Size of the boot disk in bytes, from its `size=` option. */
  readonly diskBytes?: number;
  readonly running: boolean;
  /** Keys whose new value waits for a restart. */
  readonly pending: readonly string[];
}

/** Keys that, on a running VM, wait in "pending" until the VM restarts (no hot-plug for an OPNsense guest). */
const NEEDS_RESTART = /^(hostpci\d+|usb\d+|net\d+|machine|bios|cpu|cores|sockets|memory|balloon|scsihw|serial\d+|vga|ostype)$/;
const DEVICE_KEY = /^(hostpci|usb|net)\d+$/;

/** The passed-through NICs and their hostpci keys, in the order vmDesired assigns them (WANs, then the LAN). */
export function hostpciKeys(state: Pick<DesiredState, 'wans' | 'lan'>): { name: string; pci: string; key: string }[] {
  const out: { name: string; pci: string; key: string }[] = [];
  for (const u of [...state.wans.map((w) => ({ name: w.name, uplink: w.uplink })), { name: 'lan', uplink: state.lan.uplink }]) {
    if (u.uplink.type === 'pci-nic') out.push({ name: u.name, pci: u.uplink.pci.toLowerCase(), key: `hostpci${out.length}` });
  }
  return out;
}

/**
 * With proxmox.cutover: the passed-through NICs that carry the host's management bridge now. The
 * router VM is created, bootstrapped and configured without them; the cutover stage adds them under
 * its dead-man timer. None once the cutover is done (the management address then lives on the
 * port-less cutover bridge).
 */
export function heldBackForCutover(state: Pick<DesiredState, 'wans' | 'lan' | 'proxmox'>, management: Pick<ManagementPath, 'ports'>): { name: string; pci: string; key: string }[] {
  if (!state.proxmox?.cutover) return [];
  const slot = (id: string) => id.replace(/\.[0-9a-f]$/, '');
  const mgmt = new Set(management.ports.map((p) => p.pci?.toLowerCase()).filter((x): x is string => !!x));
  return hostpciKeys(state).filter((n) => mgmt.has(n.pci) || mgmt.has(`${slot(n.pci)}.0`));
}

export function vmDesired(state: DesiredState, heldBack: readonly string[] = []): VmDesired | undefined {
  const vm = state.vm;
  if (!vm) return undefined;
  const config: Record<string, string> = {
    name: vm.name,
    ostype: vm.ostype,
    machine: vm.machine,
    bios: vm.bios,
    cpu: vm.cpu,
    cores: String(vm.cores),
    memory: String(vm.memoryMiB),
    // Passthrough pins all guest memory; a balloon could only mislead.
    balloon: '0',
    scsihw: 'virtio-scsi-single',
    onboot: vm.onboot ? '1' : '0',
    startup: `order=${vm.startupOrder}`,
    tags: OWNER_TAG,
  };
  if (vm.serialConsole) {
    config.serial0 = 'socket';
    config.vga = 'serial0';
  }
  const uplinks = [...state.wans.map((w) => ({ name: w.name, uplink: w.uplink })), { name: 'lan', uplink: state.lan.uplink }];
  let pci = 0;
  let usb = 0;
  let net = 0;
  const bridges: string[] = [];
  for (const u of uplinks) {
    if (u.uplink.type === 'pci-nic') {
      // a held-back NIC keeps its slot, so the guest numbers the NICs as it will after the cutover
      const key = `hostpci${pci++}`;
      if (!heldBack.includes(key)) config[key] = `mapping=${mappingId(u.name)},pcie=1`;
    }
    else if (u.uplink.type === 'usb-tether') config[`usb${usb++}`] = `mapping=${mappingId(u.name)},usb3=1`;
    else if (u.uplink.type === 'bridge' && !bridges.includes(u.uplink.bridge)) bridges.push(u.uplink.bridge);
  }
  if (vm.bridgeNic && !bridges.includes(vm.bridgeNic.bridge)) bridges.push(vm.bridgeNic.bridge);
  for (const b of bridges) {
    const fw = vm.bridgeNic && vm.bridgeNic.bridge === b ? vm.bridgeNic.firewall : false;
    config[`net${net++}`] = `virtio,bridge=${b},firewall=${fw ? 1 : 0}`;
  }
  return { vmid: vm.vmid, config, disk: { key: 'scsi0', create: `${vm.diskStorage}:0,import-from=${imageVolid(vm.imageStorage, vm.image.filename)},discard=on,iothread=1`, sizeGiB: vm.diskGiB }, ...(heldBack.length ? { leftToCutover: [...heldBack] } : {}) };
}

function valuesEqual(key: string, want: string, have: string | undefined): boolean {
  if (have === undefined) return false;
  if (key === 'tags') return isOwnedVm(have);
  if (key === 'memory') return parsePropertyString('memory', have).current === parsePropertyString('memory', want).current;
  if (DEVICE_KEY.test(key) || key === 'startup') {
    const w = parsePropertyString(key, want);
    const h = parsePropertyString(key, have);
    if (key.startsWith('net')) delete w.macaddr;
    return subsetMatches(w, h);
  }
  return want === have;
}

export function diffVm(desired: VmDesired, observed: VmObserved): PropertyChange[] {
  const props: PropertyChange[] = [];
  for (const [k, v] of Object.entries(desired.config)) {
    if (!valuesEqual(k, v, observed.config[k])) props.push({ path: k, before: observed.config[k] ?? null, after: v });
  }
  for (const k of Object.keys(observed.config)) {
    if (DEVICE_KEY.test(k) && !(k in desired.config) && !desired.leftToCutover?.includes(k)) props.push({ path: k, before: observed.config[k], after: null });
  }
  return props;
}

const GiB = 1024 ** 3;

/** Bytes of a drive's `size=` option (`16G`, `3221225472`), as qemu-server prints it. */
export function driveBytes(drive: string | undefined): number | undefined {
  const m = /(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:,|$)/.exec(drive ?? '');
  if (!m) return undefined;
  return Math.round(Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: GiB, T: 1024 ** 4 } as Record<string, number>)[m[2]!]!);
}

/** The boot disk is smaller than wanted (just imported, or diskGiB was raised): grow it. Never shrinks. */
function diskGrowth(desired: VmDesired, observed: Pick<VmObserved, 'diskBytes'>): PropertyChange | undefined {
  if (observed.diskBytes === undefined || observed.diskBytes >= desired.disk.sizeGiB * GiB) return undefined;
  return { path: `${desired.disk.key} size`, before: `${(observed.diskBytes / GiB).toFixed(1)}G`, after: `${desired.disk.sizeGiB}G` };
}

async function growDisk(ctx: ProxmoxContext, d: VmDesired, observed: Pick<VmObserved, 'diskBytes'>): Promise<void> {
  if (!diskGrowth(d, observed)) return;
  await ctx.client.resizeDisk(d.vmid, d.disk.key, `${d.disk.sizeGiB}G`, { what: `resize of the disk of VM ${d.vmid} to ${d.disk.sizeGiB} GiB` });
}

export const vmHandler: ResourceHandler<ProxmoxContext, VmDesired, VmObserved> = {
  kind: 'proxmox.vm',
  desired(ctx) {
    const d = vmDesired(
      ctx.state,
      heldBackForCutover(ctx.state, ctx.discovery.management).map((n) => n.key),
    );
    if (!d) return [];
    const deps = [
      ...ctx.state.wans.map((w) => w.uplink),
      ctx.state.lan.uplink,
    ];
    const names = [...ctx.state.wans.map((w) => w.name), 'lan'];
    const dependsOn = deps.flatMap((u, i) =>
      u.type === 'pci-nic' ? [`proxmox.pci-mapping/${mappingId(names[i]!)}`] : u.type === 'usb-tether' ? [`proxmox.usb-mapping/${mappingId(names[i]!)}`] : [],
    );
    // the boot disk is imported from the image
    const image = ctx.state.vm ? [`proxmox.image/${imageVolid(ctx.state.vm.imageStorage, ctx.state.vm.image.filename)}`] : [];
    return [{ address: `proxmox.vm/${d.vmid}`, value: d, dependsOn: [...dependsOn, ...image] }];
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      const res = (await ctx.client.vmResources()).find((v) => v.vmid === d.value.vmid);
      if (!res) continue;
      const [config, status, pending] = await Promise.all([ctx.client.vmConfig(d.value.vmid), ctx.client.vmStatus(d.value.vmid), ctx.client.vmPending(d.value.vmid)]);
      const managed: Record<string, string> = {};
      for (const [k, v] of Object.entries(config)) {
        if (k in d.value.config || DEVICE_KEY.test(k)) managed[k] = String(v);
      }
      out.push({
        address: d.address,
        value: {
          config: managed,
          hasDisk: d.value.disk.key in config,
          ...(driveBytes(typeof config[d.value.disk.key] === 'string' ? (config[d.value.disk.key] as string) : undefined) !== undefined
            ? { diskBytes: driveBytes(config[d.value.disk.key] as string) }
            : {}),
          running: status.status === 'running',
          pending: pending.filter((p) => p.pending !== undefined || p.delete !== undefined).map((p) => p.key).sort(),
        },
      });
    }
    return out;
  },
  diff(desired, observed) {
    if (!observed) {
      return {
        action: 'create',
        properties: [...Object.entries(desired.config).map(([k, v]) => ({ path: k, before: null, after: v })), { path: desired.disk.key, before: null, after: desired.disk.create }],
        disruption: ['none'],
      };
    }
    const grow = diskGrowth(desired, observed);
    const props = [...diffVm(desired, observed), ...(grow ? [grow] : [])];
    const restart = props.some((p) => NEEDS_RESTART.test(p.path)) || observed.pending.some((k) => NEEDS_RESTART.test(k));
    if (observed.pending.length && !props.length && restart && observed.running) {
      return { action: 'update', properties: [{ path: 'pending', before: observed.pending.join(','), after: null }], disruption: ['restarts-router-vm'], reason: 'settings wait for a restart of the router VM' };
    }
    if (!props.length) return { action: 'noop', properties: [], disruption: [] };
    const disruption: Disruption[] = restart && observed.running ? ['restarts-router-vm'] : ['none'];
    return { action: 'update', properties: props, disruption, reason: restart && observed.running ? 'hardware changes take effect only after the router VM restarts; apply restarts it' : undefined };
  },
  async apply(ctx, change, observed) {
    const d = change.desired;
    if (!observed) {
      await ctx.client.createVm(
        { vmid: d.vmid, ...d.config, [d.disk.key]: d.disk.create, description: 'Router VM managed by dualwan. Edit dualwan.yaml and run `dualwan apply` instead of changing it here.' },
        {
          what: `creation of VM ${d.vmid}`,
          // A create whose answer was lost may have happened: ours if tagged.
          alreadyDone: async () => (await ctx.client.vmResources()).some((v) => v.vmid === d.vmid && isOwnedVm(v.tags)),
        },
      );
      // the imported disk has the image's size: grow it to diskGiB before the first boot
      const created = await ctx.client.vmConfig(d.vmid);
      await growDisk(ctx, d, { diskBytes: driveBytes(typeof created[d.disk.key] === 'string' ? (created[d.disk.key] as string) : undefined) });
    } else {
      await growDisk(ctx, d, observed);
      const props = diffVm(d, observed);
      const set: Record<string, string> = {};
      const del: string[] = [];
      for (const p of props) {
        if (p.after === null) del.push(p.path);
        else set[p.path] = String(p.after);
      }
      if (props.length) await ctx.client.updateVmConfig(d.vmid, { ...set, ...(del.length ? { delete: del.join(',') } : {}) }, { what: `configuration of VM ${d.vmid}` });
      const pending = await ctx.client.vmPending(d.vmid);
      const waiting = pending.some((p) => (p.pending !== undefined || p.delete !== undefined) && NEEDS_RESTART.test(p.key));
      if (waiting && (await ctx.client.vmStatus(d.vmid)).status === 'running') {
        await ctx.client.shutdownVm(d.vmid, { what: `shutdown of VM ${d.vmid} (to apply hardware changes)` });
        await ctx.client.startVm(d.vmid, { what: `start of VM ${d.vmid}` });
      }
    }
    const back = await this.observe(ctx, [{ address: change.address, value: d, dependsOn: [] }]);
    if (!back[0]) throw new Error(`VM ${d.vmid} is not there after the write`);
    return back[0].value;
  },
};

export interface VmStateDesired {
  readonly vmid: number;
  readonly running: boolean;
}
export interface VmStateObserved {
  readonly running: boolean;
}

/** Whether the router VM runs. dualwan starts it when asked; it never stops a running router. */
export const vmStateHandler: ResourceHandler<ProxmoxContext, VmStateDesired, VmStateObserved> = {
  kind: 'proxmox.vm-state',
  desired(ctx) {
    const vm = ctx.state.vm;
    if (!vm) return [];
    // With proxmox.cutover the VM starts without the management NIC (the cutover stage adds it),
    // on the cutover bridge, which must exist by then.
    const bridge = ctx.state.proxmox?.cutover ? [`proxmox.bridge/${ctx.state.proxmox.cutover.bridge}`] : [];
    return [{ address: `proxmox.vm-state/${vm.vmid}`, value: { vmid: vm.vmid, running: vm.start }, dependsOn: [`proxmox.vm/${vm.vmid}`, `proxmox.image/${imageVolid(vm.imageStorage, vm.image.filename)}`, ...bridge] }];
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      if (!(await ctx.client.vmResources()).some((v) => v.vmid === d.value.vmid)) continue;
      out.push({ address: d.address, value: { running: (await ctx.client.vmStatus(d.value.vmid)).status === 'running' } });
    }
    return out;
  },
  diff(desired, observed) {
    if (!desired.running || observed?.running) return { action: 'noop', properties: [], disruption: [] };
    return { action: 'update', properties: [{ path: 'status', before: observed ? 'stopped' : null, after: 'running' }], disruption: ['starts-router-vm'] };
  },
  async apply(ctx, change) {
    const d = change.desired;
    if ((await ctx.client.vmStatus(d.vmid)).status !== 'running') await ctx.client.startVm(d.vmid, { what: `start of VM ${d.vmid}` });
    return { running: (await ctx.client.vmStatus(d.vmid)).status === 'running' };
  },
};
