// Endpoint behaviour of the OPNsense double (see BEHAVIOR.md). Each handler gets the routed
// request and answers like the 26.7.2 controller: saved/failed/deleted envelopes, option maps on
// GET, grids on search, {"status":"ok"} from reconfigure and configd's raw "OK\n\n" from apply.
import { isIP } from 'node:net';
import type { EndpointSpec, ModelSpec } from './data';
import { BODY_MODELS, modelOf, underRoot } from './catalogue';
import { defaultsOf, itemErrors, type FieldEnv } from './fields';
import { configXml, DPINGER_FIELDS, STATUS_TEXT, type GatewayView, type Item, type PfState, type RouterState } from './state';

export interface Req {
  readonly method: string;
  readonly params: string[];
  readonly body: Record<string, unknown>;
  readonly query: URLSearchParams;
  readonly state: RouterState;
  readonly version: string;
  readonly endpoint: EndpointSpec;
}

export interface Res {
  readonly status?: number;
  readonly body?: unknown;
  /** true when the request changed something (counted by the double's writeCount) */
  readonly write?: boolean;
  readonly raw?: { readonly contentType: string; readonly text: string; readonly headers?: Record<string, string> };
}

/** OPNsense's UserException: HTTP 500 {errorMessage, errorTitle, errorLevel}. */
export class UserException extends Error {
  constructor(message: string, readonly title = '') {
    super(message);
  }
}
/** A JSON array/object where a scalar field is expected (26.7: a 500). */
export class InputTypeError extends Error {}

type Handler = (r: Req) => Res;

const FAILED = { result: 'failed' };
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function envOf(s: RouterState): FieldEnv {
  return {
    interfaces: (filters) => s.identifiers(filters),
    configdOptions: (action) => (action === 'interface gateways list -g' ? s.gatewayList(true) : action.startsWith('interface gateways list') ? s.gatewayList(false) : []),
    devices: () => s.devices,
    aliases: () => s.aliases,
  };
}

/** setNodes(): posted leaves become strings (true → "1", false → ""); unknown keys are ignored. */
function posted(model: ModelSpec, obj: Record<string, unknown>): Item {
  const out: Item = {};
  for (const [k, v] of Object.entries(obj)) {
    const spec = model.fields[k];
    if (!spec || spec.volatile || spec.container) continue;
    if (v !== null && typeof v === 'object') throw new InputTypeError(`Invalid input type for ${k}: expected a single value`);
    out[k] = v === true ? '1' : v === false || v === null ? '' : String(v);
    if (spec.type === 'ProtocolField' && out[k] !== 'any') out[k] = out[k]!.toUpperCase();
  }
  return out;
}

function failedWith(root: string, errors: Record<string, string>): Res {
  return { body: { result: 'failed', validations: Object.fromEntries(Object.entries(errors).map(([k, v]) => [`${root}.${k}`, v])) } };
}

/** Search grids. Recordset grids (hand-built) read POST only and default rowCount to 9999. */
function grid(r: Req, rows: Record<string, unknown>[], recordset: boolean): Res {
  const src: Record<string, unknown> = r.method === 'POST' ? r.body : recordset ? {} : Object.fromEntries(r.query.entries());
  const current = Math.max(1, Number(src.current ?? 1) || 1);
  let rowCount = Number(src.rowCount ?? (recordset ? 9999 : -1));
  if (!Number.isFinite(rowCount)) rowCount = recordset ? 9999 : -1;
  const phrase = String(src.searchPhrase ?? '').toLowerCase();
  let list = phrase ? rows.filter((row) => Object.values(row).some((v) => typeof v === 'string' && v.toLowerCase().includes(phrase))) : rows;
  const sort = r.method === 'POST' && src.sort && typeof src.sort === 'object' ? Object.entries(src.sort as Record<string, string>)[0] : undefined;
  if (sort) {
    const [f, dir] = sort;
    list = [...list].sort((a, b) => String(a[f] ?? '').localeCompare(String(b[f] ?? '')) * (dir === 'desc' ? -1 : 1));
  }
  const page = rowCount < 0 ? list : list.slice((current - 1) * rowCount, current * rowCount);
  return { body: { total: list.length, rowCount: page.length, current, rows: page } };
}

/** UIModelGrid (25.7+): raw values plus "%field" display text where it differs. */
function uiRow(model: ModelSpec, uuid: string, item: Item): Record<string, unknown> {
  const row: Record<string, unknown> = { uuid };
  for (const [k, spec] of Object.entries(model.fields)) {
    if (spec.container) continue;
    const v = item[k] ?? spec.default ?? '';
    row[k] = v;
    const opts = { ...(spec.options ?? {}), ...(spec.additional_options ?? {}) };
    if (Object.keys(opts).length) {
      const text = v
        .split(',')
        .filter((x) => x !== '')
        .map((x) => opts[x] ?? x)
        .join(', ');
      const display = v === '' ? (opts[''] ?? '') : text;
      if (display !== v) row[`%${k}`] = display;
    }
  }
  return row;
}

