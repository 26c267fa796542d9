/**
 * Named cross-field rules: what one field's schema cannot see. Each rule is a small function of the
 * resolved state that returns diagnostics positioned at the offending value in the file. They run
 * after normalisation, so defaults (the router address, monitor IPs) are checked like written values
 * and point at the nearest place the user can change.
 */
import type { DesiredState, SourceRef, WanUplink } from '../core/desired';
import type { Diagnostic } from '../core/diagnostics';
import { closest } from './issues';
import {
  formatCidr,
  formatIpv4,
  isHostAddressIn,
  parseCidr,
  parseIpv4,
  rangeContains,
  rangesOverlap,
  type Ipv4Range,
} from './net';
import { DEFAULT_DNS_SERVERS, DEFAULT_MONITOR_IPS, type WrittenConfig } from './schema';
import { pathToString, type Path } from './source';
import type { TemplateLookup } from './templates';

export interface RuleContext {
  readonly state: DesiredState;
  readonly written: WrittenConfig;
  /** The lookup of `vm.template`, when the backend uses a VM. */
  readonly template?: TemplateLookup;
  /**
   * Where a path was written; for a default, the nearest written ancestor. With `key`, the key of
   * a map entry rather than its value.
   */
  readonly locate: (path: Path, opts?: { key?: boolean }) => SourceRef | undefined;
}

export type Rule = (ctx: RuleContext) => Diagnostic[];

function finding(
  ctx: RuleContext,
  path: Path,
  code: string,
  message: string,
  remedy: string,
  severity: Diagnostic['severity'] = 'error',
  opts: { key?: boolean } = {},
): Diagnostic {
  const location = ctx.locate(path, opts);
  return { severity, code, message, remedy, ...(location ? { location } : {}), path: pathToString(path) };
}

function lineOf(ctx: RuleContext, path: Path): string {
  const at = ctx.locate(path);
  return at ? ` (line ${at.line})` : '';
}

/** Ranges a home LAN collides with most often (PRODUCT.md, "Pre-flight topology lint"; anchors.md §C item 12). */
export const COMMON_UPSTREAM_RANGES: readonly { readonly cidr: string; readonly what: string }[] = [
  { cidr: '192.168.43.0/24', what: 'the range Android phones hand out when tethering' },
  { cidr: '172.20.10.0/28', what: 'the range an iPhone Personal Hotspot hands out' },
  { cidr: '192.168.8.0/24', what: 'the fixed range of most USB LTE dongles' },
  { cidr: '192.168.0.0/24', what: 'the default LAN of TP-Link routers and many modems' },
  { cidr: '192.168.1.0/24', what: 'the default LAN of many ISP modems (and of a fresh OPNsense)' },
];
export const CGNAT_RANGE = '100.64.0.0/10';

const LAN_CANDIDATES = ['192.168.10.0/24', '192.168.20.0/24', '192.168.50.0/24', '192.168.77.0/24', '10.10.10.0/24', '172.16.10.0/24'];

/** Every WAN-side block known from the file, with the path that defines it. */
function wanBlocks(state: DesiredState): { wan: number; path: Path; cidr: string; range: Ipv4Range }[] {
  const out: { wan: number; path: Path; cidr: string; range: Ipv4Range }[] = [];
  state.wans.forEach((w, i) => {
    const upstream = w.upstreamSubnet ? parseCidr(w.upstreamSubnet) : undefined;
    if (upstream && w.upstreamSubnet) out.push({ wan: i, path: ['wans', i, 'upstreamSubnet'], cidr: w.upstreamSubnet, range: upstream });
    if (w.addressing.mode === 'static') {
      const r = parseCidr(w.addressing.address);
      if (r) out.push({ wan: i, path: ['wans', i, 'addressing', 'address'], cidr: w.addressing.address, range: r });
    }
  });
  return out;
}

/** A LAN subnet that overlaps none of the WAN blocks, the common ranges and CGNAT. */
export function suggestLanSubnet(state: DesiredState): string {
  const taken = [
    ...wanBlocks(state).map((b) => b.range),
    ...COMMON_UPSTREAM_RANGES.map((c) => parseCidr(c.cidr)),
    parseCidr(CGNAT_RANGE),
  ].filter((r): r is Ipv4Range => r !== undefined);
  return LAN_CANDIDATES.find((c) => {
    const r = parseCidr(c);
    return r !== undefined && !taken.some((t) => rangesOverlap(r, t));
  }) ?? '10.123.45.0/24';
}

function lanRemedy(state: DesiredState): string {
  const s = suggestLanSubnet(state);
  const avoided = [...new Set([...wanBlocks(state).map((b) => formatCidr(b.range)), ...COMMON_UPSTREAM_RANGES.map((c) => c.cidr), CGNAT_RANGE])];
  return `Change lan.subnet to e.g. ${s}, which overlaps none of ${avoided.join(', ')}; move lan.routerAddress, the DHCP range and the access point address with it.`;
}

// ---------------------------------------------------------------------------------------------
// Backend and structure

