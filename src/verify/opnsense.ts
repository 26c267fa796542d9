/**
 * `dualwan verify` for the opnsense-vm backend: the failover drill of scenario.ts run against
 * OPNsense's REST API, with a report as data.
 *
 * Everything goes through endpoints of the 26.7 API: gateway status (`routes/gateway/status`),
 * gateways and the active default (`routing/settings/search_gateway`), the group's tiers with live
 * member status (`routing/group_settings/search`), interface addresses and link
 * (`interfaces/overview/interfaces_info`), ping jobs sourced from a WAN address
 * (`diagnostics/ping/*`), pf states (`diagnostics/firewall/query_states`, `kill_states`), and for
 * the failure itself filter rules (`firewall/filter/*`) or the gateway's `force_down`
 * (`routing/settings/set_gateway` + `reconfigure`). What the API cannot do (a DNS query, asking
 * the outside which address a WAN presents) is reported as skipped, with the reason.
 *
 * Three ways to break the WAN (`--method`):
 * - block: a temporary floating rule drops the ICMP echo requests to the WAN's monitor IP and the
 *   probes' pf state is killed, so dpinger sees its probes vanish while link and line stay up —
 *   the real detection path (dpinger window, thresholds, gateway watcher, group switch);
 * - force-down: the gateway's force_down flag and a routing reconfigure — routing and the group
 *   switch only, no detection;
 * - cable: the user pulls the WAN's cable; the tool measures from the moment the link drops.
 */
import { DualwanError } from '../core/errors';
import type { DesiredState } from '../core/desired';
import type { Ui } from '../core/ui';
import type { OpnsenseClient } from '../providers/opnsense/client';
import { deleteDrillRules, drillRuleDescription, findDrillRules } from '../providers/opnsense/drill';
import { dpingerSettings, TRIGGER_OPTION, type Layout, type WanLayout } from '../providers/opnsense/layout';
import {
  gridSchema,
  GatewayRowSchema,
  GatewayStatusSchema,
  GroupRowSchema,
  InterfaceInfoRowSchema,
  KillStatesSchema,
  PingJobRowSchema,
  PingSetSchema,
  SavedSchema,
  StateRowSchema,
  type GatewayRow,
  type GroupRow,
} from '../providers/opnsense/schemas';
import { DEFAULT_TOLERANCE, excludedBy, expectedFigures, limitOf, type DrillMethod, type ExpectedFigures, type Tolerance } from './expectations';
import { withGuaranteedRestore } from './linux';
import { opnsenseScenario, type OpnsenseStepId, type ScenarioStep } from './scenario';

// ---- the report ---------------------------------------------------------------------------------

export interface StepResult {
  readonly id: OpnsenseStepId;
  readonly title: string;
  readonly expect: string;
  readonly ok: boolean;
  readonly skipped: boolean;
  readonly ms: number;
  readonly detail?: string;
}

export interface DnsCheck {
  readonly wan: string;
  readonly server: string;
  /** the WAN address the probe was sent from */
  readonly via: string | null;
  readonly ok: boolean;
  readonly skipped: boolean;
  readonly detail: string;
}

export interface PublicAddress {
  readonly wan: string;
  /** the WAN interface's own IPv4 address */
  readonly address: string | null;
  /** true: the address the internet sees could not be asked for */
  readonly skipped: boolean;
  readonly detail: string;
}

export interface OpnsenseVerifyReport {
  readonly formatVersion: 1;
  readonly backend: 'opnsense-vm';
  readonly method: DrillMethod;
  /** the WAN broken on purpose (name in dualwan.yaml) and its OPNsense gateway */
  readonly wan: string;
  readonly gateway: string;
  /** the gateways traffic should move to */
  readonly backups: readonly string[];
  readonly profile: string;
  readonly injected: string;
  readonly steps: readonly StepResult[];
  readonly baseline: {
    readonly gateways: readonly { readonly name: string; readonly status: string; readonly monitor: string; readonly loss: string; readonly delay: string }[];
    readonly defaultGateway: string | null;
    readonly activeMembers: readonly string[];
  } | null;
  /** measured, seconds; null = did not happen (or not reached) */
  readonly figures: { readonly detectionS: number | null; readonly failoverS: number | null; readonly failbackS: number | null; readonly outageS: number | null };
  readonly expected: ExpectedFigures & { readonly limits: { readonly detectionS: number; readonly failoverS: number; readonly failbackS: number }; readonly tolerance: Tolerance };
  readonly dns: readonly DnsCheck[];
  readonly publicAddress: readonly PublicAddress[];
  readonly meteredFlows: { readonly wans: readonly string[]; readonly count: number; readonly sample: readonly string[] } | null;
  readonly restored: boolean;
  readonly interrupted: boolean;
  readonly behaved: boolean;
  readonly problems: readonly string[];
}