/** GET getters: option maps {key: {value, selected}} for option-like fields (never post these back). */
function optionMapItem(model: ModelSpec, item: Item, s: RouterState): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const env = envOf(s);
  for (const [k, spec] of Object.entries(model.fields)) {
    if (spec.container) continue;
    const v = item[k] ?? spec.default ?? '';
    const selected = new Set(v.split(',').filter(Boolean));
    let opts: Record<string, string> | undefined;
    if (spec.options || spec.additional_options) opts = { ...(spec.options ?? {}), ...(spec.additional_options ?? {}) };
    else if (spec.type === 'InterfaceField') opts = Object.fromEntries(env.interfaces(spec.interface_filters).map((i) => [i, s.descrOf(i)]));
    else if (spec.options_from_configd) opts = Object.fromEntries(env.configdOptions(spec.options_from_configd).map((n) => [n, n]));
    else if (spec.type === 'DeviceField') opts = Object.fromEntries(s.devices.map((d) => [d, d]));
    out[k] = opts ? Object.fromEntries(Object.entries(opts).map(([key, value]) => [key, { value, selected: selected.has(key) || (key === '' && v === '') ? 1 : 0 }])) : v;
  }
  return out;
}

// ---- routing/settings (gateways) ------------------------------------------------------------

const GW_MODEL = () => modelOf('Routing.Gateways.gateway_item');

function gatewayErrors(s: RouterState, item: Item, self: { uuid?: string; name?: string; stored?: Item }): Record<string, string> {
  const errors = itemErrors(GW_MODEL(), item, envOf(s));
  const others = s.gatewayViews().filter((g) => (self.uuid ? g.uuid !== self.uuid : true) && g.item.name !== (self.name ?? item.name));
  const stored = Object.entries(s.config.gateways).filter(([u]) => u !== self.uuid);
  if (!errors.name && stored.some(([, g]) => g.name === item.name)) errors.name = 'Gateway with this name already exists.';
  if (!errors.name && self.stored && self.stored.name !== item.name) errors.name = 'Changing name on a gateway is not allowed.';
  const fam = item.ipprotocol === 'inet6' ? 6 : 4;
  const gw = item.gateway ?? '';
  const iface = s.config.interfaces[item.interface ?? ''];
  if (gw === '' || gw === 'dynamic') {
    if (iface && fam === 4 && isIP(iface.ipaddr) === 4) errors.gateway = 'Dynamic gateway values cannot be specified for interfaces with a static IPv4 configuration.';
  } else if (isIP(gw) !== fam) errors.gateway = fam === 4 ? 'Invalid IPv4 address' : 'Invalid IPv6 address';
  else if (stored.some(([, g]) => g.gateway === gw)) errors.gateway = 'This gateway IP address already exists.';
  const mon = item.monitor ?? '';
  if (mon !== '') {
    if (isIP(mon) !== fam) errors.monitor = fam === 4 ? 'Invalid IPv4 address' : 'Invalid IPv6 address';
    else if (others.some((g) => g.item.monitor === mon && g.item.monitor_noroute !== '1')) errors.monitor = 'This monitor IP address already exists.';
  }
  const cur = (k: string) => {
    const v = item[k];
    const d: Record<string, number> = { interval: 1, loss_interval: 4, time_period: 60, latencylow: 200, latencyhigh: 500, losslow: 10, losshigh: 20 };
    return v === undefined || v === '' || !/^\d+$/.test(v) ? d[k]! : Number(v);
  };
  if (!errors.latencyhigh && !errors.latencylow && cur('latencylow') > cur('latencyhigh')) errors.latencyhigh = 'The high latency threshold needs to be higher than the low latency threshold.';
  if (!errors.losshigh && !errors.losslow && cur('losslow') > cur('losshigh')) errors.losshigh = 'The high Packet Loss threshold needs to be higher than the low Packet Loss threshold.';
  if (!errors.time_period && cur('time_period') < 2 * (cur('interval') + cur('loss_interval'))) errors.time_period = 'The time period needs to be at least 2 times the sum of the probe interval and the loss interval.';
  return errors;
}

function storeGateway(r: Req, uuid: string, base: Item, existing?: Item): Res {
  const obj = underRoot(r.body, ['gateway_item']);
  if (!obj) return { body: FAILED };
  const item = { ...defaultsOf(GW_MODEL()), ...base, ...posted(GW_MODEL(), obj) };
  const errors = gatewayErrors(r.state, item, { uuid, stored: existing, name: base.name });
  if (Object.keys(errors).length) return failedWith('gateway_item', errors);
  r.state.config.gateways[uuid] = item;
  r.state.save(`/api/routing/settings/${r.endpoint.action} made changes`);
  return { body: { result: 'saved', ...(existing || r.endpoint.action === 'set_gateway' ? {} : { uuid }) }, write: true };
}

function gatewayRow(s: RouterState, g: GatewayView): Record<string, unknown> {
  const it = g.item;
  const applied = s.activeGateways().find((a) => a.item.name === it.name);
  const st = applied ? s.statusOf(applied) : undefined;
  const iface = s.config.interfaces[it.interface ?? ''];
  const current = Object.fromEntries(DPINGER_FIELDS.map((k) => [`current_${k}`, it[k] === undefined || it[k] === '' ? String({ data_length: 1, interval: 1, latencyhigh: 500, latencylow: 200, loss_interval: 4, losshigh: 20, losslow: 10, time_period: 60 }[k]) : it[k]]));
  const def = s.activeDefault();
  const row: Record<string, unknown> = {
    ...(g.virtual ? {} : current),
    ...(g.virtual ? {} : Object.fromEntries(DPINGER_FIELDS.map((k) => [k, it[k] ?? '']))),
    uuid: g.uuid,
    name: it.name,
    descr: it.descr ?? '',
    interface: it.interface,
    interface_descr: s.descrOf(it.interface ?? ''),
    if: iface?.if ?? '',
    ipprotocol: it.ipprotocol,
    gateway: g.dynamic ? s.gatewayAddress(g) : it.gateway,
    priority: g.virtual ? Number(it.priority) : it.priority,
    weight: it.weight,
    disabled: it.disabled === '1',
    virtual: g.virtual,
    ...(g.dynamic ? { dynamic: true } : {}),
    upstream: it.defaultgw === '1',
    defaultgw: !!def && def.item.name === it.name,
    monitor_disable: it.monitor_disable,
    monitor_noroute: it.monitor_noroute ?? '0',
    ...(g.virtual ? {} : { monitor: it.monitor ?? '', monitor_killstates: it.monitor_killstates ?? '0', monitor_killstates_priority: it.monitor_killstates_priority ?? '0', fargw: it.fargw ?? '0', force_down: it.force_down ?? '0' }),
    status: st ? STATUS_TEXT[st.status] : 'Pending',
    delay: st?.delay ?? '~',
    stddev: st?.stddev ?? '~',
    loss: st?.loss ?? '~',
    label_class: st && ['down', 'force_down'].includes(st.status) ? 'fa fa-plug text-danger' : 'fa fa-plug text-success',
    attribute: 0,
  };
  return row;
}

