/**
 * The topology picture of a dualwan.yaml: what plugs into what, with the names and addresses the
 * tool will use. Pure functions of the resolved DesiredState — no I/O, no network — so the same
 * picture comes out of `dualwan topology`, docs/topology.md and the tests.
 *
 *   upstream (modem, phone) ──▶ WAN box (device, addressing, monitor, tier/weight) ──┐
 *                                                                                     │
 *   router (OPNsense VM on the Proxmox node, or the Linux router) ◀───────────────────┘
 *     │ LAN (address, DHCP range)
 *   access point (the former TP-Link) ── home devices
 *
 * `describeTopology` gathers the facts once (device names from the same code the OPNsense
 * provider and bootstrap use, probe intervals from the same code the monitors use);
 * `renderTopology` draws them with box-drawing characters for a terminal or a Markdown code
 * block; `renderTopologyMermaid` gives a Mermaid flowchart of the same facts.
 */
import type { DesiredState, WanSpec, WanUplink } from '../core/desired';
import { dpingerSettings, layoutOf } from '../providers/opnsense/layout';
import { mappingId } from '../providers/proxmox/naming';
import { TABLE_BASE } from '../providers/linux/context';
import { meteredIntervalMs, timingsFromProfile } from '../providers/linux/monitor/decision';

// ---------------------------------------------------------------------------------------------
// The facts

export interface WanView {
  /** WAN1, WAN2… in file order. */
  readonly label: string;
  readonly name: string;
  readonly description: string;
  /** What is at the other end of the cable: "ISP modem", "phone (USB tethering)", a gateway. */
  readonly upstream: readonly string[];
  /** The device name on the router: igc0, ue0, vtnet1, eth1. */
  readonly device: string;
  /** How the device reaches the router: "PCI 0000:02:00.0 passed through", "USB 18d1:4ee3". */
  readonly attachment: readonly string[];
  /** "DHCP" or "static 203.0.113.2/29 via 203.0.113.1". */
  readonly addressing: string;
  /** OPNsense gateway name (WAN_DHCP) or Linux routing table. */
  readonly route: string;
  readonly monitorIps: readonly string[];
  readonly dnsServers: readonly string[];
  /** Seconds between health probes through this WAN. */
  readonly probeEverySeconds: number;
  readonly tier: number;
  readonly weight: number;
  /** Its share of its tier's weight, e.g. "2/3"; only when load balancing over more than one WAN. */
  readonly share?: string;
  readonly metered: boolean;
  readonly probeBudgetMBPerMonth: number;
}

export interface RouterView {
  readonly kind: 'opnsense-vm' | 'linux';
  /** Outer frame: the Proxmox node (opnsense-vm only). */
  readonly host?: string;
  /** More about the node: its management path after a cutover. */
  readonly hostNotes?: readonly string[];
  readonly title: string;
  readonly lines: readonly string[];
}

export interface LanView {
  readonly device: string;
  readonly attachment?: string;
  readonly subnet: string;
  readonly routerAddress: string;
  readonly dhcp: string;
}

export interface AccessPointView {
  readonly title: string;
  readonly address: string;
  readonly lines: readonly string[];
}

export interface TopologyView {
  readonly title: string;
  readonly wans: readonly WanView[];
  readonly router: RouterView;
  readonly lan: LanView;
  readonly accessPoint?: AccessPointView;
}

export interface TopologyOptions {
  /** First line of the picture; default: the file name of the configuration and its backend. */
  readonly title?: string;
}

