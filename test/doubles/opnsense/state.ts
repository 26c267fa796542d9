// The simulated OPNsense: its config.xml ("saved"), what runs ("applied", changed only by
// reconfigure/apply), the backup history, DHCP leases, link health, dpinger status and pf states.
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { modelOf } from './catalogue';
import { defaultsOf } from './fields';
import { DpingerProcess, dpingerStatus, routerClock, type DpingerClockOptions, type DpingerParams, type DpingerReport, type DpingerStatus, type ProbeFate } from './dpinger';

export type Item = Record<string, string>;

export interface IfaceConf {
  if: string;
  descr: string;
  enable: boolean;
  /** "dhcp", or a static IPv4 address */
  ipaddr: string;
  subnet: string;
  /** "dhcp6", "idassoc6", "" … */
  ipaddrv6: string;
  lock: boolean;
}

export interface Config {
  interfaces: Record<string, IfaceConf>;
  gateways: Record<string, Item>;
  groups: Record<string, Item>;
  rules: Record<string, Item>;
  snatRules: Record<string, Item>;
  snatMode: string;
  system: {
    gw_switch_default: boolean;
    lb_use_sticky: boolean;
    /** "Shared forwarding" (on in the factory config) */
    pf_share_forward?: boolean;
    skip_rules_gw_down?: boolean;
    /** system/dnsserver[n] and dns<n+1>gw ("none" = not bound to a gateway) */
    dns?: { server: string; gateway: string }[];
  };
}

export interface Lease {
  address: string;
  prefix: number;
  router: string;
}

export interface LinkHealth {
  up: boolean;
  lossPercent: number;
  delayMs: number;
}

export interface BackupEntry {
  id: string;
  time: string;
  description: string;
  config: Config;
}

export interface PfState {
  id: string;
  iface: string;
  interface: string;
  proto: string;
  ipproto: 'ipv4';
  direction: 'out';
  src_addr: string;
  src_port: string;
  dst_addr: string;
  dst_port: string;
  nat_addr: string | null;
  nat_port: string | null;
  gateway: string | null;
  'route-to'?: string;
  state: string;
  age: string;
  expires: string;
  pkts: [number, number];
  bytes: [number, number];
  rule: string;
  label: string;
  descr: string;
  flags: string[];
}

/** A gateway as OPNsense lists it: stored, or derived from a DHCP interface (virtual). */
export interface GatewayView {
  /** config uuid, or the name for a virtual gateway */
  uuid: string;
  item: Item;
  virtual: boolean;
  dynamic: boolean;
}

export type { DpingerStatus };
export const STATUS_TEXT: Record<DpingerStatus, string> = {
  none: 'Online',
  down: 'Offline',
  force_down: 'Offline (forced)',
  delay: 'Latency',
  loss: 'Packetloss',
  'delay+loss': 'Latency, Packetloss',
};

const DPINGER_DEFAULTS: Record<string, number> = { data_length: 1, interval: 1, latencyhigh: 500, latencylow: 200, loss_interval: 4, losshigh: 20, losslow: 10, time_period: 60 };
export const DPINGER_FIELDS = Object.keys(DPINGER_DEFAULTS);

export const clone = <T>(v: T): T => structuredClone(v);

export interface PingJob {
  id: string;
  settings: Item;
  status: 'running' | 'stopped';
  startedAt?: number;
  stoppedAt?: number;
}

