import * as fs from 'node:fs';
import { z } from 'zod';
import { parseIpv4, parseCidr, rangeContains } from '../config/net';
import type { DesiredState } from '../core/desired';
import { DualwanError } from '../core/errors';
import type { Ui } from '../core/ui';
import { openOpnsenseReach, type OpnsenseReach } from '../flows/opnsense-route';
import { ensurePinned } from '../flows/trust';
import { capabilitiesOf, MINIMUM_VERSION, type Capabilities } from '../providers/opnsense/capabilities';
import { OpnsenseClient, type OpnsenseClientOptions } from '../providers/opnsense/client';
import { layoutOf, type Layout, type WanLayout } from '../providers/opnsense/layout';
import { groupFields } from '../providers/opnsense/resources/gateway-group';
import { sortedList } from '../providers/opnsense/resources/common';
import {
  FilterRuleRowSchema,
  FirmwareStatusSchema,
  GatewayRowSchema,
  GatewayStatusSchema,
  gridSchema,
  GroupRowSchema,
  InterfaceInfoRowSchema,
  type FilterRuleRow,
  type GatewayRow,
  type GatewayStatus,
  type GroupRow,
  type InterfaceInfoRow,
} from '../providers/opnsense/schemas';
import type { Finding } from './host';
import { systemSettings, type SystemSettings } from './opnsense-config';
import { loadCredentials } from '../secrets/credentials';

/**
 * Read-only checks of the OPNsense router against dualwan.yaml. Observing (`observeOpnsense`: GETs
 * and search POSTs only, plus the download of the current config.xml for the settings no API
 * offers) is separate from judging (`evaluateOpnsense`, pure), so every finding can be tested
 * from recorded observations as well as against the double.
 */

/** `diagnostics/interface/get_routes`: the columns of FreeBSD's `netstat -rWn`, lower case. */
export const RouteRowSchema = z.object({ proto: z.string().optional(), destination: z.string(), gateway: z.string().optional(), netif: z.string().optional(), flags: z.string().optional() }).loose();
export type RouteRow = z.output<typeof RouteRowSchema>;

/** What could not be read, and why (a finding of its own, never silently "ok"). */
export interface Unreadable {
  readonly error: string;
}
type Maybe<T> = T | Unreadable;
const failed = (v: unknown): v is Unreadable => !!v && typeof v === 'object' && !Array.isArray(v) && 'error' in v;

