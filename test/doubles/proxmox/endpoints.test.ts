import { remoteFileDigest } from './state';
import { type ProxmoxDouble } from './server';
import { RawClient } from './test-client';
import { useRawDouble } from '../../helpers/raw-double';

const TOKEN = 'dualwan@pve!setup';
const ISO_BZ2 = 'https://pkg.opnsense.org/releases/25.7/OPNsense-25.7-dvd-amd64.iso.bz2';

let d: ProxmoxDouble;
let c: RawClient;

useRawDouble({ authFailDelayMs: 0, taskDurationMs: 5 }, (double, client) => ((d = double), (c = client)));

describe('download-url', () => {
  it('decompresses an ISO (content=iso, compression=bz2) and lists it under <storage>:iso/<file>', async () => {
    const sha256 = remoteFileDigest(ISO_BZ2, d.state.remoteFiles[ISO_BZ2]!, 'sha256');
    const upid = await c.data<string>('POST', '/nodes/pve/storage/local/download-url', { content: 'iso', filename: 'OPNsense-25.7-dvd-amd64.iso', url: ISO_BZ2, compression: 'bz2', checksum: sha256, 'checksum-algorithm': 'sha256' });
    expect(await c.task(upid)).toMatchObject({ exitstatus: 'OK', type: 'download', id: 'OPNsense-25.7-dvd-amd64.iso' });
    const iso = await c.data<{ volid: string; size: number; format: string }[]>('GET', '/nodes/pve/storage/local/content', { content: 'iso' });
    expect(iso).toEqual([expect.objectContaining({ volid: 'local:iso/OPNsense-25.7-dvd-amd64.iso', format: 'iso', size: 2254438400 })]);
    // a second download of the same file is refused
    const again = await c.data<string>('POST', '/nodes/pve/storage/local/download-url', { content: 'iso', filename: 'OPNsense-25.7-dvd-amd64.iso', url: ISO_BZ2, compression: 'bz2' });
    expect((await c.task(again)).exitstatus).toBe("refusing to override existing file '/var/lib/vz/template/iso/OPNsense-25.7-dvd-amd64.iso'");
  });

  it('fails the task for unknown URLs, decompression of non-ISO content and bad checksums', async () => {
    const unknown = await c.data<string>('POST', '/nodes/pve/storage/local/download-url', { content: 'iso', filename: 'x.iso', url: 'https://example.invalid/x.iso' });
    expect((await c.task(unknown)).exitstatus).toMatch(/^download failed: command 'wget --progress=dot:giga -O \/var\/lib\/vz\/template\/iso\/x\.iso\.tmp_dwnl\.\d+ https:\/\/example\.invalid\/x\.iso' failed: exit code 8$/);
    const comp = await c.data<string>('POST', '/nodes/pve/storage/local/download-url', { content: 'import', filename: 'a.qcow2', url: ISO_BZ2, compression: 'bz2' });
    expect((await c.task(comp)).exitstatus).toBe('decompression not supported for import');
    const bad = await c.data<string>('POST', '/nodes/pve/storage/local/download-url', { content: 'iso', filename: 'b.iso', url: ISO_BZ2, checksum: 'ff', 'checksum-algorithm': 'sha512' });
    expect((await c.task(bad)).exitstatus).toMatch(/^checksum mismatch: got '[0-9a-f]{128}' != expect 'ff'$/);
    expect(await c.data('GET', '/nodes/pve/storage/local/content')).toEqual([]);
  });

  it('refuses wrong extensions and storages without the content type, before any task', async () => {
    expect(await c.call('POST', '/nodes/pve/storage/local/download-url', { content: 'import', filename: 'nano.img', url: ISO_BZ2 })).toMatchObject({ status: 400, body: { errors: { filename: 'invalid filename or wrong extension' } } });
    expect(await c.call('POST', '/nodes/pve/storage/local-lvm/download-url', { content: 'iso', filename: 'a.iso', url: ISO_BZ2 })).toMatchObject({ status: 500, body: { message: "can't upload to storage type 'lvmthin', not a file based storage!\n" } });
    expect(await c.call('POST', '/nodes/pve/storage/local/download-url', { content: 'vztmpl', filename: 'a.tar.zst', url: ISO_BZ2, extra: '1' })).toMatchObject({ status: 400 });
  });

  it('needs Datastore.AllocateTemplate and Sys.Audit+Sys.Modify on / (or Sys.AccessNetwork on the node)', async () => {
    d.revoke(TOKEN, '/', ['Sys.Modify']);
    expect(await c.call('POST', '/nodes/pve/storage/local/download-url', { content: 'iso', filename: 'a.iso', url: ISO_BZ2 })).toMatchObject({ status: 403, reason: 'Permission check failed' });
    d.grant(TOKEN, '/nodes/pve', ['Sys.AccessNetwork']);
    expect((await c.call('POST', '/nodes/pve/storage/local/download-url', { content: 'iso', filename: 'a.iso', url: ISO_BZ2 })).status).toBe(200);
  });
});