export class RouterState {
  config: Config;
  applied: { interfaces: Config['interfaces']; routing: Pick<Config, 'gateways' | 'groups' | 'interfaces'>; firewall: Pick<Config, 'rules' | 'snatRules' | 'snatMode' | 'groups'> };
  backups: BackupEntry[] = [];
  leases: Record<string, Lease>;
  health: Record<string, LinkHealth> = {};
  devices: string[];
  aliases = ['bogons', 'bogonsv6', 'virusprot', 'sshlockout'];
  states: PfState[] = [];
  pingJobs = new Map<string, PingJob>();
  /** dpinger/gateway_watcher alarm lines (diagnostics/log/core/gateways) */
  gatewayLog: { at: string; text: string }[] = [];
  /** ms configd caches "interface gateways list" (real: 20 s); 0 = no cache */
  gatewayListCacheMs = 0;
  private gatewayListCache?: { at: number; names: string[]; withGroups: string[] };
  private lastStatus = new Map<string, DpingerStatus>();
  private rr = new Map<string, number>();
  private sticky = new Map<string, string>();
  private stateSeq = 0;
  private backupSeq = 0;
  now: () => number = Date.now;
  /** dpinger over time (enableTimedDpinger): one process per applied monitored gateway; undefined = status follows the link at once. */
  private dpingers?: Map<string, DpingerProcess>;
  private lastTick = 0;
  /** pf's ICMP state of each gateway's dpinger probes: state id, and until when it lives (icmp timeout 10 s). */
  private probeStates = new Map<string, { id: string; until: number }>();

  constructor(init: { config: Config; leases: Record<string, Lease>; devices: string[] }) {
    this.config = clone(init.config);
    this.leases = clone(init.leases);
    this.devices = [...init.devices];
    this.applied = { interfaces: clone(this.config.interfaces), routing: this.routingPart(), firewall: this.firewallPart() };
    this.save('initial configuration');
    this.lastStatus = this.statusMap();
  }

  private routingPart() {
    return clone({ gateways: this.config.gateways, groups: this.config.groups, interfaces: this.config.interfaces });
  }
  private firewallPart() {
    return clone({ rules: this.config.rules, snatRules: this.config.snatRules, snatMode: this.config.snatMode, groups: this.config.groups });
  }

  /** Config::save(): writes config.xml and a copy into the history (/conf/backup). */
  save(description: string): void {
    const t = this.now() / 1000 + (this.backupSeq++ % 10_000) / 10_000_000;
    const time = t.toFixed(4);
    this.backups.unshift({ id: `config-${time}.xml`, time, description, config: clone(this.config) });
    if (this.backups.length > 60) this.backups.length = 60;
  }

  revertTo(id: string): boolean {
    const b = this.backups.find((x) => x.id === id);
    if (!b) return false;
    this.config = clone(b.config);
    return true;
  }

  // ---- interfaces -------------------------------------------------------------------------

  descrOf(id: string, conf = this.config.interfaces): string {
    return conf[id]?.descr || id.toUpperCase();
  }

  identifiers(filters?: Record<string, string>, conf = this.config.interfaces): string[] {
    return Object.entries(conf)
      .filter(([, c]) => {
        if (!filters) return true;
        if (filters.enable && !slashRegex(filters.enable).test(c.enable ? '1' : '0')) return false;
        if (filters.if && !slashRegex(filters.if).test(c.if)) return false;
        if (filters.virtual && !slashRegex(filters.virtual).test('0')) return false;
        return true;
      })
      .map(([id]) => id);
  }

  addressOf(id: string, conf = this.config.interfaces): string | undefined {
    const c = conf[id];
    if (!c) return undefined;
    if (c.ipaddr === 'dhcp') return this.leases[id]?.address;
    return isIP(c.ipaddr) ? c.ipaddr : undefined;
  }

  // ---- gateways ---------------------------------------------------------------------------

