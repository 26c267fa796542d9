import * as path from 'node:path';
import { loadConfigFile } from '../../../src/config/load';
import type { DesiredState } from '../../../src/core/desired';
import { DualwanError } from '../../../src/core/errors';
import type { ProxmoxClient } from '../../../src/providers/proxmox/client';
import { assertUnpackerPresent, humanSize } from '../../../src/providers/proxmox/image-source';
import { imageHandler, importContentRemedy } from '../../../src/providers/proxmox/resources/image';
import type { ProxmoxContext } from '../../../src/providers/proxmox/resources/context';
import { driveBytes, vmDesired } from '../../../src/providers/proxmox/resources/vm';

function state(): DesiredState {
  const r = loadConfigFile(path.resolve(__dirname, '../../../playbooks/hotspot-failover.yaml'));
  if (!r.state) throw new Error('playbook does not load');
  return r.state;
}

/** Just the reads the image handler makes, answered from fixed data; any other call fails the test. */
function fakeClient(o: { importContent?: { volid: string; size: number }[]; storageContent?: string; vmConfig?: Record<string, string> }): ProxmoxClient {
  const reads: string[] = [];
  const c = {
    reads,
    storages: async () => (reads.push('storages'), [{ storage: 'local', type: 'dir', content: o.storageContent ?? 'iso,vztmpl,import,backup' }]),
    storageContent: async (_s: string, content: string) => (reads.push(`content ${content}`), (o.importContent ?? []).map((v) => ({ ...v, content: 'import', format: 'raw' }))),
    vmResources: async () => (reads.push('resources'), o.vmConfig ? [{ id: 'qemu/100', type: 'qemu', vmid: 100, node: 'pve', tags: 'dualwan' }] : []),
    vmConfig: async () => (reads.push('config'), o.vmConfig ?? {}),
  };
  return c as unknown as ProxmoxClient;
}

const ctxWith = (client: ProxmoxClient): ProxmoxContext => ({ state: state(), client, discovery: {} as ProxmoxContext['discovery'] });

describe('proxmox.image: the router VM image in the import content of the image storage', () => {
  it('wants the template image as <storage>:import/<name>.raw, and the VM disk imports from it', () => {
    const [d] = imageHandler.desired(ctxWith(fakeClient({})));
    expect(d!.address).toBe('proxmox.image/local:import/OPNsense-26.7-nano-amd64.raw');
    expect(d!.value).toEqual({
      storage: 'local',
      filename: 'OPNsense-26.7-nano-amd64.raw',
      url: 'https://pkg.opnsense.org/releases/26.7/OPNsense-26.7-nano-amd64.img.bz2',
      checksum: expect.stringMatching(/^[0-9a-f]{64}$/),
      checksumAlgorithm: 'sha256',
      compression: 'bz2',
      vmid: 100,
      diskKey: 'scsi0',
    });
    expect(vmDesired(state())!.disk).toEqual({ key: 'scsi0', create: 'local-lvm:0,import-from=local:import/OPNsense-26.7-nano-amd64.raw,discard=on,iothread=1', sizeGiB: 16 });
  });

  it('plans the download and upload as a slow step that interrupts nothing, with the announced size', () => {
    const [d] = imageHandler.desired(ctxWith(fakeClient({})));
    const diff = imageHandler.diff(d!.value, { state: 'absent', downloadBytes: 512_345_678 });
    expect(diff.action).toBe('create');
    expect(diff.disruption).toEqual(['downloads-image']);
    expect(diff.properties).toEqual([
      { path: 'source', before: null, after: 'https://pkg.opnsense.org/releases/26.7/OPNsense-26.7-nano-amd64.img.bz2' },
      { path: 'sha256', before: null, after: d!.value.checksum },
      { path: 'download', before: null, after: '512 MB' },
      { path: 'volume', before: null, after: 'local:import/OPNsense-26.7-nano-amd64.raw' },
    ]);
    expect(diff.reason).toMatch(/^interrupts nothing, but takes a while: dualwan downloads the image here \(512 MB\), checks its sha256, unpacks it \(bz2/);
    expect(imageHandler.diff(d!.value, { state: 'absent' }).properties).toContainEqual({ path: 'download', before: null, after: 'size not announced by the server' });
  });

  it('plans nothing when the file is on the storage, or when the VM already has its disk', () => {
    const [d] = imageHandler.desired(ctxWith(fakeClient({})));
    expect(imageHandler.diff(d!.value, { state: 'on-storage', volid: 'local:import/OPNsense-26.7-nano-amd64.raw', size: 3_221_225_472 }).action).toBe('noop');
    expect(imageHandler.diff(d!.value, { state: 'on-vm-disk', vmid: 100 }).action).toBe('noop');
  });

  it('observes the file in import content, else a VM that already has its disk', async () => {
    const ctx = ctxWith(fakeClient({ importContent: [{ volid: 'local:import/OPNsense-26.7-nano-amd64.raw', size: 3_221_225_472 }] }));
    const want = imageHandler.desired(ctx);
    expect((await imageHandler.observe(ctx, want))[0]!.value).toEqual({ state: 'on-storage', volid: 'local:import/OPNsense-26.7-nano-amd64.raw', size: 3_221_225_472 });
    const gone = ctxWith(fakeClient({ vmConfig: { scsi0: 'local-lvm:vm-100-disk-0,discard=on,iothread=1,size=16G' } }));
    expect((await imageHandler.observe(gone, want))[0]!.value).toEqual({ state: 'on-vm-disk', vmid: 100 });
  });

  it('the remedy for a storage without import content is the exact command for its content list', () => {
    expect(importContentRemedy({ storage: 'local', type: 'dir', content: 'iso,vztmpl,backup' })).toContain('pvesm set local --content iso,vztmpl,backup,import');
    expect(importContentRemedy({ storage: 'nas', type: 'nfs', content: '' })).toContain('pvesm set nas --content import');
    expect(importContentRemedy({ storage: 'local-lvm', type: 'lvmthin', content: 'images,rootdir' })).toMatch(/keeps no files/);
  });

  it('a machine without bzip2: a clear refusal with what to install, before anything is downloaded', () => {
    let err: unknown;
    try {
      assertUnpackerPresent('bz2', { PATH: '/nonexistent' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DualwanError);
    expect(err).toMatchObject({ code: 'IMAGE_UNPACKER_MISSING', message: expect.stringContaining("no 'bzip2'"), remedy: expect.stringContaining('sudo apt-get install bzip2') });
    expect(() => assertUnpackerPresent(undefined, { PATH: '/nonexistent' })).not.toThrow();
  });

  it('reads disk sizes as qemu-server prints them', () => {
    expect(driveBytes('local-lvm:vm-100-disk-0,discard=on,iothread=1,size=16G')).toBe(16 * 1024 ** 3);
    expect(driveBytes('local-lvm:vm-100-disk-0,size=1048576')).toBe(1048576);
    expect(driveBytes('local-lvm:vm-100-disk-0,discard=on')).toBeUndefined();
    expect(humanSize(3_300_000_000)).toBe('3.3 GB');
  });
});