describe('resource mappings', () => {
  beforeEach(() => d.grant(TOKEN, '/mapping', ['Mapping.Modify', 'Mapping.Audit']));

  // (the default token has its own ACL entries on /mapping/pci/wan0 and lan0, which replace what /mapping grants)
  it('create, read, update, delete', async () => {
    const map = 'node=pve,path=0000:01:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=13';
    expect(await c.data('POST', '/cluster/mapping/pci', { id: 'wan1', map, description: 'WAN' })).toBeNull();
    expect(await c.call('POST', '/cluster/mapping/pci', { id: 'wan1', map })).toMatchObject({ status: 500, body: { message: "create hardware mapping failed: pci ID 'wan1' already defined\n" } });
    const m = await c.data<{ digest: string; map: string[] }>('GET', '/cluster/mapping/pci/wan1');
    expect(m).toMatchObject({ type: 'pci', description: 'WAN', map: [map] });
    expect(await c.call('PUT', '/cluster/mapping/pci/wan1', { description: 'x', digest: '0'.repeat(40) })).toMatchObject({ status: 500 });
    expect(await c.data('PUT', '/cluster/mapping/pci/wan1', { map: [map, map.replace('node=pve', 'node=pve2')], digest: m.digest, delete: 'description' })).toBeNull();
    expect(await c.data('GET', '/cluster/mapping/pci/wan1')).not.toHaveProperty('description');
    expect(await c.call('PUT', '/cluster/mapping/pci/nope', { description: 'x' })).toMatchObject({ status: 500, body: { message: "update hardware mapping failed: pci ID 'nope' does not exist\n" } });
    expect(await c.data('DELETE', '/cluster/mapping/pci/wan1')).toBeNull();
    expect(await c.call('GET', '/cluster/mapping/pci/wan1')).toMatchObject({ status: 500, body: { message: "mapping 'wan1' not found\n" } });
  });

  it('index lists only mappings the token may see; check-node reports hardware drift', async () => {
    await c.data('POST', '/cluster/mapping/pci', { id: 'lan1', map: 'node=pve,path=0000:02:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=13' });
    const [lan1] = await c.data<{ checks: unknown[] }[]>('GET', '/cluster/mapping/pci', { 'check-node': 'pve' });
    expect(lan1!.checks).toEqual([{ severity: 'error', message: "Invalid configuration: 'iommugroup' does not match for 'lan1' (14 != 13)\n" }]);
    d.revoke(TOKEN, '/mapping', ['Mapping.Audit', 'Mapping.Modify']);
    expect(await c.data('GET', '/cluster/mapping/pci')).toEqual([]);
    expect(await c.call('GET', '/cluster/mapping/pci/lan1')).toMatchObject({ status: 403, reason: 'Permission check failed' });
  });
});