  /** Gateways::gatewaysIndexedByName: stored ones plus one per enabled DHCP interface. */
  gatewayViews(conf: Pick<Config, 'gateways' | 'interfaces'> = this.config): GatewayView[] {
    const defaults = defaultsOf(modelOf('Routing.Gateways.gateway_item'));
    const out: GatewayView[] = Object.entries(conf.gateways).map(([uuid, item]) => ({ uuid, item: { ...defaults, ...item }, virtual: false, dynamic: (item.gateway ?? '') === '' || item.gateway === 'dynamic' }));
    const names = new Set(out.map((g) => g.item.name));
    for (const [id, c] of Object.entries(conf.interfaces)) {
      if (!c.enable) continue;
      const fams: [string, string, string][] = [];
      if (c.ipaddr === 'dhcp') fams.push(['DHCP', 'inet', '']);
      if (c.ipaddrv6 === 'dhcp6') fams.push(['DHCP6', 'inet6', '']);
      for (const [suffix, proto] of fams) {
        const name = `${(c.descr || id).toUpperCase()}_${suffix}`;
        if (names.has(name)) continue;
        out.push({
          uuid: name,
          virtual: true,
          dynamic: true,
          item: { ...defaults, name, descr: `Interface ${name} Gateway`, interface: id, ipprotocol: proto, gateway: '', priority: '254', monitor_disable: '1' },
        });
      }
    }
    return out;
  }

  gatewayAddress(g: GatewayView): string {
    if (!g.dynamic) return g.item.gateway ?? '~';
    if (g.item.ipprotocol === 'inet6') return 'fe80::1';
    return this.leases[g.item.interface ?? '']?.router ?? '~';
  }

  /** configd "interface gateways list" (-l: enabled gateways; -g: plus group names), cached like configd. */
  gatewayList(withGroups: boolean): string[] {
    const now = this.now();
    if (this.gatewayListCacheMs > 0 && this.gatewayListCache && now - this.gatewayListCache.at < this.gatewayListCacheMs) {
      return withGroups ? this.gatewayListCache.withGroups : this.gatewayListCache.names;
    }
    const names = this.gatewayViews()
      .filter((g) => g.item.disabled !== '1')
      .map((g) => g.item.name!);
    const groups = Object.values(this.config.groups).map((g) => g.name!);
    this.gatewayListCache = { at: now, names, withGroups: [...names, ...groups] };
    return withGroups ? this.gatewayListCache.withGroups : names;
  }

  private effective(item: Item, key: string): number {
    const v = item[key];
    return v === undefined || v === '' ? DPINGER_DEFAULTS[key]! : Number(v);
  }

  /** What dpinger reports for an applied gateway (at `at`, default now). */
  statusOf(g: GatewayView, at = this.now()): { status: DpingerStatus; loss: string; delay: string; stddev: string } {
    const unknown = { loss: '~', delay: '~', stddev: '~' };
    if (g.item.force_down === '1') return { status: 'force_down', ...unknown };
    if (g.item.monitor_disable === '1') return { status: 'none', ...unknown };
    const proc = this.dpingers?.get(g.item.name!);
    let rep: DpingerReport;
    if (proc) rep = proc.report(at);
    else {
      // no clock: the status follows the link (and a rule blocking the probes) at once
      const h = this.health[g.item.interface ?? ''] ?? { up: true, lossPercent: 0, delayMs: 12.3 };
      const dead = !h.up || this.probeBlocked(g);
      rep = { lossPercent: dead ? 100 : h.lossPercent, delayMs: dead ? undefined : h.delayMs, received: 0, lost: 0 };
    }
    const metrics = { loss: `${rep.lossPercent.toFixed(1)} %`, delay: rep.delayMs === undefined ? '~' : `${rep.delayMs.toFixed(1)} ms`, stddev: rep.delayMs === undefined ? '~' : '0.4 ms' };
    return { status: dpingerStatus(rep, this.paramsOf(g.item)), ...metrics };
  }

  paramsOf(item: Item): DpingerParams {
    const e = (k: string) => this.effective(item, k);
    return { interval: e('interval'), loss_interval: e('loss_interval'), time_period: e('time_period'), latencylow: e('latencylow'), latencyhigh: e('latencyhigh'), losslow: e('losslow'), losshigh: e('losshigh') };
  }

