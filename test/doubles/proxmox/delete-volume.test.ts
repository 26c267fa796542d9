// DELETE /nodes/{node}/storage/{storage}/content/{volume} (pve-storage API2/Storage/Content.pm
// `delete`), on both schema versions: the volume id rules, the privilege the code checks (the
// schema only says `user: all`), the imgdel task, a missing file as a task warning.
import { type ProxmoxDouble } from './server';
import { RawClient } from './test-client';
import { useRawDouble } from '../../helpers/raw-double';

const SEED = 'local:iso/dualwan-seed-100.iso';
const STORAGE_PRIVS = ['Datastore.AllocateSpace', 'Datastore.AllocateTemplate', 'Datastore.Audit'];

describe.each(['8.4', '9.1'] as const)('deleting a storage volume, PVE %s', (schemaVersion) => {
  let d: ProxmoxDouble;
  let c: RawClient;
  useRawDouble({ authFailDelayMs: 0, taskDurationMs: 20, schemaVersion }, (double, client) => ((d = double), (c = client)), { reset: false });
  beforeEach(() => {
    d.reset();
    d.state.volumes.push({ volid: SEED, storage: 'local', content: 'iso', format: 'iso', size: 51_200, ctime: 1_700_000_000 });
  });
  const path = (storage: string, volume: string) => `/nodes/pve/storage/${storage}/content/${encodeURIComponent(volume)}`;
  const volids = () => d.state.volumes.map((v) => v.volid);

  it('is refused without Datastore.Allocate on the storage, which the dualwan role does not have', async () => {
    const r = await c.call('DELETE', path('local', SEED));
    expect(r.status).toBe(403);
    expect(r.body?.message ?? r.reason).toContain('Datastore.Allocate');
    expect(volids()).toContain(SEED);
    expect(d.contractViolations).toEqual([]);
  });

  it('with it: an imgdel task removes the volume; a second delete ends with a warning, not an error', async () => {
    d.grant(d.tokenId, '/storage/local', ['Datastore.Allocate', ...STORAGE_PRIVS]);
    const upid = await c.data<string>('DELETE', path('local', SEED));
    expect(upid).toMatch(/^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:imgdel:local:dualwan@pve!setup:$/);
    expect((await c.task(upid)).exitstatus).toBe('OK');
    expect(volids()).not.toContain(SEED);
    const log = await c.data<{ t: string }[]>('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/log`);
    expect(log.map((l) => l.t)).toContain(`Removed volume '${SEED}'`);
    const again = await c.data<string>('DELETE', path('local', SEED));
    expect((await c.task(again)).exitstatus).toBe('WARNINGS: 1');
  });

  it('takes the volume name without the storage, and refuses a volume id of another storage', async () => {
    d.grant(d.tokenId, '/storage', ['Datastore.Allocate', ...STORAGE_PRIVS]);
    const mismatch = await c.call('DELETE', path('local-lvm', SEED));
    expect(mismatch.status).toBe(400);
    expect(mismatch.body?.errors?.volume).toBe('storage ID mismatch (local != local-lvm)');
    expect(volids()).toContain(SEED);
    const upid = await c.data<string>('DELETE', path('local', 'iso/dualwan-seed-100.iso'));
    expect((await c.task(upid)).exitstatus).toBe('OK');
    expect(volids()).not.toContain(SEED);
  });

  it('an unknown parameter is refused by the schema', async () => {
    d.grant(d.tokenId, '/storage/local', ['Datastore.Allocate', ...STORAGE_PRIVS]);
    const r = await c.call('DELETE', path('local', SEED), { force: 1 });
    expect(r.status).toBe(400);
    expect(volids()).toContain(SEED);
  });
});
