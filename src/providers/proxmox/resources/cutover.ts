import { CutoverRevertedError, describeCutover, guardedCutover, revertCommandsForProxmox, type CutoverPort } from '../../../cutover/cutover';
import { newDeadmanId, type DeadmanKind } from '../../../cutover/deadman';
import type { DesiredState } from '../../../core/desired';
import { DualwanError } from '../../../core/errors';
import type { Ui } from '../../../core/ui';
import type { ResourceHandler } from '../../../plan/handler';
import type { Argv } from '../../linux/shell';
import type { RemoteShell } from '../../linux/ssh';
import type { ProxmoxClient } from '../client';
import { pciFromPredictableName } from '../propstring';
import type { NetworkIface } from '../schemas';
import type { ProxmoxContext } from './context';
import { diffRecords } from './diffutil';
import { mappingId } from '../naming';
import { hostpciKeys } from './vm';

/**
 * The lockout-safe cutover of the Proxmox host (docs/cutover.md), one resource per node:
 * `proxmox.network-cutover/<node>`, the only resource of the `cutover` stage, which runs after the
 * OPNsense stage (the router must answer at proxmox.cutover.gateway and route to the LAN). Present
 * when the host's running network config has the management address on the cutover bridge with the
 * new gateway, no other default gateway, no passed-through NIC left in any bridge, and the router VM
 * has every passed-through NIC (the Proxmox stage leaves the management NIC out until then).
 *
 * Apply, in two staged network changes so the old path survives until the VM restart cuts it:
 *   1. (API, old path) stage: no gateway on the old bridges; the cutover bridge, which has the new
 *      address since the Proxmox stage (proxmox.bridge), gets the gateway. SSH (old path): back up /etc/network/interfaces, arm the dead-man timer.
 *      API: apply (ifreload; the old path stays, its subnet is directly connected), add the held-back
 *      NIC to the VM, shut the VM down and send its start — the start answers with a task id before
 *      the VM takes the NIC, which cuts the old path.
 *   2. (new path) SSH answers at the new address; the API there: wait for the start, stage and apply
 *      the passed-through NICs off the old bridges and the old address gone; reach SSH again; disarm.
 * If the new path never answers, or finishing there fails, dualwan does not disarm: the timer
 * restores the backup, reloads, stops the VM; dualwan reports it with what to change.
 */
export interface CutoverIo {
  /** SSH to the host at its current address (proxmox.host). */
  connectOld(): Promise<RemoteShell>;
  /** SSH to the host at proxmox.cutover.hostAddress, through the router. */
  connectNew(): Promise<RemoteShell>;
  /** The API at the new address (same certificate pin and token). */
  connectApiNew(): Promise<ProxmoxClient>;
  /** After a confirmed cutover: the host's API now lives at `host` (write it to dualwan.yaml). */
  recordNewHost?(host: string): void;
  readonly ui?: Ui;
  /** Dead-man backend: systemd-run on a real host (default), process where there is no systemd. */
  readonly kind?: DeadmanKind;
  readonly stateDir?: string;
  /** Default /etc/network/interfaces. */
  readonly interfacesFile?: string;
  /** Stand-ins for ifreload and qm on a test host. */
  readonly bin?: { readonly ifreload?: string; readonly qm?: string };
  readonly confirmWithinMs?: number;
  readonly recoverWithinMs?: number;
}

/** What "done" looks like, compared property by property. */
export interface CutoverState {
  readonly bridgeCidr: string | null;
  readonly bridgeGateway: string | null;
  /** `iface gateway` of every other interface with a default gateway. */
  readonly otherGateways: readonly string[];
  /** `bridge:port` of every passed-through NIC still in a bridge. */
  readonly nicsOnBridges: readonly string[];
  /** interfaces.new exists (a change is staged, not applied). */
  readonly pending: boolean;
  /** `hostpciN (name)` of every passed-through NIC the router VM does not have yet. */
  readonly vmMissing: readonly string[];
}

export interface CutoverDesired {
  readonly node: string;
  readonly vmid: number;
  readonly bridge: string;
  readonly hostAddress: string;
  readonly gateway: string;
  readonly timeoutSeconds: number;
  readonly apiPort: number;
  readonly sshPort: number;
  readonly lan: { readonly subnet: string; readonly routerAddress: string };
  /** The PCI addresses of the NICs passed through to the VM. */
  readonly passthrough: readonly { readonly name: string; readonly pci: string; readonly role: string; readonly plug: string }[];
  /** Every passed-through NIC's VM config entry (hostpciN = mapping=…). */
  readonly vmNics: readonly { readonly key: string; readonly name: string; readonly value: string }[];
  readonly want: CutoverState;
}