function findGateway(s: RouterState, key: string): GatewayView | undefined {
  return s.gatewayViews().find((g) => g.uuid === key) ?? s.gatewayViews().find((g) => g.item.name === key);
}

const settings: Record<string, Handler> = {
  search_gateway: (r) => grid(r, r.state.gatewayViews().map((g) => gatewayRow(r.state, g)), true),
  get_gateway: (r) => {
    const key = r.params[0];
    if (!key) return { body: { gateway_item: optionMapItem(GW_MODEL(), defaultsOf(GW_MODEL()), r.state) } };
    const g = findGateway(r.state, key);
    if (!g) return { body: UUID_RE.test(key) ? [] : { gateway_item: optionMapItem(GW_MODEL(), defaultsOf(GW_MODEL()), r.state) } };
    return { body: { gateway_item: optionMapItem(GW_MODEL(), { ...g.item, ...(g.dynamic ? { gateway: '' } : {}) }, r.state) } };
  },
  add_gateway: (r) => storeGateway(r, r.state.newUuid(), {}),
  set_gateway: (r) => {
    const key = r.params[0]!;
    const stored = r.state.config.gateways[key];
    if (stored) return storeGateway(r, key, stored, stored);
    if (UUID_RE.test(key)) return storeGateway(r, key, {}); // upsert under a valid, unknown uuid
    const byName = findGateway(r.state, key);
    if (!byName) return { body: FAILED };
    if (!byName.virtual) return storeGateway(r, byName.uuid, byName.item, r.state.config.gateways[byName.uuid]);
    // a virtual gateway is stored under a new uuid (setGatewayAction)
    return storeGateway(r, r.state.newUuid(), byName.item);
  },
  del_gateway: (r) => {
    const key = r.params[0]!;
    const g = r.state.config.gateways[key];
    if (!g) return { body: { result: 'not found' } };
    const groups = Object.values(r.state.config.groups).filter((grp) => ['item', 'item2', 'item3', 'item4', 'item5'].some((k) => (grp[k] ?? '').split(',').includes(g.name ?? '')));
    if (groups.length) throw new UserException(`Gateway ${g.name} cannot be deleted because it is in use on Gateway Group(s) '${groups.map((x) => x.name).join("', '")}'`);
    delete r.state.config.gateways[key];
    r.state.save('/api/routing/settings/del_gateway made changes');
    return { body: { result: 'deleted' }, write: true };
  },
  toggle_gateway: (r) => {
    const g = r.state.config.gateways[r.params[0]!];
    if (!g) return { body: FAILED };
    const want = r.params[1] === undefined ? (g.disabled === '1' ? '0' : '1') : r.params[1] === '1' ? '0' : '1';
    const changed = g.disabled !== want;
    g.disabled = want;
    if (changed) r.state.save('/api/routing/settings/toggle_gateway made changes');
    return { body: { result: want === '1' ? 'Disabled' : 'Enabled', changed }, write: changed };
  },
  get: (r) => (r.method === 'POST' ? { body: [] } : { body: { gateways: { gateway_item: Object.fromEntries(Object.entries(r.state.config.gateways).map(([u, it]) => [u, optionMapItem(GW_MODEL(), it, r.state)])) } } }),
  reconfigure: (r) => {
    r.state.applyRouting();
    return { body: { status: 'ok' }, write: true };
  },
};

// ---- routes/gateway/status ------------------------------------------------------------------

function gatewayStatus(r: Req): Res {
  const items = r.state.activeGateways().map((g) => {
    const st = r.state.statusOf(g);
    const monitored = g.item.monitor_disable !== '1';
    return {
      name: g.item.name,
      address: r.state.gatewayAddress(g),
      status: st.status,
      loss: st.loss,
      delay: st.delay,
      stddev: st.stddev,
      monitor: monitored && g.item.monitor ? g.item.monitor : '~',
      status_translated: STATUS_TEXT[st.status],
    };
  });
  return { body: { items, status: 'ok' } };
}

// ---- routing/group_settings -----------------------------------------------------------------

const GROUP_MODEL = () => modelOf('Routing.GatewayGroups.gateway_group');
const TIERS = ['item', 'item2', 'item3', 'item4', 'item5'];