describe('VMs', () => {
  it('list, shutdown, destroy (refused while running)', async () => {
    await c.task(await c.data<string>('POST', '/nodes/pve/qemu', { vmid: '100', name: 'router', scsi0: 'local-lvm:4' }));
    await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'));
    expect(await c.data('GET', '/nodes/pve/qemu')).toEqual([expect.objectContaining({ vmid: 100, name: 'router', status: 'running' })]);
    expect(await c.call('DELETE', '/nodes/pve/qemu/100')).toMatchObject({ status: 500, body: { message: 'VM 100 is running - destroy failed\n' } });
    await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/shutdown'));
    expect(await c.data('GET', '/nodes/pve/qemu/100/status/current')).toMatchObject({ status: 'stopped' });
    expect((await c.task(await c.data<string>('DELETE', '/nodes/pve/qemu/100'))).exitstatus).toBe('OK');
    expect(await c.data('GET', '/nodes/pve/qemu')).toEqual([]);
    expect(await c.data('GET', '/nodes/pve/storage/local-lvm/content')).toEqual([]);
  });

  it('drives: import-from syntax, ISO needs media=cdrom, missing volumes fail at create', async () => {
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '101', scsi0: 'local-lvm:16,import-from=local:import/debian.qcow2' })).toMatchObject({ status: 400, body: { errors: { scsi0: "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>" } } });
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '101', ide2: 'local:iso/x.iso' })).toMatchObject({ status: 400, body: { errors: { ide2: "explicit 'media=cdrom' is required for iso images" } } });
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '101', scsi0: 'local-lvm:0,import-from=local:iso/x.iso' })).toMatchObject({ status: 400, body: { errors: { scsi0: "local:iso/x.iso has wrong type 'iso' - needs to be 'images' or 'import'" } } });
    const upid = await c.data<string>('POST', '/nodes/pve/qemu', { vmid: '101', scsi0: 'local-lvm:0,import-from=local:import/missing.qcow2' });
    expect((await c.task(upid)).exitstatus).toBe("unable to create VM 101 - cannot import from 'local:import/missing.qcow2' - volume 'local:import/missing.qcow2' does not exist");
  });

  it('a token needs SDN.Use on the bridge and Sys.Modify on / for startup', async () => {
    d.revoke(TOKEN, '/sdn/zones/localnetwork');
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '100', net0: 'virtio,bridge=vmbr0' })).toMatchObject({ status: 403, reason: 'Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)' });
    expect(await c.data('GET', '/nodes/pve/network', { type: 'bridge' })).toEqual([]);
    d.revoke(TOKEN, '/', ['Sys.Modify']);
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '100', startup: 'order=1' })).toMatchObject({ status: 403, reason: 'Permission check failed (/, Sys.Modify)' });
  });

  it('start-time checks: missing mapping, duplicate device, missing bridge', async () => {
    d.grant(TOKEN, '/mapping', ['Mapping.Modify', 'Mapping.Use']);
    await c.task(await c.data<string>('POST', '/nodes/pve/qemu', { vmid: '100', machine: 'q35', hostpci0: 'mapping=ghost' }));
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe("PCI device mapping not found for 'ghost'");
    await c.data('POST', '/cluster/mapping/pci', { id: 'wan0', map: 'node=pve,path=0000:01:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=13' });
    await c.data('PUT', '/nodes/pve/qemu/100/config', { hostpci0: 'mapping=wan0', hostpci1: 'mapping=wan0' });
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe("device '0000:01:00.0' assigned more than once");
    await c.data('PUT', '/nodes/pve/qemu/100/config', { delete: 'hostpci1', net0: 'virtio,bridge=vmbr9' });
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe("bridge 'vmbr9' does not exist");
  });
});

describe('controls and misc', () => {
  it('nodes, node status, storage status, grants through access/permissions, reset', async () => {
    expect(await c.data('GET', '/nodes')).toEqual([expect.objectContaining({ node: 'pve', status: 'online', ssl_fingerprint: d.fingerprint })]);
    expect(await c.data('GET', '/nodes/pve/status')).toMatchObject({ pveversion: 'pve-manager/9.1.2/9c3d2b6e4a1f0c7d', cpuinfo: { model: 'Intel(R) N100' } });
    expect(await c.data('GET', '/nodes/pve/storage/local-lvm/status')).toEqual({ type: 'lvmthin', content: 'rootdir,images', active: 1, enabled: 1, shared: 0, total: 348160016384, used: 21474836480, avail: 326685179904 });
    expect(await c.call('GET', '/nodes/other/status')).toMatchObject({ status: 500, reason: "hostname lookup 'other' failed - failed to get address info for: other: Name or service not known" });
    d.grant(TOKEN, '/vms/100', ['VM.Audit'], false);
    expect(await c.data('GET', '/access/permissions', { path: '/vms/100' })).toEqual({ '/vms/100': { 'VM.Audit': 0 } });
    d.reset();
    expect(await c.data('GET', '/access/permissions', { path: '/vms/100' })).toMatchObject({ '/vms/100': { 'VM.Audit': 1, 'VM.Allocate': 1 } });
    expect(d.requests).toHaveLength(1);
  });

  it('accepts JSON bodies like pve-http-server does', async () => {
    const r = await c.call('POST', '/nodes/pve/qemu', {}, { 'Content-Type': 'application/json' });
    expect(r.status).toBe(400); // empty body: vmid missing
    const { fetch } = await import('undici');
    const res = await fetch(`${d.url}/api2/json/nodes/pve/qemu`, { method: 'POST', dispatcher: c.agent, headers: { Authorization: `PVEAPIToken=${d.tokenId}=${d.tokenSecret}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ vmid: 100, onboot: true, name: 'j' }) });
    expect(res.status).toBe(200);
    await d.settle();
    expect(await c.data('GET', '/nodes/pve/qemu/100/config')).toMatchObject({ onboot: 1, name: 'j' });
  });
});