// ---- what the drill reads -----------------------------------------------------------------------

interface Snapshot {
  readonly at: number;
  readonly status: ReadonlyMap<string, { status: string; translated: string; monitor: string; loss: string; delay: string }>;
  readonly gateways: readonly GatewayRow[];
  readonly defaultGateway: string | null;
  readonly group: GroupRow | undefined;
  readonly tiers: readonly (readonly string[])[];
  /** members of the tier in use, as OPNsense picks it: the lowest tier with a member up under the trigger */
  readonly active: readonly string[];
}

const TIER_KEYS = ['item', 'item2', 'item3', 'item4', 'item5'] as const;

/** Reads what the drill watches, through the API. */
export class OpnsenseDrillView {
  constructor(
    private readonly client: OpnsenseClient,
    private readonly groupName: string,
    private readonly now: () => number,
  ) {}

  async snapshot(): Promise<Snapshot> {
    const at = this.now();
    const [st, gws, groups] = await Promise.all([
      this.client.get('routes/gateway/status', GatewayStatusSchema),
      this.client.search('routing/settings/search_gateway', GatewayRowSchema, { rowCount: 9999 }),
      this.client.search('routing/group_settings/search', GroupRowSchema),
    ]);
    const status = new Map(st.items.map((i) => [i.name, { status: i.status, translated: i.status_translated, monitor: i.monitor ?? '~', loss: i.loss, delay: i.delay }]));
    const group = groups.rows.find((g) => g.name === this.groupName);
    const tiers = group ? TIER_KEYS.map((k) => String(group[k] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) : [];
    const trigger = String(group?.trigger ?? 'down') || 'down';
    const up = (name: string) => {
      const s = status.get(name);
      return !!s && !excludedBy(trigger, s.status);
    };
    const inUse = tiers.find((t) => t.some(up));
    const active = inUse ? inUse.filter(up) : [];
    return { at, status, gateways: gws.rows, defaultGateway: gws.rows.find((r) => r.defaultgw)?.name ?? null, group, tiers, active };
  }

  async interfaces() {
    return (await this.client.get('interfaces/overview/interfaces_info', gridSchema(InterfaceInfoRowSchema))).rows;
  }
}

// ---- ways to break the WAN ----------------------------------------------------------------------

interface Breaker {
  readonly describe: string;
  /** What induce did, in a few words (the step's detail). */
  readonly did: string;
  /** Breaks the WAN; resolves with the time the outage starts. */
  induce(): Promise<number>;
  /** Ends the outage; resolves with the time it ended. */
  restore(): Promise<number>;
  /** The guaranteed restore (end, failure, signal): idempotent, quiet. */
  ensureRestored(): Promise<string>;
}

interface DrillEnv {
  readonly client: OpnsenseClient;
  readonly ui: Ui;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly pollMs: number;
  readonly target: WanLayout;
  readonly monitor: string;
  readonly gatewayUuid: string;
  /** wall-clock ms after which a leftover rule is stale */
  readonly expiresAt: number;
  readonly cableWaitMs: number;
  readonly view: OpnsenseDrillView;
}

function blockBreaker(e: DrillEnv): Breaker {
  let uuid: string | undefined;
  let active = false;
  const description = drillRuleDescription({ gateway: e.target.gatewayName, monitor: e.monitor, expiresAt: e.expiresAt });
  const remove = async () => {
    if (!active) return;
    const rules = uuid ? [{ uuid, description, expiresAt: e.expiresAt }] : (await findDrillRules(e.client)).filter((r) => r.description === description);
    await deleteDrillRules(e.client, rules);
    active = false;
  };
  return {
    describe: `a temporary floating rule blocks ICMP echo requests to ${e.monitor} (${e.target.gatewayName}'s monitor IP), so its probes go unanswered while link and line stay up; rule "${description}"`,
    did: `rule stored and loaded, the probes' pf state to ${e.monitor} killed`,
    async induce() {
      active = true; // from here on, restore looks for the rule even if the add is not answered
      const saved = await e.client.write(
        'firewall/filter/add_rule',
        {
          rule: {
            enabled: '1',
            action: 'block',
            quick: '1',
            interface: '',
            direction: 'out',
            ipprotocol: 'inet',
            protocol: 'ICMP',
            icmptype: 'echoreq',
            source_net: 'any',
            destination_net: e.monitor,
            log: '0',
            sequence: '1',
            description,
          },
        },
        { verb: 'create', resource: 'firewall rule', name: 'verify block' },
        SavedSchema,
      );
      uuid = saved.uuid;
      await e.client.action('firewall/filter/apply', undefined, /^ok$/i);
      // dpinger's echo requests ride one pf state: without killing it they would still pass
      await e.client.write('diagnostics/firewall/kill_states', { filter: e.monitor }, { verb: 'kill', resource: 'states to', name: e.monitor }, KillStatesSchema);
      return e.now();
    },
    async restore() {
      await remove();
      return e.now();
    },
    async ensureRestored() {
      if (!active) return 'nothing to restore';
      await remove();
      return `removed the temporary rule and reloaded the filter`;
    },
  };
}

function forceDownBreaker(e: DrillEnv): Breaker {
  let active = false;
  const set = async (v: '0' | '1') => {
    await e.client.write(`routing/settings/set_gateway/${encodeURIComponent(e.gatewayUuid)}`, { gateway_item: { force_down: v } }, { verb: 'update', resource: 'gateway', name: e.target.gatewayName }, SavedSchema);
    await e.client.action('routing/settings/reconfigure');
  };
  return {
    describe: `${e.target.gatewayName} marked down with force_down and routing reconfigured (exercises routing and the group switch, not detection)`,
    did: 'force_down on, routing reconfigured',
    async induce() {
      active = true;
      await set('1');
      return e.now();
    },
    async restore() {
      await set('0');
      active = false;
      return e.now();
    },
    async ensureRestored() {
      if (!active) return 'nothing to restore';
      await set('0');
      active = false;
      return `cleared force_down on ${e.target.gatewayName} and reconfigured routing`;
    },
  };
}

function cableBreaker(e: DrillEnv): Breaker {
  let pulled = false;
  const link = async (): Promise<boolean | undefined> => {
    const row = (await e.view.interfaces()).find((r) => r.identifier === e.target.identifier);
    return row ? String(row.status ?? '').toLowerCase() === 'up' : undefined;
  };
  const waitFor = async (up: boolean): Promise<number> => {
    const deadline = e.now() + e.cableWaitMs;
    for (let i = 0; i < 100_000 && e.now() < deadline; i++) {
      if ((await link()) === up) return e.now();
      await e.sleep(e.pollMs);
    }
    throw new DualwanError('VERIFY_CABLE_TIMEOUT', `The link of WAN ${e.target.wan.name} (${e.target.identifier}) did not go ${up ? 'up' : 'down'} within ${Math.round(e.cableWaitMs / 1000)} s.`, {
      source: 'user',
      remedy: up ? 'Plug the cable back in and check the link LEDs.' : 'Pull the cable between the router and the modem of this WAN (not the modem’s line), or use --method block.',
    });
  };
  return {
    describe: `you pull the cable of WAN ${e.target.wan.name} (${e.target.identifier}); the drill measures from the moment its link drops`,
    did: 'the link dropped',
    async induce() {
      e.ui.notify({ code: 'VERIFY_PULL_CABLE', level: 'warn', text: `Pull the network cable of WAN ${e.target.wan.name} (OPNsense ${e.target.identifier}) now. Waiting up to ${Math.round(e.cableWaitMs / 1000)} s for its link to drop.` });
      const t = await waitFor(false);
      pulled = true;
      return t;
    },
    async restore() {
      e.ui.notify({ code: 'VERIFY_PLUG_CABLE', level: 'warn', text: `Plug the cable of WAN ${e.target.wan.name} (OPNsense ${e.target.identifier}) back in now.` });
      const t = await waitFor(true);
      pulled = false;
      return t;
    },
    async ensureRestored() {
      if (!pulled) return 'nothing to restore';
      e.ui.notify({ code: 'VERIFY_PLUG_CABLE', level: 'warn', text: `Plug the cable of WAN ${e.target.wan.name} back in: the drill stopped with it pulled.` });
      return 'asked you to plug the cable back in';
    },
  };
}

// ---- the runner ---------------------------------------------------------------------------------

export interface OpnsenseVerifyDeps {
  readonly client: OpnsenseClient;
  readonly state: DesiredState;
  readonly layout: Layout;
  readonly ui: Ui;
  readonly method: DrillMethod;
  /** the WAN to break (default: the first) */
  readonly wan?: string;
  /** how long to stay on the backup after the failover (default 5 s) */
  readonly holdMs?: number;
  readonly tolerance?: Tolerance;
  /** poll interval of the API while measuring (default 500 ms) */
  readonly pollMs?: number;
  /** how long the user has to pull or plug the cable (default 180 s) */
  readonly cableWaitMs?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** called as each step starts */
  readonly onStep?: (id: OpnsenseStepId) => void;
  readonly signals?: readonly NodeJS.Signals[];
  readonly processLike?: Pick<NodeJS.Process, 'once' | 'removeListener' | 'kill' | 'pid' | 'listenerCount'>;
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const secs = (ms: number) => Math.round(ms / 100) / 10;
const ipOf = (cidr: string | undefined) => (cidr ? cidr.split('/')[0]! : '');

function toInt(a: string): number {
  return a.split('.').reduce((n, p) => n * 256 + Number(p), 0) >>> 0;
}
function inSubnet(addr: string, cidr: string): boolean {
  const [base, p] = cidr.split('/');
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(addr) || !base) return false;
  const prefix = Number(p ?? 32);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return (toInt(addr) & mask) === (toInt(base) & mask);
}
function addressKind(addr: string): string | undefined {
  if (['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].some((n) => inSubnet(addr, n))) return 'a private address: the internet sees the modem’s or the phone’s public address';
  if (inSubnet(addr, '100.64.0.0/10')) return 'a carrier-grade NAT address: the internet sees the carrier’s address, shared with others';
  return undefined;
}

export async function runOpnsenseVerify(deps: OpnsenseVerifyDeps): Promise<OpnsenseVerifyReport> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? realSleep;
  const pollMs = deps.pollMs ?? 500;
  const holdMs = deps.holdMs ?? 5_000;
  const tolerance = deps.tolerance ?? DEFAULT_TOLERANCE;
  const { client, state, layout, ui } = deps;
  const log = (text: string, level: 'info' | 'warn' = 'info') => ui.notify({ code: 'VERIFY_STEP', level, text });

  const target = layout.wans.find((w) => w.wan.name === (deps.wan ?? layout.wans[0]?.wan.name));
  if (!target) throw new DualwanError('VERIFY_WAN_UNKNOWN', `No WAN named ${String(deps.wan)} in dualwan.yaml.`, { source: 'user', remedy: `Use one of: ${layout.wans.map((w) => w.wan.name).join(', ')}.` });
  const others = layout.wans.filter((w) => w !== target);
  const trigger = TRIGGER_OPTION[state.policy.trigger];
  const dp = dpingerSettings(state.policy.monitor, target.wan);
  let expected = expectedFigures(deps.method, dp, trigger);
  const scenario = opnsenseScenario({
    method: deps.method,
    wan: target.wan.name,
    gateway: target.gatewayName,
    backups: others.map((w) => w.gatewayName),
    expected,
    tolerance,
    holdMs,
    cableWaitMs: deps.cableWaitMs,
  });
  const view = new OpnsenseDrillView(client, layout.groupName, now);
  const monitor = target.wan.monitorIps[0] ?? '';
  // the rule's expiry: the whole drill's bound, plus a margin; wall clock (read by later runs)
  const boundMs = scenario.reduce((n, s) => n + s.timeoutMs, 0) + 300_000;

  const steps: StepResult[] = [];
  const problems: string[] = [];
  const dns: DnsCheck[] = [];
  const publicAddress: PublicAddress[] = [];
  let baseline: OpnsenseVerifyReport['baseline'] = null;
  let meteredFlows: OpnsenseVerifyReport['meteredFlows'] = null;
  const figures = { detectionS: null as number | null, failoverS: null as number | null, failbackS: null as number | null, outageS: null as number | null };
  let breaker: Breaker | undefined;
  let induced = false;
  let restored = false;
  let interrupted = false;
  let baseDefault: string | null = null;
  let t0 = 0;
  let tRestore = 0;
  let failoverAt: number | undefined;

  const limit = (id: OpnsenseStepId) => scenario.find((s) => s.id === id)?.limitS;
  const stepOf = (id: OpnsenseStepId): ScenarioStep => scenario.find((s) => s.id === id)!;

  /** Polls snapshots until `done` says so or the bound passes; returns the snapshot that satisfied it. */
  const watch = async (boundMs: number, done: (s: Snapshot) => boolean, each?: (s: Snapshot) => void): Promise<Snapshot | undefined> => {
    const deadline = now() + boundMs;
    for (let i = 0; i < 100_000; i++) {
      const s = await view.snapshot();
      each?.(s);
      if (done(s)) return s;
      if (now() >= deadline) return undefined;
      await sleep(pollMs);
    }
    return undefined;
  };
  const isOut = (s: Snapshot) => s.active.length > 0 && !s.active.includes(target.gatewayName) && (baseDefault !== target.gatewayName || s.defaultGateway !== target.gatewayName);
  const isBack = (s: Snapshot) => s.status.get(target.gatewayName)?.status === 'none' && s.active.includes(target.gatewayName) && (baseDefault !== target.gatewayName || s.defaultGateway === target.gatewayName);

  type Outcome = { ok: boolean; detail?: string; skipped?: boolean };
  const impl: Record<OpnsenseStepId, () => Promise<Outcome>> = {
    async cleanup() {
      const notes: string[] = [];
      const left = await findDrillRules(client);
      if (left.length) {
        await deleteDrillRules(client, left);
        const text = `Removed ${left.length} temporary rule(s) left by an earlier drill that could not clean up: ${left.map((r) => `"${r.description}"`).join(', ')}.`;
        ui.notify({ code: 'VERIFY_LEFTOVER_RULE_REMOVED', level: 'warn', text });
        notes.push(`removed ${left.length} leftover rule(s)`);
      }
      const rows = (await client.search('routing/settings/search_gateway', GatewayRowSchema, { rowCount: 9999 })).rows;
      const forced = rows.filter((r) => layout.wans.some((w) => w.gatewayName === r.name) && r.force_down === '1' && r.uuid && !r.virtual);
      for (const r of forced) {
        await client.write(`routing/settings/set_gateway/${encodeURIComponent(r.uuid!)}`, { gateway_item: { force_down: '0' } }, { verb: 'update', resource: 'gateway', name: r.name }, SavedSchema);
      }
      if (forced.length) {
        await client.action('routing/settings/reconfigure');
        const text = `Cleared force_down on ${forced.map((r) => r.name).join(', ')} (left by an interrupted force-down drill, or set by hand; dualwan.yaml keeps it off) and reconfigured routing.`;
        ui.notify({ code: 'VERIFY_FORCE_DOWN_RESET', level: 'warn', text });
        notes.push(`cleared force_down on ${forced.map((r) => r.name).join(', ')}`);
      }
      if (notes.length) {
        // the gateways need their dpinger window to recover before a baseline means anything
        const started = now();
        const bound = Math.round(limitOf(expectedFigures('block', dp, trigger).failbackS, tolerance) * 1000) + 30_000;
        const ok = await watch(bound, (x) => layout.wans.every((w) => x.status.get(w.gatewayName)?.status === 'none'));
        notes.push(ok ? `waited ${secs(now() - started)} s for the gateways to recover` : `the gateways did not all recover within ${secs(bound)} s`);
      }
      return { ok: true, detail: notes.join('; ') || 'nothing left by earlier drills' };
    },

    async baseline() {
      const s = await view.snapshot();
      const row = s.gateways.find((r) => r.name === target.gatewayName);
      baseDefault = s.defaultGateway;
      baseline = {
        gateways: layout.wans.map((w) => {
          const x = s.status.get(w.gatewayName);
          return { name: w.gatewayName, status: x?.translated ?? 'not running', monitor: x?.monitor ?? '~', loss: x?.loss ?? '~', delay: x?.delay ?? '~' };
        }),
        defaultGateway: s.defaultGateway,
        activeMembers: s.active,
      };
      const bad: string[] = [];
      const mine = s.status.get(target.gatewayName);
      if (!row || row.virtual || !row.uuid) bad.push(`${target.gatewayName} is not stored on OPNsense (monitoring is off on a gateway derived from DHCP): run dualwan apply first`);
      else if (row.monitor_disable === '1' || !mine || mine.monitor === '~') bad.push(`monitoring is off on ${target.gatewayName}: OPNsense never marks it down, so nothing fails over (dualwan apply switches it on)`);
      else if (mine.status !== 'none') bad.push(`${target.gatewayName} is ${mine.translated} before the drill (loss ${mine.loss}, delay ${mine.delay})`);
      if (deps.method !== 'force-down' && row && row.monitor && monitor && row.monitor !== monitor) bad.push(`${target.gatewayName} monitors ${row.monitor}, dualwan.yaml says ${monitor}: run dualwan apply first`);
      if (!s.group) bad.push(`there is no gateway group ${layout.groupName}: run dualwan apply first`);
      else {
        const members = s.tiers.flat();
        if (!members.includes(target.gatewayName)) bad.push(`the gateway group ${layout.groupName} does not contain ${target.gatewayName}`);
        const backups = others.map((w) => w.gatewayName).filter((n) => members.includes(n));
        if (!backups.length) bad.push(`the gateway group ${layout.groupName} has no member besides ${target.gatewayName} (${others.map((w) => w.gatewayName).join(', ')} missing): nothing to fail over to`);
        else if (!backups.some((n) => s.status.get(n)?.status === 'none')) bad.push(`no backup gateway is Online (${backups.map((n) => `${n}: ${s.status.get(n)?.translated ?? 'not running'}`).join(', ')}): the drill would cut the internet`);
        if (!bad.length && !s.active.includes(target.gatewayName)) bad.push(`${target.gatewayName} does not carry the traffic now (the group uses ${s.active.join(', ') || 'nothing'})`);
      }
      const detail = `${layout.wans.map((w) => `${w.gatewayName} ${s.status.get(w.gatewayName)?.translated ?? 'not running'}`).join(', ')}; traffic via ${s.active.join(', ') || '—'}; default route via ${s.defaultGateway ?? '—'}`;
      return bad.length ? { ok: false, detail: bad.join('; ') } : { ok: true, detail };
    },

    async dns() {
      const ifs = await view.interfaces();
      const jobs: { wan: string; server: string; via: string; id: string }[] = [];
      try {
        for (const w of layout.wans) {
          const via = ipOf(ifs.find((r) => r.identifier === w.identifier)?.addr4);
          if (!w.wan.dnsServers.length) {
            dns.push({ wan: w.wan.name, server: '—', via: via || null, ok: true, skipped: true, detail: 'no dnsServers for this WAN in dualwan.yaml' });
            continue;
          }
          for (const server of w.wan.dnsServers) {
            if (!via) {
              dns.push({ wan: w.wan.name, server, via: null, ok: false, skipped: false, detail: `WAN ${w.wan.name} (${w.identifier}) has no IPv4 address` });
              continue;
            }
            const set = await client.write('diagnostics/ping/set', { ping: { settings: { hostname: server, fam: 'ip', source_address: via, interval: '1', description: `dualwan verify: ${server} via ${w.wan.name}` } } }, { verb: 'create', resource: 'ping job', name: server }, PingSetSchema);
            jobs.push({ wan: w.wan.name, server, via, id: set.uuid });
            await client.action(`diagnostics/ping/start/${encodeURIComponent(set.uuid)}`);
          }
        }
        if (jobs.length) {
          await sleep(3_000);
          const rows = (await client.search('diagnostics/ping/search_jobs', PingJobRowSchema)).rows;
          for (const j of jobs) {
            const r = rows.find((x) => x.id === j.id);
            const got = r?.received ?? 0;
            dns.push({
              wan: j.wan,
              server: j.server,
              via: j.via,
              ok: got > 0,
              skipped: false,
              detail: `${got}/${r?.send ?? 0} echo replies from ${j.server} sourced from ${j.via}; the API has no DNS lookup, so the query itself is not tested`,
            });
          }
        }
      } finally {
        for (const j of jobs) {
          await client.action(`diagnostics/ping/stop/${encodeURIComponent(j.id)}`).catch(() => undefined);
          await client.action(`diagnostics/ping/remove/${encodeURIComponent(j.id)}`).catch(() => undefined);
        }
      }
      const failed = dns.filter((d) => !d.ok && !d.skipped);
      return { ok: failed.length === 0, detail: dns.map((d) => `${d.wan} → ${d.server}: ${d.skipped ? 'skipped' : d.ok ? 'answers' : 'NO ANSWER'}`).join('; ') };
    },

    async 'public-address'() {
      const ifs = await view.interfaces();
      for (const w of layout.wans) {
        const addr = ipOf(ifs.find((r) => r.identifier === w.identifier)?.addr4) || null;
        const kind = addr ? addressKind(addr) : undefined;
        publicAddress.push({
          wan: w.wan.name,
          address: addr,
          skipped: true,
          detail: `${addr ? `${addr} on the interface${kind ? `, ${kind}` : ', a public address'}` : 'no IPv4 address'}; the 26.7 API cannot ask an outside service which address it sees`,
        });
      }
      return { ok: true, skipped: true, detail: publicAddress.map((p) => `${p.wan}: ${p.address ?? '—'}`).join('; ') };
    },

    async induce() {
      const rows = (await client.search('routing/settings/search_gateway', GatewayRowSchema, { rowCount: 9999 })).rows;
      const gw = rows.find((r) => r.name === target.gatewayName);
      breaker = makeBreaker({ client, ui, now, sleep, pollMs, target, monitor: gw?.monitor || monitor, gatewayUuid: gw?.uuid ?? target.gatewayName, expiresAt: Date.now() + boundMs, cableWaitMs: deps.cableWaitMs ?? 180_000, view });
      induced = true;
      t0 = await breaker.induce();
      return { ok: true, detail: breaker.did };
    },

    async detect() {
      const bound = stepOf('detect').timeoutMs;
      const seen = await watch(
        bound,
        (s) => ['down', 'force_down'].includes(s.status.get(target.gatewayName)?.status ?? ''),
        (s) => {
          if (failoverAt === undefined && isOut(s)) failoverAt = s.at;
        },
      );
      if (!seen) return { ok: false, detail: `${target.gatewayName} was not marked Offline within ${secs(bound)} s` };
      figures.detectionS = secs(seen.at - t0);
      const lim = limit('detect')!;
      if (figures.detectionS > lim) return { ok: false, detail: `${figures.detectionS} s, slower than ${lim} s (expected ${expected.detectionS} s × ${tolerance.factor} + ${tolerance.slackS} s)` };
      return { ok: true, detail: `${figures.detectionS} s (${seen.status.get(target.gatewayName)?.translated})` };
    },

    async failover() {
      const bound = stepOf('failover').timeoutMs;
      if (failoverAt === undefined) {
        const seen = await watch(Math.max(0, t0 + bound - now()), isOut);
        if (seen) failoverAt = seen.at;
      }
      if (failoverAt === undefined) {
        const s = await view.snapshot();
        const why = s.active.includes(target.gatewayName) ? `the group still uses ${target.gatewayName}` : s.active.length === 0 ? 'no gateway of the group is usable' : `the default route stays on ${s.defaultGateway ?? '—'}`;
        return { ok: false, detail: `no failover within ${secs(bound)} s: ${why}` };
      }
      figures.failoverS = secs(failoverAt - t0);
      const lim = limit('failover')!;
      if (figures.failoverS > lim) return { ok: false, detail: `${figures.failoverS} s, slower than ${lim} s (expected ${expected.failoverS} s)` };
      return { ok: true, detail: `${figures.failoverS} s` };
    },

    async hold() {
      await sleep(holdMs);
      return { ok: true };
    },

    async restore() {
      if (!breaker) return { ok: true, skipped: true, detail: 'nothing was broken' };
      tRestore = await breaker.restore();
      restored = true;
      figures.outageS = secs(tRestore - t0);
      if (deps.method !== 'force-down') expected = expectedFigures(deps.method, dp, trigger, (tRestore - t0) / 1000);
      return { ok: true, detail: `after an outage of ${figures.outageS} s` };
    },

    async failback() {
      const lim = limitOf(expected.failbackS, tolerance);
      const bound = Math.round(Math.max(lim * 2, lim + 30) * 1000);
      const seen = await watch(bound, isBack);
      if (!seen) {
        const s = await view.snapshot();
        return { ok: false, detail: `${target.gatewayName} did not carry the traffic again within ${secs(bound)} s (${s.status.get(target.gatewayName)?.translated ?? 'not running'}; group uses ${s.active.join(', ') || '—'}; default via ${s.defaultGateway ?? '—'})` };
      }
      figures.failbackS = secs(seen.at - tRestore);
      if (figures.failbackS > lim) return { ok: false, detail: `${figures.failbackS} s, slower than ${lim} s (expected ${expected.failbackS} s)` };
      return { ok: true, detail: `${figures.failbackS} s after the restore` };
    },

    async flows() {
      const metered = others.filter((w) => w.wan.metered);
      const watched = metered.length ? metered : others;
      const ifs = await view.interfaces();
      await sleep(2_000); // the failback alarm kills the metered WAN's states (Failback States)
      let count = 0;
      const sample: string[] = [];
      for (const w of watched) {
        const addr = ipOf(ifs.find((r) => r.identifier === w.identifier)?.addr4);
        const rows = (await client.postRead('diagnostics/firewall/query_states', { current: 1, rowCount: 9999, searchPhrase: addr || w.gatewayName }, gridSchema(StateRowSchema))).rows;
        const lanFlows = rows.filter((r) => inSubnet(r.src_addr, state.lan.subnet) && (r.gateway === w.gatewayName || (!!addr && r.nat_addr === addr)));
        count += lanFlows.length;
        for (const r of lanFlows.slice(0, 3 - sample.length)) sample.push(`${r.src_addr} → ${r.dst_addr}:${r.dst_port ?? ''} via ${w.gatewayName}`);
      }
      meteredFlows = { wans: watched.map((w) => w.wan.name), count, sample };
      if (count === 0) return { ok: true, detail: `none through ${watched.map((w) => w.gatewayName).join(', ')}` };
      const remedy = state.policy.killMeteredStatesOnFailback ? 'check Failback States (monitor_killstates_priority) on the metered gateway' : 'set policy.killMeteredStatesOnFailback: true and run dualwan apply';
      return { ok: false, detail: `${count} LAN connection(s) still leave through ${watched.map((w) => w.gatewayName).join(', ')} after the failback (${sample.join('; ')}): ${remedy}` };
    },
  };

  function makeBreaker(e: DrillEnv): Breaker {
    return deps.method === 'block' ? blockBreaker(e) : deps.method === 'force-down' ? forceDownBreaker(e) : cableBreaker(e);
  }

  let halted: string | undefined;
  const runStep = async (step: ScenarioStep) => {
    if (halted && step.id !== 'restore') {
      steps.push({ id: step.id, title: step.title, expect: step.expect, ok: false, skipped: true, ms: 0, detail: `not run: ${halted}` });
      return;
    }
    if (step.id === 'restore' && (!induced || restored)) {
      steps.push({ id: step.id, title: step.title, expect: step.expect, ok: true, skipped: true, ms: 0, detail: induced ? 'already restored' : 'nothing was broken' });
      return;
    }
    deps.onStep?.(step.id);
    const started = now();
    let out: Outcome;
    try {
      out = await impl[step.id]();
    } catch (err) {
      if (!(err instanceof DualwanError) || step.id !== 'induce' || deps.method !== 'cable') throw err;
      out = { ok: false, detail: err.message };
    }
    const ms = now() - started;
    steps.push({ id: step.id, title: step.title, expect: step.expect, ok: out.ok, skipped: !!out.skipped, ms, ...(out.detail ? { detail: out.detail } : {}) });
    log(`${out.skipped ? 'skip' : out.ok ? 'ok  ' : 'FAIL'} ${step.title}${out.detail ? `: ${out.detail}` : ''}`, out.ok ? 'info' : 'warn');
    if (!out.ok) {
      problems.push(`${step.title}: ${out.detail ?? 'failed'}`);
      if (step.stopOnFailure) halted = `${step.id} failed`;
    }
  };

  await withGuaranteedRestore(
    async () => {
      if (!breaker || restored) return;
      const what = await breaker.ensureRestored();
      restored = true;
      log(`restored: ${what}`);
    },
    async (markRestored) => {
      for (const step of scenario) {
        await runStep(step);
        if (restored) markRestored();
      }
    },
    {
      signals: deps.signals,
      processLike: deps.processLike,
      onInterrupt: (s) => {
        interrupted = true;
        log(`${s}: stopping the drill; restoring ${target.wan.name} first`, 'warn');
      },
    },
  );

  if (interrupted) problems.push('interrupted; the WAN was restored');
  const measuredAll = figures.detectionS !== null && figures.failoverS !== null && figures.failbackS !== null;
  const behaved = problems.length === 0 && measuredAll && (restored || !induced);
  const limits = { detectionS: limitOf(expected.detectionS, tolerance), failoverS: limitOf(expected.failoverS, tolerance), failbackS: limitOf(expected.failbackS, tolerance) };
  return {
    formatVersion: 1,
    backend: 'opnsense-vm',
    method: deps.method,
    wan: target.wan.name,
    gateway: target.gatewayName,
    backups: others.map((w) => w.gatewayName),
    profile: state.policy.monitor.name,
    injected: breaker?.describe ?? 'nothing (the drill stopped before breaking the WAN)',
    steps,
    baseline,
    figures,
    expected: { ...expected, limits, tolerance },
    dns,
    publicAddress,
    meteredFlows,
    restored: restored || !induced,
    interrupted,
    behaved,
    problems,
  };
}

// ---- text ---------------------------------------------------------------------------------------

export function renderOpnsenseVerifyReport(r: OpnsenseVerifyReport): string {
  const f = (v: number | null) => (v === null ? '—' : `${v.toFixed(1)} s`);
  const pad = (s: string, n: number) => s + ' '.repeat(Math.max(0, n - s.length));
  const row = (label: string, got: number | null, exp: number, lim: number) => `  ${pad(label, 11)} ${pad(f(got), 8)} expected ${pad(Number.isNaN(exp) ? '—' : `${exp.toFixed(1)} s`, 7)} limit ${lim.toFixed(1)} s`;
  const lines = [
    `Failover drill on WAN ${r.wan} (${r.gateway}), method ${r.method}, monitor profile ${r.profile}`,
    `  ${r.injected}`,
    '',
    ...r.steps.map((s) => `  ${s.skipped ? '–' : s.ok ? '✓' : '✗'} ${s.title}${s.detail ? ` — ${s.detail}` : ''}`),
    '',
    row('detection', r.figures.detectionS, r.expected.detectionS, r.expected.limits.detectionS),
    row('failover', r.figures.failoverS, r.expected.failoverS, r.expected.limits.failoverS),
    row('failback', r.figures.failbackS, r.expected.failbackS, r.expected.limits.failbackS),
    `  ${pad('outage', 11)} ${f(r.figures.outageS)}`,
    `  expected from: ${r.expected.basis}; limit = expected × ${r.expected.tolerance.factor} + ${r.expected.tolerance.slackS} s`,
    ...r.dns.map((d) => `  DNS ${pad(d.wan, 9)} ${pad(d.server, 16)} ${d.skipped ? 'skipped' : d.ok ? 'answers' : 'NO ANSWER'} — ${d.detail}`),
    ...r.publicAddress.map((p) => `  address ${pad(p.wan, 9)} ${pad(p.address ?? '—', 16)} ${p.skipped ? 'public address not checked' : ''} — ${p.detail}`),
    `  flows left on ${r.meteredFlows ? r.meteredFlows.wans.join(', ') : 'the metered WAN'}: ${r.meteredFlows ? r.meteredFlows.count : '—'}   (expected 0)`,
    `  restored    ${r.restored ? 'yes' : 'NO — check the router'}`,
    '',
    r.behaved ? 'Failover behaved.' : `Failover did not behave:\n${r.problems.map((p) => `  - ${p}`).join('\n')}`,
  ];
  return lines.join('\n');
}
