import type { DesiredState } from '../core/desired';
import { parseCidr, parseIpv4, rangeContains } from '../config/net';
import type { RemoteShell } from '../providers/linux/ssh';
import { discoverDhcpServers, DhcpProbeError, type DhcpOffer } from './dhcp';

/**
 * After the access-point steps: is the LAN as it should be? Three checks, each failing with what
 * to change:
 * - the access point answers at its new address;
 * - exactly one DHCP server answers on the LAN, and it is the router;
 * - traffic leaves through the router first: the first hop out is the router's LAN address, not a
 *   second router (a TP-Link still routing and translating addresses: double NAT).
 * Observing is separate from judging: `observeLan` asks a probe (this machine on the LAN, or a
 * recorded run), `evaluateAccessPoint` is pure and is what the tests feed recorded inputs to.
 */
export type CheckId = 'ap-address' | 'single-dhcp' | 'no-double-nat';

export interface CheckResult {
  readonly id: CheckId;
  readonly status: 'pass' | 'fail' | 'skipped';
  readonly message: string;
  /** What to change, for a failure (or what to do so the check can run, when skipped). */
  readonly change?: string;
}

export interface PingAnswer {
  /** An echo reply came from the target. */
  readonly reply: boolean;
  /** With a TTL limit: who said "time to live exceeded". */
  readonly exceededFrom?: string;
}

export interface LanProbe {
  ping(address: string, ttl?: number): Promise<PingAnswer>;
  dhcpOffers(): Promise<DhcpOffer[]>;
}

export interface LanObservations {
  readonly apAnswers: boolean | { readonly error: string };
  readonly dhcpOffers: readonly DhcpOffer[] | { readonly error: string };
  /** Who answered at TTL 1, 2, … on the way to `outTarget` (undefined: nobody). */
  readonly hops: readonly (string | undefined)[] | { readonly error: string };
  readonly outTarget: string;
}

const isPrivate = (a: string) => /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.)/.test(a);

export async function observeLan(state: Pick<DesiredState, 'accessPoint'>, probe: LanProbe, opts: { outTarget?: string; maxHops?: number } = {}): Promise<LanObservations> {
  const outTarget = opts.outTarget ?? '1.1.1.1';
  const ap = state.accessPoint?.address;
  const safe = async <T>(f: () => Promise<T>): Promise<T | { error: string }> => {
    try {
      return await f();
    } catch (e) {
      return { error: e instanceof Error ? e.message : String(e) };
    }
  };
  const apAnswers = ap ? await safe(async () => (await probe.ping(ap)).reply || (await probe.ping(ap)).reply) : { error: 'no access point address in dualwan.yaml' };
  const dhcpOffers = await safe(() => probe.dhcpOffers());
  const hops = await safe(async () => {
    const out: (string | undefined)[] = [];
    for (let ttl = 1; ttl <= (opts.maxHops ?? 3); ttl++) {
      const a = await probe.ping(outTarget, ttl);
      out.push(a.exceededFrom ?? (a.reply ? outTarget : undefined));
      if (a.reply) break;
    }
    return out;
  });
  return { apAnswers, dhcpOffers, hops, outTarget };
}

