// The OPNsense client against the double: conventions, errors, pinning, counting.
import { DualwanError, RemoteApiError, TlsPinError, ValidationError } from '../../../src/core/errors';
import { OpnsenseClient } from '../../../src/providers/opnsense/client';
import { FirmwareStatusSchema, GatewayRowSchema, SavedSchema } from '../../../src/providers/opnsense/schemas';
import { startOpnsenseDouble, type OpnsenseDouble } from '../../doubles/opnsense/server';

let d: OpnsenseDouble;
let c: OpnsenseClient;
const make = (o: Partial<ConstructorParameters<typeof OpnsenseClient>[0]> = {}) =>
  new OpnsenseClient({ host: d.host, port: d.port, apiKey: d.apiKey, apiSecret: d.apiSecret, fingerprint: d.fingerprint, requestTimeoutMs: 10_000, ...o });

beforeAll(async () => {
  d = await startOpnsenseDouble();
});
afterAll(async () => {
  await d.close();
});
beforeEach(() => {
  d.reset();
  c = make();
});
afterEach(() => c.close());

const meta = { verb: 'update', resource: 'gateway', name: 'WAN_DHCP' };

it('turns HTTP 200 {"result":"failed","validations"} into a ValidationError naming field and message', async () => {
  d.failNextWrite({ field: 'gateway_item.monitor', message: 'This monitor IP address already exists.' });
  const err = await c.write('routing/settings/set_gateway/WAN_DHCP', { gateway_item: { name: 'WAN_DHCP' } }, meta, SavedSchema).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ValidationError);
  expect((err as ValidationError).message).toBe('Unable to update gateway WAN_DHCP: gateway_item.monitor: This monitor IP address already exists.');
  expect(c.writeCalls).toBe(0);
});

it('reports {"result":"failed"} without validations, 404 and 401 with what they mean', async () => {
  const unknown = await c.write('routing/settings/set_gateway/NOPE', { gateway_item: { name: 'NOPE' } }, meta, SavedSchema).catch((e: unknown) => e);
  expect(unknown).toBeInstanceOf(RemoteApiError);
  expect((unknown as Error).message).toMatch(/HTTP 200: refused without a reason/);
  // a missing path parameter is also a contract violation: keep it out of the run's log
  const saved = process.env.DUALWAN_CONTRACT_LOG;
  delete process.env.DUALWAN_CONTRACT_LOG;
  const missing = await c.action('routing/group_settings/set').catch((e: unknown) => e);
  if (saved !== undefined) process.env.DUALWAN_CONTRACT_LOG = saved;
  expect(d.contractViolations.map((v) => v.message)).toEqual(['missing path parameter(s) of routing.group_settings.set (uuid)']);
  expect((missing as RemoteApiError).status).toBe(404);
  expect((missing as Error).message).toContain('Endpoint not found (the path is unknown to this OPNsense version, or a path parameter is missing)');
  const bad = make({ apiSecret: 'wrong-secret-value' });
  const denied = await bad.get('core/firmware/status', FirmwareStatusSchema).catch((e: unknown) => e);
  bad.close();
  expect((denied as RemoteApiError).status).toBe(401);
  expect((denied as RemoteApiError).remedy).toMatch(/DUALWAN_OPNSENSE_API_KEY/);
  expect(JSON.stringify(denied)).not.toContain('wrong-secret-value');
});

it('posts {} for body-less actions, trims configd "OK\\n\\n", counts writes but not searches', async () => {
  await c.search('routing/settings/search_gateway', GatewayRowSchema);
  expect(c.writeCalls).toBe(0);
  expect(await c.action('firewall/filter/apply', undefined, /^ok$/i)).toBe('OK');
  expect(c.writeCalls).toBe(1);
  const rec = d.requests.at(-1)!;
  expect([rec.method, rec.path, rec.body, rec.status]).toEqual(['POST', '/api/firewall/filter/apply', {}, 200]);
  expect(d.requests.find((r) => r.path.endsWith('search_gateway'))?.body).toEqual({ current: 1, rowCount: -1, searchPhrase: '' });
  expect(d.contractViolations).toEqual([]);
});

it('refuses a certificate that does not match the pin before sending anything', async () => {
  const other = make({ fingerprint: 'AA:'.repeat(31) + 'AA' });
  const before = d.requests.length;
  const err = await other.get('core/firmware/status', FirmwareStatusSchema).catch((e: unknown) => e);
  other.close();
  expect(err).toBeInstanceOf(TlsPinError);
  expect(d.requests.length).toBe(before);
});

it('gives up after the request timeout with a transient "no answer"', async () => {
  const quick = make({ requestTimeoutMs: 200 });
  d.stopAnswering({ count: 1 });
  const err = await quick.get('core/firmware/status', FirmwareStatusSchema).catch((e: unknown) => e);
  quick.close();
  expect(err).toBeInstanceOf(RemoteApiError);
  expect((err as RemoteApiError).transient).toBe(true);
  expect((err as Error).message).toMatch(/no answer: timed out after 200 ms/);
});

it('refuses to send a non-string value', async () => {
  const err = await c.write('routing/settings/add_gateway', { gateway_item: { weight: 2 as unknown as string } }, meta, SavedSchema).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DualwanError);
  expect((err as DualwanError).code).toBe('OPNSENSE_BODY_ENCODING');
  expect(d.requests).toEqual([]);
});