/** The chosen backend has what it needs; sections for the other backend are flagged as ignored. */
export const backendTargetsPresent: Rule = (ctx) => {
  const { written } = ctx;
  const out: Diagnostic[] = [];
  const ignored = (key: string): void => {
    out.push(
      finding(
        ctx,
        [key],
        'RULE_SECTION_IGNORED',
        `The ${key}: section is ignored with backend ${written.backend}.`,
        `Delete the ${key}: section, or set backend to the one it belongs to.`,
        'warning',
        { key: true },
      ),
    );
  };
  if (written.backend === 'opnsense-vm') {
    if (!written.proxmox) {
      out.push(
        finding(
          ctx,
          ['backend'],
          'RULE_BACKEND_TARGET_MISSING',
          'backend opnsense-vm creates a router VM on Proxmox, but there is no proxmox: section saying which host.',
          'Add a proxmox: section, e.g. "proxmox: { host: 192.168.1.10, tokenId: dualwan@pve!setup }" (the token secret goes in the environment or the credentials file).',
        ),
      );
    }
    if (!written.vm) {
      out.push(
        finding(
          ctx,
          ['backend'],
          'RULE_BACKEND_TARGET_MISSING',
          'backend opnsense-vm creates a router VM, but there is no vm: section describing it.',
          'Add "vm: { vmid: 100 }" to create VM 100 from the opnsense template, or choose a free VM id.',
        ),
      );
    }
    if (written.linux) ignored('linux');
  } else {
    if (!written.linux) {
      out.push(
        finding(
          ctx,
          ['backend'],
          'RULE_BACKEND_TARGET_MISSING',
          'backend linux configures a Linux router over SSH, but there is no linux: section saying which machine.',
          'Add a linux: section, e.g. "linux: { host: 192.168.10.1, lanInterface: eth0 }".',
        ),
      );
    } else {
      const lanIf = written.lan.uplink.type === 'interface' ? written.lan.uplink.interface : undefined;
      if (written.linux.lanInterface === undefined && lanIf === undefined) {
        out.push(
          finding(
            ctx,
            ['linux'],
            'RULE_BACKEND_TARGET_MISSING',
            'The Linux router needs its LAN interface, and lan.uplink does not name one.',
            'Set lan.uplink to "{ type: interface, interface: eth0 }" with the LAN interface\'s real name.',
          ),
        );
      } else if (written.linux.lanInterface !== undefined && lanIf !== undefined && written.linux.lanInterface !== lanIf) {
        out.push(
          finding(
            ctx,
            ['linux', 'lanInterface'],
            'RULE_LINUX_LAN_INTERFACE_MISMATCH',
            `linux.lanInterface is ${written.linux.lanInterface} but lan.uplink.interface is ${lanIf}${lineOf(ctx, ['lan', 'uplink', 'interface'])}.`,
            'Delete linux.lanInterface (it defaults to lan.uplink.interface), or make the two agree.',
          ),
        );
      }
    }
    for (const key of ['proxmox', 'vm', 'opnsense'] as const) if (written[key]) ignored(key);
  }
  return out;
};

/** Uplink kinds belong to a backend: NICs, phones and bridges to the VM; interface names to Linux. */
export const uplinkTypesMatchBackend: Rule = (ctx) => {
  const { state } = ctx;
  const out: Diagnostic[] = [];
  const check = (uplink: WanUplink, path: Path, what: string): void => {
    const vm = state.backend === 'opnsense-vm';
    if (vm && uplink.type === 'interface') {
      out.push(
        finding(
          ctx,
          [...path, 'type'],
          'RULE_UPLINK_TYPE_BACKEND',
          `${what} uses uplink type interface, which only the linux backend has.`,
          'For the OPNsense VM use type pci-nic (a NIC passed through), usb-tether (a phone) or bridge (a Proxmox bridge such as vmbr0).',
        ),
      );
    } else if (!vm && uplink.type !== 'interface') {
      out.push(
        finding(
          ctx,
          [...path, 'type'],
          'RULE_UPLINK_TYPE_BACKEND',
          `${what} uses uplink type ${uplink.type}, which only the opnsense-vm backend has.`,
          'For the linux backend use "{ type: interface, interface: <name> }" with the interface name on the router (ip link shows them).',
        ),
      );
    }
  };
  state.wans.forEach((w, i) => check(w.uplink, ['wans', i, 'uplink'], `WAN ${w.name}`));
  check(state.lan.uplink, ['lan', 'uplink'], 'The LAN');
  return out;
};

/** `vm.template` names a template file that exists and is valid. */
export const vmTemplateExists: Rule = (ctx) => {
  const t = ctx.template;
  if (!t || t.status === 'found') return [];
  if (t.status === 'invalid') return [...t.diagnostics];
  return [
    finding(
      ctx,
      ['vm', 'template'],
      'RULE_VM_TEMPLATE_MISSING',
      `VM template "${t.name}" does not exist (no file ${t.file}).`,
      t.available.length > 0
        ? `Set vm.template to one of: ${t.available.join(', ')}.`
        : 'Reinstall dualwan: its vm-templates folder is missing or empty.',
    ),
  ];
};

export const wanNamesUnique: Rule = (ctx) => {
  const seen = new Map<string, number>();
  const out: Diagnostic[] = [];
  ctx.state.wans.forEach((w, i) => {
    const first = seen.get(w.name);
    if (first === undefined) {
      seen.set(w.name, i);
      return;
    }
    out.push(
      finding(
        ctx,
        ['wans', i, 'name'],
        'RULE_WAN_NAME_DUPLICATE',
        `Two WANs are named "${w.name}" (wans.${first}${lineOf(ctx, ['wans', first, 'name'])} and wans.${i}).`,
        'Give each WAN its own name, e.g. "isp" and "hotspot"; names become gateway and routing-table names.',
      ),
    );
  });
  return out;
};

