// The double's routing and checks follow the copied 26.7.2 catalogue.
import { availableIn, BODY_MODELS, contractProblems, modelOf, pathParamsOf, route, sinceOf, untilOf } from './catalogue';
import { catalogue } from './data';
import { factoryRules, factorySnatMode, factoryStickyConnections } from './factory';
import { defaultsOf, itemErrors, staticFieldErrors } from './fields';
import { HANDLERS } from './handlers';

const pathOf = (e: ReturnType<typeof catalogue>['endpoints'][number], params: number) =>
  e.path ?? `/api/${e.module}/${e.controller}/${e.action}${Array.from({ length: params }, (_, i) => `/p${i}`).join('')}`;

describe('routing by the catalogue', () => {
  const endpoints = catalogue().endpoints;

  it('holds the 68 endpoints of 26.7.2', () => {
    expect(catalogue().meta.reference_release).toBe('26.7.2');
    expect(endpoints).toHaveLength(68);
  });

  it.each(endpoints.map((e) => [e.id, e] as const))('%s routes where it exists and 404s where it does not', (_id, e) => {
    const { required } = pathParamsOf(e);
    const version = availableIn(e, '26.7.2') ? '26.7.2' : '26.1.11';
    const r = route(version, pathOf(e, required));
    expect(r.ok && r.match.endpoint.id).toBe(e.id);
    if (required > 0 && !e.path) expect(route(version, pathOf(e, required - 1))).toMatchObject({ ok: false, reason: 'missing-params' });
  });

  it('dates endpoints: groups and assignment from 26.7, savepoint gone in 26.7, set_general only in 26.1.11', () => {
    const byId = (id: string) => endpoints.find((e) => e.id === id)!;
    expect(sinceOf(byId('routing.group_settings.add'))).toEqual([26, 7, 0]);
    expect(availableIn(byId('routing.group_settings.add'), '26.1.9')).toBe(false);
    expect(untilOf(byId('firewall.filter.savepoint'))).toEqual([26, 7, 0]);
    expect(availableIn(byId('firewall.filter.savepoint'), '26.7.2')).toBe(false);
    expect([availableIn(byId('firewall.source_nat.set_general'), '26.1.11'), availableIn(byId('firewall.source_nat.set_general'), '26.7')]).toEqual([true, false]);
  });

  it('simulates every endpoint dualwan and verify use', () => {
    for (const id of [
      'routing.settings.search_gateway', 'routing.settings.set_gateway', 'routing.settings.add_gateway', 'routing.settings.reconfigure', 'routes.gateway.status',
      'routing.group_settings.search', 'routing.group_settings.add', 'routing.group_settings.set', 'routing.group_settings.reconfigure',
      'firewall.filter.search_rule', 'firewall.filter.add_rule', 'firewall.filter.set_rule', 'firewall.filter.apply',
      'firewall.source_nat.get', 'firewall.source_nat.set', 'firewall.source_nat.search_rule', 'firewall.source_nat.add_rule', 'firewall.source_nat.set_rule', 'firewall.source_nat.apply',
      'interfaces.assignment.search_item', 'interfaces.assignment.set_item', 'interfaces.assignment.reconfigure', 'interfaces.overview.interfaces_info',
      'diagnostics.ping.set', 'diagnostics.ping.start', 'diagnostics.ping.search_jobs', 'diagnostics.ping.stop', 'diagnostics.ping.remove',
      'diagnostics.firewall.query_states', 'diagnostics.firewall.kill_states', 'core.firmware.status', 'core.backup.backups', 'core.backup.download', 'core.backup.revert_backup',
    ]) {
      expect([id, !!endpoints.find((e) => e.id === id), !!HANDLERS[id]]).toEqual([id, true, true]);
    }
  });
});