export interface CutoverObserved extends CutoverState {
  readonly vmRunning: boolean;
  readonly managementBridge?: string;
  readonly oldAddress?: string;
  /** Host netdev names of the passed-through NICs, by PCI address. */
  readonly ifaceOfPci: Readonly<Record<string, string>>;
}

const hostIp = (cidr: string) => cidr.split('/')[0]!;

function passthroughOf(state: DesiredState): CutoverDesired['passthrough'] {
  const out: { name: string; pci: string; role: string; plug: string }[] = [];
  for (const w of state.wans) {
    if (w.uplink.type === 'pci-nic') out.push({ name: w.name, pci: w.uplink.pci.toLowerCase(), role: `WAN ${w.name}${w.description !== w.name ? ` (${w.description})` : ''}`, plug: `the cable of ${w.description}` });
  }
  if (state.lan.uplink.type === 'pci-nic') {
    out.push({ name: 'lan', pci: state.lan.uplink.pci.toLowerCase(), role: 'LAN', plug: state.accessPoint ? 'the access point (the former home router, in access-point mode, cable in one of its LAN ports)' : 'the home network (switch or access point)' });
  }
  return out;
}

function pciOfIface(net: readonly NetworkIface[], iface: string): string | undefined {
  const base = iface.split('.')[0]!;
  const altnames = net.find((i) => i.iface === base)?.altnames ?? [];
  return [base, ...altnames].map(pciFromPredictableName).find(Boolean);
}

const portsOf = (i: NetworkIface) => (i.bridge_ports ?? '').split(/\s+/).filter(Boolean);

/** The done-state of a network config (running, or pending when `pending`) and the VM's config. */
export function cutoverStateOf(net: readonly NetworkIface[], pending: boolean, d: Pick<CutoverDesired, 'bridge' | 'passthrough' | 'vmNics'>, vmConfig: Readonly<Record<string, unknown>> = {}): CutoverState {
  const pass = new Set(d.passthrough.map((p) => p.pci));
  const br = net.find((i) => i.iface === d.bridge);
  return {
    bridgeCidr: br?.cidr ?? null,
    bridgeGateway: br?.gateway ?? null,
    otherGateways: net.filter((i) => i.iface !== d.bridge && i.gateway).map((i) => `${i.iface} ${i.gateway!}`),
    nicsOnBridges: net.flatMap((i) => (i.type === 'bridge' ? portsOf(i).filter((p) => pass.has(pciOfIface(net, p) ?? '')).map((p) => `${i.iface}:${p}`) : [])),
    pending,
    vmMissing: missingNics(d, vmConfig).map((n) => `${n.key} (${n.name})`),
  };
}

/** The passed-through NICs whose hostpci entry the VM lacks. */
export function missingNics(d: Pick<CutoverDesired, 'vmNics'>, vmConfig: Readonly<Record<string, unknown>>): CutoverDesired['vmNics'] {
  return d.vmNics.filter((n) => !String(vmConfig[n.key] ?? '').split(',').includes(n.value.split(',')[0]!));
}

type Op = { readonly kind: 'create'; readonly params: Record<string, string | number> } | { readonly kind: 'update'; readonly iface: string; readonly params: Record<string, string | number> };

/**
 * The two staged changes, from the running config. Phase 1 keeps the old path: the old bridges keep
 * their ports and address and only lose the default gateway; the cutover bridge gets the gateway
 * (its address is sent again, as a PUT must, and is there already since the Proxmox stage). Phase 2 (through the new path) takes the passed-through NICs off the bridges and the
 * old management address off its bridge.
 */