  /**
   * An applied firewall rule drops this gateway's probes: a block/reject rule, outbound (or both
   * directions), floating or on the gateway's interface, IPv4, ICMP (echo request) or any
   * protocol, to the monitor IP (or a net holding it, or any), from any / the router / the WAN.
   */
  probeBlocked(g: GatewayView): boolean {
    const mon = g.item.monitor ?? '';
    const iface = g.item.interface ?? '';
    if (isIP(mon) !== 4) return false;
    const hits = (net: string) =>
      net.split(',').some((n) => n === 'any' || n === mon || (n.includes('/') && sameSubnet(mon, n.split('/')[0]!, Number(n.split('/')[1]))));
    return Object.values(this.applied.firewall.rules).some(
      (r) =>
        r.enabled !== '0' &&
        (r.action === 'block' || r.action === 'reject') &&
        ['out', 'any'].includes(r.direction ?? 'in') &&
        ((r.interface ?? '') === '' || (r.interface ?? '').split(',').includes(iface)) &&
        ['inet', 'inet46'].includes(r.ipprotocol ?? 'inet') &&
        ['any', 'ICMP'].includes((r.protocol ?? 'any').toUpperCase() === 'ANY' ? 'any' : (r.protocol ?? '').toUpperCase()) &&
        ((r.icmptype ?? '') === '' || (r.icmptype ?? '').split(',').includes('echoreq')) &&
        r.destination_not !== '1' &&
        r.source_not !== '1' &&
        hits(r.destination_net ?? 'any') &&
        ['any', '(self)', `${iface}ip`].some((x) => (r.source_net ?? 'any').split(',').includes(x)),
    );
  }

  // ---- dpinger over time --------------------------------------------------------------------

  /** Statuses change over time like dpinger's, on the given clock (see dpinger.ts). */
  enableTimedDpinger(o: DpingerClockOptions): void {
    this.now = routerClock(o);
    this.dpingers = new Map();
    this.lastTick = this.now();
    this.restartDpingers();
  }

  /** A routing reconfigure restarts dpinger: fresh windows for every monitored gateway. */
  private restartDpingers(): void {
    if (!this.dpingers) return;
    const at = this.now();
    this.dpingers.clear();
    for (const g of this.activeGateways()) {
      if (g.item.monitor_disable === '1' || !g.item.monitor) continue;
      this.dpingers.set(g.item.name!, new DpingerProcess(this.paramsOf(g.item), at));
    }
  }

  /**
   * Brings dpinger and the gateway watcher up to the clock: probes are sent under the conditions
   * that held since the last call (every change of conditions calls this first), and the watcher
   * looks at the statuses once a second, raising alarms (log line, state killing) at that time.
   */
  tick(): void {
    if (!this.dpingers) return;
    const to = this.now();
    const gws = new Map(this.activeGateways().map((g) => [g.item.name!, g]));
    for (let t = this.lastTick + 1000, i = 0; t <= to && i < 100_000; t += 1000, i++) {
      this.advanceDpingers(t, gws);
      this.onStatusChange(t);
      this.lastTick = t;
    }
    this.advanceDpingers(to, gws);
  }

  private advanceDpingers(to: number, gws: Map<string, GatewayView>): void {
    for (const [name, proc] of this.dpingers ?? []) {
      const g = gws.get(name);
      if (g) proc.advance(to, (seq, at) => this.probeFate(g, seq, at));
    }
  }