function storeGroup(r: Req, uuid: string, existing?: Item): Res {
  const obj = underRoot(r.body, ['gateway_group']);
  if (!obj) return { body: FAILED };
  const item = { ...defaultsOf(GROUP_MODEL()), ...existing, ...posted(GROUP_MODEL(), obj) };
  const s = r.state;
  const errors = itemErrors(GROUP_MODEL(), item, envOf(s));
  if (TIERS.every((k) => (item[k] ?? '') === '')) for (const k of TIERS) errors[k] = 'At least one tier must be set.';
  if (!errors.name && Object.entries(s.config.groups).some(([u, g]) => u !== uuid && g.name === item.name)) errors.name = 'Gateway group with this name already exists.';
  if (!errors.name && existing && existing.name !== item.name) errors.name = 'Changing name on a gateway group is not allowed.';
  if (!errors.name && s.gatewayViews().some((g) => g.item.name === item.name)) errors.name = 'A gateway group may not have the name of a gateway.';
  if (Object.keys(errors).length) return failedWith('gateway_group', errors);
  s.config.groups[uuid] = item;
  s.save(`/api/routing/group_settings/${r.endpoint.action} made changes`);
  return { body: { result: 'saved', ...(existing ? {} : { uuid }) }, write: true };
}

const groupSettings: Record<string, Handler> = {
  search: (r) =>
    grid(
      r,
      Object.entries(r.state.config.groups).map(([uuid, g]) => {
        const active = new Map(r.state.activeGateways().map((x) => [x.item.name!, x]));
        const gateways: Record<string, unknown[]> = {};
        TIERS.forEach((k, i) => {
          gateways[String(i + 1)] = (g[k] ?? '')
            .split(',')
            .filter(Boolean)
            .map((name) => {
              const a = active.get(name);
              if (!a) return { name, label: 'danger', status_translated: 'Disabled or inactive' };
              const st = r.state.statusOf(a);
              const label = st.status === 'none' ? 'success' : ['down', 'force_down'].includes(st.status) ? 'danger' : 'warning';
              return { name, address: r.state.gatewayAddress(a), status: st.status, loss: st.loss, delay: st.delay, stddev: st.stddev, monitor: a.item.monitor || '~', status_translated: STATUS_TEXT[st.status], label };
            });
        });
        return { ...uiRow(GROUP_MODEL(), uuid, g), gateways };
      }),
      false,
    ),
  get: (r) => {
    const g = r.params[0] ? r.state.config.groups[r.params[0]] : defaultsOf(GROUP_MODEL());
    return { body: g ? { gateway_group: optionMapItem(GROUP_MODEL(), g, r.state) } : [] };
  },
  add: (r) => storeGroup(r, r.state.newUuid()),
  set: (r) => {
    const key = r.params[0]!;
    const existing = r.state.config.groups[key];
    if (!existing && !UUID_RE.test(key)) return { body: FAILED };
    return storeGroup(r, key, existing);
  },
  del: (r) => {
    const keys = r.params[0]!.split(',');
    let deleted = false;
    for (const key of keys) {
      const g = r.state.config.groups[key];
      if (!g) continue;
      const users = Object.values(r.state.config.rules).filter((x) => x.gateway === g.name);
      if (users.length) throw new UserException(`Gateway group ${g.name} in use by ${users.map((u) => u.description || 'a firewall rule').join(', ')}`);
      delete r.state.config.groups[key];
      deleted = true;
    }
    if (!deleted) return { body: { result: 'not found' } };
    r.state.save('/api/routing/group_settings/del made changes');
    return { body: { result: 'deleted' }, write: true };
  },
  reconfigure: (r) => {
    r.state.applyRouting();
    return { body: { status: 'ok' }, write: true };
  },
};

// ---- firewall/filter and firewall/source_nat ------------------------------------------------

const RULE_MODEL = () => modelOf('Firewall.Filter.rules.rule');
const SNAT_MODEL = () => modelOf('Firewall.Filter.snatrules.rule');

function ruleErrors(s: RouterState, item: Item, snat: boolean): Record<string, string> {
  const errors = itemErrors(snat ? SNAT_MODEL() : RULE_MODEL(), item, envOf(s));
  if (snat) {
    if (!errors.target && item.target === 'any') errors.target = 'Target address cannot be any.';
    return errors;
  }
  if (item.gateway && item.replyto) errors.replyto = 'You can not assign a reply-to destination to a rule that uses a gateway.';
  if (item.gateway && !errors.gateway) {
    const group = Object.values(s.config.groups).find((g) => g.name === item.gateway);
    const first = group ? TIERS.map((k) => group[k] ?? '').find((t) => t !== '')?.split(',')[0] : item.gateway;
    const gw = s.gatewayViews().find((g) => g.item.name === first);
    if (gw && (item.ipprotocol === 'inet46' || gw.item.ipprotocol !== item.ipprotocol)) errors.gateway = 'Specify a valid gateway from the list matching the networks ip protocol.';
  }
  return errors;
}