export interface OpnsenseObservations {
  readonly where: string;
  readonly product: string;
  readonly version: string;
  readonly gateways: Maybe<readonly GatewayRow[]>;
  readonly status: Maybe<GatewayStatus['items']>;
  /** undefined: the release has no group API (before 26.7) */
  readonly groups: Maybe<readonly GroupRow[]> | undefined;
  readonly interfaces: Maybe<readonly InterfaceInfoRow[]>;
  readonly routes: Maybe<readonly RouteRow[]>;
  readonly rules: Maybe<readonly FilterRuleRow[]>;
  readonly system: Maybe<SystemSettings>;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
async function attempt<T>(f: () => Promise<T>): Promise<Maybe<T>> {
  try {
    return await f();
  } catch (e) {
    return { error: message(e) };
  }
}

/**
 * Reads everything the checks need. The first read (the version) is the reachability check: it
 * throws when OPNsense does not answer, refuses the key, or shows another certificate.
 */
export async function observeOpnsense(client: OpnsenseClient, where: string): Promise<OpnsenseObservations> {
  const fw = await client.get('core/firmware/status', FirmwareStatusSchema);
  const version = fw.product.product_version;
  let caps: Capabilities | undefined;
  try {
    caps = capabilitiesOf(fw.product.product_name ?? 'OPNsense', version);
  } catch {
    caps = undefined;
  }
  const groupsApi = caps?.has('gateway-groups') ?? false;
  return {
    where,
    product: fw.product.product_name ?? 'OPNsense',
    version,
    gateways: await attempt(async () => (await client.search('routing/settings/search_gateway', GatewayRowSchema)).rows),
    status: await attempt(async () => (await client.get('routes/gateway/status', GatewayStatusSchema)).items),
    groups: groupsApi ? await attempt(async () => (await client.search('routing/group_settings/search', GroupRowSchema)).rows) : undefined,
    interfaces: await attempt(async () => (await client.get('interfaces/overview/interfaces_info', gridSchema(InterfaceInfoRowSchema))).rows),
    routes: await attempt(() => client.get('diagnostics/interface/get_routes', z.array(RouteRowSchema))),
    rules: await attempt(async () => (await client.search('firewall/filter/search_rule', FilterRuleRowSchema)).rows),
    // The newest history copy is the current config.xml; it stays in memory (it holds hashes).
    system: await attempt(async () => systemSettings(await client.getText('core/backup/download/this'))),
  };
}

const R = 'router' as const;
const T = 'topology' as const;
const ok = (check: string, msg: string, area: Finding['area'] = R): Finding => ({ area, check, status: 'ok', message: msg });
const bad = (check: string, status: 'warn' | 'fail', msg: string, remedy: string, area: Finding['area'] = R): Finding => ({ area, check, status, message: msg, remedy });
const skip = (check: string, msg: string, remedy: string, area: Finding['area'] = R): Finding => ({ area, check, status: 'skipped', message: msg, remedy });
const unreadable = (check: string, what: string, u: Unreadable, area: Finding['area'] = R): Finding =>
  skip(check, `Could not read ${what}: ${u.error}`, 'Check that the API key belongs to a user in the admins group (page-all), then run dualwan doctor again.', area);

const GW_PAGE = 'System > Gateways > Configuration';
const isOn = (v: string | undefined) => v === '1';

function wanLabel(w: WanLayout): string {
  return `${w.gatewayName} (WAN ${w.wan.name}, ${w.descr})`;
}

/** The address a WAN's gateway has now: the DHCP router for a dynamic one, else the stored one. */
function gatewayAddressOf(w: WanLayout, row: GatewayRow | undefined, ifaces: readonly InterfaceInfoRow[] | undefined): string | undefined {
  const fromRow = row?.gateway && parseIpv4(row.gateway) !== undefined ? row.gateway : undefined;
  if (fromRow) return fromRow;
  const info = ifaces?.find((i) => i.identifier === w.identifier);
  const gws = (info as { gateways?: unknown } | undefined)?.gateways;
  return Array.isArray(gws) ? (gws.find((g): g is string => typeof g === 'string' && parseIpv4(g) !== undefined) ?? undefined) : undefined;
}

function wanSubnetOf(w: WanLayout, ifaces: readonly InterfaceInfoRow[] | undefined): { addr: string; cidr: string } | undefined {
  const info = ifaces?.find((i) => i.identifier === w.identifier);
  const a = info?.addr4 ?? '';
  if (!a.includes('/')) return undefined;
  return { addr: a.split('/')[0]!, cidr: a };
}

function inCidr(cidr: string, ip: string): boolean {
  const r = parseCidr(cidr.replace(/^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/, (_m, a: string, p: string) => `${a}/${p}`));
  const n = parseIpv4(ip);
  return !!r && n !== undefined && rangeContains(r, n);
}

/** Pure: the router findings (and the topology findings only the router can observe). */
export function evaluateOpnsense(state: DesiredState, obs: OpnsenseObservations, layout: Layout = layoutOf(state)): Finding[] {
  const out: Finding[] = [];
  const wans = layout.wans;

  // --- version ---------------------------------------------------------------------------
  let caps: Capabilities | undefined;
  try {
    caps = capabilitiesOf(obs.product, obs.version);
  } catch (e) {
    out.push(bad('router.version', 'fail', message(e), `dualwan supports OPNsense ${MINIMUM_VERSION} or newer; check System > Firmware > Status.`));
  }
  if (caps) {
    out.push(
      caps.missing.length
        ? bad(
            'router.version',
            'fail',
            `${obs.product} ${obs.version} is older than ${MINIMUM_VERSION}; it lacks ${caps.missing.map((c) => c.what).join('; ')}.`,
            `Upgrade OPNsense to ${MINIMUM_VERSION} or newer (System > Firmware > Status: check for updates, then upgrade), then run dualwan apply.`,
          )
        : ok('router.version', `${obs.product} ${obs.version} (${MINIMUM_VERSION} or newer: every API dualwan uses is there)`),
    );
  }

  const gateways = failed(obs.gateways) ? undefined : obs.gateways;
  const ifaces = failed(obs.interfaces) ? undefined : obs.interfaces;
  const status = failed(obs.status) ? undefined : obs.status;
  const system = failed(obs.system) ? undefined : obs.system;
  const rowOf = (w: WanLayout) => gateways?.find((g) => g.name === w.gatewayName);

  // --- gateways: present, stored, enabled -------------------------------------------------
  if (!gateways) out.push(unreadable('router.gateways', 'the gateways (routing/settings/search_gateway)', obs.gateways as Unreadable));
  else {
    const problems: Finding[] = [];
    for (const w of wans) {
      const row = rowOf(w);
      if (!row) {
        problems.push(
          bad(
            'router.gateways',
            'fail',
            `OPNsense has no gateway ${wanLabel(w)}: the interface ${w.identifier} has no ${w.dynamic ? 'DHCP lease or is not enabled' : 'stored gateway'}.`,
            `Check Interfaces > ${w.descr} (enabled, IPv4 ${w.dynamic ? 'DHCP' : 'static'}) and Interfaces > Overview for its address, then run \`dualwan apply\`.`,
          ),
        );
      } else if (row.disabled) {
        problems.push(bad('router.gateways', 'fail', `Gateway ${wanLabel(w)} is disabled: it never carries traffic.`, `Enable it in ${GW_PAGE} (or run \`dualwan apply\`).`));
      } else if (row.virtual) {
        problems.push(
          bad(
            'router.gateways',
            'fail',
            `Gateway ${wanLabel(w)} is still the one OPNsense derives from DHCP, with its defaults (monitoring off, priority ${row.priority ?? '254'}); dualwan has not stored it yet.`,
            'Run `dualwan apply`: it stores the gateway with monitoring, priority and weight from dualwan.yaml.',
          ),
        );
      }
    }
    out.push(...(problems.length ? problems : [ok('router.gateways', `gateways ${wans.map((w) => w.gatewayName).join(', ')} are stored and enabled`)]));
  }

  // --- monitoring on, with the monitor IP of dualwan.yaml ----------------------------------
  if (gateways) {
    const problems: Finding[] = [];
    for (const w of wans) {
      const row = rowOf(w);
      if (!row) continue;
      const want = w.wan.monitorIps[0] ?? '';
      if (row.monitor_disable !== '0') {
        problems.push(
          bad(
            'router.monitoring',
            'fail',
            `Gateway ${wanLabel(w)} is not monitored: OPNsense never sees this line go down, so it never fails over (monitoring is off by default on gateways OPNsense derives from DHCP).`,
            `Run \`dualwan apply\` (it switches monitoring on with monitor IP ${want || 'from dualwan.yaml'}), or in ${GW_PAGE} edit ${w.gatewayName}: untick "Disable Gateway Monitoring", set Monitor IP ${want || '(a far address that answers ping)'}, Save, Apply.`,
          ),
        );
      } else if (want && (row.monitor ?? '') !== want) {
        problems.push(
          bad(
            'router.monitoring',
            'warn',
            `Gateway ${wanLabel(w)} probes ${row.monitor || 'its own gateway address'}, dualwan.yaml says ${want}.`,
            `Run \`dualwan apply\` to set the monitor IP ${want}, or change wans.${w.wan.name}.monitorIps if the router is right.`,
          ),
        );
      }
    }
    out.push(...(problems.length ? problems : [ok('router.monitoring', `every WAN gateway is monitored (${wans.map((w) => `${w.gatewayName} → ${rowOf(w)?.monitor ?? '?'}`).join(', ')})`)]));
  }

  // --- monitor IPs: unique, far away, not a DNS server -------------------------------------
  if (gateways) {
    const monitored = wans.map((w) => ({ w, row: rowOf(w) })).filter((x) => x.row && x.row.monitor_disable === '0');
    const problems: Finding[] = [];
    const reported = new Set<string>();
    for (const { w, row } of monitored) {
      const ip = row!.monitor ?? '';
      if (!ip || reported.has(ip)) continue;
      const sharing = gateways.filter((g) => (g.monitor ?? '') === ip && g.monitor_disable === '0');
      if (sharing.length < 2) continue;
      reported.add(ip);
      problems.push(
        bad(
          'router.monitor-unique',
          'fail',
          `Gateways ${sharing.map((g) => g.name).join(' and ')} probe the same monitor IP ${ip}: OPNsense keeps one host route per monitor IP, so the probes of all of them leave through one line and the others report that line's health.`,
          `Give each WAN its own monitor IP (dualwan.yaml wans.<name>.monitorIps, e.g. ${w.wan.name === wans[0]?.wan.name ? '1.1.1.1 here and 9.9.9.9 on the other' : '9.9.9.9 here and 1.1.1.1 on the other'}), then run \`dualwan apply\`; or fix it in ${GW_PAGE}.`,
        ),
      );
    }
    out.push(...(problems.length ? problems : [ok('router.monitor-unique', 'each WAN gateway probes its own monitor IP')]));

    const targetProblems: Finding[] = [];
    const dnsProblems: Finding[] = [];
    for (const { w, row } of monitored) {
      const ip = row!.monitor ?? '';
      const gw = gatewayAddressOf(w, row, ifaces);
      const sub = wanSubnetOf(w, ifaces);
      if (!ip) {
        targetProblems.push(
          bad(
            'router.monitor-target',
            'warn',
            `Gateway ${wanLabel(w)} has no monitor IP, so it probes its own gateway${gw ? ` ${gw}` : ''} — the modem or phone answers even when the line behind it is down.`,
            `Set a far monitor IP for it (dualwan.yaml wans.${w.wan.name}.monitorIps, then \`dualwan apply\`).`,
          ),
        );
      } else if ((gw && ip === gw) || (sub && inCidr(sub.cidr, ip))) {
        targetProblems.push(
          bad(
            'router.monitor-target',
            'warn',
            `Gateway ${wanLabel(w)} probes ${ip}, ${gw && ip === gw ? 'its own gateway' : `inside its own subnet ${sub!.cidr}`}: the modem or phone answers even when the line behind it is down, so OPNsense keeps using a dead line.`,
            `Use a far address that answers ping (e.g. 1.1.1.1 or 9.9.9.9) as the monitor IP of ${w.wan.name} (dualwan.yaml, then \`dualwan apply\`).`,
          ),
        );
      }
      const dns = new Set([...(system?.dnsServers.map((d) => d.server) ?? []), ...state.wans.flatMap((x) => x.dnsServers)]);
      if (ip && dns.has(ip)) {
        dnsProblems.push(
          bad(
            'router.monitor-dns',
            'warn',
            `The monitor IP ${ip} of ${wanLabel(w)} is also a DNS server: OPNsense's host route for the monitor sends every query to ${ip} through ${w.descr}, so that DNS server is unreachable whenever ${w.descr} is down.`,
            `Use different addresses for monitoring and DNS (e.g. monitor 1.1.1.1 and DNS 1.0.0.1) in dualwan.yaml, then \`dualwan apply\` (and the DNS servers in System > Settings > General).`,
          ),
        );
      }
    }
    out.push(...(targetProblems.length ? targetProblems : [ok('router.monitor-target', 'every monitor IP lies beyond its line (not the modem, not the WAN subnet)')]));
    out.push(...(dnsProblems.length ? dnsProblems : [ok('router.monitor-dns', 'no monitor IP is also a DNS server')]));

    // Routed per WAN: the host route to each monitor leaves through its own WAN.
    if (failed(obs.routes)) out.push(unreadable('router.monitor-route', 'the routing table (diagnostics/interface/get_routes)', obs.routes));
    else if (!ifaces) out.push(unreadable('router.monitor-route', 'the interfaces (interfaces/overview/interfaces_info)', obs.interfaces as Unreadable));
    else {
      const routes = obs.routes;
      const deviceOf = (id: string) => ifaces.find((i) => i.identifier === id)?.device;
      const wanOfDevice = (dev: string | undefined) => wans.find((x) => deviceOf(x.identifier) === dev);
      const problems: Finding[] = [];
      for (const { w, row } of monitored) {
        const ip = row!.monitor ?? '';
        if (!ip) continue;
        const dev = deviceOf(w.identifier);
        const host = routes.find((r) => (r.proto ?? 'ipv4') === 'ipv4' && (r.destination === ip || r.destination === `${ip}/32`));
        const def = routes.find((r) => (r.proto ?? 'ipv4') === 'ipv4' && (r.destination === 'default' || r.destination === '0.0.0.0/0'));
        if (host && host.netif === dev) continue;
        if (host) {
          const other = wanOfDevice(host.netif);
          problems.push(
            bad(
              'router.monitor-route',
              'fail',
              `The probes of ${wanLabel(w)} to ${ip} leave through ${other ? `${other.descr} (${host.netif})` : host.netif}, not through ${w.descr}${dev ? ` (${dev})` : ''}: the gateway reports the health of another line.`,
              `Give ${w.wan.name} a monitor IP no other gateway or static route uses (dualwan.yaml, then \`dualwan apply\`), and remove any static route to ${ip} (System > Routes > Configuration).`,
            ),
          );
        } else {
          const via = wanOfDevice(def?.netif);
          const viaOther = via && via.gatewayName !== w.gatewayName;
          problems.push(
            bad(
              'router.monitor-route',
              viaOther ? 'fail' : 'warn',
              `There is no host route to the monitor IP ${ip} of ${wanLabel(w)}${isOn(row!.monitor_noroute) ? ' ("Disable Host Route" is ticked)' : ''}: its probes follow the default route${via ? `, now through ${via.descr}` : ''}${viaOther ? ', so this gateway reports the health of the other line' : ', and through the backup once the default switches'}.`,
              `In ${GW_PAGE} edit ${w.gatewayName}: untick "Disable Host Route" (or run \`dualwan apply\`), and give each WAN a monitor IP of its own.`,
            ),
          );
        }
      }
      out.push(...(problems.length ? problems : [ok('router.monitor-route', `each monitor IP has a host route through its own WAN (${monitored.map(({ w, row }) => `${row!.monitor} via ${deviceOf(w.identifier) ?? '?'}`).join(', ')})`)]));
    }
  }

  // --- live status -----------------------------------------------------------------------
  if (!status) out.push(unreadable('router.gateway-status', 'the gateway status (routes/gateway/status)', obs.status as Unreadable));
  else {
    for (const w of wans) {
      const item = status.find((s) => s.name === w.gatewayName);
      const row = rowOf(w);
      if (!item) {
        out.push(
          bad(
            'router.gateway-status',
            'fail',
            `Gateway ${wanLabel(w)} is not running: OPNsense lists no status for it (the interface has no address, or the gateway is disabled).`,
            `Check the ${w.descr} cable or the phone's tethering, and Interfaces > Overview for an address on ${w.identifier}; then Interfaces > Overview > reload.`,
          ),
        );
      } else if (row && row.monitor_disable !== '0') {
        out.push(skip('router.gateway-status', `Gateway ${wanLabel(w)} shows "${item.status_translated}", which means nothing while it is not monitored.`, 'Switch monitoring on (see router.monitoring).'));
      } else if (item.status === 'down' || item.status === 'force_down') {
        out.push(
          bad(
            'router.gateway-status',
            'fail',
            `Gateway ${wanLabel(w)} is ${item.status_translated} (loss ${item.loss}).`,
            item.status === 'force_down'
              ? `It is marked down by hand ("Mark Gateway as Down" in ${GW_PAGE}; a verify drill that was interrupted?): run \`dualwan apply\` or untick it.`
              : `The line or its monitor IP ${item.monitor ?? ''} does not answer: check the modem or phone; if the line works, choose a monitor IP that answers ping.`,
          ),
        );
      } else if (item.status !== 'none') {
        out.push(bad('router.gateway-status', 'warn', `Gateway ${wanLabel(w)} is degraded: ${item.status_translated} (delay ${item.delay}, loss ${item.loss}).`, 'A busy or weak line; if it lasts, the group trigger moves traffic to the next tier. Check the modem or the phone\'s signal.'));
      } else out.push(ok('router.gateway-status', `${w.gatewayName} online (delay ${item.delay}, loss ${item.loss})`));
    }
  }

  // --- default gateway: priorities, and who carries the default route -----------------------
  if (gateways) {
    const rows = wans.map((w) => ({ w, row: rowOf(w) })).filter((x) => x.row);
    const sorted = [...rows].sort((a, b) => a.w.wan.tier - b.w.wan.tier);
    const problems: Finding[] = [];
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1]!;
      const b = sorted[i]!;
      if (a.w.wan.tier < b.w.wan.tier && Number(a.row!.priority) >= Number(b.row!.priority)) {
        problems.push(
          bad(
            'router.default-gateway',
            'fail',
            `${a.w.gatewayName} (tier ${a.w.wan.tier}) has priority ${a.row!.priority}, not lower than ${b.w.gatewayName} (tier ${b.w.wan.tier}, priority ${b.row!.priority}): ${Number(a.row!.priority) === Number(b.row!.priority) ? 'with equal priorities the later interface takes the default route, so the backup can carry the router\'s own traffic' : 'the backup is preferred for the default route'}.`,
            'Run `dualwan apply` (it writes each gateway\'s priority from its tier), or set the priorities in ' + GW_PAGE + ' (lower = preferred).',
          ),
        );
      }
    }
    const active = gateways.find((g) => g.defaultgw);
    const up = (w: WanLayout) => {
      const st = status?.find((s) => s.name === w.gatewayName);
      return !!st && st.status !== 'down' && st.status !== 'force_down';
    };
    const expected = sorted.find((x) => up(x.w))?.w;
    if (active && expected && active.name !== expected.gatewayName && !problems.length) {
      problems.push(
        bad(
          'router.default-gateway',
          'warn',
          `The default route goes through ${active.name}, but ${expected.gatewayName} (tier ${expected.wan.tier}) is up and preferred.`,
          'Check "Allow default gateway switching" (router.gateway-switching) and the gateway priorities; then run `dualwan apply`.',
        ),
      );
    }
    out.push(...(problems.length ? problems : [ok('router.default-gateway', `priorities follow the tiers${active ? `; the default route goes through ${active.name}` : ''}`)]));
  }

  // --- states: failover and failback kill ----------------------------------------------------
  if (gateways) {
    const p = state.policy;
    const problems: Finding[] = [];
    for (const w of wans) {
      const row = rowOf(w);
      if (!row || row.virtual) continue;
      const failover = isOn(row.monitor_killstates);
      const failback = isOn(row.monitor_killstates_priority);
      const wantFailback = w.wan.metered && p.killMeteredStatesOnFailback;
      if (p.killStatesOnFailover && !failover) {
        problems.push(
          bad(
            'router.kill-states',
            'fail',
            `${wanLabel(w)} keeps its connections when it goes down ("Failover States" off): open connections stay on the dead line until they time out.`,
            `Run \`dualwan apply\`, or in ${GW_PAGE} edit ${w.gatewayName}: tick "Failover States", Save, Apply.`,
          ),
        );
      } else if (!p.killStatesOnFailover && failover) {
        problems.push(bad('router.kill-states', 'warn', `${wanLabel(w)} kills its connections when it goes down, but dualwan.yaml says policy.killStatesOnFailover: false.`, 'Run `dualwan apply` to match dualwan.yaml, or set policy.killStatesOnFailover: true.'));
      }
      if (wantFailback && !failback) {
        problems.push(
          bad(
            'router.kill-states',
            'warn',
            `${wanLabel(w)} is metered but keeps its connections when the preferred line returns ("Failback States" off): they stay on the metered line (for hours, for long-lived connections).`,
            `Run \`dualwan apply\`, or in ${GW_PAGE} edit ${w.gatewayName}: tick "Failback States", Save, Apply.`,
          ),
        );
      } else if (!wantFailback && failback) {
        problems.push(bad('router.kill-states', 'warn', `${wanLabel(w)} drops its connections when a preferred line returns, which dualwan.yaml does not ask for.`, 'Run `dualwan apply` to match dualwan.yaml (policy.killMeteredStatesOnFailback, wans.<name>.metered).'));
      }
    }
    out.push(...(problems.length ? problems : [ok('router.kill-states', `state killing as dualwan.yaml says (failover: ${p.killStatesOnFailover ? 'on' : 'off'}; failback on metered WANs: ${p.killMeteredStatesOnFailback ? 'on' : 'off'})`)]));
  }

  // --- the gateway group -----------------------------------------------------------------------
  const want = groupFields({ state, layout });
  let group: GroupRow | undefined;
  if (obs.groups === undefined) {
    out.push(skip('router.gateway-group', `${obs.product} ${obs.version} has no gateway-group API; the group cannot be read.`, `Upgrade OPNsense to ${MINIMUM_VERSION} or newer.`));
  } else if (failed(obs.groups)) {
    out.push(unreadable('router.gateway-group', 'the gateway groups (routing/group_settings/search)', obs.groups));
  } else {
    group = obs.groups.find((g) => g.name === want.name);
    if (!group) {
      out.push(
        bad(
          'router.gateway-group',
          'fail',
          `OPNsense has no gateway group ${want.name}: the LAN's traffic follows the default route alone, so load balancing and per-connection failover do not happen.`,
          'Run `dualwan apply` (it creates the group and routes the LAN rule through it).',
        ),
      );
    } else {
      const tiers = (['item', 'item2', 'item3', 'item4', 'item5'] as const).map((k) => [k, sortedList(group![k] ?? ''), sortedList(want[k])] as const);
      const wrong = tiers.filter(([, have, w]) => have !== w);
      const problems: Finding[] = [];
      if (wrong.length) {
        const show = (list: readonly (readonly [string, string, string])[], i: 1 | 2) => list.map((t, n) => `tier ${n + 1}: ${t[i] || '—'}`).filter((s) => !s.endsWith('—')).join('; ');
        problems.push(
          bad(
            'router.gateway-group',
            'fail',
            `Gateway group ${want.name} has ${show(tiers, 1) || 'no members'}; dualwan.yaml (${state.policy.mode}) wants ${show(tiers, 2)}.`,
            'Run `dualwan apply` to set the tiers from dualwan.yaml (wans.<name>.tier and policy.mode).',
          ),
        );
      }
      if ((group.trigger ?? '') !== want.trigger) {
        problems.push(bad('router.gateway-group', 'warn', `Gateway group ${want.name} switches on "${group.trigger ?? ''}", dualwan.yaml says "${want.trigger}" (policy.trigger).`, 'Run `dualwan apply` to set the trigger.'));
      }
      out.push(...(problems.length ? problems : [ok('router.gateway-group', `gateway group ${want.name}: ${tiers.filter(([, h]) => h).map(([, h], i) => `tier ${i + 1} ${h}`).join(', ')}; trigger ${want.trigger}`)]));
    }
  }

  // --- the LAN rule uses the group ---------------------------------------------------------------
  if (failed(obs.rules)) out.push(unreadable('router.lan-rule', 'the filter rules (firewall/filter/search_rule)', obs.rules));
  else {
    const routed = obs.rules.filter((r) => r.enabled !== '0' && (r.action ?? 'pass') === 'pass' && (r.interface ?? '').split(',').includes('lan') && r.gateway === want.name);
    out.push(
      routed.length
        ? ok('router.lan-rule', `the LAN's traffic is routed through ${want.name} (rule "${routed[0]!.description ?? routed[0]!.uuid}")`)
        : bad('router.lan-rule', 'fail', `No enabled LAN rule sends traffic through the gateway group ${want.name}: the LAN follows the default route alone.`, 'Run `dualwan apply` (it routes the LAN default rule through the group).'),
    );
  }

  // --- settings only config.xml has ------------------------------------------------------------------
  const loadBalancing = (group ? (['item', 'item2', 'item3', 'item4', 'item5'] as const).some((k) => sortedList(group![k] ?? '').split(',').filter(Boolean).length > 1) : false) || state.policy.mode === 'loadbalance';
  if (!system) {
    const u = obs.system as Unreadable;
    for (const c of ['router.gateway-switching', 'router.dns-per-gateway', 'router.sticky', 'router.shared-forwarding']) {
      out.push(skip(c, `Could not read config.xml (core/backup/download/this), where OPNsense keeps this setting: ${u.error}`, 'Check that the API key belongs to a user in the admins group (page-all) and that System > Configuration > History lists a backup, then run dualwan doctor again.'));
    }
  } else {
    out.push(
      system.gatewaySwitching
        ? ok('router.gateway-switching', 'default gateway switching is on')
        : bad(
            'router.gateway-switching',
            'fail',
            'Default gateway switching is off: when the preferred line goes down the router itself (DNS resolver, updates, VPNs) keeps using it, and failover/failback state killing acts only on group members.',
            'System > Settings > General: tick "Allow default gateway switching", Save. (No API sets it; the dualwan bootstrap seeds it.)',
          ),
    );

    const dnsProblems: Finding[] = [];
    for (const w of wans) {
      const bound = system.dnsServers.filter((d) => d.gateway === w.gatewayName).map((d) => d.server);
      if (!bound.length) {
        dnsProblems.push(
          bad(
            'router.dns-per-gateway',
            'fail',
            `No DNS server is bound to ${wanLabel(w)}${system.dnsServers.length ? ` (the router's DNS servers: ${system.dnsServers.map((d) => `${d.server} → ${d.gateway ?? 'none'}`).join(', ')})` : ' (the router has no DNS servers of its own)'}: when the other line is down, name lookups through ${w.descr} can fail.`,
            `System > Settings > General: add ${w.wan.dnsServers.length ? w.wan.dnsServers.join(', ') : 'a DNS server for this WAN'} with "Use gateway" ${w.gatewayName}, and one for each other WAN with its gateway; Save.`,
          ),
        );
        continue;
      }
      const missing = w.wan.dnsServers.filter((d) => !bound.includes(d));
      if (missing.length) {
        dnsProblems.push(bad('router.dns-per-gateway', 'warn', `${wanLabel(w)} has DNS ${bound.join(', ')}; dualwan.yaml also lists ${missing.join(', ')} for it.`, `System > Settings > General: add ${missing.join(', ')} with gateway ${w.gatewayName}, or update wans.${w.wan.name}.dnsServers.`));
      }
    }
    out.push(...(dnsProblems.length ? dnsProblems : [ok('router.dns-per-gateway', `each WAN has its DNS server: ${wans.map((w) => `${system.dnsServers.filter((d) => d.gateway === w.gatewayName).map((d) => d.server).join('+')} via ${w.gatewayName}`).join(', ')}`)]));

    // Stickiness: the group's pool option, or the system default when the group leaves it empty.
    const effective = group ? ((group.poolopts ?? '') === '' ? system.stickyConnections : (group.poolopts ?? '').includes('sticky')) : system.stickyConnections;
    if (!loadBalancing) out.push(ok('router.sticky', 'failover: one gateway per tier, connection stickiness does not apply'));
    else if (effective !== state.policy.stickyConnections) {
      out.push(
        bad(
          'router.sticky',
          'warn',
          effective
            ? 'Load balancing keeps each client on one line (sticky), but dualwan.yaml says policy.stickyConnections: false: one busy client cannot use both lines.'
            : 'Load balancing spreads one client\'s connections over both lines (not sticky), but dualwan.yaml says policy.stickyConnections: true: banking and other sites that bind a session to an address log users out.',
          `Run \`dualwan apply\` (it writes the group's pool option); if the group's pool option is "Default", the system setting decides: Firewall > Settings > Advanced, "Sticky connections".`,
        ),
      );
    } else out.push(ok('router.sticky', `load balancing ${effective ? 'keeps each client on one line' : 'spreads each client\'s connections'}, as dualwan.yaml says`));

    if (loadBalancing && system.sharedForwarding) {
      out.push(
        bad(
          'router.shared-forwarding',
          'warn',
          'Shared forwarding is on (the factory setting) while several gateways share a tier: OPNsense\'s multi-WAN guide asks to switch it off for load balancing, or traffic can leave by the wrong line.',
          'Firewall > Settings > Advanced: untick "Shared forwarding", Save, then Firewall > Rules: Apply. (No API sets it.)',
        ),
      );
    } else out.push(ok('router.shared-forwarding', loadBalancing ? 'shared forwarding is off, as load balancing needs' : `failover: shared forwarding is ${system.sharedForwarding ? 'on' : 'off'}, which is fine`));
  }

  // --- topology the router sees: the WANs' gateways and subnets ---------------------------------------
  if (ifaces || gateways) {
    const addrs = wans.map((w) => ({ w, gw: gatewayAddressOf(w, rowOf(w), ifaces), sub: wanSubnetOf(w, ifaces) }));
    const problems: Finding[] = [];
    for (let i = 0; i < addrs.length; i++) {
      for (let j = i + 1; j < addrs.length; j++) {
        const a = addrs[i]!;
        const b = addrs[j]!;
        if (a.gw && a.gw === b.gw) {
          problems.push(
            bad(
              'topology.same-gateway-ip',
              'fail',
              `Both ${a.w.descr} and ${b.w.descr} reach the internet through ${a.gw}: two modems (or a modem and a phone) hand out the same default subnet. OPNsense cannot tell the two gateways apart; routes and monitor probes go out one line only.`,
              `Change the LAN subnet of one upstream device in its own settings (e.g. the modem of ${b.w.wan.name} to 192.168.2.0/24), or put a modem in bridge mode; then renew the lease (Interfaces > Overview > reload ${b.w.identifier}).`,
              T,
            ),
          );
        }
      }
    }
    out.push(...(problems.length ? problems : [ok('topology.same-gateway-ip', `each WAN has its own gateway (${addrs.map((a) => `${a.w.wan.name} ${a.gw ?? '?'}`).join(', ')})`, T)]));

    const lan = parseCidr(state.lan.subnet);
    const overlap: Finding[] = [];
    for (const a of addrs) {
      const n = a.sub ? parseIpv4(a.sub.addr) : undefined;
      if (lan && n !== undefined && rangeContains(lan, n)) {
        overlap.push(
          bad(
            'topology.wan-subnet',
            'fail',
            `${a.w.descr} has the address ${a.sub!.cidr}, inside the LAN ${state.lan.subnet}: the router cannot tell the two networks apart.`,
            `Change the LAN subnet in dualwan.yaml (lan.subnet) or the subnet the upstream device of ${a.w.wan.name} hands out.`,
            T,
          ),
        );
      }
      if (n !== undefined && inCidr('100.64.0.0/10', a.sub!.addr)) {
        overlap.push(
          bad(
            'topology.wan-cgnat',
            'warn',
            `${a.w.descr} has the carrier-grade NAT address ${a.sub!.addr}: connections from the internet cannot reach the home network through it, and its gateway may not answer ping.`,
            `Fine for browsing. For port forwards or a VPN server ask the provider for a public address; keep a far monitor IP for ${a.w.wan.name} (not its gateway).`,
            T,
          ),
        );
      }
    }
    out.push(...overlap);
    if (!overlap.some((f) => f.check === 'topology.wan-subnet')) out.push(ok('topology.wan-subnet', 'no WAN address falls inside the LAN', T));
  }
  return out;
}