  /** One probe: the link must be up; pf lets it out through its live state, else the rules decide. */
  private probeFate(g: GatewayView, seq: number, at: number): ProbeFate {
    const iface = g.item.interface!;
    const h = this.health[iface] ?? { up: true, lossPercent: 0, delayMs: 12.3 };
    const lost = { lost: true, delayMs: 0 };
    if (!h.up) return lost;
    const name = g.item.name!;
    let ps = this.probeStates.get(name);
    if (ps && (ps.until < at || !this.states.some((s) => s.id === ps!.id))) {
      this.states = this.states.filter((s) => s.id !== ps!.id);
      this.probeStates.delete(name);
      ps = undefined;
    }
    if (!ps) {
      if (this.probeBlocked(g)) return lost;
      const id = `${(++this.stateSeq).toString(16).padStart(16, '0')}/00000001`;
      const conf = this.applied.interfaces[iface];
      this.states.push({
        id,
        iface: conf?.if ?? '',
        interface: this.descrOf(iface, this.applied.interfaces),
        proto: 'icmp',
        ipproto: 'ipv4',
        direction: 'out',
        src_addr: this.addressOf(iface, this.applied.interfaces) ?? '',
        src_port: '4242',
        dst_addr: g.item.monitor!,
        dst_port: '4242',
        nat_addr: null,
        nat_port: null,
        gateway: null,
        state: '0:0',
        age: '00:00:01',
        expires: '00:00:10',
        pkts: [1, 1],
        bytes: [29, 29],
        rule: '',
        label: '',
        descr: 'let out anything from firewall host itself',
        flags: [],
      });
      ps = { id, until: 0 };
      this.probeStates.set(name, ps);
    }
    ps.until = at + 10_000;
    const p = h.lossPercent;
    const dropped = Math.floor(((seq + 1) * p) / 100) > Math.floor((seq * p) / 100);
    return { lost: dropped, delayMs: h.delayMs };
  }

  /** Gateways that run: from the applied routing config, enabled, on an enabled interface. */
  activeGateways(): GatewayView[] {
    return this.gatewayViews(this.applied.routing).filter((g) => g.item.disabled !== '1' && this.applied.routing.interfaces[g.item.interface ?? '']?.enable && this.gatewayAddress(g) !== '~');
  }

  statusMap(at = this.now()): Map<string, DpingerStatus> {
    return new Map(this.activeGateways().map((g) => [g.item.name!, this.statusOf(g, at).status]));
  }

  /** The gateway carrying the default route: the best "up" upstream gateway by priority. */
  activeDefault(): GatewayView | undefined {
    const cands = this.activeGateways().filter((g) => g.item.ipprotocol === 'inet');
    const up = cands.filter((g) => !['down', 'force_down'].includes(this.statusOf(g).status));
    const pool = this.config.system.gw_switch_default && up.length ? up : cands;
    // equal priority: the later gateway in the list wins (the hotspot can take the default route)
    let best: GatewayView | undefined;
    for (const g of pool) if (!best || Number(g.item.priority) <= Number(best.item.priority)) best = g;
    return best;
  }

  /** GatewayGroups::getActiveGroups for one group of the applied firewall config. */
  activeMembers(groupName: string): GatewayView[] {
    const group = Object.values(this.applied.firewall.groups).find((g) => g.name === groupName);
    if (!group) return [];
    const gws = new Map(this.activeGateways().map((g) => [g.item.name!, g]));
    const excluded: Record<string, DpingerStatus[]> = {
      down: ['down', 'force_down'],
      downloss: ['down', 'force_down', 'loss', 'delay+loss'],
      downlatency: ['down', 'force_down', 'delay', 'delay+loss'],
      downlosslatency: ['down', 'force_down', 'loss', 'delay', 'delay+loss'],
    };
    const bad = excluded[group.trigger ?? 'down'] ?? excluded.down!;
    const tiers = ['item', 'item2', 'item3', 'item4', 'item5'].map((k) => (group[k] ?? '').split(',').filter(Boolean));
    for (const tier of tiers) {
      const up = tier.map((n) => gws.get(n)).filter((g): g is GatewayView => !!g && !bad.includes(this.statusOf(g).status));
      if (up.length) return up;
    }
    return (tiers[0] ?? []).map((n) => gws.get(n)).filter((g): g is GatewayView => !!g);
  }

  // ---- reconfigure / apply ----------------------------------------------------------------

  applyInterfaces(): void {
    this.applied.interfaces = clone(this.config.interfaces);
    this.applyFirewall();
  }
  applyRouting(): void {
    this.tick();
    this.applied.routing = this.routingPart();
    this.restartDpingers();
    this.applyFirewall(); // rc.routing_configure ends with a filter reload
    this.onStatusChange();
  }
  applyFirewall(): void {
    this.tick();
    this.applied.firewall = this.firewallPart();
  }