function ruleHandlers(store: 'rules' | 'snatRules', controller: 'filter' | 'source_nat'): Record<string, Handler> {
  const model = () => (store === 'rules' ? RULE_MODEL() : SNAT_MODEL());
  const save = (r: Req, uuid: string, existing?: Item): Res => {
    const obj = underRoot(r.body, ['rule']);
    if (!obj) return { body: FAILED };
    const item = { ...defaultsOf(model()), ...existing, ...posted(model(), obj) };
    const errors = ruleErrors(r.state, item, store === 'snatRules');
    if (Object.keys(errors).length) return failedWith('rule', errors);
    r.state.config[store][uuid] = item;
    r.state.save(`/api/firewall/${controller}/${r.endpoint.action} made changes`);
    return { body: { result: 'saved', ...(existing ? {} : { uuid }) }, write: true };
  };
  const rows = (s: RouterState) => {
    const mvc = Object.entries(s.config[store])
      .map(([uuid, it]) => uiRow(model(), uuid, it))
      .sort((a, b) => Number(a.sequence ?? 1) - Number(b.sequence ?? 1));
    if (store === 'rules') return mvc;
    // 26.7: manual rules only in hybrid/advanced, synthetic automatic rows in automatic/hybrid
    const mode = s.config.snatMode;
    const manual = mode === 'hybrid' || mode === 'advanced' ? mvc : [];
    const auto =
      mode === 'automatic' || mode === 'hybrid'
        ? s
            .gatewayViews()
            .filter((g) => g.item.ipprotocol === 'inet' && g.item.disabled !== '1')
            .map((g) => g.item.interface!)
            .filter((id, i, all) => all.indexOf(id) === i)
            .map((id) => ({ uuid: `automatic_${id}`, is_automatic: true, enabled: '1', interface: id, ipprotocol: 'inet', protocol: 'any', source_net: 'lan', destination_net: 'any', target: `${id}ip`, description: `Automatic outbound rule (${s.descrOf(id)})` }))
        : [];
    return [...manual, ...auto] as Record<string, unknown>[];
  };
  const h: Record<string, Handler> = {
    search_rule: (r) => grid(r, rows(r.state), true),
    get_rule: (r) => {
      const it = r.params[0] ? r.state.config[store][r.params[0]] : defaultsOf(model());
      return { body: it ? { rule: optionMapItem(model(), it, r.state) } : [] };
    },
    add_rule: (r) => save(r, r.state.newUuid()),
    set_rule: (r) => {
      const key = r.params[0]!;
      const existing = r.state.config[store][key];
      if (!existing && !UUID_RE.test(key)) return { body: FAILED };
      return save(r, key, existing);
    },
    del_rule: (r) => {
      const key = r.params[0]!;
      if (!r.state.config[store][key]) return { body: { result: 'not found' } };
      delete r.state.config[store][key];
      r.state.save(`/api/firewall/${controller}/del_rule made changes`);
      return { body: { result: 'deleted' }, write: true };
    },
    toggle_rule: (r) => {
      const keys = r.params[0]!.split(',');
      const items = keys.map((k) => r.state.config[store][k]).filter((x): x is Item => !!x);
      if (!items.length) return { body: FAILED };
      let changed = false;
      let result = 'Enabled';
      for (const it of items) {
        const want = r.params[1] === undefined ? (it.enabled === '1' ? '0' : '1') : r.params[1] === '1' ? '1' : '0';
        changed ||= it.enabled !== want;
        it.enabled = want;
        result = want === '1' ? 'Enabled' : 'Disabled';
      }
      if (changed) r.state.save(`/api/firewall/${controller}/toggle_rule made changes`);
      return { body: { result, changed }, write: changed };
    },
    apply: (r) => {
      r.state.applyFirewall();
      return { body: { status: 'OK\n\n' }, write: true };
    },
  };
  if (store === 'rules') {
    h.move_rule_before = (r) => {
      const [sel, target] = r.params as [string, string];
      const rules = r.state.config.rules;
      if (!rules[sel] || !rules[target]) return { status: 500, body: { errorMessage: 'Unexpected error, check log for details' } };
      rules[sel]!.sequence = String(Math.max(1, Number(rules[target]!.sequence ?? 1) - 1));
      r.state.save('/api/firewall/filter/move_rule_before made changes');
      return { body: { status: 'ok' }, write: true };
    };
  }
  return h;
}

const SNAT_GENERAL = () => modelOf('Firewall.Filter.general');

const sourceNat: Record<string, Handler> = {
  ...ruleHandlers('snatRules', 'source_nat'),
  get: (r) => {
    const opts = SNAT_GENERAL().fields.snat_mode!.options ?? {};
    return { body: { filter: { general: { snat_mode: Object.fromEntries(Object.entries(opts).map(([k, v]) => [k, { value: v, selected: r.state.config.snatMode === k ? 1 : 0 }])) } } } };
  },
  set: (r) => {
    const obj = underRoot(r.body, ['filter', 'general']);
    if (!obj) return { body: FAILED };
    const item = { snat_mode: r.state.config.snatMode, ...posted({ ...SNAT_GENERAL(), fields: { snat_mode: { ...SNAT_GENERAL().fields.snat_mode!, volatile: false } } }, obj) };
    const errors = itemErrors({ ...SNAT_GENERAL(), fields: { snat_mode: { ...SNAT_GENERAL().fields.snat_mode!, volatile: false } } }, item, envOf(r.state));
    if (Object.keys(errors).length) return failedWith('filter.general', errors);
    r.state.config.snatMode = item.snat_mode!;
    r.state.save('/api/firewall/source_nat/set made changes');
    return { body: { result: 'saved' }, write: true };
  },
};

// ---- interfaces -----------------------------------------------------------------------------

const IF_MODEL = () => modelOf('Interfaces.NetworkInterface.interface@26.7');

