// Behaviour of the OPNsense double against BEHAVIOR.md: envelopes, quirks, saved vs applied,
// derived gateways, status, diagnostics, backups and the test controls.
import { loadSample } from './data';
import { startOpnsenseDouble, type OpnsenseDouble } from './server';
import { rawCall } from './test-client';

let d: OpnsenseDouble;
beforeAll(async () => {
  d = await startOpnsenseDouble();
});
afterAll(async () => {
  await d.close();
});
beforeEach(() => d.reset());

const call = (method: string, path: string, body?: unknown, extra: Parameters<typeof rawCall>[3] = {}) => rawCall(d, method, path, { body, ...extra });
const gatewayRows = async () => ((await call('POST', '/api/routing/settings/search_gateway', {})).json as { rows: Record<string, unknown>[] }).rows;

describe('request pipeline and quirks', () => {
  it('refuses a wrong key or secret with 401 Authentication Failed', async () => {
    const r = await call('GET', '/api/core/firmware/status', undefined, { auth: { key: d.apiKey, secret: 'nope' } });
    expect(r.status).toBe(401);
    expect(r.json).toEqual(loadSample('error-401-authentication-failed.from-code.json'));
  });

  it('answers 404 Endpoint not found for unknown paths and for missing path parameters, also with ?uuid=', async () => {
    const nf = loadSample('error-endpoint-not-found.json');
    expect((await call('GET', '/api/routing/settings/nope')).json).toEqual(nf);
    const missing = await call('POST', '/api/routing/settings/set_gateway', { gateway_item: {} });
    expect([missing.status, missing.json]).toEqual([404, nf]);
    const query = await call('POST', '/api/routing/settings/setGateway?uuid=WAN_DHCP', { gateway_item: {} });
    expect([query.status, query.json]).toEqual([404, nf]);
  });

  it('resolves camelCase actions and controllers like the router, but not a lower-cased controller', async () => {
    expect((await call('POST', '/api/routing/settings/searchGateway', {})).status).toBe(200);
    expect((await call('GET', '/api/routing/groupSettings/search')).status).toBe(200);
    expect((await call('GET', '/api/routing/groupsettings/search')).status).toBe(404);
  });

  it('answers 400 Invalid JSON syntax for a JSON content type with an empty body', async () => {
    const r = await call('POST', '/api/routing/settings/reconfigure', undefined, { contentType: 'application/json', rawBody: '' });
    expect([r.status, r.json]).toEqual([400, loadSample('error-400-invalid-json.from-code.json')]);
    expect((await call('POST', '/api/routing/settings/reconfigure', undefined, { contentType: null })).json).toEqual({ status: 'ok' });
  });

  it('answers a GET on a mutator with HTTP 200 and a failure body, never 405', async () => {
    expect(await call('GET', '/api/routing/settings/add_gateway')).toMatchObject({ status: 200, json: { result: 'failed' } });
    expect(await call('GET', '/api/routing/settings/reconfigure')).toMatchObject({ status: 200, json: { status: 'failed' } });
    expect(await call('GET', '/api/firewall/filter/apply')).toMatchObject({ status: 200, json: { status: 'error' } });
  });

  it('reports validation failures as HTTP 200 with <root>.<field> keys; JSON false is "" and fails a required boolean', async () => {
    const r = await call('POST', '/api/routing/settings/add_gateway', { gateway_item: { name: 'X Y', interface: 'wan', ipprotocol: 'inet', monitor_disable: false } });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      result: 'failed',
      validations: expect.objectContaining({
        'gateway_item.name': expect.stringMatching(/A valid gateway name must be specified/),
        'gateway_item.monitor_disable': 'A value is required.',
      }),
    });
  });

  it('answers 500 for an array where a single value is expected, and ignores unknown keys', async () => {
    const r = await call('POST', '/api/routing/group_settings/add', { gateway_group: { name: ['a'] } });
    expect(r.status).toBe(500);
    expect(r.json).toMatchObject({ errorMessage: 'Invalid input type for name: expected a single value' });
    const ok = await call('POST', '/api/firewall/filter/add_rule', { rule: { interface: 'lan', description: 'x', alert_interval: '5' } });
    expect(ok.json).toEqual({ result: 'saved', uuid: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });

  it('returns configd raw "OK\\n\\n" from firewall apply, {"status":"ok"} from reconfigure', async () => {
    expect((await call('POST', '/api/firewall/filter/apply', {})).json).toEqual(loadSample('firewall-filter-apply.json'));
    expect((await call('POST', '/api/routing/group_settings/reconfigure', {})).json).toEqual(loadSample('routing-settings-reconfigure.ok.json'));
  });
});

