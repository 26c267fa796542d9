// The contract logger of the OPNsense double: every request with a dualwan/ User-Agent is checked
// against the 26.7.2 catalogue and conventions; violations go to the run's log, which the global
// teardown turns into a failed run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pendingChanges } from '../../src/core/plan';
import { openRouterRun } from '../doubles/opnsense/harness';
import { type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { rawCall } from '../doubles/opnsense/test-client';
import globalSetup from './global-setup';
import globalTeardown, { formatViolations, type LoggedViolation } from './global-teardown';
import { useSimulatedRouter } from '../helpers/router-fixture';

let router: SimulatedRouter;
let savedLog: string | undefined;
let tmp: string;

useSimulatedRouter((r) => (router = r));

function withPrivateLog(): void {
  savedLog = process.env.DUALWAN_CONTRACT_LOG;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-opn-contract-'));
  process.env.DUALWAN_CONTRACT_LOG = path.join(tmp, 'log.jsonl');
}
function restoreLog(): void {
  if (savedLog === undefined) delete process.env.DUALWAN_CONTRACT_LOG;
  else process.env.DUALWAN_CONTRACT_LOG = savedLog;
  fs.rmSync(tmp, { recursive: true, force: true });
}

it('every request of a full apply is a documented 26.7 endpoint with a valid body', async () => {
  const run = await openRouterRun(router);
  try {
    const plan = await run.plan();
    await run.apply(plan);
    expect(pendingChanges(plan).length).toBeGreaterThan(0);
  } finally {
    await run.close();
  }
  const used = [...new Set(router.controls.requests.map((r) => `${r.method} ${r.endpoint ?? `(no endpoint) ${r.path}`}`))].sort();
  expect(used).toEqual([
    'GET core.backup.backups',
    'GET core.backup.download',
    'GET core.firmware.status',
    'GET firewall.source_nat.get',
    'GET interfaces.overview.interfaces_info',
    'POST firewall.filter.add_rule',
    'POST firewall.filter.apply',
    'POST firewall.filter.search_rule',
    'POST firewall.filter.set_rule',
    'POST firewall.source_nat.add_rule',
    'POST firewall.source_nat.apply',
    'POST firewall.source_nat.search_rule',
    'POST firewall.source_nat.set',
    'POST interfaces.assignment.reconfigure',
    'POST interfaces.assignment.search_item',
    'POST interfaces.assignment.set_item',
    'POST routing.group_settings.add',
    'POST routing.group_settings.reconfigure',
    'POST routing.group_settings.search',
    'POST routing.settings.reconfigure',
    'POST routing.settings.search_gateway',
    'POST routing.settings.set_gateway',
  ]);
  expect(router.controls.contractViolations).toEqual([]);
});

describe('the log', () => {
  beforeEach(withPrivateLog);
  afterEach(restoreLog);

  it('records a dualwan/ request that breaks the conventions, with the field and the reason', async () => {
    const r = await rawCall(router.controls, 'POST', '/api/routing/settings/set_gateway/WAN_DHCP', { userAgent: 'dualwan/0.1.0', body: { gateway_item: { name: 'WAN_DHCP', interface: 'wan', weight: 2 } } });
    expect(r.json).toEqual({ result: 'saved' }); // the server itself accepts a number
    expect(router.controls.contractViolations).toEqual([
      expect.objectContaining({ system: 'opnsense', version: '26.7.2', method: 'POST', path: '/api/routing/settings/set_gateway/WAN_DHCP', errors: { 'gateway_item.weight': 'sent as JSON number; every value must be a string' } }),
    ]);
    const logged = fs.readFileSync(process.env.DUALWAN_CONTRACT_LOG!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LoggedViolation);
    expect(logged.map((l) => [l.system, l.path])).toEqual([['opnsense', '/api/routing/settings/set_gateway/WAN_DHCP']]);
  });

  it('records removed endpoints and empty JSON bodies; ignores other user agents', async () => {
    await rawCall(router.controls, 'POST', '/api/firewall/filter/savepoint', { userAgent: 'dualwan/0.1.0', body: {} });
    await rawCall(router.controls, 'POST', '/api/firewall/filter/apply', { userAgent: 'dualwan/0.1.0', rawBody: '', contentType: 'application/json' });
    await rawCall(router.controls, 'POST', '/api/firewall/filter/savepoint', { userAgent: 'curl/8', body: {} });
    expect(router.controls.contractViolations.map((v) => v.message)).toEqual(['not an endpoint of OPNsense 26.7.2', 'JSON content type with an empty body (OPNsense answers 400): send {}']);
  });
});

it('global teardown names OPNsense violations apart from Proxmox ones', async () => {
  const before = process.env.DUALWAN_CONTRACT_LOG;
  await globalSetup();
  const file = process.env.DUALWAN_CONTRACT_LOG!;
  const opn: LoggedViolation = { system: 'opnsense', version: '26.7.2', method: 'POST', path: '/api/firewall/filter/add_rule', status: 0, message: 'the rule body does not fit Firewall.Filter.rules.rule', errors: { 'rule.sequence': 'sent as JSON number; every value must be a string' } };
  fs.appendFileSync(file, `${JSON.stringify(opn)}\n`);
  await expect(globalTeardown()).rejects.toThrow(/^dualwan sent 1 request\(s\) that break the OPNsense 26\.7 API catalogue or its conventions[\s\S]*OPNsense 26\.7\.2: POST \/api\/firewall\/filter\/add_rule: the rule body[\s\S]*rule\.sequence: sent as JSON number/);
  expect(formatViolations([opn])).not.toContain('PVE');
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  if (before === undefined) delete process.env.DUALWAN_CONTRACT_LOG;
  else process.env.DUALWAN_CONTRACT_LOG = before;
});