const assignment: Record<string, Handler> = {
  search_item: (r) =>
    grid(
      r,
      Object.entries(r.state.config.interfaces).map(([id, c]) => ({ uuid: id, descr: c.descr || id.toUpperCase(), identifier: id, icon: '', optgroup: '', if: c.if, lock: c.lock ? '1' : '0' })),
      false,
    ),
  get_item: (r) => {
    const c = r.params[0] ? r.state.config.interfaces[r.params[0]] : undefined;
    const item: Item = c ? { descr: c.descr, identifier: r.params[0]!, if: c.if, lock: c.lock ? '1' : '0' } : defaultsOf(IF_MODEL());
    return { body: r.params[0] && !c ? [] : { interface: optionMapItem(IF_MODEL(), item, r.state) } };
  },
  add_item: (r) => {
    const obj = underRoot(r.body, ['interface']);
    if (!obj) return { body: FAILED };
    const item = { ...defaultsOf(IF_MODEL()), ...posted(IF_MODEL(), obj) };
    const errors = itemErrors(IF_MODEL(), item, envOf(r.state));
    if (!errors.if && Object.values(r.state.config.interfaces).some((c) => c.if === item.if)) errors.if = 'Can not assign a device to more interfaces.';
    if (Object.keys(errors).length) return failedWith('interface', errors);
    let n = 1;
    while (r.state.config.interfaces[`opt${n}`]) n++;
    const id = `opt${n}`;
    // created without <enable> and without IP settings (26.7.x)
    r.state.config.interfaces[id] = { if: item.if!, descr: item.descr ?? '', enable: false, ipaddr: '', subnet: '', ipaddrv6: '', lock: item.lock === '1' };
    r.state.save('/api/interfaces/assignment/add_item made changes');
    return { body: { result: 'saved', uuid: id }, write: true };
  },
  set_item: (r) => {
    const id = r.params[0]!;
    const c = r.state.config.interfaces[id];
    const obj = underRoot(r.body, ['interface']);
    if (!c || !obj) return { body: FAILED };
    const item = { descr: c.descr, identifier: id, if: c.if, lock: c.lock ? '1' : '0', ...posted(IF_MODEL(), obj) };
    const errors = itemErrors(IF_MODEL(), item, envOf(r.state));
    if (!errors.if && Object.entries(r.state.config.interfaces).some(([other, x]) => other !== id && x.if === item.if)) errors.if = 'Can not assign a device to more interfaces.';
    if (Object.keys(errors).length) return failedWith('interface', errors);
    // the device change is shown at once and takes effect on reconfigure
    r.state.config.interfaces[id] = { ...c, if: item.if!, descr: item.descr ?? '', lock: item.lock === '1' };
    r.state.save('/api/interfaces/assignment/set_item made changes');
    return { body: { result: 'saved' }, write: true };
  },
  del_item: (r) => {
    let deleted = false;
    for (const id of r.params[0]!.split(',')) {
      const c = r.state.config.interfaces[id];
      if (!c) continue;
      if (c.lock) throw new UserException(`Interface ${c.descr || id} is locked and cannot be removed.`);
      delete r.state.config.interfaces[id];
      deleted = true;
    }
    if (!deleted) return { body: { result: 'not found' } };
    r.state.save('/api/interfaces/assignment/del_item made changes');
    return { body: { result: 'deleted' }, write: true };
  },
  reconfigure: (r) => {
    // deleted interfaces take their rules with them
    for (const store of ['rules', 'snatRules'] as const) {
      for (const [u, it] of Object.entries(r.state.config[store])) {
        if ((it.interface ?? '').split(',').some((i) => i && !r.state.config.interfaces[i])) delete r.state.config[store][u];
      }
    }
    r.state.applyInterfaces();
    return { body: { status: 'ok' }, write: true };
  },
};

function interfaceRows(s: RouterState): Record<string, unknown>[] {
  return Object.entries(s.config.interfaces).map(([id, c]) => {
    const addr = s.addressOf(id);
    const lease = s.leases[id];
    const prefix = c.ipaddr === 'dhcp' ? (lease?.prefix ?? 24) : Number(c.subnet || 24);
    const h = s.health[id];
    return {
      device: c.if,
      identifier: id,
      description: c.descr || id.toUpperCase(),
      enabled: c.enable,
      status: h && !h.up ? 'no carrier' : 'up',
      link_type: !c.enable ? 'none' : c.ipaddr === 'dhcp' ? 'dhcp' : isIP(c.ipaddr) ? 'static' : 'none',
      addr4: addr ? `${addr}/${prefix}` : '',
      addr6: '',
      ipv4: addr ? [{ ipaddr: `${addr}/${prefix}` }] : [],
      ipv6: [],
      gateways: c.ipaddr === 'dhcp' && lease ? [lease.router] : [],
      routes: [],
      macaddr: '',
      mtu: '1500',
      config: { if: c.if, descr: c.descr, enable: c.enable ? '1' : '0', ipaddr: c.ipaddr, subnet: c.subnet, lock: c.lock ? '1' : '0' },
    };
  });
}

const overview: Record<string, Handler> = {
  interfaces_info: (r) => grid(r, interfaceRows(r.state), false),
  reload_interface: (r) => ({ body: { message: r.state.config.interfaces[r.params[0]!] ? 'OK\n' : 'failed' }, write: true }),
};

// ---- diagnostics ----------------------------------------------------------------------------