  /** Modules whose saved config differs from what runs (a forgotten reconfigure/apply). */
  unapplied(): string[] {
    const out: string[] = [];
    if (JSON.stringify(this.config.interfaces) !== JSON.stringify(this.applied.interfaces)) out.push('interfaces');
    const r = this.applied.routing;
    if (JSON.stringify([this.config.gateways, this.config.groups]) !== JSON.stringify([r.gateways, r.groups])) out.push('routing');
    const f = this.applied.firewall;
    if (JSON.stringify([this.config.rules, this.config.snatRules, this.config.snatMode, this.config.groups]) !== JSON.stringify([f.rules, f.snatRules, f.snatMode, f.groups])) out.push('firewall');
    return out;
  }

  setHealth(idOrGateway: string, h: Partial<LinkHealth>): void {
    const gw = this.gatewayViews().find((g) => g.item.name === idOrGateway);
    const id = gw ? gw.item.interface! : idOrGateway;
    this.tick();
    this.health[id] = { up: true, lossPercent: 0, delayMs: 12.3, ...this.health[id], ...h };
    this.onStatusChange();
  }

  /**
   * dpinger alarms: a gateway going down drops its states when it has "failover states"
   * (monitor_killstates); a preferred gateway coming back drops the states of gateways with
   * "failback states" (monitor_killstates_priority). Both only act with default gateway switching
   * or group membership (rc.syshook.d/monitor/20-recover).
   */
  private onStatusChange(at = this.now()): void {
    const now = this.statusMap(at);
    const isDown = (s: DpingerStatus | undefined) => s === 'down' || s === 'force_down';
    const gws = new Map(this.activeGateways().map((g) => [g.item.name!, g]));
    const inGroup = (name: string) => Object.values(this.applied.routing.groups).some((g) => ['item', 'item2', 'item3', 'item4', 'item5'].some((k) => (g[k] ?? '').split(',').includes(name)));
    for (const [name, s] of now) {
      const before = this.lastStatus.get(name);
      const g = gws.get(name)!;
      if (before !== undefined && before !== s) {
        const st = this.statusOf(g, at);
        this.gatewayLog.push({ at: new Date(at).toISOString(), text: `ALERT: ${name} (Addr: ${g.item.monitor || this.gatewayAddress(g)} Alarm: ${before} -> ${s} RTT: ${st.delay} RTTd: ${st.stddev} Loss: ${st.loss})` });
      }
      const acts = this.config.system.gw_switch_default || inGroup(name);
      if (!isDown(before) && isDown(s) && g.item.monitor_killstates === '1' && acts) this.dropStates((st) => st.gateway === name);
      if (isDown(before) && !isDown(s) && before !== undefined) {
        for (const [other, o] of gws) {
          if (other === name || o.item.monitor_killstates_priority !== '1') continue;
          if (Number(o.item.priority) > Number(g.item.priority) && (this.config.system.gw_switch_default || inGroup(other))) this.dropStates((st) => st.gateway === other);
        }
      }
    }
    this.lastStatus = now;
  }

  // ---- pf states ----------------------------------------------------------------------------

  dropStates(match: (s: PfState) => boolean): number {
    const before = this.states.length;
    this.states = this.states.filter((s) => !match(s));
    return before - this.states.length;
  }