export function cutoverOps(net: readonly NetworkIface[], d: CutoverDesired, managementBridge: string | undefined): { phase1: Op[]; phase2: Op[] } {
  const pass = new Set(d.passthrough.map((p) => p.pci));
  const phase1: Op[] = [];
  const phase2: Op[] = [];
  for (const i of net) {
    if (i.iface === d.bridge || !i.gateway) continue;
    // PUT replaces `method` by whether an address is sent: send the address again to keep it.
    phase1.push({ kind: 'update', iface: i.iface, params: { type: i.type, ...(i.cidr ? { cidr: i.cidr } : {}), delete: 'gateway' } });
  }
  const br = net.find((i) => i.iface === d.bridge);
  const keepPorts = br ? portsOf(br).filter((p) => !pass.has(pciOfIface(net, p) ?? '')) : [];
  const bridgeParams = { type: 'bridge', cidr: d.hostAddress, gateway: d.gateway, autostart: 1, ...(keepPorts.length ? { bridge_ports: keepPorts.join(' ') } : {}) };
  phase1.push(br ? { kind: 'update', iface: d.bridge, params: { ...bridgeParams, ...(br.bridge_ports && !keepPorts.length ? { delete: 'bridge_ports' } : {}) } } : { kind: 'create', params: { iface: d.bridge, ...bridgeParams, comments: 'dualwan: host management through the router VM' } });
  for (const i of net) {
    if (i.type !== 'bridge' || i.iface === d.bridge) continue;
    const ports = portsOf(i);
    const keep = ports.filter((p) => !pass.has(pciOfIface(net, p) ?? ''));
    const dropAddress = i.iface === managementBridge && !!i.cidr;
    if (keep.length === ports.length && !dropAddress) continue;
    const del = [...(dropAddress ? ['cidr'] : []), ...(keep.length ? [] : ['bridge_ports'])];
    phase2.push({ kind: 'update', iface: i.iface, params: { type: 'bridge', ...(keep.length ? { bridge_ports: keep.join(' ') } : {}), ...(!dropAddress && i.cidr ? { cidr: i.cidr } : {}), ...(del.length ? { delete: del.join(',') } : {}) } });
  }
  return { phase1, phase2 };
}

async function stage(client: ProxmoxClient, ops: readonly Op[]): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'create') await client.createNetworkIface(op.params);
    else await client.updateNetworkIface(op.iface, op.params);
  }
}

function portsFor(d: CutoverDesired, o: CutoverObserved | undefined): CutoverPort[] {
  const onBridge = new Set((o?.nicsOnBridges ?? []).map((x) => x.split(':')[1]));
  const ports = d.passthrough.map((p) => ({ iface: o?.ifaceOfPci[p.pci], pci: p.pci, role: p.role, plug: p.plug }));
  const moving = ports.filter((p) => p.iface && onBridge.has(p.iface));
  return moving.length ? moving : ports;
}