function pingRow(s: RouterState, id: string): Record<string, unknown> {
  const job = s.pingJobs.get(id)!;
  const st = job.settings;
  const interval = Math.max(1, Number(st.interval || 1));
  const started = job.startedAt;
  let send: number | null = null;
  let received: number | null = null;
  let loss: string | null = null;
  let delay = 0;
  if (started !== undefined) {
    const end = job.stoppedAt ?? s.now();
    send = Math.min(86_400, 1 + Math.floor((end - started) / (interval * 1000)));
    // traffic sourced from a WAN address leaves through that WAN ("force gateway" rules)
    const src = st.source_address ?? '';
    const via = src ? Object.keys(s.applied.interfaces).find((id2) => s.addressOf(id2, s.applied.interfaces) === src) : s.activeDefault()?.item.interface;
    const h = via ? (s.health[via] ?? { up: true, lossPercent: 0, delayMs: 12.3 }) : { up: false, lossPercent: 100, delayMs: 0 };
    const pct = h.up ? h.lossPercent : 100;
    received = Math.round(send * (1 - pct / 100));
    loss = `${(send ? (100 * (send - received)) / send : 0).toFixed(2)} %`;
    delay = h.delayMs;
  }
  const ok = received !== null && received > 0;
  return {
    id,
    status: job.status,
    hostname: st.hostname,
    fam: st.fam,
    source_address: st.source_address ?? '',
    packetsize: st.packetsize ?? '',
    disable_frag: st.disable_frag ?? '0',
    interval: st.interval ?? '',
    description: st.description ?? '',
    send,
    received,
    loss,
    min: ok ? +(delay * 0.9).toFixed(3) : null,
    avg: ok ? +delay.toFixed(3) : null,
    max: ok ? +(delay * 1.2).toFixed(3) : null,
    'std-dev': ok ? 0.4 : null,
    last_error: null,
  };
}

const PING_MODEL = () => modelOf('Diagnostics.Ping.settings');

const ping: Record<string, Handler> = {
  set: (r) => {
    const obj = underRoot(r.body, ['ping', 'settings']);
    if (!obj) return { body: FAILED };
    const item = { ...defaultsOf(PING_MODEL()), ...posted(PING_MODEL(), obj) };
    const errors = itemErrors(PING_MODEL(), item, envOf(r.state));
    if (Object.keys(errors).length) return failedWith('ping.settings', errors);
    const id = r.state.newUuid();
    r.state.pingJobs.set(id, { id, settings: item, status: 'stopped' });
    return { body: { result: 'ok', uuid: id }, write: true };
  },
  start: (r) => {
    const job = r.state.pingJobs.get(r.params[0]!);
    if (!job) return { body: { status: 'failed' } };
    if (job.status === 'running') return { body: { status: 'failed', status_msg: 'already active (pids: 4242)' } };
    Object.assign(job, { status: 'running', startedAt: r.state.now(), stoppedAt: undefined });
    return { body: { status: 'ok' }, write: true };
  },
  search_jobs: (r) => grid(r, [...r.state.pingJobs.keys()].map((id) => pingRow(r.state, id)), true),
  stop: (r) => {
    const job = r.state.pingJobs.get(r.params[0]!);
    const running = job?.status === 'running';
    if (job && running) Object.assign(job, { status: 'stopped', stoppedAt: r.state.now() });
    return { body: { status: 'ok', stopped_processes: running ? 1 : 0 }, write: true };
  },
  remove: (r) => {
    const job = r.state.pingJobs.get(r.params[0]!);
    const running = job?.status === 'running';
    r.state.pingJobs.delete(r.params[0]!);
    return { body: { status: 'ok', stopped_processes: running ? 1 : 0 }, write: true };
  },
};

function stateMatches(st: PfState, phrase: string): boolean {
  if (!phrase) return true;
  const [ipPart, port] = phrase.split(':').length === 2 && isIP(phrase.split(':')[0]!.split('/')[0]!) ? phrase.split(':') : [phrase, undefined];
  const base = ipPart!.split('/')[0]!;
  if (isIP(base) === 4) {
    const prefix = ipPart!.includes('/') ? Number(ipPart!.split('/')[1]) : 32;
    const inNet = (a: string | null) => !!a && isIP(a) === 4 && sameNet(a, base, prefix);
    const hit = inNet(st.src_addr) || inNet(st.dst_addr) || inNet(st.nat_addr);
    return hit && (!port || st.src_port === port || st.dst_port === port);
  }
  return JSON.stringify(st).toLowerCase().includes(phrase.toLowerCase());
}

function sameNet(a: string, b: string, prefix: number): boolean {
  const n = (x: string) => x.split('.').reduce((acc, p) => acc * 256 + Number(p), 0) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return (n(a) & mask) === (n(b) & mask);
}

const diagFirewall: Record<string, Handler> = {
  query_states: (r) => {
    if (r.method !== 'POST') return { body: { rows: [], rowCount: 0, total: 0, current: 1 } };
    const phrase = String(r.body.searchPhrase ?? '');
    const ruleid = String(r.body.ruleid ?? '');
    return grid({ ...r, body: { ...r.body, searchPhrase: '' } }, r.state.states.filter((s) => stateMatches(s, phrase) && (!ruleid || s.label === ruleid)) as unknown as Record<string, unknown>[], true);
  },
  kill_states: (r) => {
    const filter = String(r.body.filter ?? '');
    const ruleid = String(r.body.ruleid ?? '');
    if (!filter && !ruleid) return { body: FAILED };
    const n = r.state.dropStates((s) => (!filter || stateMatches(s, filter)) && (!ruleid || s.label === ruleid));
    return { body: { result: 'ok', dropped_states: n }, write: true };
  },
  del_state: (r) => {
    const id = `${r.params[0]}/${r.params[1]}`;
    const n = r.state.dropStates((s) => s.id === id);
    return { body: { result: `killed ${n} of ${n} states` }, write: true };
  },
  flush_states: (r) => {
    r.state.dropStates(() => true);
    return { body: { result: 'ok' }, write: true };
  },
};