  /**
   * A LAN client opens a connection: the applied LAN rules are evaluated in sequence order; a
   * gateway group picks a member of its active tier (weighted round robin, sticky per source when
   * the pool says so); outbound NAT translates to the WAN's address. undefined = blocked.
   */
  openConnection(c: { src: string; dst: string; dport?: number; proto?: 'tcp' | 'udp' }): PfState | undefined {
    this.tick();
    const lanAddr = this.addressOf('lan', this.applied.interfaces);
    const rules = Object.entries(this.applied.firewall.rules)
      .map(([uuid, r]) => ({ uuid, r }))
      .filter(({ r }) => r.enabled !== '0' && (r.interface ?? '').split(',').includes('lan') && ['inet', 'inet46'].includes(r.ipprotocol ?? 'inet'))
      .sort((a, b) => Number(a.r.sequence ?? 1) - Number(b.r.sequence ?? 1));
    const inNet = (addr: string, net: string): boolean => {
      if (net === 'any') return true;
      if (net === 'lanip') return addr === lanAddr;
      if (net === 'lan') return !!lanAddr && sameSubnet(addr, lanAddr, Number(this.applied.interfaces.lan?.subnet ?? 24));
      if (net.includes('/')) {
        const [base, p] = net.split('/');
        return sameSubnet(addr, base!, Number(p));
      }
      return addr === net;
    };
    const hit = rules.find(({ r }) => inNet(c.src, r.source_net ?? 'any') && (r.destination_net ?? 'any').split(',').some((n) => inNet(c.dst, n)));
    if (!hit || hit.r.action !== 'pass') return undefined;
    const id = `${(++this.stateSeq).toString(16).padStart(16, '0')}/${'00000001'}`;
    const base: PfState = {
      id,
      iface: this.applied.interfaces.lan?.if ?? '',
      interface: 'LAN',
      proto: c.proto ?? 'tcp',
      ipproto: 'ipv4',
      direction: 'out',
      src_addr: c.src,
      src_port: String(40000 + (this.stateSeq % 20000)),
      dst_addr: c.dst,
      dst_port: String(c.dport ?? 443),
      nat_addr: null,
      nat_port: null,
      gateway: null,
      state: 'ESTABLISHED:ESTABLISHED',
      age: '00:00:01',
      expires: '24:00:00',
      pkts: [4, 3],
      bytes: [420, 1380],
      rule: '',
      label: hit.uuid,
      descr: hit.r.description ?? '',
      flags: [],
    };
    if (inNet(c.dst, 'lanip')) {
      this.states.push(base);
      return base;
    }
    let gw: GatewayView | undefined;
    const want = hit.r.gateway ?? '';
    if (want === '') gw = this.activeDefault();
    else if (Object.values(this.applied.firewall.groups).some((g) => g.name === want)) gw = this.pickMember(want, c.src);
    else gw = this.activeGateways().find((g) => g.item.name === want);
    if (!gw) return undefined;
    const wanId = gw.item.interface!;
    const wanAddr = this.addressOf(wanId, this.applied.interfaces) ?? null;
    const natOn = this.applied.firewall.snatMode !== 'disabled';
    const st: PfState = {
      ...base,
      iface: this.applied.interfaces[wanId]?.if ?? '',
      interface: this.descrOf(wanId, this.applied.interfaces),
      nat_addr: natOn ? wanAddr : null,
      nat_port: natOn ? base.src_port : null,
      gateway: gw.item.name!,
      ...(want ? { 'route-to': this.gatewayAddress(gw) } : {}),
    };
    this.states.push(st);
    return st;
  }

  private pickMember(group: string, src: string): GatewayView | undefined {
    const members = this.activeMembers(group);
    if (!members.length) return undefined;
    const g = Object.values(this.applied.firewall.groups).find((x) => x.name === group)!;
    const sticky = (g.poolopts ?? '') === '' ? this.config.system.lb_use_sticky : (g.poolopts ?? '').includes('sticky-address');
    const key = `${group}|${src}`;
    if (sticky) {
      const prev = members.find((m) => m.item.name === this.sticky.get(key));
      if (prev) return prev;
    }
    const pool = members.flatMap((m) => Array<GatewayView>(Math.max(1, Number(m.item.weight ?? 1))).fill(m));
    const n = this.rr.get(group) ?? 0;
    this.rr.set(group, n + 1);
    const pick = pool[n % pool.length]!;
    if (sticky) this.sticky.set(key, pick.item.name!);
    return pick;
  }