describe('gateways', () => {
  it('derives <DESCR>_DHCP virtual gateways from enabled DHCP interfaces (priority 254, monitoring off)', async () => {
    const rows = await gatewayRows();
    expect(rows.map((r) => r.name)).toEqual(['WAN_DHCP', 'WAN_DHCP6', 'WAN2_DHCP']);
    expect(rows[0]).toMatchObject({ uuid: 'WAN_DHCP', virtual: true, dynamic: true, priority: 254, monitor_disable: '1', gateway: '192.168.1.1', interface: 'wan', upstream: false });
  });

  it('stores a virtual gateway through set_gateway/<name> under a new uuid; monitor IPs must be unique', async () => {
    const body = (monitor: string) => ({ gateway_item: { name: 'WAN_DHCP', interface: 'wan', ipprotocol: 'inet', gateway: '', monitor_disable: '0', monitor, priority: '10', weight: '1', disabled: '0' } });
    expect((await call('POST', '/api/routing/settings/set_gateway/WAN_DHCP', body('1.1.1.1'))).json).toEqual({ result: 'saved' });
    const stored = (await gatewayRows()).find((r) => r.name === 'WAN_DHCP')!;
    expect(stored).toMatchObject({ virtual: false, monitor: '1.1.1.1', monitor_disable: '0', priority: '10', current_time_period: '60' });
    expect(stored.uuid).toMatch(/^[0-9a-f-]{36}$/);
    const dup = await call('POST', '/api/routing/settings/set_gateway/WAN2_DHCP', { gateway_item: { ...body('1.1.1.1').gateway_item, name: 'WAN2_DHCP', interface: 'opt1' } });
    expect(dup.json).toEqual({ result: 'failed', validations: { 'gateway_item.monitor': 'This monitor IP address already exists.' } });
    const rename = await call('POST', `/api/routing/settings/set_gateway/${stored.uuid}`, { gateway_item: { name: 'OTHER' } });
    expect(rename.json).toEqual({ result: 'failed', validations: { 'gateway_item.name': 'Changing name on a gateway is not allowed.' } });
  });

  it('checks time_period against 2 × (interval + loss_interval), like the model class', async () => {
    const r = await call('POST', '/api/routing/settings/set_gateway/WAN_DHCP', { gateway_item: { name: 'WAN_DHCP', interface: 'wan', monitor_disable: '0', interval: '10', loss_interval: '10', time_period: '30' } });
    const sample = loadSample<{ validations: Record<string, string> }>('routing-settings-add_gateway.validation-failed.from-code.json');
    expect(r.json).toEqual({ result: 'failed', validations: { 'gateway_item.time_period': sample.validations['gateway_item.time_period'] } });
  });

  it('keeps saved apart from applied: status follows force_down only after reconfigure', async () => {
    const status = async () => ((await call('GET', '/api/routes/gateway/status')).json as { items: { name: string; status: string; monitor: string }[] }).items;
    await call('POST', '/api/routing/settings/set_gateway/WAN_DHCP', { gateway_item: { name: 'WAN_DHCP', interface: 'wan', monitor_disable: '0', monitor: '1.1.1.1', force_down: '1' } });
    expect((await status()).find((i) => i.name === 'WAN_DHCP')).toMatchObject({ status: 'none', monitor: '~' });
    expect(d.unapplied()).toEqual(['routing']);
    await call('POST', '/api/routing/settings/reconfigure', {});
    expect(d.unapplied()).toEqual([]);
    expect((await status()).find((i) => i.name === 'WAN_DHCP')).toMatchObject({ status: 'force_down', status_translated: 'Offline (forced)', monitor: '1.1.1.1' });
  });

  it('reports dpinger status from link health against the thresholds', async () => {
    await call('POST', '/api/routing/settings/set_gateway/WAN2_DHCP', { gateway_item: { name: 'WAN2_DHCP', interface: 'opt1', monitor_disable: '0', monitor: '9.9.9.9' } });
    await call('POST', '/api/routing/settings/reconfigure', {});
    d.setLinkHealth('opt1', { lossPercent: 12, delayMs: 30 });
    const item = () => call('GET', '/api/routes/gateway/status').then((r) => (r.json as { items: { name: string }[] }).items.find((i) => i.name === 'WAN2_DHCP'));
    expect(await item()).toMatchObject({ status: 'loss', status_translated: 'Packetloss', loss: '12.0 %', delay: '30.0 ms' });
    d.setLinkHealth('WAN2_DHCP', { up: false });
    expect(await item()).toMatchObject({ status: 'down', status_translated: 'Offline', loss: '100.0 %' });
  });
});