const traffic: Handler = (r) => ({
  body: {
    interfaces: Object.fromEntries(
      Object.entries(r.state.applied.interfaces).map(([id, c]) => {
        const mine = r.state.states.filter((s) => s.iface === c.if);
        const h = r.state.health[id];
        return [
          id,
          {
            device: c.if,
            name: c.descr || id.toUpperCase(),
            'link state': h && !h.up ? '1' : '2',
            flags: '8843',
            'line rate': c.if.startsWith('ue') ? '100000000 bit/s' : '2500000000 bit/s',
            'bytes received': String(100_000 + mine.reduce((n, s) => n + s.bytes[1], 0)),
            'bytes transmitted': String(50_000 + mine.reduce((n, s) => n + s.bytes[0], 0)),
          },
        ];
      }),
    ),
  },
});

const routes: Handler = (r) => {
  const s = r.state;
  const rows: Record<string, unknown>[] = [];
  const def = s.activeDefault();
  const row = (destination: string, gateway: string, flags: string, id: string) => {
    const c = s.applied.interfaces[id];
    rows.push({ proto: 'ipv4', destination, gateway, flags, netif: c?.if ?? '', expire: '', mtu: '1500', intf_description: s.descrOf(id, s.applied.interfaces), id: `${destination},${gateway}` });
  };
  if (def) row('default', s.gatewayAddress(def), 'UGS', def.item.interface!);
  for (const g of s.activeGateways()) {
    if (g.item.ipprotocol !== 'inet' || g.item.monitor_disable === '1' || g.item.monitor_noroute === '1' || !g.item.monitor) continue;
    row(g.item.monitor, s.gatewayAddress(g), 'UGHS', g.item.interface!);
  }
  return { body: rows };
};

// ---- core -----------------------------------------------------------------------------------

function firmwareStatus(r: Req): Res {
  const product: Record<string, string> = { product_version: r.version, product_name: 'OPNsense', CORE_VERSION: r.version };
  return { body: { product, status_msg: 'Firmware status requires to check for update first.', status: 'none' } };
}

const backup: Record<string, Handler> = {
  backups: (r) => ({
    body: {
      items:
        r.params[0] === 'this'
          ? r.state.backups.map((b) => ({ time: b.time, time_iso: new Date(Number(b.time) * 1000).toISOString(), description: b.description, username: 'root@127.0.0.1', filesize: configXml(b.config).length, id: b.id }))
          : [],
    },
  }),
  download: (r) => {
    const b = r.params[1] ? r.state.backups.find((x) => x.id === r.params[1]) : r.state.backups[0];
    if (!b) throw new UserException('Backup not found');
    return { raw: { contentType: 'application/octet-stream', text: configXml(b.config), headers: { 'Content-Disposition': `attachment; filename=config-OPNsense.internal-${b.time}.xml` } } };
  },
  revert_backup: (r) => (r.state.revertTo(r.params[0]!) ? { body: { status: 'reverted' }, write: true } : { body: { status: 'not_found' } }),
};

const log: Handler = (r) => grid(r, r.state.gatewayLog.map((line, i) => ({ timestamp: line.at, severity: 'Alert', process_name: 'dpinger', pid: String(4000 + i), line: line.text })), true);

const traceroute: Handler = (r) => {
  const obj = underRoot(r.body, ['traceroute', 'settings']);
  if (!obj) return { body: FAILED };
  const m = modelOf('Diagnostics.Traceroute.settings');
  const item = { ...defaultsOf(m), ...posted(m, obj) };
  const errors = itemErrors(m, item, envOf(r.state));
  if (Object.keys(errors).length) return failedWith('traceroute.settings', errors);
  const via = r.state.activeDefault();
  const hop = via ? r.state.gatewayAddress(via) : '*';
  return { body: { result: 'ok', response: { rows: [{ ttl: '1', AS: '', host: hop, address: hop, probes: '1.1 ms' }, { ttl: '2', AS: '', host: item.hostname, address: item.hostname, probes: '12.3 ms' }] } }, write: false };
};

/** Handlers by endpoint id ("module.controller.action"). Missing ids answer "not simulated". */
export const HANDLERS: Readonly<Record<string, Handler>> = {
  ...prefixed('routing.settings', settings),
  'routes.gateway.status': gatewayStatus,
  ...prefixed('routing.group_settings', groupSettings),
  ...prefixed('firewall.filter', ruleHandlers('rules', 'filter')),
  ...prefixed('firewall.source_nat', sourceNat),
  ...prefixed('interfaces.assignment', assignment),
  ...prefixed('interfaces.overview', overview),
  ...prefixed('diagnostics.ping', ping),
  ...prefixed('diagnostics.firewall', diagFirewall),
  'diagnostics.traffic.interface': traffic,
  'diagnostics.interface.get_routes': routes,
  'diagnostics.traceroute.set': traceroute,
  'diagnostics.log.core.gateways': log,
  'core.firmware.status': firmwareStatus,
  ...prefixed('core.backup', backup),
};

function prefixed(prefix: string, h: Record<string, Handler>): Record<string, Handler> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [`${prefix}.${k}`, v]));
}

/** Endpoints whose body is a model item (the ones "fail the next write" acts on). */
export function isModelWrite(e: EndpointSpec): boolean {
  return !!BODY_MODELS[e.id] && e.methods.includes('POST') && !e.id.startsWith('diagnostics.') && !e.id.startsWith('core.initial_setup');
}