export function evaluateAccessPoint(state: Pick<DesiredState, 'lan' | 'accessPoint'>, obs: LanObservations): CheckResult[] {
  const router = state.lan.routerAddress;
  const ap = state.accessPoint;
  const model = ap?.model ?? (ap?.vendor === 'tp-link' ? 'TP-Link' : 'access point');
  const results: CheckResult[] = [];

  // 1. The access point at its address.
  if (!ap) results.push({ id: 'ap-address', status: 'skipped', message: 'No access point in dualwan.yaml.', change: 'Add accessPoint: {vendor, model, address} to check it.' });
  else if (typeof obs.apAnswers === 'object') results.push({ id: 'ap-address', status: 'skipped', message: `Could not ping ${ap.address}: ${obs.apAnswers.error}.` });
  else if (obs.apAnswers) results.push({ id: 'ap-address', status: 'pass', message: `The ${model} answers at ${ap.address}.` });
  else {
    results.push({
      id: 'ap-address',
      status: 'fail',
      message: `The ${model} does not answer at ${ap.address}.`,
      change: `Give it the static LAN address ${ap.address} (Network → LAN), gateway ${router}, and cable the router into the port the steps name. If it took an address from the router instead, find it in the router's DHCP leases and set it to ${ap.address}.`,
    });
  }

  // 2. Exactly one DHCP server, the router.
  if (!('length' in obs.dhcpOffers)) {
    results.push({ id: 'single-dhcp', status: 'skipped', message: `Could not ask the LAN for DHCP servers: ${obs.dhcpOffers.error}.`, change: 'Run the check as root (it listens on UDP port 68), from a computer on the LAN.' });
  } else {
    const offers = obs.dhcpOffers;
    const others = offers.filter((o) => o.server !== router);
    const lan = parseCidr(state.lan.subnet);
    if (!state.lan.dhcp.enabled && !offers.length) {
      results.push({ id: 'single-dhcp', status: 'pass', message: 'No DHCP server answers on the LAN, as configured (the router hands out no addresses).' });
    } else if (!offers.length) {
      results.push({ id: 'single-dhcp', status: 'fail', message: 'No DHCP server answered on the LAN.', change: `Switch the router's DHCP server on for the LAN (${state.lan.dhcp.rangeStart}–${state.lan.dhcp.rangeEnd}) — dualwan apply does it — and check the cable from the router to the access point.` });
    } else if (!offers.some((o) => o.server === router)) {
      results.push({
        id: 'single-dhcp',
        status: 'fail',
        message: `The DHCP server answering here is ${others.map((o) => `${o.server} (offers ${o.offered}${o.router ? ` with gateway ${o.router}` : ''})`).join('; ')}, not the router (${router}).`,
        change: `This computer is behind another router or access point that hands out its own addresses: switch off the DHCP server of the device at ${others.map((o) => o.server).join(', ')} and connect this computer (and the ${model}) to the router's LAN.`,
      });
    } else if (others.length) {
      const describe = (o: DhcpOffer) => {
        const off = parseIpv4(o.offered);
        const foreign = lan && off !== undefined && !rangeContains(lan, off);
        return `${o.server} (offers ${o.offered}${o.router ? ` with gateway ${o.router}` : ''}${foreign ? `, outside the LAN ${state.lan.subnet}` : ''})`;
      };
      const isAp = others.some((o) => o.server === ap?.address);
      results.push({
        id: 'single-dhcp',
        status: 'fail',
        message: `${offers.length} DHCP servers answer on the LAN: ${offers.map(describe).join('; ')}. Only the router (${router}) may.`,
        change: `Switch off the DHCP server of the device at ${others.map((o) => o.server).join(', ')}${isAp ? ` — that is the ${model}: DHCP → DHCP Settings → Disable (in Access Point mode some models keep it on; check Network → DHCP Server)` : ' (another router or access point on the LAN)'}. Then renew the addresses of devices that took one from it.`,
      });
    } else {
      results.push({ id: 'single-dhcp', status: 'pass', message: `Exactly one DHCP server answers on the LAN: the router (${router}).` });
    }
  }

  // 3. No double NAT: the first hop out is the router.
  if (!('length' in obs.hops)) {
    results.push({ id: 'no-double-nat', status: 'skipped', message: `Could not trace the way out: ${obs.hops.error}.` });
  } else {
    const hops = obs.hops;
    const first = hops[0];
    const routerAt = hops.indexOf(router);
    if (first === router) {
      results.push({ id: 'no-double-nat', status: 'pass', message: `Traffic leaves through the router first (${router}); no second router on the LAN.` });
    } else if (first !== undefined && isPrivate(first) && routerAt > 0) {
      results.push({
        id: 'no-double-nat',
        status: 'fail',
        message: `Traffic to ${obs.outTarget} passes ${hops.slice(0, routerAt).join(' → ')} before the router ${router}: a second router translates addresses on the way out (double NAT).`,
        change: `The device at ${first} still routes — most likely the ${model} in router mode with the router on its WAN port. Switch it to Access Point mode, or use the manual method: DHCP off, static ${ap?.address ?? 'address'}, and the router cabled into one of its LAN ports.`,
      });
    } else if (first === undefined) {
      results.push({ id: 'no-double-nat', status: 'skipped', message: `Nobody answered on the way to ${obs.outTarget} (ICMP may be filtered).` });
    } else {
      results.push({
        id: 'no-double-nat',
        status: 'fail',
        message: `The first hop out is ${first}, not the router ${router}.`,
        change: `This computer's gateway is not the router: take its address from the router's DHCP (${state.lan.dhcp.rangeStart}–${state.lan.dhcp.rangeEnd}) and make sure the device at ${first} is not routing for it.`,
      });
    }
  }
  return results;
}

export async function runAccessPointChecks(state: Pick<DesiredState, 'lan' | 'accessPoint'>, probe: LanProbe, opts: { outTarget?: string; maxHops?: number } = {}): Promise<CheckResult[]> {
  return evaluateAccessPoint(state, await observeLan(state, probe, opts));
}

/** Parses one `ping -c 1` run (iputils on Linux, FreeBSD's ping). */
export function parsePing(output: string, target: string): PingAnswer {
  const exceeded = /From (\d+\.\d+\.\d+\.\d+)[^\n]*Time to live exceeded/i.exec(output) ?? /(\d+\.\d+\.\d+\.\d+): Time to live exceeded/i.exec(output);
  const reply = new RegExp(`bytes from ${target.replace(/\./g, '\\.')}[:\\s][^\\n]*(icmp_seq|ttl)`, 'i').test(output);
  return { reply, ...(exceeded ? { exceededFrom: exceeded[1]! } : {}) };
}

/** A probe from a shell on the LAN (this machine: LocalShell; or SSH), DHCP from this process. */
export function shellLanProbe(shell: RemoteShell, flavour: 'linux' | 'freebsd' = 'linux', dhcp: () => Promise<DhcpOffer[]> = () => discoverDhcpServers()): LanProbe {
  return {
    async ping(address, ttl) {
      const argv: [string, ...string[]] =
        flavour === 'linux' ? ['ping', '-n', '-c', '1', '-W', '1', ...(ttl ? ['-t', String(ttl)] : []), address] : ['ping', '-n', '-c', '1', '-t', '2', ...(ttl ? ['-m', String(ttl)] : []), address];
      const r = await shell.exec(argv, { timeoutMs: 5_000 });
      return parsePing(`${r.stdout}\n${r.stderr}`, address);
    },
    async dhcpOffers() {
      try {
        return await dhcp();
      } catch (e) {
        if (e instanceof DhcpProbeError) throw new Error(e.message);
        throw e;
      }
    },
  };
}

export function renderChecks(results: readonly CheckResult[]): string {
  const mark = { pass: '✓', fail: '✗', skipped: '–' } as const;
  return results.map((r) => `${mark[r.status]} ${r.message}${r.change ? `\n    change: ${r.change}` : ''}`).join('\n');
}