describe('models', () => {
  it('maps every body-taking endpoint to a model of the catalogue', () => {
    for (const [id, m] of Object.entries(BODY_MODELS)) {
      expect([id, Object.keys(modelOf(m.model).fields).length > 0]).toEqual([id, true]);
    }
  });

  it('validates types, options, ranges and masks from the field tables', () => {
    const gw = modelOf('Routing.Gateways.gateway_item');
    expect(staticFieldErrors(gw, { weight: '11', priority: '256', monitor_disable: 'yes', ipprotocol: 'ip', name: 'a b' })).toEqual({
      weight: 'Value should be between 1 and 10.',
      priority: 'Priority must be a value between 1 and 255.',
      monitor_disable: 'Value should be a boolean (0,1).',
      ipprotocol: 'option not in list',
      name: expect.stringMatching(/^A valid gateway name must be specified/),
    });
    const env = { interfaces: () => ['wan'], configdOptions: () => [], devices: () => [], aliases: () => [] };
    expect(itemErrors(gw, { ...defaultsOf(gw), name: 'G', latencylow: '300', latencyhigh: '200' }, env)).toEqual({
      latencylow: 'The low latency threshold needs to be lower than the high latency threshold.',
      latencyhigh: 'The high latency threshold needs to be higher than the low latency threshold.',
    });
  });

  it('reads the factory rules, NAT mode and sticky connections from config.xml.sample', () => {
    expect(factoryRules().map((r) => [r.description, r.interface, r.sequence, r.gateway])).toEqual([
      ['Default allow LAN to any rule', 'lan', '1', ''],
      ['Default allow LAN IPv6 to any rule', 'lan', '11', ''],
    ]);
    expect([factorySnatMode(), factoryStickyConnections()]).toEqual(['automatic', true]);
  });
});

describe('contract problems', () => {
  const req = (method: string, path: string, body: unknown, extra: Partial<Parameters<typeof contractProblems>[0]> = {}) =>
    contractProblems({ method, path, query: '', contentType: 'application/json', rawBody: body === undefined ? '' : JSON.stringify(body), body, ...extra });

  it('accepts a well-formed write and a search', () => {
    expect(req('POST', '/api/routing/settings/set_gateway/WAN_DHCP', { gateway_item: { name: 'WAN_DHCP', monitor_disable: '0', weight: '2' } })).toEqual([]);
    expect(req('POST', '/api/firewall/filter/search_rule', { current: 1, rowCount: -1, searchPhrase: '' })).toEqual([]);
    expect(req('POST', '/api/firewall/filter/apply', {})).toEqual([]);
  });

  it('names non-string values, option maps, unknown fields and bad values', () => {
    const p = req('POST', '/api/routing/settings/add_gateway', { gateway_item: { weight: 2, ipprotocol: { inet: { value: 'IPv4', selected: 1 } }, alert_interval: '1', priority: '300' } });
    expect(p).toEqual([
      {
        message: 'the gateway_item body does not fit Routing.Gateways.gateway_item',
        errors: {
          'gateway_item.weight': 'sent as JSON number; every value must be a string',
          'gateway_item.ipprotocol': 'an object or array (an option map from GET?) where a string is expected',
          'gateway_item.alert_interval': 'not a field of the model (OPNsense ignores it silently)',
          'gateway_item.priority': 'Priority must be a value between 1 and 255.',
        },
      },
    ]);
  });

  it('names empty JSON bodies, query strings, missing root keys, removed endpoints and missing path parameters', () => {
    expect(req('POST', '/api/routing/settings/reconfigure', undefined).map((x) => x.message)).toContain('JSON content type with an empty body (OPNsense answers 400): send {}');
    expect(req('POST', '/api/routing/settings/search_gateway', {}, { query: 'rowCount=5' }).map((x) => x.message)).toEqual(['query string "rowCount=5" on a POST: OPNsense reads parameters from the path and the body only']);
    expect(req('POST', '/api/firewall/filter/add_rule', { description: 'x' }).map((x) => x.message)).toEqual(['the body lacks its root key rule']);
    expect(req('POST', '/api/firewall/filter/savepoint', {}).map((x) => x.message)).toEqual(['not an endpoint of OPNsense 26.7.2']);
    expect(req('POST', '/api/routing/group_settings/set', { gateway_group: {} }).map((x) => x.message)).toEqual(['missing path parameter(s) of routing.group_settings.set (uuid)']);
  });
});