// ---------------------------------------------------------------------------------------------
// Topology

function uplinkIdentity(u: WanUplink): { key: string; field: string; label: string; remedy: string } {
  switch (u.type) {
    case 'pci-nic':
      return {
        key: `pci:${u.pci.toLowerCase()}`,
        field: 'pci',
        label: `PCI NIC ${u.pci}`,
        remedy: 'Use the PCI address of the NIC this connection is really cabled to; `lspci -D | grep -i ethernet` on the Proxmox host lists them.',
      };
    case 'usb-tether':
      return {
        key: `usb:${u.vendorId.toLowerCase()}:${u.productId.toLowerCase()}`,
        field: 'vendorId',
        label: `USB device ${u.vendorId}:${u.productId}`,
        remedy: 'Use a different phone or dongle for each WAN; two devices with the same vendor:product id cannot be told apart.',
      };
    case 'bridge':
      return {
        key: `bridge:${u.bridge}`,
        field: 'bridge',
        label: `bridge ${u.bridge}`,
        remedy: 'Put each connection on its own bridge; `ip -br link show type bridge` on the Proxmox host lists them.',
      };
    case 'interface':
      return {
        key: `if:${u.interface}`,
        field: 'interface',
        label: `interface ${u.interface}`,
        remedy: 'Use the interface this connection is really cabled to; `ip -br link` on the router lists them.',
      };
  }
}

/** No two WANs, nor a WAN and the LAN, on the same NIC, phone, bridge or interface. */
export const wanUplinksDistinct: Rule = (ctx) => {
  const { state } = ctx;
  const entries: { path: Path; name: string; uplink: WanUplink }[] = [
    ...state.wans.map((w, i) => ({ path: ['wans', i, 'uplink'] as Path, name: `WAN ${w.name}`, uplink: w.uplink })),
    { path: ['lan', 'uplink'], name: 'the LAN', uplink: state.lan.uplink },
  ];
  const seen = new Map<string, { path: Path; name: string }>();
  const out: Diagnostic[] = [];
  for (const e of entries) {
    const id = uplinkIdentity(e.uplink);
    const first = seen.get(id.key);
    if (!first) {
      seen.set(id.key, e);
      continue;
    }
    out.push(
      finding(
        ctx,
        [...e.path, id.field],
        'RULE_UPLINK_SHARED',
        `${e.name} and ${first.name}${lineOf(ctx, first.path)} both use ${id.label}; each connection needs its own.`,
        id.remedy,
      ),
    );
  }
  return out;
};

/** The LAN and the upstream networks of the WANs are all distinct address ranges. */
export const subnetsDoNotOverlap: Rule = (ctx) => {
  const { state } = ctx;
  const lan = parseCidr(state.lan.subnet);
  const blocks = wanBlocks(state);
  const out: Diagnostic[] = [];
  for (const b of blocks) {
    if (lan && rangesOverlap(lan, b.range)) {
      out.push(
        finding(
          ctx,
          ['lan', 'subnet'],
          'RULE_SUBNET_OVERLAP',
          `lan.subnet ${state.lan.subnet} overlaps ${pathToString(b.path)} ${b.cidr}${lineOf(ctx, b.path)}: the router could not tell the home network from that upstream network.`,
          lanRemedy(state),
        ),
      );
    }
  }
  for (let i = 0; i < blocks.length; i += 1) {
    for (let j = i + 1; j < blocks.length; j += 1) {
      const a = blocks[i];
      const b = blocks[j];
      if (!a || !b || a.wan === b.wan || !rangesOverlap(a.range, b.range)) continue;
      out.push(
        finding(
          ctx,
          b.path,
          'RULE_SUBNET_OVERLAP',
          `${pathToString(b.path)} ${b.cidr} overlaps ${pathToString(a.path)} ${a.cidr}${lineOf(ctx, a.path)}: both upstream networks use the same addresses, so their gateways collide.`,
          `Change the LAN range of one of the two modems (in its own web page), e.g. to ${['192.168.2.0/24', '192.168.3.0/24', '10.0.2.0/24'].find((c) => !blocks.some((x) => rangesOverlap(parseCidr(c) as Ipv4Range, x.range))) ?? '10.0.9.0/24'}, then update ${pathToString(b.path)}.`,
        ),
      );
    }
  }
  return out;
};

/** The LAN stays clear of the ranges phones, dongles, modems and TP-Link routers use by default. */
export const lanAvoidsCommonRanges: Rule = (ctx) => {
  const lan = parseCidr(ctx.state.lan.subnet);
  if (!lan) return [];
  // An overlap with a WAN the user named is already reported by subnetsDoNotOverlap, with the same remedy.
  if (wanBlocks(ctx.state).some((b) => rangesOverlap(lan, b.range))) return [];
  return COMMON_UPSTREAM_RANGES.filter((c) => {
    const r = parseCidr(c.cidr);
    return r !== undefined && rangesOverlap(lan, r);
  }).map((c) =>
    finding(
      ctx,
      ['lan', 'subnet'],
      'RULE_LAN_COMMON_RANGE',
      `lan.subnet ${ctx.state.lan.subnet} overlaps ${c.cidr}, ${c.what}. A WAN plugged in later with that range would collide with the LAN.`,
      lanRemedy(ctx.state),
    ),
  );
};