describe('groups, rules, NAT and states', () => {
  async function failoverSetup(): Promise<string> {
    for (const [name, id, mon, prio] of [['WAN_DHCP', 'wan', '1.1.1.1', '10'], ['WAN2_DHCP', 'opt1', '9.9.9.9', '20']] as const) {
      await call('POST', `/api/routing/settings/set_gateway/${name}`, { gateway_item: { name, interface: id, monitor_disable: '0', monitor: mon, priority: prio, monitor_killstates: '1' } });
    }
    const g = await call('POST', '/api/routing/group_settings/add', { gateway_group: { name: 'G', item: 'WAN_DHCP', item2: 'WAN2_DHCP', trigger: 'down' } });
    expect(g.json).toMatchObject({ result: 'saved' });
    const rows = ((await call('POST', '/api/firewall/filter/search_rule', {})).json as { rows: { uuid: string; description: string }[] }).rows;
    const def = rows.find((r) => r.description === 'Default allow LAN to any rule')!;
    expect((await call('POST', `/api/firewall/filter/set_rule/${def.uuid}`, { rule: { gateway: 'G' } })).json).toEqual({ result: 'saved' });
    await call('POST', '/api/routing/settings/reconfigure', {});
    return def.uuid;
  }

  it('ships the factory MVC LAN rules of config.xml.sample and refuses an unknown gateway', async () => {
    const rows = ((await call('POST', '/api/firewall/filter/search_rule', {})).json as { rows: Record<string, unknown>[] }).rows;
    expect(rows.map((r) => [r.description, r.ipprotocol, r.sequence, r['%ipprotocol']])).toEqual([
      ['Default allow LAN to any rule', 'inet', '1', 'IPv4'],
      ['Default allow LAN IPv6 to any rule', 'inet6', '11', 'IPv6'],
    ]);
    const bad = await call('POST', '/api/firewall/filter/add_rule', { rule: { interface: 'lan', gateway: 'NOPE' } });
    expect(bad.json).toEqual({ result: 'failed', validations: { 'rule.gateway': 'Specify a valid gateway from the list matching the networks ip protocol.' } });
  });

  it('routes LAN connections through the active tier, kills states on failover, refuses to delete a used group', async () => {
    await failoverSetup();
    const s1 = d.openConnection({ src: '192.168.10.100', dst: '93.184.216.34' });
    expect(s1).toMatchObject({ gateway: 'WAN_DHCP', nat_addr: '192.168.1.100', 'route-to': '192.168.1.1' });
    expect(d.openConnection({ src: '192.168.10.100', dst: '192.168.10.1', dport: 53 })).toMatchObject({ gateway: null });
    d.setLinkHealth('wan', { up: false });
    const q = await call('POST', '/api/diagnostics/firewall/query_states', { searchPhrase: '93.184.216.34' });
    expect((q.json as { rows: unknown[] }).rows).toEqual([]); // killed with the failed gateway
    expect(d.openConnection({ src: '192.168.10.100', dst: '93.184.216.34' })).toMatchObject({ gateway: 'WAN2_DHCP', nat_addr: '192.168.43.20' });
    const groups = ((await call('POST', '/api/routing/group_settings/search', {})).json as { rows: { uuid: string; gateways: Record<string, { name: string; label: string }[]> }[] }).rows;
    expect(groups[0]!.gateways['1']).toEqual([expect.objectContaining({ name: 'WAN_DHCP', label: 'danger' })]);
    const del = await call('POST', `/api/routing/group_settings/del/${groups[0]!.uuid}`, {});
    expect(del.status).toBe(500);
    expect(del.json).toMatchObject({ errorMessage: expect.stringMatching(/^Gateway group G in use by/), errorLevel: 'error' });
  });

  it('kills states by filter and answers ping jobs sourced from a WAN address', async () => {
    await failoverSetup();
    d.openConnection({ src: '192.168.10.101', dst: '1.0.0.1' });
    expect((await call('POST', '/api/diagnostics/firewall/kill_states', { filter: '192.168.10.101' })).json).toEqual({ result: 'ok', dropped_states: 1 });
    const set = await call('POST', '/api/diagnostics/ping/set', { ping: { settings: { hostname: '1.1.1.1', fam: 'ip', source_address: '192.168.43.20' } } });
    const id = (set.json as { uuid: string }).uuid;
    expect((await call('POST', `/api/diagnostics/ping/start/${id}`, {})).json).toEqual({ status: 'ok' });
    d.setLinkHealth('opt1', { up: false });
    const jobs = ((await call('POST', '/api/diagnostics/ping/search_jobs', {})).json as { rows: Record<string, unknown>[] }).rows;
    expect(jobs[0]).toMatchObject({ id, status: 'running', send: 1, received: 0, loss: '100.00 %', source_address: '192.168.43.20' });
    expect((await call('POST', `/api/diagnostics/ping/remove/${id}`, {})).json).toEqual({ status: 'ok', stopped_processes: 1 });
  });

  it('lists manual NAT rules only in hybrid/advanced mode, automatic rows in automatic/hybrid', async () => {
    await call('POST', '/api/firewall/source_nat/add_rule', { rule: { interface: 'opt1', source_net: 'lan', target: '', description: 'mine' } });
    const rows = async () => ((await call('POST', '/api/firewall/source_nat/search_rule', {})).json as { rows: { description: string; is_automatic?: boolean }[] }).rows;
    expect((await rows()).map((r) => r.description)).toEqual(['Automatic outbound rule (WAN)', 'Automatic outbound rule (WAN2)']);
    expect((await call('POST', '/api/firewall/source_nat/set', { filter: { general: { snat_mode: 'hybrid' } } })).json).toEqual({ result: 'saved' });
    expect((await rows()).map((r) => r.description)).toEqual(['mine', 'Automatic outbound rule (WAN)', 'Automatic outbound rule (WAN2)']);
    const any = await call('POST', '/api/firewall/source_nat/add_rule', { rule: { interface: 'wan', target: 'any' } });
    expect(any.json).toEqual({ result: 'failed', validations: { 'rule.target': 'Target address cannot be any.' } });
    expect(((await call('GET', '/api/firewall/source_nat/get')).json as { filter: { general: { snat_mode: Record<string, { selected: number }> } } }).filter.general.snat_mode.hybrid!.selected).toBe(1);
  });
});

