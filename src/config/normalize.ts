/**
 * Written config → DesiredState: fills every default that depends on other values (addresses
 * derived from the LAN subnet, per-position monitor and DNS addresses, the VM template), resolves
 * the monitor profile, and attaches source positions to the WANs. Pure: no I/O, no checks —
 * cross-field problems are the rules' job (rules.ts), which run on the result.
 */
import type {
  DesiredState,
  LanSpec,
  LinuxRouterTarget,
  OpnsenseTarget,
  PolicySpec,
  SourceRef,
  VmSpec,
  WanSpec,
} from '../core/desired';
import { monitorProfile } from './monitor-profiles';
import { formatCidr, formatIpv4, parseAddressOrCidr, parseCidr } from './net';
import { DEFAULT_DNS_SERVERS, DEFAULT_LAN_SUBNET, DEFAULT_MONITOR_IPS, type WrittenConfig } from './schema';
import type { Path } from './source';
import type { VmTemplate } from './templates';

export interface NormalizeOptions {
  /** The file the config came from, kept in the state for messages. */
  readonly file: string;
  /** The VM template named by `vm.template`, when it was found. */
  readonly template?: VmTemplate;
  /** Where a path was written, for `source` on the WANs. */
  readonly locate?: (path: Path) => SourceRef | undefined;
}

/** The router's default LAN address: the first host address of the subnet. */
export function defaultRouterAddress(subnet: string): string {
  const range = parseCidr(subnet) ?? parseCidr(DEFAULT_LAN_SUBNET);
  return formatIpv4((range?.first ?? 0) + 1);
}

/**
 * The default DHCP pool: .100–.249 of a /24 or larger (the addresses below .100 stay free for the
 * router, the access point and anything else given a fixed address), else the upper half.
 */
export function defaultDhcpRange(subnet: string): { rangeStart: string; rangeEnd: string } {
  const range = parseCidr(subnet) ?? parseCidr(DEFAULT_LAN_SUBNET);
  const first = range?.first ?? 0;
  const last = range?.last ?? 0;
  const size = last - first + 1;
  if (size >= 256) return { rangeStart: formatIpv4(first + 100), rangeEnd: formatIpv4(first + 249) };
  return { rangeStart: formatIpv4(first + Math.floor(size / 2)), rangeEnd: formatIpv4(last - 1) };
}

function normalizeWan(wan: WrittenConfig['wans'][number], index: number, opts: NormalizeOptions): WanSpec {
  const source = opts.locate?.(['wans', index]);
  const spec: WanSpec = {
    name: wan.name,
    description: wan.description ?? wan.name,
    uplink: wan.uplink,
    addressing: wan.addressing,
    ...(wan.upstreamSubnet === undefined ? {} : { upstreamSubnet: wan.upstreamSubnet }),
    monitorIps: wan.monitorIps ?? [DEFAULT_MONITOR_IPS[index % DEFAULT_MONITOR_IPS.length] as string],
    dnsServers: wan.dnsServers ?? [DEFAULT_DNS_SERVERS[index % DEFAULT_DNS_SERVERS.length] as string],
    tier: wan.tier,
    weight: wan.weight,
    metered: wan.metered,
    probeBudgetMBPerMonth: wan.probeBudgetMBPerMonth,
    ...(source === undefined ? {} : { source }),
  };
  return spec;
}

function normalizeLan(lan: WrittenConfig['lan']): LanSpec {
  const range = defaultDhcpRange(lan.subnet);
  return {
    uplink: lan.uplink,
    subnet: lan.subnet,
    routerAddress: lan.routerAddress ?? defaultRouterAddress(lan.subnet),
    dhcp: {
      enabled: lan.dhcp.enabled,
      rangeStart: lan.dhcp.rangeStart ?? range.rangeStart,
      rangeEnd: lan.dhcp.rangeEnd ?? range.rangeEnd,
    },
  };
}

function normalizePolicy(policy: WrittenConfig['policy']): PolicySpec {
  return {
    mode: policy.mode,
    monitor: monitorProfile(policy.monitorProfile),
    trigger: policy.trigger,
    killStatesOnFailover: policy.killStatesOnFailover,
    killMeteredStatesOnFailback: policy.killMeteredStatesOnFailback,
    stickyConnections: policy.stickyConnections ?? policy.mode === 'loadbalance',
    stickyHosts: policy.stickyHosts.map((h) => {
      const range = parseAddressOrCidr(h.destination);
      return { destination: range ? formatCidr(range) : h.destination, wan: h.wan };
    }),
  };
}

function normalizeVm(vm: NonNullable<WrittenConfig['vm']>, template: VmTemplate): VmSpec {
  return {
    template: vm.template,
    vmid: vm.vmid,
    name: vm.name,
    ostype: template.ostype,
    machine: template.machine,
    bios: template.bios,
    cpu: template.cpu,
    cores: vm.cores ?? template.cores,
    memoryMiB: vm.memoryMiB ?? template.memoryMiB,
    diskGiB: vm.diskGiB ?? template.diskGiB,
    diskStorage: vm.diskStorage,
    imageStorage: vm.imageStorage,
    image: vm.image ?? template.image,
    onboot: vm.onboot ?? template.onboot,
    startupOrder: template.startupOrder,
    serialConsole: template.serialConsole,
    ...(vm.bridgeNic === undefined ? {} : { bridgeNic: vm.bridgeNic }),
    allowIommuGroupPeers: vm.allowIommuGroupPeers.map((p) => p.toLowerCase()),
    start: vm.start,
  };
}

/**
 * The resolved state. Sections that do not belong to the chosen backend are left out (the rules
 * warn about them); a VM whose template was not found is left out (the rules report it).
 */
export function normalizeConfig(written: WrittenConfig, opts: NormalizeOptions): DesiredState {
  const lan = normalizeLan(written.lan);
  const isVm = written.backend === 'opnsense-vm';

  let opnsense: OpnsenseTarget | undefined;
  if (isVm) {
    const o = written.opnsense;
    opnsense = {
      host: o?.host ?? lan.routerAddress,
      port: o?.port ?? 443,
      sshPort: o?.sshPort ?? 22,
      ...(o?.fingerprint === undefined ? {} : { fingerprint: o.fingerprint }),
      ...(o?.sshHostKey === undefined ? {} : { sshHostKey: o.sshHostKey }),
      hostname: o?.hostname ?? 'dualwan-router',
      domain: o?.domain ?? 'home.arpa',
    };
  }

  let linux: LinuxRouterTarget | undefined;
  if (!isVm && written.linux) {
    const l = written.linux;
    const fromLan = written.lan.uplink.type === 'interface' ? written.lan.uplink.interface : '';
    linux = {
      host: l.host,
      port: l.port,
      user: l.user,
      ...(l.hostKey === undefined ? {} : { hostKey: l.hostKey }),
      lanInterface: l.lanInterface ?? fromLan,
    };
  }

  const vm = isVm && written.vm && opts.template ? normalizeVm(written.vm, opts.template) : undefined;

  return {
    version: 1,
    file: opts.file,
    backend: written.backend,
    ...(isVm && written.proxmox ? { proxmox: written.proxmox } : {}),
    ...(vm ? { vm } : {}),
    ...(opnsense ? { opnsense } : {}),
    ...(linux ? { linux } : {}),
    wans: written.wans.map((w, i) => normalizeWan(w, i, opts)),
    lan,
    policy: normalizePolicy(written.policy),
    ...(written.accessPoint ? { accessPoint: written.accessPoint } : {}),
  };
}