/** The LAN is not in the carrier-grade NAT block, which ISPs and mobile networks use upstream. */
export const lanNotCgnat: Rule = (ctx) => {
  const lan = parseCidr(ctx.state.lan.subnet);
  const cgnat = parseCidr(CGNAT_RANGE);
  if (!lan || !cgnat || !rangesOverlap(lan, cgnat)) return [];
  return [
    finding(
      ctx,
      ['lan', 'subnet'],
      'RULE_LAN_CGNAT',
      `lan.subnet ${ctx.state.lan.subnet} is inside ${CGNAT_RANGE}, the carrier-grade NAT block that ISPs and mobile networks use on their side.`,
      lanRemedy(ctx.state),
    ),
  ];
};

// ---------------------------------------------------------------------------------------------
// Monitoring and DNS

function monitorPath(ctx: RuleContext, wan: number, index: number): Path {
  const written = ctx.written.wans[wan]?.monitorIps !== undefined;
  return written ? ['wans', wan, 'monitorIps', index] : ['wans', wan];
}

function dnsPath(ctx: RuleContext, wan: number, index: number): Path {
  const written = ctx.written.wans[wan]?.dnsServers !== undefined;
  return written ? ['wans', wan, 'dnsServers', index] : ['wans', wan];
}

function unusedPublicAddress(state: DesiredState): string {
  const used = new Set(state.wans.flatMap((w) => [...w.monitorIps, ...w.dnsServers]));
  const pool = [...DEFAULT_MONITOR_IPS, ...DEFAULT_DNS_SERVERS, '94.140.14.14', '94.140.15.15', '185.228.168.9', '76.76.2.0'];
  return pool.find((ip) => !used.has(ip)) ?? '94.140.14.14';
}

function defaultNote(written: boolean): string {
  return written ? '' : ' (the default for its position)';
}

/** Each monitor IP probes exactly one gateway: dpinger's host route sends an IP through one WAN only. */
/** The Linux monitor probes two targets per WAN, so that one unreachable host cannot fail a line. */
export const linuxMonitorTargets: Rule = (ctx) => {
  if (ctx.state.backend !== 'linux') return [];
  const out: Diagnostic[] = [];
  ctx.state.wans.forEach((w, wi) => {
    if (w.monitorIps.length >= 2) return;
    const written = ctx.written.wans[wi]?.monitorIps !== undefined;
    out.push(
      finding(
        ctx,
        written ? ['wans', wi, 'monitorIps'] : ['wans', wi],
        'RULE_MONITOR_TARGETS_TOO_FEW',
        `WAN ${w.name} has ${w.monitorIps.length} monitor IP${w.monitorIps.length === 1 ? '' : 's'}${defaultNote(written)}; the Linux health monitor needs at least two per WAN.`,
        `List two addresses reached through this line, e.g. monitorIps: [${[...w.monitorIps, unusedPublicAddress(ctx.state)].slice(0, 2).join(', ')}]: with one target, a single unreachable host would take the whole line out of service.`,
      ),
    );
  });
  return out;
};

export const monitorIpsUnique: Rule = (ctx) => {
  const seen = new Map<string, { wan: number; index: number }>();
  const out: Diagnostic[] = [];
  ctx.state.wans.forEach((w, wi) => {
    w.monitorIps.forEach((ip, ii) => {
      const first = seen.get(ip);
      if (!first) {
        seen.set(ip, { wan: wi, index: ii });
        return;
      }
      const firstWan = ctx.state.wans[first.wan];
      out.push(
        finding(
          ctx,
          monitorPath(ctx, wi, ii),
          'RULE_MONITOR_IP_DUPLICATE',
          first.wan === wi
            ? `WAN ${w.name} lists monitor IP ${ip} twice.`
            : `Monitor IP ${ip}${defaultNote(ctx.written.wans[wi]?.monitorIps !== undefined)} of WAN ${w.name} is also a monitor IP of WAN ${firstWan?.name ?? first.wan}${lineOf(ctx, monitorPath(ctx, first.wan, first.index))}.`,
          `Give every WAN its own monitor IPs: the router adds a host route for each monitor IP through its WAN, so a shared one would only ever test one line. For example use ${unusedPublicAddress(ctx.state)} here.`,
        ),
      );
    });
  });
  return out;
};

/** A monitor IP is never also a DNS server: its host route would pin DNS to one WAN. */
export const monitorIpsNotDns: Rule = (ctx) => {
  const dns = new Map<string, { wan: number; index: number }>();
  ctx.state.wans.forEach((w, wi) => w.dnsServers.forEach((ip, ii) => dns.has(ip) || dns.set(ip, { wan: wi, index: ii })));
  const out: Diagnostic[] = [];
  ctx.state.wans.forEach((w, wi) => {
    w.monitorIps.forEach((ip, ii) => {
      const d = dns.get(ip);
      if (!d) return;
      const dnsWan = ctx.state.wans[d.wan];
      out.push(
        finding(
          ctx,
          monitorPath(ctx, wi, ii),
          'RULE_MONITOR_IP_IS_DNS',
          `Monitor IP ${ip} of WAN ${w.name} is also a DNS server of WAN ${dnsWan?.name ?? d.wan}${lineOf(ctx, dnsPath(ctx, d.wan, d.index))}.`,
          `Use a monitor IP that is no DNS server, e.g. ${unusedPublicAddress(ctx.state)}: the host route to a monitor IP sends all traffic for it through one WAN, so DNS to it would die with that WAN.`,
        ),
      );
    });
  });
  return out;
};