describe('interfaces, backups, versions and controls', () => {
  it('queues a relink until interfaces/assignment/reconfigure', async () => {
    expect((await call('POST', '/api/interfaces/assignment/set_item/wan', { interface: { if: 'igc1' } })).json).toEqual({ result: 'saved' });
    expect(d.unapplied()).toEqual(['interfaces']);
    const taken = await call('POST', '/api/interfaces/assignment/set_item/opt1', { interface: { if: 'igc1' } });
    expect(taken.json).toEqual({ result: 'failed', validations: { 'interface.if': 'Can not assign a device to more interfaces.' } });
    await call('POST', '/api/interfaces/assignment/reconfigure', {});
    expect(d.unapplied()).toEqual([]);
    expect(d.state.applied.interfaces.wan!.if).toBe('igc1');
  });

  it('writes a history copy on every save and reverts config.xml (only) to one', async () => {
    const first = ((await call('GET', '/api/core/backup/backups/this')).json as { items: { id: string }[] }).items[0]!.id;
    await call('POST', '/api/firewall/filter/add_rule', { rule: { interface: 'lan', description: 'temp' } });
    const list = ((await call('GET', '/api/core/backup/backups/this')).json as { items: { id: string }[] }).items;
    expect(list.length).toBe(2);
    const xml = await call('GET', `/api/core/backup/download/this/${list[0]!.id}`);
    expect(xml.contentType).toBe('application/octet-stream');
    expect(xml.text).toContain('<description>temp</description>');
    expect((await call('POST', `/api/core/backup/revert_backup/${first}`, {})).json).toEqual({ status: 'reverted' });
    expect(Object.values(d.state.config.rules).map((r) => r.description)).not.toContain('temp');
    expect((await call('POST', '/api/core/backup/revert_backup/config-1.xml', {})).json).toEqual({ status: 'not_found' });
  });

  it('plays 26.1.9: the firmware version of the sample, no group or assignment API', async () => {
    d.setVersion('26.1.9');
    try {
      const fw = (await call('GET', '/api/core/firmware/status')).json as { product: { product_version: string } };
      expect(fw.product.product_version).toBe(loadSample<{ product: { product_version: string } }>('core-firmware-status.26.1.9.json').product.product_version);
      expect((await call('GET', '/api/routing/group_settings/search')).status).toBe(404);
      expect((await call('POST', '/api/interfaces/assignment/search_item', {})).status).toBe(404);
      expect((await call('POST', '/api/firewall/filter/savepoint', {})).status).toBe(500); // exists up to 26.1, not simulated
    } finally {
      d.setVersion('26.7.2');
    }
  });

  it('fails the next model write with a validation error on request, saving nothing', async () => {
    d.failNextWrite({ field: 'rule.description', message: 'nope', after: 1 });
    expect((await call('POST', '/api/firewall/filter/add_rule', { rule: { interface: 'lan' } })).json).toMatchObject({ result: 'saved' });
    expect((await call('POST', '/api/firewall/filter/add_rule', { rule: { interface: 'lan' } })).json).toEqual({ result: 'failed', validations: { 'rule.description': 'nope' } });
    expect(d.writeCount).toBe(1);
  });

  it('stops answering on request and answers again after resumeAnswering', async () => {
    d.stopAnswering({ count: 1 });
    await expect(rawCall(d, 'GET', '/api/core/firmware/status', { timeoutMs: 300 }).then(() => 'answered')).rejects.toThrow(/socket hang up|ECONNRESET|timeout/);
    expect((await call('GET', '/api/core/firmware/status')).status).toBe(200);
  });
});