  newUuid(): string {
    return randomUUID();
  }
}

/** "/^(?!0).*$/" (PHP preg syntax, as the model XML writes filters) → RegExp */
function slashRegex(p: string): RegExp {
  const m = /^\/(.*)\/([a-z]*)$/s.exec(p);
  return m ? new RegExp(m[1]!, m[2]!.replace(/[^imsu]/g, '')) : new RegExp(p);
}

function toInt(a: string): number {
  return a.split('.').reduce((n, p) => n * 256 + Number(p), 0) >>> 0;
}

export function sameSubnet(a: string, b: string, prefix: number): boolean {
  if (isIP(a) !== 4 || isIP(b) !== 4) return false;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return (toInt(a) & mask) === (toInt(b) & mask);
}

/** The history copy as config.xml text (what core/backup/download returns). */
export function configXml(c: Config, hostname = 'OPNsense'): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const fields = (item: Item, pad: string) =>
    Object.entries(item)
      .map(([k, v]) => (v === '' ? `${pad}<${k}/>` : `${pad}<${k}>${esc(v)}</${k}>`))
      .join('\n');
  const items = (tag: string, rec: Record<string, Item>, pad: string) => Object.entries(rec).map(([uuid, it]) => `${pad}<${tag} uuid="${uuid}">\n${fields(it, `${pad}  `)}\n${pad}</${tag}>`).join('\n');
  const ifaces = Object.entries(c.interfaces)
    .map(
      ([id, i]) =>
        `    <${id}>\n      <if>${esc(i.if)}</if>\n      <descr>${esc(i.descr)}</descr>\n${i.enable ? '      <enable>1</enable>\n' : ''}${i.lock ? '      <lock>1</lock>\n' : ''}      <ipaddr>${esc(i.ipaddr)}</ipaddr>\n      <subnet>${esc(i.subnet)}</subnet>\n      <ipaddrv6>${esc(i.ipaddrv6)}</ipaddrv6>\n    </${id}>`,
    )
    .join('\n');
  return [
    '<?xml version="1.0"?>',
    '<opnsense>',
    '  <system>',
    `    <hostname>${hostname}</hostname>`,
    '    <domain>internal</domain>',
    c.system.gw_switch_default ? '    <gw_switch_default>1</gw_switch_default>' : '',
    c.system.lb_use_sticky ? '    <lb_use_sticky>1</lb_use_sticky>' : '',
    c.system.pf_share_forward ? '    <pf_share_forward>1</pf_share_forward>' : '',
    c.system.skip_rules_gw_down ? '    <skip_rules_gw_down>1</skip_rules_gw_down>' : '',
    ...(c.system.dns ?? []).map((d) => `    <dnsserver>${esc(d.server)}</dnsserver>`),
    ...(c.system.dns ?? []).map((d, i) => `    <dns${i + 1}gw>${esc(d.gateway)}</dns${i + 1}gw>`),
    '  </system>',
    '  <interfaces>',
    ifaces,
    '  </interfaces>',
    '  <gateways>',
    items('gateway_group', c.groups, '    '),
    '  </gateways>',
    `  <nat>\n    <outbound>\n      <mode>${esc(c.snatMode)}</mode>\n    </outbound>\n  </nat>`,
    '  <OPNsense>',
    '    <Gateways version="1.0.0">',
    items('gateway_item', c.gateways, '      '),
    '    </Gateways>',
    '    <Firewall>',
    '      <Filter version="1.0.5">',
    '        <rules>',
    items('rule', c.rules, '          '),
    '        </rules>',
    '        <snatrules>',
    items('rule', c.snatRules, '          '),
    '        </snatrules>',
    '      </Filter>',
    '    </Firewall>',
    '  </OPNsense>',
    '</opnsense>',
    '',
  ]
    .filter((l) => l !== '')
    .join('\n');
}
