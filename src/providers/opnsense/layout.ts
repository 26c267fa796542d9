import type { DesiredState, MonitorProfile, WanSpec } from '../../core/desired';
import { bridgeDevice, opnsenseDevices, type DeviceNamingOptions } from './devices';

/**
 * How dualwan.yaml maps onto OPNsense's own names. Pure.
 *
 * - The first WAN is OPNsense's `wan`, the LAN is `lan`, further WANs are `opt1`, `opt2`, … with
 *   the descriptions WAN2, WAN3, … — the assignment the bootstrap seeds.
 * - A DHCP WAN's gateway is the one OPNsense derives itself, `<DESCR>_DHCP` (`WAN_DHCP`,
 *   `WAN2_DHCP`); a static WAN gets a stored gateway `<DESCR>_GW`.
 * - One gateway group, `DUALWAN`, carries the LAN's traffic. Group names cannot be changed once
 *   stored, so the name does not depend on the mode: switching failover ↔ loadbalance edits tiers.
 */
export const GROUP_NAME = 'DUALWAN';

export interface InterfaceLayout {
  readonly identifier: string;
  readonly descr: string;
  readonly device: string;
  readonly role: 'wan' | 'lan';
  /** The WAN's name in dualwan.yaml, or `lan`. */
  readonly uplink: string;
}

export interface WanLayout {
  readonly wan: WanSpec;
  readonly identifier: string;
  readonly descr: string;
  readonly gatewayName: string;
  /** True when OPNsense derives the gateway from DHCP (a virtual gateway until stored). */
  readonly dynamic: boolean;
}

/**
 * The router's interface on the Proxmox host's cutover bridge (`proxmox.cutover`): the VM's virtio
 * NIC there, with the address the host uses as its gateway once the management NIC has moved. The
 * next free `optN` after the WANs, described `PVEHOST`, static `gateway/prefix`.
 */
export interface HostLinkLayout {
  readonly identifier: string;
  readonly descr: string;
  readonly device: string;
  readonly bridge: string;
  /** The router's address there (proxmox.cutover.gateway). */
  readonly address: string;
  readonly prefix: number;
  /** The host's address with prefix (proxmox.cutover.hostAddress). */
  readonly hostAddress: string;
}

export interface Layout {
  readonly interfaces: readonly InterfaceLayout[];
  readonly wans: readonly WanLayout[];
  readonly groupName: string;
  /** Only with proxmox.cutover (and the VM on its bridge). */
  readonly hostLink?: HostLinkLayout;
}

export const HOST_LINK_DESCR = 'PVEHOST';

export function wanIdentifier(index: number): { identifier: string; descr: string } {
  return index === 0 ? { identifier: 'wan', descr: 'WAN' } : { identifier: `opt${index}`, descr: `WAN${index + 1}` };
}

export function layoutOf(state: Pick<DesiredState, 'wans' | 'lan' | 'vm'> & { readonly proxmox?: DesiredState['proxmox'] }, naming?: DeviceNamingOptions): Layout {
  const devices = opnsenseDevices(state, naming);
  const deviceOf = (uplink: string) => devices.find((d) => d.uplink === uplink)?.device ?? '';
  const wans: WanLayout[] = state.wans.map((wan, i) => {
    const { identifier, descr } = wanIdentifier(i);
    const dynamic = wan.addressing.mode === 'dhcp';
    return { wan, identifier, descr, gatewayName: `${descr.toUpperCase()}_${dynamic ? 'DHCP' : 'GW'}`, dynamic };
  });
  const interfaces: InterfaceLayout[] = [
    ...wans.map((w) => ({ identifier: w.identifier, descr: w.descr, device: deviceOf(w.wan.name), role: 'wan' as const, uplink: w.wan.name })),
    { identifier: 'lan', descr: 'LAN', device: deviceOf('lan'), role: 'lan', uplink: 'lan' },
  ];
  return { interfaces, wans, groupName: GROUP_NAME, ...hostLinkOf(state) };
}

function hostLinkOf(state: Pick<DesiredState, 'wans' | 'lan' | 'vm'> & { readonly proxmox?: DesiredState['proxmox'] }): { hostLink?: HostLinkLayout } {
  const c = state.proxmox?.cutover;
  const device = c ? bridgeDevice(state, c.bridge) : undefined;
  if (!c || !device) return {};
  const prefix = Number(c.hostAddress.split('/')[1] ?? '24');
  return { hostLink: { identifier: `opt${state.wans.length}`, descr: HOST_LINK_DESCR, device, bridge: c.bridge, address: c.gateway, prefix, hostAddress: c.hostAddress } };
}

/** dpinger settings of one gateway, as OPNsense's gateway fields (whole seconds, percent, ms). */
export interface DpingerSettings {
  readonly interval: number;
  readonly loss_interval: number;
  readonly time_period: number;
  readonly latencylow: number;
  readonly latencyhigh: number;
  readonly losslow: number;
  readonly losshigh: number;
}

/** Bytes on the wire for one probe and its answer (two minimal ICMP echo frames). */
export const PROBE_WIRE_BYTES = 56;
const MONTH_SECONDS = 30 * 86_400;

/**
 * The monitor profile in OPNsense's units. OPNsense's probe interval is a whole number of seconds
 * (`interval` is an IntegerField ≥ 1), so sub-second profiles round up to 1 s. A metered WAN is
 * probed no more often than its monthly budget allows. `time_period` (the averaging window, which
 * sets how long a recovered gateway must look healthy) follows the profile's failback time, but
 * never below OPNsense's own floor of 2 × (interval + loss_interval).
 */
export function dpingerSettings(profile: MonitorProfile, wan: Pick<WanSpec, 'metered' | 'probeBudgetMBPerMonth'>): DpingerSettings {
  let interval = Math.max(1, Math.ceil(profile.intervalMs / 1000));
  if (wan.metered && wan.probeBudgetMBPerMonth > 0) {
    const budgetInterval = Math.ceil((PROBE_WIRE_BYTES * MONTH_SECONDS) / (wan.probeBudgetMBPerMonth * 1_000_000));
    interval = Math.max(interval, budgetInterval);
  }
  // A probe counts as lost when no answer came within this time: twice the latency limit, at
  // least 2 s (OPNsense's default is 4 s with 500 ms latency).
  const lossInterval = Math.max(2, Math.ceil((2 * profile.latencyHighMs) / 1000));
  const timePeriod = Math.max(profile.failbackAfterSeconds, 2 * (interval + lossInterval));
  const latencyhigh = profile.latencyHighMs;
  const losshigh = profile.lossDownPercent;
  return {
    interval,
    loss_interval: lossInterval,
    time_period: timePeriod,
    latencylow: Math.max(1, Math.round(latencyhigh * 0.4)),
    latencyhigh,
    losslow: Math.max(1, Math.floor(losshigh / 2)),
    losshigh,
  };
}

/** dualwan's trigger names → OPNsense's gateway-group trigger options. */
export const TRIGGER_OPTION: Readonly<Record<DesiredState['policy']['trigger'], string>> = {
  down: 'down',
  'packet-loss': 'downloss',
  'high-latency': 'downlatency',
  'packet-loss-or-high-latency': 'downlosslatency',
};

/** Gateway priority: a lower number is preferred. Tier 1 before tier 2, list order within a tier. */
export function gatewayPriority(state: Pick<DesiredState, 'wans'>, index: number): number {
  const wan = state.wans[index]!;
  const before = state.wans.slice(0, index).filter((w) => w.tier === wan.tier).length;
  return Math.min(254, wan.tier * 10 + before);
}