/** The last path component, without node:path (this module stays free of I/O imports). */
function baseName(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts[parts.length - 1] || file;
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function upstreamOf(wan: WanSpec): string[] {
  const out: string[] = [];
  if (wan.addressing.mode === 'static') out.push(`gateway ${wan.addressing.gateway}`);
  else if (wan.uplink.type === 'usb-tether') out.push('phone (USB tethering)');
  else if (wan.uplink.type === 'bridge') out.push(`upstream on bridge ${wan.uplink.bridge}`);
  else out.push('ISP modem');
  if (wan.upstreamSubnet) out.push(wan.upstreamSubnet);
  return out;
}

function attachmentOf(uplink: WanUplink, name: string, backend: DesiredState['backend']): string[] {
  switch (uplink.type) {
    case 'pci-nic':
      return [`PCI ${uplink.pci} passed through`, `(mapping ${mappingId(name)})`];
    case 'usb-tether':
      return [`USB ${uplink.vendorId}:${uplink.productId} passed through`, `(mapping ${mappingId(name)})`];
    case 'bridge':
      return [`virtio NIC on bridge ${uplink.bridge}`];
    case 'interface':
      return backend === 'linux' ? [] : [`interface ${uplink.interface}`];
  }
}

function describeWans(state: DesiredState): WanView[] {
  const isVm = state.backend === 'opnsense-vm';
  const layout = isVm ? layoutOf(state) : undefined;
  const timings = timingsFromProfile(state.policy.monitor);
  return state.wans.map((wan, i) => {
    const sameTier = state.wans.filter((w) => w.tier === wan.tier);
    const total = sameTier.reduce((s, w) => s + w.weight, 0);
    const g = gcd(wan.weight, total);
    const share = state.policy.mode === 'loadbalance' && sameTier.length > 1 ? `${wan.weight / g}/${total / g}` : undefined;
    let probeEverySeconds: number;
    let device: string;
    let route: string;
    if (layout) {
      const w = layout.wans[i]!;
      device = layout.interfaces.find((x) => x.uplink === wan.name)?.device ?? '?';
      route = `gateway ${w.gatewayName}`;
      probeEverySeconds = dpingerSettings(state.policy.monitor, wan).interval;
    } else {
      device = wan.uplink.type === 'interface' ? wan.uplink.interface : '?';
      route = `table ${TABLE_BASE + 1 + i}`;
      probeEverySeconds = seconds(wan.metered ? meteredIntervalMs(timings, wan.probeBudgetMBPerMonth) : timings.probeIntervalMs);
    }
    const addressing = wan.addressing.mode === 'dhcp' ? 'DHCP' : `static ${wan.addressing.address} via ${wan.addressing.gateway}`;
    return {
      label: `WAN${i + 1}`,
      name: wan.name,
      description: wan.description,
      upstream: upstreamOf(wan),
      device,
      attachment: attachmentOf(wan.uplink, wan.name, state.backend),
      addressing,
      route,
      monitorIps: wan.monitorIps,
      dnsServers: wan.dnsServers,
      probeEverySeconds,
      tier: wan.tier,
      weight: wan.weight,
      ...(share ? { share } : {}),
      metered: wan.metered,
      probeBudgetMBPerMonth: wan.probeBudgetMBPerMonth,
    };
  });
}

/** Tiers in order, each with its WANs (and weights when more than one shares the tier). */
function tierLines(state: DesiredState, names: (i: number) => string): string[] {
  const tiers = [...new Set(state.wans.map((w) => w.tier))].sort((a, b) => a - b);
  return tiers.map((t) => {
    const members = state.wans
      .map((w, i) => ({ w, i }))
      .filter(({ w }) => w.tier === t)
      .map(({ w, i }) => (state.wans.filter((x) => x.tier === t).length > 1 ? `${names(i)} ×${w.weight}` : names(i)));
    return `  tier ${t}: ${members.join(', ')}`;
  });
}

function policyLines(state: DesiredState): string[] {
  const p = state.policy;
  const m = p.monitor;
  const out =
    state.backend === 'opnsense-vm'
      ? [`monitor ${m.name}: down above ${m.lossDownPercent} % loss or ${m.latencyHighMs} ms,`]
      : [`monitor ${m.name}: down when a probe and its 6 retries`, `  all go unanswered, or loss clearly above ${m.lossDownPercent} %;`];
  out.push(`  traffic returns after ${m.failbackAfterSeconds} s healthy`);
  if (p.killStatesOnFailover) out.push("on failover: the failed WAN's connections are dropped");
  const metered = state.wans.filter((w) => w.metered).map((w) => w.name);
  if (p.killMeteredStatesOnFailback && metered.length) out.push(`on failback: connections on ${metered.join(', ')} are dropped`);
  if (p.stickyConnections) out.push('sticky: a client stays on one WAN');
  for (const h of p.stickyHosts) out.push(`pinned: ${h.destination} → ${h.wan}`);
  return out;
}

/**
 * The device name of the VM's extra bridge NIC (`vm.bridgeNic`): virtio NICs are numbered in NIC
 * order, one per distinct uplink bridge first, then this one (src/providers/opnsense/devices.ts).
 */
function extraNicDevice(state: DesiredState): string {
  const bridges: string[] = [];
  for (const u of [...state.wans.map((w) => w.uplink), state.lan.uplink]) if (u.type === 'bridge' && !bridges.includes(u.bridge)) bridges.push(u.bridge);
  const extra = state.vm?.bridgeNic?.bridge;
  if (extra && !bridges.includes(extra)) bridges.push(extra);
  return `vtnet${extra ? bridges.indexOf(extra) : 0}`;
}

function describeRouter(state: DesiredState): RouterView {
  if (state.backend === 'opnsense-vm') {
    const layout = layoutOf(state);
    const vm = state.vm;
    const px = state.proxmox;
    const host = px ? `Proxmox VE · node ${px.node} · API ${px.host}:${px.port}` : 'Proxmox VE';
    const title = vm ? `OPNsense VM ${vm.vmid} · ${vm.name}` : 'OPNsense VM';
    const lines: string[] = [];
    if (vm) {
      lines.push(`${vm.machine} · ${vm.cpu} CPU · ${vm.cores} cores · ${vm.memoryMiB} MiB, no ballooning`);
      lines.push(`disk ${vm.diskGiB} GiB on ${vm.diskStorage}`);
      lines.push(`image ${vm.image.filename} (on ${vm.imageStorage})`);
      if (vm.bridgeNic) lines.push(`extra NIC ${extraNicDevice(state)} on bridge ${vm.bridgeNic.bridge}`);
    }
    if (state.opnsense) lines.push(`REST API https://${state.opnsense.host}:${state.opnsense.port}`);
    lines.push(`gateway group ${layout.groupName}: ${state.policy.mode}, trigger ${state.policy.trigger}`);
    lines.push(...tierLines(state, (i) => `${layout.wans[i]!.gatewayName} (${state.wans[i]!.name})`));
    lines.push(...policyLines(state));
    const c = px?.cutover;
    const hostNotes = c ? [`management after the cutover: ${c.hostAddress} on ${c.bridge},`, `  gateway ${c.gateway} (the router)`] : [];
    return { kind: 'opnsense-vm', host, ...(hostNotes.length ? { hostNotes } : {}), title, lines };
  }
  const l = state.linux;
  const title = l ? `Linux router · SSH ${l.user}@${l.host}:${l.port}` : 'Linux router';
  const lines: string[] = [];
  const route = state.policy.mode === 'loadbalance' ? 'default route: multipath by weight' : 'default route: lowest tier first';
  lines.push(route);
  const wans = describeWans(state);
  lines.push(...tierLines(state, (i) => `${wans[i]!.name} (${wans[i]!.device})`));
  lines.push('NAT: masquerade out of each WAN');
  lines.push('dualwan-monitor.service watches every WAN');
  lines.push(...policyLines(state));
  return { kind: 'linux', title, lines };
}

function describeLan(state: DesiredState): LanView {
  const lan = state.lan;
  let device: string;
  let attachment: string | undefined;
  if (state.backend === 'opnsense-vm') {
    device = layoutOf(state).interfaces.find((x) => x.role === 'lan')?.device ?? '?';
    const a = attachmentOf(lan.uplink, 'lan', state.backend);
    attachment = a.join(' ');
  } else {
    device = state.linux?.lanInterface || (lan.uplink.type === 'interface' ? lan.uplink.interface : '?');
  }
  const range = `${lan.dhcp.rangeStart}–${lan.dhcp.rangeEnd}`;
  const dhcp = !lan.dhcp.enabled
    ? 'DHCP: off'
    : state.backend === 'opnsense-vm'
      ? `DHCP ${range}`
      : `DHCP range ${range} (not served by dualwan)`;
  return { device, ...(attachment ? { attachment } : {}), subnet: lan.subnet, routerAddress: lan.routerAddress, dhcp };
}

function describeAccessPoint(state: DesiredState): AccessPointView | undefined {
  const ap = state.accessPoint;
  if (!ap) return undefined;
  const maker = ap.vendor === 'tp-link' ? 'TP-Link' : 'access point';
  const title = `${maker}${ap.model ? ` ${ap.model}` : ''} in access-point mode · ${ap.address}`;
  return {
    title,
    address: ap.address,
    lines: [`static ${ap.address}, gateway and DNS ${state.lan.routerAddress}`, 'its DHCP server off, no NAT: the router does both'],
  };
}

/** The facts the picture shows, in one place. */
export function describeTopology(state: DesiredState, opts: TopologyOptions = {}): TopologyView {
  const title = opts.title ?? `${baseName(state.file)} · backend ${state.backend} · ${state.policy.mode}`;
  const ap = describeAccessPoint(state);
  return {
    title,
    wans: describeWans(state),
    router: describeRouter(state),
    lan: describeLan(state),
    ...(ap ? { accessPoint: ap } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Text

/** Display width: every character used here is one column wide. */
function width(s: string): number {
  return Array.from(s).length;
}

function pad(s: string, n: number): string {
  return s + ' '.repeat(Math.max(0, n - width(s)));
}

/** Replace the character at column `at` (0-based). */
function put(line: string, at: number, ch: string): string {
  const chars = Array.from(pad(line, at + 1));
  chars[at] = ch;
  return chars.join('');
}

/** A box of exactly `w` columns with an optional title in its top border. */
function box(title: string | undefined, lines: readonly string[], w: number): string[] {
  const inner = w - 4;
  const top = title ? `┌─ ${title} ${'─'.repeat(Math.max(0, w - width(title) - 5))}┐` : `┌${'─'.repeat(w - 2)}┐`;
  return [top, ...lines.map((l) => `│ ${pad(l, inner)} │`), `└${'─'.repeat(w - 2)}┘`];
}

function boxWidth(title: string | undefined, lines: readonly string[]): number {
  return Math.max(title ? width(title) + 6 : 0, ...lines.map((l) => width(l) + 4));
}

function wanLines(w: WanView): string[] {
  const lines = [w.description, `${w.device}${w.attachment.length ? ` ◄ ${w.attachment[0]}` : ''}`];
  for (const a of w.attachment.slice(1)) lines.push(`  ${a}`);
  lines.push(`${w.addressing} · ${w.route}`);
  lines.push(`monitor ${w.monitorIps.join(', ')}`);
  lines.push(`  probe every ${w.probeEverySeconds} s${w.metered ? ` (${w.probeBudgetMBPerMonth} MB/month budget)` : ''}`);
  lines.push(`DNS ${w.dnsServers.join(', ')}`);
  lines.push(`tier ${w.tier} · weight ${w.weight}${w.share ? ` (${w.share} of tier ${w.tier})` : ''}${w.metered ? ' · metered' : ''}`);
  return lines;
}

/** The picture, for a terminal or a Markdown code block. Ends with a newline. */
export function renderTopology(state: DesiredState, opts: TopologyOptions = {}): string {
  const v = describeTopology(state, opts);
  const out: string[] = [v.title, ''];

  // WANs: upstream label ──▶ box ├──┐ (a bus on the right leads down to the router)
  const labelW = Math.max(...v.wans.map((w) => Math.max(...w.upstream.map(width)))) + 6;
  const wanBoxes = v.wans.map((w) => ({ title: `${w.label} · ${w.name}`, lines: wanLines(w) }));
  const wanW = Math.max(...wanBoxes.map((b) => boxWidth(b.title, b.lines)));
  const bus = labelW + wanW + 2;
  v.wans.forEach((w, i) => {
    const b = box(wanBoxes[i]!.title, wanBoxes[i]!.lines, wanW);
    b.forEach((line, row) => {
      let left = ' '.repeat(labelW);
      const label = w.upstream[row - 1];
      if (row === 1) left = `${label} ${'─'.repeat(labelW - width(label ?? '') - 2)}▶`;
      else if (label !== undefined) left = pad(label, labelW);
      let s = left + line;
      if (row === 1) s = put(s.slice(0, -1) + '├──', bus, i === 0 ? '┐' : '┤');
      else if (i > 0 || row > 1) s = put(s, bus, '│');
      out.push(s.trimEnd());
    });
  });
  out.push(put('', bus, '│'));

  // The router: the Proxmox node around the OPNsense VM, or the Linux box. Boxes that a line
  // enters from above carry their title on their first line, so the line never cuts through it.
  const r = v.router;
  const lanLines = [`LAN · ${v.lan.device}${v.lan.attachment ? ` ◄ ${v.lan.attachment}` : ''}`, `${v.lan.subnet} · router ${v.lan.routerAddress}`, v.lan.dhcp];
  const apLines = v.accessPoint ? [v.accessPoint.title, ...v.accessPoint.lines] : [];
  let W = Math.max(bus + 3, boxWidth(undefined, lanLines), boxWidth(undefined, apLines));
  let routerBox: string[];
  if (r.host) {
    const hostLines = [r.host, ...(r.hostNotes ?? [])];
    W = Math.max(W, boxWidth(r.title, r.lines) + 4, boxWidth(undefined, hostLines));
    routerBox = box(undefined, [...hostLines, ...box(r.title, r.lines, W - 4)], W);
  } else {
    const lines = [r.title, ...r.lines];
    W = Math.max(W, boxWidth(undefined, lines));
    routerBox = box(undefined, lines, W);
  }
  const mid = Math.floor(W / 2);
  routerBox[0] = put(routerBox[0]!, bus, '┴');
  routerBox[routerBox.length - 1] = put(routerBox[routerBox.length - 1]!, mid, '┬');
  out.push(...routerBox);

  const down = (label?: string) => out.push(`${put('', mid, '│')}${label ? ` ${label}` : ''}`);
  const stack = (b: string[]) => {
    b[0] = put(b[0]!, mid, '┴');
    b[b.length - 1] = put(b[b.length - 1]!, mid, '┬');
    out.push(...b);
  };
  down();
  stack(box(undefined, lanLines, W));
  if (v.accessPoint) {
    down('cable');
    stack(box(undefined, apLines, W));
  }
  down('Wi-Fi, Ethernet');
  out.push(`${' '.repeat(Math.max(0, mid - 6))}home devices`);
  return `${out.map((l) => l.trimEnd()).join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Mermaid

function mm(lines: readonly string[]): string {
  return `"${lines.map((l) => l.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;')).join('<br/>')}"`;
}

function id(s: string): string {
  return s.replace(/[^A-Za-z0-9]/g, '_');
}

/** The same facts as a Mermaid flowchart (renders on GitHub and in many Markdown viewers). */
export function renderTopologyMermaid(state: DesiredState, opts: TopologyOptions = {}): string {
  const v = describeTopology(state, opts);
  const out = ['flowchart TD'];
  const r = v.router;
  if (r.host) out.push(`  subgraph host[${mm([r.host, ...(r.hostNotes ?? []).map((l) => l.trim())])}]`);
  out.push(`  ${r.host ? '  ' : ''}router[${mm([r.title, ...r.lines.map((l) => l.trim())])}]`);
  if (r.host) out.push('  end');
  for (const w of v.wans) {
    const wid = `wan_${id(w.name)}`;
    out.push(`  up_${id(w.name)}(${mm(w.upstream)})`);
    out.push(
      `  ${wid}[${mm([
        `${w.label} · ${w.name}: ${w.description}`,
        `${w.device}${w.attachment.length ? ` ◄ ${w.attachment.join(' ')}` : ''}`,
        `${w.addressing} · ${w.route}`,
        `monitor ${w.monitorIps.join(', ')} every ${w.probeEverySeconds} s`,
        `DNS ${w.dnsServers.join(', ')}`,
      ])}]`,
    );
    out.push(`  up_${id(w.name)} --> ${wid}`);
    const edge = `tier ${w.tier} · weight ${w.weight}${w.share ? ` (${w.share})` : ''}${w.metered ? ' · metered' : ''}`;
    out.push(`  ${wid} -- ${mm([edge])} --> router`);
  }
  out.push(`  lan[${mm([`LAN · ${v.lan.device}${v.lan.attachment ? ` ◄ ${v.lan.attachment}` : ''}`, `${v.lan.subnet} · router ${v.lan.routerAddress}`, v.lan.dhcp])}]`);
  out.push('  router --> lan');
  let last = 'lan';
  if (v.accessPoint) {
    out.push(`  ap[${mm([v.accessPoint.title, ...v.accessPoint.lines])}]`);
    out.push('  lan --> ap');
    last = 'ap';
  }
  out.push(`  devices([${mm(['home devices'])}])`);
  out.push(`  ${last} --> devices`);
  return `${out.join('\n')}\n`;
}