export const cutoverHandler: ResourceHandler<ProxmoxContext, CutoverDesired, CutoverObserved> = {
  kind: 'proxmox.network-cutover',
  desired(ctx) {
    const c = ctx.state.proxmox?.cutover;
    const vm = ctx.state.vm;
    if (!c || !vm) return [];
    const passthrough = passthroughOf(ctx.state);
    const vmNics = hostpciKeys(ctx.state).map((n) => ({ key: n.key, name: n.name, value: `mapping=${mappingId(n.name)},pcie=1` }));
    const want: CutoverState = { bridgeCidr: c.hostAddress, bridgeGateway: c.gateway, otherGateways: [], nicsOnBridges: [], pending: false, vmMissing: [] };
    return [
      {
        // its own stage: the VM, its image and OPNsense's configuration are done by the stages before
        address: `proxmox.network-cutover/${ctx.discovery.node}`,
        dependsOn: [],
        value: { node: ctx.discovery.node, vmid: vm.vmid, bridge: c.bridge, hostAddress: c.hostAddress, gateway: c.gateway, timeoutSeconds: c.timeoutSeconds, apiPort: ctx.state.proxmox!.port, sshPort: c.ssh.port, lan: { subnet: ctx.state.lan.subnet, routerAddress: ctx.state.lan.routerAddress }, passthrough, vmNics, want },
      },
    ];
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      const net = await ctx.client.networkWithChanges();
      const exists = (await ctx.client.vmResources()).some((v) => v.vmid === d.value.vmid);
      const vmRunning = exists && (await ctx.client.vmStatus(d.value.vmid)).status === 'running';
      const vmConfig = exists ? await ctx.client.vmConfig(d.value.vmid) : {};
      const ifaceOfPci: Record<string, string> = {};
      for (const i of net.ifaces) {
        const pci = i.type === 'eth' ? pciOfIface(net.ifaces, i.iface) : undefined;
        if (pci) ifaceOfPci[pci] = i.iface;
      }
      out.push({
        address: d.address,
        value: {
          ...cutoverStateOf(net.ifaces, !!net.pending, d.value, vmConfig),
          vmRunning,
          ...(ctx.discovery.management.bridge ? { managementBridge: ctx.discovery.management.bridge } : {}),
          ...(ctx.discovery.management.address ? { oldAddress: ctx.discovery.management.address } : {}),
          ifaceOfPci,
        },
      });
    }
    return out;
  },
  diff(desired, observed) {
    const have = observed ? { bridgeCidr: observed.bridgeCidr, bridgeGateway: observed.bridgeGateway, otherGateways: observed.otherGateways, nicsOnBridges: observed.nicsOnBridges, pending: observed.pending, vmMissing: observed.vmMissing } : undefined;
    const properties = diffRecords({ ...desired.want }, have);
    if (!properties.length) return { action: 'noop', properties: [], disruption: [] };
    const text = describeCutover({
      ports: portsFor(desired, observed),
      managementBridge: observed?.managementBridge,
      oldAddress: observed?.oldAddress,
      bridge: desired.bridge,
      hostAddress: desired.hostAddress,
      gateway: desired.gateway,
      apiPort: desired.apiPort,
      sshPort: desired.sshPort,
      lanSubnet: desired.lan.subnet,
      lanAddress: desired.lan.routerAddress,
      vmid: desired.vmid,
      vmRunning: !!observed?.vmRunning,
      vmKeys: observed?.vmMissing ?? [],
      timeoutSeconds: desired.timeoutSeconds,
    });
    return { action: 'update', properties, disruption: text.disruption, reason: text.steps.join(' ') };
  },
  async apply(ctx, change, observed) {
    const io = ctx.cutover;
    const d = change.desired;
    const c = ctx.state.proxmox?.cutover;
    if (!io || !c) {
      throw new DualwanError('CUTOVER_NOT_WIRED', 'The cutover needs SSH to the Proxmox host, which this run has not set up.', {
        source: 'tool',
        remedy: 'Set DUALWAN_SSH_PRIVATE_KEY_FILE (a key root on the host accepts) and run dualwan apply again.',
      });
    }
    const net = await ctx.client.networkWithChanges();
    if (net.pending) {
      throw new DualwanError('CUTOVER_PENDING_CHANGES', `The host has network changes staged that are not applied (/etc/network/interfaces.new):\n${net.pending.trimEnd()}`, {
        source: 'remote',
        remedy: `Apply or revert them in the Proxmox GUI (${d.node} > System > Network), or drop them with \`pvesh delete /nodes/${d.node}/network\` on the host, then run dualwan apply again.`,
      });
    }
    const ops = cutoverOps(net.ifaces, d, ctx.discovery.management.bridge);
    const exists = (await ctx.client.vmResources()).some((v) => v.vmid === d.vmid);
    if (!exists) {
      throw new DualwanError('CUTOVER_NO_VM', `The router VM ${d.vmid} does not exist; the cutover moves the management NIC into it.`, { source: 'tool', remedy: 'Run dualwan apply: the Proxmox stage creates the VM before the cutover stage runs.' });
    }
    const add = missingNics(d, await ctx.client.vmConfig(d.vmid));
    const interfaces = io.interfacesFile ?? '/etc/network/interfaces';
    const id = newDeadmanId();
    const backup = `${interfaces}.dualwan-${id.slice(-8)}`;
    // the revert also takes the added NICs out of the VM again: nothing can start it with them unguarded
    const revert: Argv[] = revertCommandsForProxmox({ backup, vmid: d.vmid, interfaces, deleteKeys: add.map((n) => n.key), ...(io.bin ? { bin: io.bin } : {}) });
    const newIp = hostIp(d.hostAddress);
    try {
      await stage(ctx.client, ops.phase1);
    } catch (e) {
      await ctx.client.revertNetwork().catch(() => undefined);
      throw e;
    }
    let startUpid: string | undefined;
    let fresh: ProxmoxClient | undefined;
    try {
      await guardedCutover({
        timeoutSeconds: d.timeoutSeconds,
        revert,
        id,
        ...(io.kind ? { kind: io.kind } : {}),
        ...(io.stateDir ? { stateDir: io.stateDir } : {}),
        ...(io.ui ? { ui: io.ui } : {}),
        ...(io.confirmWithinMs !== undefined ? { confirmWithinMs: io.confirmWithinMs } : {}),
        ...(io.recoverWithinMs !== undefined ? { recoverWithinMs: io.recoverWithinMs } : {}),
        connectOld: () => io.connectOld(),
        connectNew: () => io.connectNew(),
        change: async (old) => {
          const cp = await old.exec(['cp', '-p', '--', interfaces, backup], { timeoutMs: 15_000 });
          if (cp.code !== 0) throw new DualwanError('CUTOVER_BACKUP_FAILED', `Unable to back up ${interfaces} on the host: ${(cp.stderr || cp.stdout).trim()}`, { source: 'remote' });
          try {
            await ctx.client.applyNetwork({ what: `staged host network (the host keeps ${d.hostAddress} on ${d.bridge})` });
            if (add.length) {
              // on the running VM this waits as a pending change until the restart below
              await ctx.client.updateVmConfig(d.vmid, Object.fromEntries(add.map((n) => [n.key, n.value])), { what: `VM ${d.vmid}: ${add.map((n) => `${n.key} (${n.name})`).join(', ')}` });
            }
            if ((await ctx.client.vmStatus(d.vmid)).status === 'running') await ctx.client.shutdownVm(d.vmid, { what: `shutdown of VM ${d.vmid} (it restarts with the management NIC)` });
            startUpid = await ctx.client.startVmDetached(d.vmid);
          } catch (e) {
            if (startUpid === undefined) {
              // Nothing cut yet: undo now over the old path rather than wait for the timer.
              for (const argv of revert) await old.exec(argv, { timeoutMs: 60_000 }).catch(() => undefined);
            }
            throw e;
          }
        },
        afterReach: async () => {
          fresh = await io.connectApiNew();
          await fresh.waitTask(startUpid!, `start of VM ${d.vmid} (it took the management NIC)`);
          if (ops.phase2.length) {
            await stage(fresh, ops.phase2);
            await fresh.applyNetwork({ what: `host network: the passed-through NICs off ${ctx.discovery.management.bridge ?? 'the old bridge'}` });
          }
          const again = await io.connectNew();
          try {
            const r = await again.exec(['true'], { timeoutMs: 10_000 });
            if (r.code !== 0) throw new Error(`SSH at ${newIp} answered with exit status ${String(r.code)}`);
          } finally {
            await again.close().catch(() => undefined);
          }
          if ((await fresh.vmStatus(d.vmid)).status !== 'running') throw new Error(`VM ${d.vmid} is not running after its start`);
          const still = missingNics(d, await fresh.vmConfig(d.vmid));
          if (still.length) throw new Error(`VM ${d.vmid} lacks ${still.map((n) => n.key).join(', ')} after its restart`);
        },
      });
    } catch (e) {
      if (e instanceof CutoverRevertedError) {
        // Back on the old path: drop anything left staged, and say what to change.
        await ctx.client.revertNetwork().catch(() => undefined);
        throw new CutoverRevertedError(e.message, e.deadmanState, e.revertLog, revertedRemedy(d, portsFor(d, observed)));
      }
      if (startUpid === undefined) await ctx.client.revertNetwork().catch(() => undefined);
      throw e;
    }
    ctx.client = fresh!;
    io.recordNewHost?.(newIp);
    const back = await this.observe(ctx, [{ address: change.address, value: d, dependsOn: [] }]);
    return back[0]!.value;
  },
};