/** Each DNS server is bound to one WAN's gateway, so none may be listed for two WANs. */
export const dnsServersDistinct: Rule = (ctx) => {
  const seen = new Map<string, { wan: number; index: number }>();
  const out: Diagnostic[] = [];
  ctx.state.wans.forEach((w, wi) => {
    w.dnsServers.forEach((ip, ii) => {
      const first = seen.get(ip);
      if (!first) {
        seen.set(ip, { wan: wi, index: ii });
        return;
      }
      out.push(
        finding(
          ctx,
          dnsPath(ctx, wi, ii),
          'RULE_DNS_SERVER_DUPLICATE',
          `DNS server ${ip} is listed for WAN ${w.name} and WAN ${ctx.state.wans[first.wan]?.name ?? first.wan}${lineOf(ctx, dnsPath(ctx, first.wan, first.index))}.`,
          `List each DNS server under one WAN only; each is reached through its own WAN's gateway. For example use ${unusedPublicAddress(ctx.state)} here.`,
        ),
      );
    });
  });
  return out;
};

// ---------------------------------------------------------------------------------------------
// LAN addresses

export const routerAddressInLan: Rule = (ctx) => {
  const lan = parseCidr(ctx.state.lan.subnet);
  const ip = parseIpv4(ctx.state.lan.routerAddress);
  if (!lan || ip === undefined || isHostAddressIn(lan, ip)) return [];
  return [
    finding(
      ctx,
      ['lan', 'routerAddress'],
      'RULE_ROUTER_ADDRESS_OUTSIDE_LAN',
      `lan.routerAddress ${ctx.state.lan.routerAddress} is not a host address in lan.subnet ${ctx.state.lan.subnet}.`,
      `Set lan.routerAddress to an address inside the subnet, e.g. ${formatIpv4(lan.first + 1)}, or delete it to use that default.`,
    ),
  ];
};

export const accessPointInLan: Rule = (ctx) => {
  const ap = ctx.state.accessPoint;
  const lan = parseCidr(ctx.state.lan.subnet);
  if (!ap || !lan) return [];
  const ip = parseIpv4(ap.address);
  if (ip === undefined) return [];
  const free = formatIpv4(lan.first + 2 === parseIpv4(ctx.state.lan.routerAddress) ? lan.first + 3 : lan.first + 2);
  if (!isHostAddressIn(lan, ip)) {
    return [
      finding(
        ctx,
        ['accessPoint', 'address'],
        'RULE_ACCESS_POINT_ADDRESS',
        `accessPoint.address ${ap.address} is not a host address in lan.subnet ${ctx.state.lan.subnet}.`,
        `Give the access point a fixed address inside the LAN and outside the DHCP range, e.g. ${free}.`,
      ),
    ];
  }
  if (ap.address === ctx.state.lan.routerAddress) {
    return [
      finding(
        ctx,
        ['accessPoint', 'address'],
        'RULE_ACCESS_POINT_ADDRESS',
        `accessPoint.address ${ap.address} is the router's own address.`,
        `Give the access point another fixed address outside the DHCP range, e.g. ${free}.`,
      ),
    ];
  }
  return [];
};

