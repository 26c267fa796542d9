// Every recorded OPNsense sample is parsed by the client's own schemas.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GatewayRowSchema, gridSchema, SAMPLE_SCHEMAS } from '../../../src/providers/opnsense/schemas';
import { observedFromRow } from '../../../src/providers/opnsense/resources/gateways';

const dir = path.join(__dirname, '..', '..', 'fixtures', 'upstream', 'opnsense', 'samples');
const samples = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const load = (f: string): unknown => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));

it('has a schema for every sample and a sample for every schema entry', () => {
  expect(Object.keys(SAMPLE_SCHEMAS).sort()).toEqual(samples);
});

it.each(samples)('%s parses', (f) => {
  const r = SAMPLE_SCHEMAS[f]!.safeParse(load(f));
  expect(r.error?.issues ?? []).toEqual([]);
});

it('reads the captured search_gateway rows in the same terms dualwan posts', () => {
  const virtual = gridSchema(GatewayRowSchema).parse(load('routing-settings-search_gateway.25.x.virtual-row-excerpt.json')).rows[0]!;
  // a virtual, dynamic row: priority arrives as a number, the gateway as its current address
  expect(observedFromRow(virtual)).toMatchObject({ virtual: true, name: 'WAN_DHCP6', priority: '254', gateway: '', monitor_disable: '1', defaultgw: '0' });
  const stored = gridSchema(GatewayRowSchema).parse(load('routing-settings-search_gateway.25.x.stored-row-excerpt.json')).rows[0]!;
  expect(observedFromRow(stored)).toMatchObject({ virtual: false, gateway: '', latencyhigh: '', monitor_killstates: '0' });
});
