// The double's side of the VM image: upload of a disk image to `import` content (pve-storage
// Status.pm upload, pve-http-server AnyEvent.pm), `import-from` at VM create (qemu-server
// API2/Qemu.pm create_disks), resize (resize_vm), and the simulated guest booting from what the
// VM's disk holds — on both schema versions.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { fakeNanoImage } from './image-server';
import { OpnsenseGuest } from './opnsense-guest';
import { type ProxmoxDouble } from './server';
import { RawClient } from './test-client';
import { useRawDouble } from '../../helpers/raw-double';

function multipart(fields: Record<string, string>, name: string, data: Buffer): { type: string; body: Buffer } {
  const b = `----test${randomBytes(6).toString('hex')}`;
  const parts: Buffer[] = Object.entries(fields).map(([k, v]) => Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="filename"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`), data, Buffer.from(`\r\n--${b}--\r\n`));
  return { type: `multipart/form-data; boundary=${b}`, body: Buffer.concat(parts) };
}

async function upload(d: ProxmoxDouble, c: RawClient, fields: Record<string, string>, name: string, data: Buffer, chunked = false): Promise<{ status: number; text: string; json?: { data?: unknown; message?: string; errors?: Record<string, string> } }> {
  const m = multipart(fields, name, data);
  const res = await request(`${d.url}/api2/json/nodes/pve/storage/local/upload`, {
    method: 'POST',
    dispatcher: c.agent,
    headers: { Authorization: `PVEAPIToken=${d.tokenId}=${d.tokenSecret}`, 'Content-Type': m.type, ...(chunked ? {} : { 'Content-Length': String(m.body.length) }) },
    // a stream without a length goes out chunked
    body: chunked ? Readable.from([m.body]) : m.body,
  });
  const text = await res.body.text();
  let json;
  try {
    json = JSON.parse(text) as { data?: unknown; message?: string; errors?: Record<string, string> };
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, text, json };
}

const RAW = fakeNanoImage(128 * 1024);
const SHA = createHash('sha256').update(RAW).digest('hex');

describe.each(['8.4', '9.1'] as const)('VM image import, PVE %s', (schemaVersion) => {
  let d: ProxmoxDouble;
  let c: RawClient;
  useRawDouble({ authFailDelayMs: 0, taskDurationMs: 10, schemaVersion }, (double, client) => ((d = double), (c = client)));

  it('takes a .raw upload into import content, checks its sha256, and keeps the bytes', async () => {
    const r = await upload(d, c, { content: 'import', 'checksum-algorithm': 'sha256', checksum: SHA }, 'nano.raw', RAW);
    expect(r.status).toBe(200);
    expect((await c.task(String(r.json!.data))).exitstatus).toBe('OK');
    const vol = d.state.volumes.find((v) => v.volid === 'local:import/nano.raw');
    expect(vol).toMatchObject({ content: 'import', format: 'raw', size: RAW.length });
    expect(vol!.bytes!.equals(RAW)).toBe(true);
    const list = await c.data<{ volid: string; format: string; size: number }[]>('GET', '/nodes/pve/storage/local/content', { content: 'import' });
    expect(list).toEqual([expect.objectContaining({ volid: 'local:import/nano.raw', format: 'raw', size: RAW.length })]);
  });

  it('refuses what the real one refuses: .img in import, import content not enabled, a chunked body', async () => {
    const img = await upload(d, c, { content: 'import' }, 'nano.img', RAW);
    expect(img).toMatchObject({ status: 400, json: { errors: { filename: 'invalid filename or wrong extension' } } });
    d.state.storages.find((s) => s.storage === 'local')!.content = ['iso', 'vztmpl', 'backup'];
    const off = await upload(d, c, { content: 'import' }, 'nano.raw', RAW);
    expect(off).toMatchObject({ status: 500, json: { message: "storage 'local' does not support 'import' content\n" } });
    const chunked = await upload(d, c, { content: 'iso' }, 'seed.iso', RAW, true);
    expect(chunked).toMatchObject({ status: 501, text: 'chunked transfer encoding not supported' });
    expect(d.state.volumes).toEqual([]);
  });

  it('imports a VM disk from the uploaded image (STORAGE:0,import-from=…), carrying its bytes; resize grows it and never shrinks', async () => {
    await c.task(String((await upload(d, c, { content: 'import' }, 'nano.raw', RAW)).json!.data));
    const upid = await c.data<string>('POST', '/nodes/pve/qemu', { vmid: 100, name: 'router', scsihw: 'virtio-scsi-single', scsi0: 'local-lvm:0,import-from=local:import/nano.raw,discard=on,iothread=1' });
    expect((await c.task(upid)).exitstatus).toBe('OK');
    const conf = await c.data<Record<string, string>>('GET', '/nodes/pve/qemu/100/config');
    const volid = conf.scsi0!.split(',')[0]!;
    const disk = d.state.volumes.find((v) => v.volid === volid)!;
    expect(disk).toMatchObject({ importedFrom: 'local:import/nano.raw', size: RAW.length, vmid: 100 });
    expect(disk.bytes!.equals(RAW)).toBe(true);
    const grow = await c.call('PUT', '/nodes/pve/qemu/100/resize', { disk: 'scsi0', size: '16G' });
    expect(grow.status).toBe(200);
    expect((await c.task(String(grow.body!.data))).exitstatus).toBe('OK');
    expect(d.state.volumes.find((v) => v.volid === volid)!.size).toBe(16 * 1024 ** 3);
    expect((await c.data<Record<string, string>>('GET', '/nodes/pve/qemu/100/config')).scsi0).toMatch(/size=/);
    const shrink = await c.data<string>('PUT', '/nodes/pve/qemu/100/resize', { disk: 'scsi0', size: '1G' });
    expect((await c.task(shrink)).exitstatus).toBe('shrinking disks is not supported');
    const missing = await c.data<string>('PUT', '/nodes/pve/qemu/100/resize', { disk: 'scsi1', size: '1G' });
    expect((await c.task(missing)).exitstatus).toBe("disk 'scsi1' does not exist");
    // an iso volume cannot be a disk source
    d.state.volumes.push({ volid: 'local:iso/nano.img', storage: 'local', content: 'iso', format: 'iso', size: 1, ctime: 1 });
    const iso = await c.call('POST', '/nodes/pve/qemu', { vmid: 101, scsi0: 'local-lvm:0,import-from=local:iso/nano.img' });
    expect(iso).toMatchObject({ status: 400, body: { errors: { scsi0: "local:iso/nano.img has wrong type 'iso' - needs to be 'images' or 'import'" } } });
    expect(d.contractViolations).toEqual([]);
  });
});

describe('the simulated OPNsense boots from what the VM disk holds', () => {
  async function screenAfterPowerOn(disk: Buffer | undefined): Promise<{ guest: OpnsenseGuest; text: string }> {
    const guest = new OpnsenseGuest({ httpsFingerprint: 'AA:'.repeat(31) + 'AA', media: () => [], bootDisk: () => disk, timing: { noBootRetryMs: 50 } });
    guest.power(true);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && guest.phase !== 'importer-prompt' && !guest.transcript.includes('No bootable device')) {
      await new Promise((r) => setTimeout(r, 10));
    }
    guest.power(false);
    return { guest, text: guest.transcript };
  }

  it('the imported nano image: SeaBIOS boots it, the importer asks', async () => {
    const { text } = await screenAfterPowerOn(RAW);
    expect(text).toContain('Press any key to start the configuration importer');
    expect(text).not.toContain('No bootable device');
  });

  it('an empty disk, or one without the MBR signature: "No bootable device", no kernel', async () => {
    for (const disk of [undefined, Buffer.alloc(RAW.length)]) {
      const { text } = await screenAfterPowerOn(disk);
      expect(text).toContain('Boot failed: not a bootable disk');
      expect(text).toContain('No bootable device.  Retrying in 60 seconds.');
      expect(text).not.toContain('FreeBSD');
    }
  });
});