/** The DHCP pool lies in the LAN, in order, and leaves out the router and the access point. */
export const dhcpRangeInLan: Rule = (ctx) => {
  const { lan: spec, accessPoint } = ctx.state;
  if (!spec.dhcp.enabled) return [];
  const lan = parseCidr(spec.subnet);
  const start = parseIpv4(spec.dhcp.rangeStart);
  const end = parseIpv4(spec.dhcp.rangeEnd);
  if (!lan || start === undefined || end === undefined) return [];
  const startPath: Path = ['lan', 'dhcp', 'rangeStart'];
  const endPath: Path = ['lan', 'dhcp', 'rangeEnd'];
  const out: Diagnostic[] = [];
  const inside = (ip: number, path: Path, text: string): boolean => {
    if (isHostAddressIn(lan, ip)) return true;
    out.push(
      finding(
        ctx,
        path,
        'RULE_DHCP_RANGE_OUTSIDE_LAN',
        `${pathToString(path)} ${text} is not a host address in lan.subnet ${spec.subnet}.`,
        `Keep the DHCP range inside the LAN, e.g. ${formatIpv4(lan.first + 100 <= lan.last - 1 ? lan.first + 100 : lan.first + 2)}–${formatIpv4(lan.last - 1)}, or delete rangeStart and rangeEnd to use the defaults.`,
      ),
    );
    return false;
  };
  const okStart = inside(start, startPath, spec.dhcp.rangeStart);
  const okEnd = inside(end, endPath, spec.dhcp.rangeEnd);
  if (!okStart || !okEnd) return out;
  if (start > end) {
    out.push(
      finding(
        ctx,
        endPath,
        'RULE_DHCP_RANGE_ORDER',
        `lan.dhcp.rangeEnd ${spec.dhcp.rangeEnd} comes before lan.dhcp.rangeStart ${spec.dhcp.rangeStart}.`,
        'Swap the two addresses.',
      ),
    );
    return out;
  }
  const pool: Ipv4Range = { first: start, last: end, prefix: 32 };
  const router = parseIpv4(spec.routerAddress);
  if (router !== undefined && rangeContains(pool, router)) {
    out.push(
      finding(
        ctx,
        startPath,
        'RULE_DHCP_RANGE_INCLUDES_ROUTER',
        `The DHCP range ${spec.dhcp.rangeStart}–${spec.dhcp.rangeEnd} contains the router's address ${spec.routerAddress}.`,
        `Move the range past the router, e.g. start it at ${formatIpv4(router + 1)}, or move lan.routerAddress below ${spec.dhcp.rangeStart}.`,
      ),
    );
  }
  const ap = accessPoint ? parseIpv4(accessPoint.address) : undefined;
  if (accessPoint && ap !== undefined && rangeContains(pool, ap)) {
    out.push(
      finding(
        ctx,
        ['accessPoint', 'address'],
        'RULE_DHCP_RANGE_INCLUDES_ACCESS_POINT',
        `accessPoint.address ${accessPoint.address} is inside the DHCP range ${spec.dhcp.rangeStart}–${spec.dhcp.rangeEnd}${lineOf(ctx, startPath)}; a client could be handed the same address.`,
        `Give the access point an address outside the range, e.g. ${formatIpv4(lan.first + 2 === router ? lan.first + 3 : lan.first + 2)}, or shrink the range.`,
      ),
    );
  }
  return out;
};

// ---------------------------------------------------------------------------------------------
// Policy

export const stickyHostsReferToWans: Rule = (ctx) => {
  const names = ctx.state.wans.map((w) => w.name);
  return ctx.state.policy.stickyHosts.flatMap((h, i) => {
    if (names.includes(h.wan)) return [];
    const guess = closest(h.wan, names);
    return [
      finding(
        ctx,
        ['policy', 'stickyHosts', i, 'wan'],
        'RULE_STICKY_HOST_UNKNOWN_WAN',
        `policy.stickyHosts.${i} sends ${h.destination} through WAN "${h.wan}", and no WAN has that name.`,
        `${guess ? `Did you mean "${guess}"? ` : ''}Use the name of a WAN: ${[...new Set(names)].join(', ')}.`,
      ),
    ];
  });
};

/** failover needs a backup tier; loadbalance needs two WANs in tier 1 to balance over. */
export const tiersMakeSenseForMode: Rule = (ctx) => {
  const { wans, policy } = ctx.state;
  const tiers = new Set(wans.map((w) => w.tier));
  if (policy.mode === 'failover' && tiers.size < 2) {
    const backup = wans.find((w) => w.metered) ?? wans[wans.length - 1];
    const index = backup ? wans.indexOf(backup) : 1;
    return [
      finding(
        ctx,
        ['policy', 'mode'],
        'RULE_TIERS_FAILOVER',
        `policy.mode is failover, but every WAN is in tier ${[...tiers][0] ?? 1}, so there is no backup to fail over to.`,
        `Put the backup in a later tier, e.g. "tier: 2" on wans.${index} (${backup?.name ?? 'the backup'})${lineOf(ctx, ['wans', index])}, or set policy.mode to loadbalance.`,
      ),
    ];
  }
  if (policy.mode === 'loadbalance') {
    const inFirst = wans.filter((w) => w.tier === 1);
    if (inFirst.length < 2) {
      const other = wans.findIndex((w) => w.tier !== 1);
      return [
        finding(
          ctx,
          ['policy', 'mode'],
          'RULE_TIERS_LOADBALANCE',
          `policy.mode is loadbalance, but ${inFirst.length === 0 ? 'no WAN is' : `only WAN ${inFirst[0]?.name} is`} in tier 1, so there is nothing to balance over.`,
          `Set "tier: 1" on wans.${other >= 0 ? other : 1}${lineOf(ctx, ['wans', other >= 0 ? other : 1])} as well (weights set the split), or set policy.mode to failover.`,
        ),
      ];
    }
  }
  return [];
};

// ---------------------------------------------------------------------------------------------
// Static addressing

export const staticGatewayInSubnet: Rule = (ctx) =>
  ctx.state.wans.flatMap((w, i) => {
    if (w.addressing.mode !== 'static') return [];
    const subnet = parseCidr(w.addressing.address);
    const gw = parseIpv4(w.addressing.gateway);
    const own = parseIpv4(w.addressing.address.split('/')[0] ?? '');
    if (!subnet || gw === undefined) return [];
    const path: Path = ['wans', i, 'addressing', 'gateway'];
    if (!isHostAddressIn(subnet, gw)) {
      return [
        finding(
          ctx,
          path,
          'RULE_STATIC_GATEWAY_OUTSIDE_SUBNET',
          `The gateway ${w.addressing.gateway} of WAN ${w.name} is not in its subnet ${formatIpv4(subnet.first)}/${subnet.prefix} (from address ${w.addressing.address}).`,
          'Check both values against what the ISP gave you: the gateway must be inside the address\'s subnet (a wider prefix length on the address may be what is missing).',
        ),
      ];
    }
    if (gw === own) {
      return [
        finding(
          ctx,
          path,
          'RULE_STATIC_GATEWAY_OUTSIDE_SUBNET',
          `The gateway ${w.addressing.gateway} of WAN ${w.name} is the WAN's own address.`,
          'Set the gateway to the ISP router\'s address, not the address of this WAN.',
        ),
      ];
    }
    return [];
  });

