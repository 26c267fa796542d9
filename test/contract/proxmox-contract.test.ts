// The contract logger of the Proxmox test double: requests with a dualwan/ User-Agent are
// checked against BOTH schema versions, whatever version the double currently plays.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startProxmoxDouble, type ProxmoxDouble } from '../doubles/proxmox/server';
import { RawClient } from '../doubles/proxmox/test-client';
import globalSetup from './global-setup';
import globalTeardown, { formatViolations } from './global-teardown';

let d: ProxmoxDouble;
let savedLog: string | undefined;
let tmp: string;

beforeAll(async () => {
  d = await startProxmoxDouble({ authFailDelayMs: 0, taskDurationMs: 5 });
});
afterAll(async () => {
  await d.close();
});
beforeEach(() => {
  // never write into the run's real log: these violations are on purpose
  savedLog = process.env.DUALWAN_CONTRACT_LOG;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-contract-test-'));
  process.env.DUALWAN_CONTRACT_LOG = path.join(tmp, 'log.jsonl');
  d.reset();
});
afterEach(() => {
  if (savedLog === undefined) delete process.env.DUALWAN_CONTRACT_LOG;
  else process.env.DUALWAN_CONTRACT_LOG = savedLog;
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('records a dualwan/ request that only PVE 9.1 accepts (allow-ksm) as an 8.4 violation', async () => {
  const c = new RawClient(d, { userAgent: 'dualwan/0.1.0' });
  try {
    const r = await c.call('POST', '/nodes/pve/qemu', { vmid: '100', 'allow-ksm': '0' });
    expect(r.status).toBe(200); // the double plays 9.1
    expect(d.contractViolations).toEqual([
      expect.objectContaining({ version: '8.4', method: 'POST', path: '/nodes/pve/qemu', template: '/nodes/{node}/qemu', status: 400, errors: { 'allow-ksm': 'property is not defined in schema and the schema does not allow additional properties' } }),
    ]);
    const logged = fs.readFileSync(process.env.DUALWAN_CONTRACT_LOG!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { version: string });
    expect(logged.map((l) => l.version)).toEqual(['8.4']);
  } finally {
    await c.close();
  }
});

it('checks both versions even while the double plays 8.4, and unknown paths too', async () => {
  const c = new RawClient(d, { userAgent: 'dualwan/0.1.0' });
  d.setSchemaVersion('8.4');
  try {
    await c.call('GET', '/nodes/pve/qemu/100/config', { bogus: '1' });
    await c.call('GET', '/cluster/status');
    expect(d.contractViolations.map((v) => [v.version, v.status, v.path])).toEqual([
      ['8.4', 400, '/nodes/pve/qemu/100/config'],
      ['9.1', 400, '/nodes/pve/qemu/100/config'],
      ['8.4', 501, '/cluster/status'],
      ['9.1', 501, '/cluster/status'],
    ]);
  } finally {
    await c.close();
  }
});

it('ignores other user agents', async () => {
  const c = new RawClient(d, { userAgent: 'curl/8' });
  try {
    await c.call('POST', '/nodes/pve/qemu', { vmid: '100', 'allow-ksm': '0' });
    expect(d.contractViolations).toEqual([]);
  } finally {
    await c.close();
  }
});

it('global setup creates an empty log; teardown passes when empty and fails with the list otherwise', async () => {
  const before = process.env.DUALWAN_CONTRACT_LOG;
  await globalSetup();
  const file = process.env.DUALWAN_CONTRACT_LOG!;
  expect(file).not.toBe(before);
  expect(fs.readFileSync(file, 'utf8')).toBe('');
  await expect(globalTeardown()).resolves.toBeUndefined();
  expect(fs.existsSync(file)).toBe(false);

  await globalSetup();
  const file2 = process.env.DUALWAN_CONTRACT_LOG!;
  const v = { version: '8.4', method: 'POST', path: '/nodes/pve/qemu', status: 400, message: 'Parameter verification failed.\n', errors: { 'allow-ksm': 'property is not defined in schema and the schema does not allow additional properties' } };
  fs.appendFileSync(file2, `${JSON.stringify(v)}\n`);
  await expect(globalTeardown()).rejects.toThrow(/1 request\(s\) that the Proxmox VE API schema rejects[\s\S]*PVE 8\.4: POST \/nodes\/pve\/qemu -> 400 Parameter verification failed\.\n\s+allow-ksm: property is not defined/);
  expect(formatViolations([v])).toContain('allow-ksm');
  fs.rmSync(path.dirname(file2), { recursive: true, force: true });
});