function revertedRemedy(d: CutoverDesired, ports: readonly CutoverPort[]): string {
  const ip = hostIp(d.hostAddress);
  return [
    `Nothing is lost: the host has its old network config again and the router VM ${d.vmid} is stopped (start at boot off until the next apply). What to check before running dualwan apply again:`,
    `  - cabling: ${ports.map((p) => `${p.iface ?? p.pci} is the router's ${p.role} port: ${p.plug} goes into it`).join('; ')};`,
    `  - the router answers at ${d.gateway} on its NIC on ${d.bridge} and routes between the LAN ${d.lan.subnet} and ${d.hostAddress} (its interface for that NIC, and a rule letting the LAN reach ${ip});`,
    `  - this computer is on the LAN ${d.lan.subnet} with ${d.lan.routerAddress} as its gateway (renew its DHCP lease after re-cabling), and reaches ${ip} port ${d.sshPort} (SSH) and ${d.apiPort} (API).`,
  ].join('\n');
}

export interface CutoverBridgeDesired {
  readonly bridge: string;
  /** proxmox.cutover.hostAddress: the host's address there from the start, without a gateway. */
  readonly cidr: string;
}
export interface CutoverBridgeObserved {
  readonly bridge: string;
  /** In the running config and up (`active`), not only staged. */
  readonly active: boolean;
  readonly cidr: string | null;
}