export interface OpnsenseDoctorOptions {
  readonly ui: Ui;
  readonly env: NodeJS.ProcessEnv;
  readonly credentialsFile?: string;
  readonly trustOnFirstUse: boolean;
  /** Client timeouts (default: connect 10 s, request 30 s). */
  readonly client?: Pick<OpnsenseClientOptions, 'connectTimeoutMs' | 'requestTimeoutMs'>;
  /** With proxmox.cutover: whether the cutover is done, when the caller knows; default: asked of the host. */
  readonly cutoverDone?: boolean;
}

/**
 * Connects with the pinned certificate and the API key (the only possible write is pinning a
 * certificate seen for the first time, into dualwan.yaml, when allowed), reads, and judges.
 */
export async function doctorOpnsense(state: DesiredState, o: OpnsenseDoctorOptions): Promise<Finding[]> {
  const t = state.opnsense;
  if (!t) return [skip('router.reachable', 'dualwan.yaml names no OPNsense router (opnsense: host, port).', 'Add the opnsense section (the router\'s LAN address and web GUI port).')];
  let where = `${t.host}:${t.port}`;
  let client: OpnsenseClient | undefined;
  let reach: OpnsenseReach | undefined;
  let obs: OpnsenseObservations;
  try {
    const creds = loadCredentials({ env: o.env, file: o.credentialsFile });
    const apiKey = creds.require('DUALWAN_OPNSENSE_API_KEY', `The OPNsense API at ${where}`);
    const apiSecret = creds.require('DUALWAN_OPNSENSE_API_SECRET', `The OPNsense API at ${where}`);
    // before the cutover (proxmox.cutover) through the Proxmox host, else at opnsense.host
    reach = await openOpnsenseReach({ state, ui: o.ui, env: o.env, credentialsFile: o.credentialsFile, trustOnFirstUse: o.trustOnFirstUse }, o.cutoverDone === undefined ? {} : { cutoverDone: o.cutoverDone });
    where = `${reach.where}${reach.text ? ` ${reach.text}` : ''}`;
    const fingerprint = await ensurePinned({
      system: 'OPNsense',
      host: reach.client.host,
      port: reach.client.port,
      ...(reach.via ? { via: reach.via } : {}),
      pinned: t.fingerprint,
      trustOnFirstUse: o.trustOnFirstUse,
      ui: o.ui,
      record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['opnsense', 'fingerprint'] } : undefined,
      compareWith: 'the web GUI certificate in System > Trust > Certificates',
    });
    client = new OpnsenseClient({ ...reach.client, apiKey, apiSecret, fingerprint, requestTimeoutMs: 30_000, ...o.client });
    obs = await observeOpnsense(client, reach.where);
  } catch (e) {
    client?.close();
    await reach?.close();
    return [
      bad(
        'router.reachable',
        'fail',
        `OPNsense at ${where} did not answer dualwan: ${message(e)}`,
        e instanceof DualwanError && e.remedy ? e.remedy : `Check that the router VM runs and that ${where} (the web GUI) answers from this machine.`,
      ),
    ];
  }
  try {
    if (client.writeCalls !== 0) throw new DualwanError('DOCTOR_WROTE', `doctor made ${client.writeCalls} write calls to OPNsense; it must make none.`, { source: 'tool' });
    return [ok('router.reachable', `${obs.product} ${obs.version} at ${where} answers with the pinned certificate and the API key`), ...evaluateOpnsense(state, obs)];
  } finally {
    client.close();
    await reach.close();
  }
}