/** Two WANs with the same gateway address cannot be routed apart (anchors.md §C item 4). */
export const staticGatewaysDistinct: Rule = (ctx) => {
  const seen = new Map<string, number>();
  const out: Diagnostic[] = [];
  ctx.state.wans.forEach((w, i) => {
    if (w.addressing.mode !== 'static') return;
    const first = seen.get(w.addressing.gateway);
    if (first === undefined) {
      seen.set(w.addressing.gateway, i);
      return;
    }
    out.push(
      finding(
        ctx,
        ['wans', i, 'addressing', 'gateway'],
        'RULE_GATEWAY_DUPLICATE',
        `WAN ${w.name} has the same gateway ${w.addressing.gateway} as WAN ${ctx.state.wans[first]?.name ?? first}${lineOf(ctx, ['wans', first, 'addressing', 'gateway'])}.`,
        'Change the LAN range of one modem so the two gateways differ; the router cannot send traffic to two different next hops with one address.',
      ),
    );
  });
  return out;
};

/**
 * The opt-in cutover (proxmox.cutover): the VM joins the bridge that keeps the host's new address,
 * the gateway is the router's address on that bridge's subnet, and that subnet is not the LAN.
 */
export const cutoverConsistent: Rule = (ctx) => {
  const c = ctx.state.proxmox?.cutover;
  if (ctx.state.backend !== 'opnsense-vm' || !c) return [];
  const out: Diagnostic[] = [];
  const base: Path = ['proxmox', 'cutover'];
  if (ctx.state.vm && ctx.state.vm.bridgeNic?.bridge !== c.bridge) {
    out.push(
      finding(
        ctx,
        [...base, 'bridge'],
        'RULE_CUTOVER_BRIDGE_NOT_JOINED',
        `The host keeps its management address on ${c.bridge} after the cutover, but the router VM does not join that bridge (vm.bridgeNic ${ctx.state.vm.bridgeNic ? `is ${ctx.state.vm.bridgeNic.bridge}` : 'is not set'}); nothing could reach the host.`,
        `Set vm.bridgeNic: {bridge: ${c.bridge}} so the router gets a NIC on it, or set proxmox.cutover.bridge to the bridge vm.bridgeNic names.`,
      ),
    );
  }
  const subnet = parseCidr(c.hostAddress);
  const own = parseIpv4(c.hostAddress.split('/')[0] ?? '');
  const gw = parseIpv4(c.gateway);
  if (subnet && own !== undefined && !isHostAddressIn(subnet, own)) {
    out.push(finding(ctx, [...base, 'hostAddress'], 'RULE_CUTOVER_ADDRESS', `proxmox.cutover.hostAddress ${c.hostAddress} is the network or broadcast address of its subnet.`, `Use a host address, e.g. ${formatIpv4(subnet.first + 2)}/${subnet.prefix}.`));
  }
  if (subnet && gw !== undefined && (!isHostAddressIn(subnet, gw) || gw === own)) {
    out.push(
      finding(
        ctx,
        [...base, 'gateway'],
        'RULE_CUTOVER_GATEWAY',
        gw === own ? `proxmox.cutover.gateway ${c.gateway} is the host's own new address.` : `proxmox.cutover.gateway ${c.gateway} is not in the subnet of hostAddress ${c.hostAddress}.`,
        `Set it to the router's address on ${c.bridge}, inside ${formatCidr(subnet)} and different from the host's, e.g. ${formatIpv4(subnet.first + 1)}.`,
      ),
    );
  }
  const lan = parseCidr(ctx.state.lan.subnet);
  if (subnet && lan && rangesOverlap(subnet, lan)) {
    out.push(
      finding(
        ctx,
        [...base, 'hostAddress'],
        'RULE_CUTOVER_ADDRESS',
        `proxmox.cutover.hostAddress ${c.hostAddress} overlaps the LAN ${ctx.state.lan.subnet}; the router must route between the two.`,
        'Choose a small subnet of its own for the host and the router, e.g. 10.10.99.2/24 with gateway 10.10.99.1.',
      ),
    );
  }
  return out;
};

export interface RuleEntry {
  readonly name: string;
  readonly rule: Rule;
  /** What the rule checks, for docs/config.md. */
  readonly checks: string;
  /** The diagnostic codes it can report. */
  readonly codes: readonly string[];
}