/**
 * The cutover bridge itself, in the Proxmox stage (`proxmox.bridge/<name>`): the router VM joins it
 * from its first start (a VM start refuses a bridge that does not exist). Created port-less with the
 * host's new address (proxmox.cutover.hostAddress) but no gateway, then applied (ifreload: nothing
 * else moves, the default route stays on the management bridge). From then on the host and the
 * router share that subnet, which is how dualwan reaches OPNsense before the cutover: SSH to the
 * host, forwarded to proxmox.cutover.gateway (src/flows/opnsense-route.ts). The gateway is the
 * cutover's business, so it is not compared here.
 */
export const cutoverBridgeHandler: ResourceHandler<ProxmoxContext, CutoverBridgeDesired, CutoverBridgeObserved> = {
  kind: 'proxmox.bridge',
  desired(ctx) {
    const c = ctx.state.proxmox?.cutover;
    if (!c || !ctx.state.vm) return [];
    return [{ address: `proxmox.bridge/${c.bridge}`, dependsOn: [], value: { bridge: c.bridge, cidr: c.hostAddress } }];
  },
  async observe(ctx, desired) {
    const net = await ctx.client.networkWithChanges();
    return desired.flatMap((d) => {
      const i = net.ifaces.find((x) => x.iface === d.value.bridge && x.type === 'bridge');
      return i ? [{ address: d.address, value: { bridge: i.iface, active: !!i.active, cidr: i.cidr ?? null } }] : [];
    });
  },
  diff(desired, observed) {
    const properties = [
      ...(observed?.active ? [] : [{ path: 'active', before: observed ? false : null, after: true }]),
      ...(observed?.cidr === desired.cidr ? [] : [{ path: 'cidr', before: observed?.cidr ?? null, after: desired.cidr }]),
    ];
    if (!properties.length) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: observed ? 'update' : 'create',
      properties,
      disruption: ['none'],
      reason: `the router VM joins ${desired.bridge} (proxmox.cutover.bridge), and the host has ${desired.cidr} there already, without a gateway: dualwan reaches OPNsense through the host until the cutover. No ports; the host's default route and management address stay where they are`,
    };
  },
  async apply(ctx, change, observed) {
    const d = change.desired;
    const net = await ctx.client.networkWithChanges();
    if (net.pending) {
      throw new DualwanError('CUTOVER_PENDING_CHANGES', `The host has network changes staged that are not applied (/etc/network/interfaces.new):\n${net.pending.trimEnd()}`, {
        source: 'remote',
        remedy: `Apply or revert them in the Proxmox GUI (${ctx.discovery.node} > System > Network), or drop them with \`pvesh delete /nodes/${ctx.discovery.node}/network\` on the host, then run dualwan apply again.`,
      });
    }
    const current = net.ifaces.find((x) => x.iface === d.bridge);
    try {
      // an existing bridge keeps its gateway (after the cutover it is the host's default route)
      const keep: Record<string, string> = current?.gateway ? { gateway: current.gateway } : {};
      if (!observed) await ctx.client.createNetworkIface({ iface: d.bridge, type: 'bridge', cidr: d.cidr, autostart: 1, comments: 'dualwan: the router VM and the host management address (through the router after the cutover)' });
      else await ctx.client.updateNetworkIface(d.bridge, { type: 'bridge', cidr: d.cidr, ...keep, autostart: 1 });
      await ctx.client.applyNetwork({ what: `host network: bridge ${d.bridge} for the router VM, the host at ${d.cidr} there` });
    } catch (e) {
      await ctx.client.revertNetwork().catch(() => undefined);
      throw e;
    }
    const back = await this.observe(ctx, [{ address: change.address, value: d, dependsOn: [] }]);
    if (!back[0]?.value.active || back[0].value.cidr !== d.cidr) throw new DualwanError('READ_BACK_MISSING', `bridge ${d.bridge} is not active at ${d.cidr} after the network was applied`, { source: 'remote' });
    return back[0].value;
  },
};