/** Every rule, in the order their findings are most useful to read. */
export const RULES: readonly RuleEntry[] = [
  {
    name: 'backendTargetsPresent',
    rule: backendTargetsPresent,
    checks: 'opnsense-vm has proxmox: and vm:, linux has linux: and a LAN interface; sections of the other backend are ignored (warning).',
    codes: ['RULE_BACKEND_TARGET_MISSING', 'RULE_LINUX_LAN_INTERFACE_MISMATCH', 'RULE_SECTION_IGNORED'],
  },
  {
    name: 'uplinkTypesMatchBackend',
    rule: uplinkTypesMatchBackend,
    checks: 'pci-nic, usb-tether and bridge uplinks with opnsense-vm; interface uplinks with linux.',
    codes: ['RULE_UPLINK_TYPE_BACKEND'],
  },
  { name: 'vmTemplateExists', rule: vmTemplateExists, checks: 'vm.template names a valid file in vm-templates/.', codes: ['RULE_VM_TEMPLATE_MISSING', 'CONFIG_TEMPLATE_INVALID'] },
  { name: 'wanNamesUnique', rule: wanNamesUnique, checks: 'No two WANs share a name.', codes: ['RULE_WAN_NAME_DUPLICATE'] },
  { name: 'wanUplinksDistinct', rule: wanUplinksDistinct, checks: 'No two WANs, nor a WAN and the LAN, use the same NIC, USB device, bridge or interface.', codes: ['RULE_UPLINK_SHARED'] },
  {
    name: 'subnetsDoNotOverlap',
    rule: subnetsDoNotOverlap,
    checks: 'The LAN subnet, the WAN upstream subnets and static WAN subnets do not overlap.',
    codes: ['RULE_SUBNET_OVERLAP'],
  },
  {
    name: 'lanAvoidsCommonRanges',
    rule: lanAvoidsCommonRanges,
    checks: `The LAN overlaps none of ${COMMON_UPSTREAM_RANGES.map((c) => c.cidr).join(', ')} (phones, dongles, modems, TP-Link).`,
    codes: ['RULE_LAN_COMMON_RANGE'],
  },
  { name: 'lanNotCgnat', rule: lanNotCgnat, checks: `The LAN is outside the carrier-grade NAT block ${CGNAT_RANGE}.`, codes: ['RULE_LAN_CGNAT'] },
  { name: 'linuxMonitorTargets', rule: linuxMonitorTargets, checks: 'With the linux backend, every WAN has at least two monitor IPs.', codes: ['RULE_MONITOR_TARGETS_TOO_FEW'] },
  { name: 'monitorIpsUnique', rule: monitorIpsUnique, checks: 'Every monitor IP belongs to one WAN only.', codes: ['RULE_MONITOR_IP_DUPLICATE'] },
  { name: 'monitorIpsNotDns', rule: monitorIpsNotDns, checks: "No monitor IP is also a WAN's DNS server.", codes: ['RULE_MONITOR_IP_IS_DNS'] },
  { name: 'dnsServersDistinct', rule: dnsServersDistinct, checks: 'Every DNS server is listed under one WAN only.', codes: ['RULE_DNS_SERVER_DUPLICATE'] },
  { name: 'routerAddressInLan', rule: routerAddressInLan, checks: 'lan.routerAddress is a host address of lan.subnet.', codes: ['RULE_ROUTER_ADDRESS_OUTSIDE_LAN'] },
  {
    name: 'accessPointInLan',
    rule: accessPointInLan,
    checks: "accessPoint.address is a host address of lan.subnet and not the router's.",
    codes: ['RULE_ACCESS_POINT_ADDRESS'],
  },
  {
    name: 'dhcpRangeInLan',
    rule: dhcpRangeInLan,
    checks: 'The DHCP range lies in lan.subnet, in order, and leaves out the router and the access point.',
    codes: ['RULE_DHCP_RANGE_OUTSIDE_LAN', 'RULE_DHCP_RANGE_ORDER', 'RULE_DHCP_RANGE_INCLUDES_ROUTER', 'RULE_DHCP_RANGE_INCLUDES_ACCESS_POINT'],
  },
  { name: 'stickyHostsReferToWans', rule: stickyHostsReferToWans, checks: 'Every sticky host names an existing WAN.', codes: ['RULE_STICKY_HOST_UNKNOWN_WAN'] },
  {
    name: 'tiersMakeSenseForMode',
    rule: tiersMakeSenseForMode,
    checks: 'failover has at least two tiers; loadbalance has at least two WANs in tier 1.',
    codes: ['RULE_TIERS_FAILOVER', 'RULE_TIERS_LOADBALANCE'],
  },
  {
    name: 'staticGatewayInSubnet',
    rule: staticGatewayInSubnet,
    checks: "A static WAN's gateway is inside its subnet and is not its own address.",
    codes: ['RULE_STATIC_GATEWAY_OUTSIDE_SUBNET'],
  },
  { name: 'staticGatewaysDistinct', rule: staticGatewaysDistinct, checks: 'No two static WANs share a gateway address.', codes: ['RULE_GATEWAY_DUPLICATE'] },
  {
    name: 'cutoverConsistent',
    rule: cutoverConsistent,
    checks: 'With proxmox.cutover: the router VM joins its bridge (vm.bridgeNic), the gateway is a host address of hostAddress\'s subnet, and that subnet is not the LAN.',
    codes: ['RULE_CUTOVER_BRIDGE_NOT_JOINED', 'RULE_CUTOVER_ADDRESS', 'RULE_CUTOVER_GATEWAY'],
  },
];

export function runRules(ctx: RuleContext): Diagnostic[] {
  return RULES.flatMap(({ rule }) => rule(ctx));
}
