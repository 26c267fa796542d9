import * as tls from 'node:tls';
import { listSamples, loadSample, type SampleFile } from './data';
import { startProxmoxDouble, type ProxmoxDouble } from './server';
import { remoteFileDigest } from './state';
import { RawClient } from './test-client';
import { useRawDouble } from '../../helpers/raw-double';

const TOKEN = 'dualwan@pve!setup';
const ROUTER_MAPS = {
  wan0: 'node=pve,path=0000:01:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=13',
  lan0: 'node=pve,path=0000:02:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=14',
};

let d: ProxmoxDouble;
let c: RawClient;

// Long enough that a task is still running when a test reads its status on a loaded machine.
useRawDouble({ authFailDelayMs: 0, taskDurationMs: 150 }, (double, client) => ((d = double), (c = client)));

function sample(name: string, i?: number): { request: { method: string; path: string; query?: Record<string, unknown>; form?: Record<string, string> }; response: { status: number; reason: string; body: { data?: unknown; message?: string } } } {
  const s = loadSample<SampleFile>(name);
  return (i === undefined ? s : s.examples![i]) as never;
}

function typeOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** every key of `expected` that `actual` has carries a value of the same JSON type (recursively) */
function sameTypes(expected: unknown, actual: unknown, path = '$'): string[] {
  const out: string[] = [];
  if (typeOf(expected) !== typeOf(actual)) return [`${path}: ${typeOf(expected)} != ${typeOf(actual)}`];
  if (Array.isArray(expected) && Array.isArray(actual) && expected.length && actual.length) out.push(...sameTypes(expected[0], actual[0], `${path}[0]`));
  if (typeOf(expected) === 'object') {
    for (const [k, v] of Object.entries(expected as object)) {
      if (k in (actual as object)) out.push(...sameTypes(v, (actual as Record<string, unknown>)[k], `${path}.${k}`));
    }
  }
  return out;
}

async function setupRouterMappings(): Promise<void> {
  d.grant(TOKEN, '/mapping', ['Mapping.Modify', 'Mapping.Audit', 'Mapping.Use']);
  for (const [id, map] of Object.entries(ROUTER_MAPS)) await c.data('POST', '/cluster/mapping/pci', { id, map });
  await c.data('POST', '/cluster/mapping/usb', { id: 'phone-wan', map: 'node=pve,id=18d1:4ee3,path=1-2' });
}

async function createVm(params: Record<string, string>): Promise<string> {
  const upid = await c.data<string>('POST', '/nodes/pve/qemu', params);
  const st = await c.task(upid);
  expect(st.exitstatus).toBe('OK');
  return upid;
}

describe('recorded samples', () => {
  it('all sample files parse and carry provenance', () => {
    const names = listSamples();
    expect(names.length).toBeGreaterThanOrEqual(25);
    for (const n of names) {
      const s = loadSample<SampleFile>(n);
      expect(typeof s.provenance).toBe('string');
      expect(s.response ?? s.examples).toBeDefined();
    }
  });

  it.each([
    ['version', '/version'],
    ['hardware-pci-n100-2x-i226', '/nodes/pve/hardware/pci'],
    ['hardware-usb-with-tethered-phone', '/nodes/pve/hardware/usb'],
    ['network-n100-default-install', '/nodes/pve/network'],
  ])('GET matches %s exactly', async (name, path) => {
    const r = await c.call('GET', path);
    expect(r.status).toBe(200);
    expect(r.contentType).toBe('application/json;charset=UTF-8');
    expect(r.body).toEqual(sample(name).response.body);
  });

  it('hardware/pci with the IOMMU off matches hardware-pci-iommu-disabled.json', async () => {
    d.setIommu(false);
    expect((await c.call('GET', '/nodes/pve/hardware/pci')).body).toEqual(sample('hardware-pci-iommu-disabled').response.body);
  });

  it('hardware/pci honours pci-class-blacklist and verbose', async () => {
    const all = await c.data<{ id: string; class: string }[]>('GET', '/nodes/pve/hardware/pci', { 'pci-class-blacklist': '' });
    expect(all.some((x) => x.class.startsWith('0x06'))).toBe(true);
    const nics = await c.data<Record<string, unknown>[]>('GET', '/nodes/pve/hardware/pci', { 'pci-class-blacklist': '01;03;04;06;0b;0c;11;07', verbose: 0 });
    expect(nics).toEqual([
      { id: '0000:01:00.0', vendor: '0x8086', device: '0x125c', class: '0x020000', iommugroup: 13 },
      { id: '0000:02:00.0', vendor: '0x8086', device: '0x125c', class: '0x020000', iommugroup: 14 },
    ]);
  });

  it('storage list matches storage-list-and-import-content.json; content appears after download-url', async () => {
    expect((await c.call('GET', '/nodes/pve/storage')).body).toEqual(sample('storage-list-and-import-content', 0).response.body);
    const s = loadSample<SampleFile>('download-url-import-qcow2');
    const url = String(s.request!.form!.url);
    const upid = await c.data<string>('POST', '/nodes/pve/storage/local/download-url', { ...s.request!.form!, checksum: remoteFileDigest(url, d.state.remoteFiles[url]!, 'sha512') } as Record<string, string>);
    expect(upid).toMatch(/^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:download:debian-13-genericcloud-amd64\.qcow2:dualwan@pve!setup:$/);
    expect((await c.task(upid)).exitstatus).toBe('OK');
    const content = await c.call('GET', '/nodes/pve/storage/local/content', { content: 'import' });
    const expected = sample('storage-list-and-import-content', 1).response.body as { data: Record<string, unknown>[] };
    expect(sameTypes(expected, content.body)).toEqual([]);
    expect(Object.keys((content.body!.data as object[])[0]!).sort()).toEqual(Object.keys(expected.data[0]!).sort());
    expect((content.body!.data as { volid: string }[])[0]!.volid).toBe('local:import/debian-13-genericcloud-amd64.qcow2');
    const log = await c.data<{ n: number; t: string }[]>('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/log`);
    expect(log.map((l) => l.t)).toEqual(expect.arrayContaining([expect.stringMatching(/^downloading https:\/\/cloud\.debian\.org/), 'calculating checksum...OK, checksum verified', 'TASK OK']));
  });

  it('cluster/nextid returns a string, like cluster-nextid.json', async () => {
    expect((await c.call('GET', '/cluster/nextid')).body).toEqual(sample('cluster-nextid').response.body);
    expect(await c.data('GET', '/cluster/nextid', { vmid: 123 })).toBe('123');
  });

  it('VM create, config, status, resources and task shapes match the router samples', async () => {
    await setupRouterMappings();
    const create = sample('qemu-create-router-vm');
    d.state.volumes.push({ volid: 'local:iso/OPNsense-25.7-dvd-amd64.iso', storage: 'local', content: 'iso', format: 'iso', size: 2254438400, ctime: 1762960000 });
    d.state.network.push({ iface: 'vmbr1', type: 'bridge', method: 'manual', method6: 'manual', families: ['inet'], bridge_ports: '', bridge_stp: 'off', bridge_fd: '0', autostart: 1, active: 1, priority: 6 });
    const upidRes = await c.call('POST', '/nodes/pve/qemu', create.request.form!);
    expect(upidRes.status).toBe(200);
    const upid = upidRes.body!.data as string;
    expect(upid).toMatch(/^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:qmcreate:100:dualwan@pve!setup:$/);
    const running = await c.data('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`);
    expect(Object.keys(running as object).sort()).toEqual(Object.keys(sample('task-status-running').response.body.data as object).sort());
    const done = await c.task(upid);
    const okSample = sample('task-status-ok').response.body.data as Record<string, unknown>;
    expect(Object.keys(done).sort()).toEqual(Object.keys(okSample).sort());
    expect(sameTypes(okSample, done)).toEqual([]);
    expect(done).toMatchObject({ status: 'stopped', exitstatus: 'OK', user: 'dualwan@pve', tokenid: 'setup', type: 'qmcreate', id: '100' });

    const conf = await c.data<Record<string, unknown>>('GET', '/nodes/pve/qemu/100/config');
    const confSample = sample('qemu-config-router').response.body.data as Record<string, unknown>;
    expect(sameTypes(confSample, conf)).toEqual([]);
    const missing = Object.keys(confSample).filter((k) => !(k in conf));
    // the sample VM got its phone later; qemu-server's create does not add 'sockets' (the GUI sends it)
    expect(missing).toEqual(['sockets', 'usb0']);
    expect(conf).toMatchObject({ memory: '2048', cores: 2, onboot: 1, balloon: 0, hostpci0: 'mapping=wan0,pcie=1', net0: expect.stringMatching(/^virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr1$/), ide2: 'local:iso/OPNsense-25.7-dvd-amd64.iso,media=cdrom,size=2150M' });

    const stopped = await c.data<Record<string, unknown>>('GET', '/nodes/pve/qemu/100/status/current');
    expect(sameTypes(sample('qemu-status-current', 1).response.body.data, stopped)).toEqual([]);
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe('OK');
    const cur = await c.data<Record<string, unknown>>('GET', '/nodes/pve/qemu/100/status/current');
    const curSample = sample('qemu-status-current', 0).response.body.data as Record<string, unknown>;
    expect(sameTypes(curSample, cur)).toEqual([]);
    // with balloon=0 there is no balloon device, so query-balloon gives no balloon/freemem (qemu-server vmstatus)
    expect(Object.keys(curSample).filter((k) => !(k in cur)).sort()).toEqual(['balloon', 'freemem']);
    const res = await c.data<Record<string, unknown>[]>('GET', '/cluster/resources', { type: 'vm' });
    const resSample = (sample('cluster-resources-vm').response.body.data as Record<string, unknown>[])[0]!;
    expect(Object.keys(res[0]!).sort()).toEqual(Object.keys(resSample).sort());
    expect(sameTypes(resSample, res[0])).toEqual([]);
  });

  it('access/permissions and certificates/info have the recorded shapes', async () => {
    const perms = await c.data<Record<string, Record<string, number>>>('GET', '/access/permissions');
    const ps = sample('access-permissions-token').response.body.data as Record<string, Record<string, number>>;
    for (const [path, privs] of Object.entries(ps)) expect(Object.keys(perms[path] ?? {})).toEqual(expect.arrayContaining(Object.keys(privs)));
    const certs = await c.data<Record<string, unknown>[]>('GET', '/nodes/pve/certificates/info');
    const cs = sample('certificates-info').response.body.data as Record<string, unknown>[];
    for (const cert of certs) {
      expect(Object.keys(cert).sort()).toEqual(Object.keys(cs[0]!).sort());
      expect(sameTypes(cs[1], cert)).toEqual([]);
    }
    expect(certs.map((x) => x.filename)).toEqual(['pve-root-ca.pem', 'pve-ssl.pem', 'pveproxy-ssl.pem']);
    expect(certs[2]!.fingerprint).toBe(d.fingerprint);
  });

  it('mapping index with check-node has the recorded shape (pci: checks, usb: errors as in pve-manager)', async () => {
    await setupRouterMappings();
    const pci = await c.data<Record<string, unknown>[]>('GET', '/cluster/mapping/pci', { 'check-node': 'pve' });
    const ps = (sample('cluster-mapping-pci-and-usb', 0).response.body.data as Record<string, unknown>[])[0]!;
    for (const m of pci) {
      expect(Object.keys(m).sort()).toEqual(Object.keys(ps).sort().filter((k) => k !== 'description'));
      expect(m.checks).toEqual([]);
    }
    const usb = await c.data<Record<string, unknown>[]>('GET', '/cluster/mapping/usb', { 'check-node': 'pve' });
    expect(usb[0]).toMatchObject({ id: 'phone-wan', type: 'usb', map: ['node=pve,id=18d1:4ee3,path=1-2'], errors: [] });
    d.setPhoneUsbProductId('4ee1');
    const usb2 = await c.data<Record<string, unknown>[]>('GET', '/cluster/mapping/usb', { 'check-node': 'pve' });
    expect(usb2[0]!.errors).toEqual([{ severity: 'error', message: "Invalid configuration: 'id' does not match for 'phone-wan' (18d1:4ee1 != 18d1:4ee3)\n" }]);
  });
});

describe('errors: status lines, bodies, content types', () => {
  it('401 without credentials: "No ticket", no body, no content type, delayed', async () => {
    const slow = await startProxmoxDouble({ authFailDelayMs: 150 });
    const anon = new RawClient(slow, { auth: null });
    try {
      const t0 = Date.now();
      const r = await anon.call('GET', '/nodes');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
      const s = sample('error-401-unauthenticated', 0).response;
      expect({ status: r.status, reason: r.reason, text: r.text, ct: r.contentType }).toEqual({ status: s.status, reason: s.reason, text: '', ct: null });
    } finally {
      await anon.close();
      await slow.close();
    }
  });

  it('401 with a wrong token secret: "Authentication failed!" (also on unknown paths)', async () => {
    const bad = new RawClient(d, { auth: `PVEAPIToken=${TOKEN}=00000000-0000-0000-0000-000000000000` });
    try {
      for (const p of ['/nodes', '/no/such/path']) {
        const r = await bad.call('GET', p);
        expect([r.status, r.reason, r.text, r.contentType]).toEqual([401, 'Authentication failed!', '', null]);
      }
    } finally {
      await bad.close();
    }
  });

  it('403 from the schema permission checks, with ACL propagation', async () => {
    d.revoke(TOKEN, '/', ['Sys.Modify']);
    const r = await c.call('GET', '/nodes/pve/hardware/usb');
    const s = sample('error-403-permission', 2).response;
    expect([r.status, r.reason, r.body]).toEqual([s.status, s.reason, s.body]);
    // Sys.Audit on / propagates to /nodes/pve
    expect((await c.call('GET', '/nodes/pve/status')).status).toBe(200);
    // a deeper ACL entry replaces what was inherited
    d.grant(TOKEN, '/nodes/pve', ['Sys.PowerMgmt']);
    expect(await c.call('GET', '/nodes/pve/status')).toMatchObject({ status: 403, reason: 'Permission check failed (/nodes/pve, Sys.Audit)' });
    // "any" checks list all alternatives
    d.revoke(TOKEN, '/vms');
    expect(await c.call('PUT', '/nodes/pve/qemu/100/config', { name: 'x' })).toMatchObject({
      status: 403,
      body: { data: null, message: 'Permission check failed (/vms/100, VM.Config.Disk|VM.Config.CDROM|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.HWType|VM.Config.Options|VM.Config.Cloudinit)\n' },
    });
  });

  it('403 for create: bare text without VM.Allocate, Mapping.Use for mapped devices', async () => {
    d.revoke(TOKEN, '/vms', ['VM.Allocate']);
    const s0 = sample('error-403-permission', 0);
    expect(await c.call('POST', '/nodes/pve/qemu', s0.request.form!)).toMatchObject({ status: 403, reason: s0.response.reason, body: s0.response.body });
    d.reset();
    d.revoke(TOKEN, '/mapping/pci/wan0');
    const s1 = sample('error-403-permission', 1);
    expect(await c.call('POST', '/nodes/pve/qemu', s1.request.form!)).toMatchObject({ status: 403, reason: s1.response.reason, body: s1.response.body });
  });

  it('500 for raw host devices from a token (create: before any task)', async () => {
    const s = sample('error-500-root-only', 0);
    const r = await c.call('POST', '/nodes/pve/qemu', s.request.form!);
    expect([r.status, r.reason, r.body, r.contentType]).toEqual([500, s.response.reason, s.response.body, 'application/json;charset=UTF-8']);
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '100', usb0: 'host=18d1:4ee3' })).toMatchObject({ status: 500, body: { message: "only root can set 'usb0' config for real devices\n" } });
    const abs = sample('error-500-root-only', 2);
    expect(await c.call('POST', '/nodes/pve/qemu', abs.request.form!)).toMatchObject({ status: 500, reason: abs.response.reason, body: abs.response.body });
    expect(d.state.vms).toEqual([]);
  });

  it('raw usb host= through POST config fails inside the qmconfig task; PUT answers 500', async () => {
    await createVm({ vmid: '100', name: 'r' });
    const upid = await c.data<string>('POST', '/nodes/pve/qemu/100/config', { usb0: 'host=1-2' });
    expect((await c.task(upid)).exitstatus).toBe("only root can set 'usb0' config for real devices");
    const r = await c.call('PUT', '/nodes/pve/qemu/100/config', { usb0: 'host=1-2' });
    const s = sample('error-500-root-only', 1).response;
    expect([r.status, r.reason, r.body]).toEqual([500, s.reason, s.body]);
  });

  it('400 and 501 bodies', async () => {
    const s = sample('error-400-parameter-verification', 0);
    const r = await c.call('POST', '/nodes/pve/qemu', s.request.form!);
    expect([r.status, r.reason, r.body, r.contentType]).toEqual([400, s.response.reason, s.response.body, 'application/json;charset=UTF-8']);
    const n = await c.call('GET', '/nodes/pve/nothing-here');
    expect([n.status, n.reason, n.body]).toEqual([501, "Method 'GET /nodes/pve/nothing-here' not implemented", { data: null, message: "Method 'GET /nodes/pve/nothing-here' not implemented" }]);
    // in the schema but not simulated: validated first, then 501
    expect((await c.call('POST', '/nodes/pve/qemu/100/termproxy', { serial: 'serial9' })).status).toBe(400);
    expect(await c.call('POST', '/nodes/pve/qemu/100/termproxy', { serial: 'serial0' })).toMatchObject({ status: 501, reason: "Method 'POST /nodes/pve/qemu/100/termproxy' not implemented by the proxmox test double" });
  });

  it('known 500 texts: existing VM, missing config, digest, nextid with a taken id', async () => {
    await createVm({ vmid: '100' });
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '100' })).toMatchObject({ status: 500, body: { message: "unable to create VM 100 - VM 100 already exists on node 'pve'\n" } });
    expect(await c.call('GET', '/nodes/pve/qemu/999/config')).toMatchObject({ status: 500, body: { message: "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist\n" } });
    expect(await c.call('PUT', '/nodes/pve/qemu/100/config', { name: 'x', digest: '0'.repeat(40) })).toMatchObject({ status: 500, reason: 'checksum mismatch (file change by other user?)' });
    const s = sample('error-400-parameter-verification', 3);
    expect(await c.call('GET', '/cluster/nextid', { vmid: '100' })).toMatchObject({ status: 400, body: s.response.body });
    expect(await c.data('GET', '/cluster/nextid')).toBe('101');
  });
});

describe('tasks', () => {
  it('run, then stop with OK; the log ends with TASK OK; start/limit/total', async () => {
    const upid = await c.data<string>('POST', '/nodes/pve/qemu', { vmid: '100', scsi0: 'local-lvm:8', efidisk0: 'local-lvm:1,efitype=4m' });
    expect((await c.data<{ status: string }>('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`)).status).toBe('running');
    expect(await c.task(upid)).toMatchObject({ status: 'stopped', exitstatus: 'OK' });
    const all = await c.call('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/log`, { limit: 0 });
    const lines = all.body!.data as { n: number; t: string }[];
    expect(lines[lines.length - 1]).toEqual({ n: lines.length, t: 'TASK OK' });
    expect(all.body!.total).toBe(lines.length);
    const page = await c.call('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/log`, { start: 1, limit: 2 });
    expect(page.body).toEqual({ data: [lines[1], lines[2]], total: lines.length });
    expect(lines.map((l) => l.t)).toContain("scsi0: successfully created disk 'local-lvm:vm-100-disk-0,size=8G'");
  });

  it('failNextTask makes the next task stop with the error; create leaves no VM behind', async () => {
    d.failNextTask('storage is on fire');
    const upid = await c.data<string>('POST', '/nodes/pve/qemu', { vmid: '100', scsi0: 'local-lvm:8' });
    const st = await c.task(upid);
    expect(st.exitstatus).toBe('unable to create VM 100 - storage is on fire');
    const log = await c.data<{ t: string }[]>('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/log`);
    expect(log[log.length - 1]!.t).toBe('TASK ERROR: unable to create VM 100 - storage is on fire');
    expect(d.state.vms).toEqual([]);
    expect(d.state.volumes).toEqual([]);
  });

  it('unknown task ids', async () => {
    const upid = 'UPID:pve:00000001:00000002:00000003:qmstart:100:dualwan@pve!setup:';
    expect(await c.call('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`)).toMatchObject({ status: 400, body: { errors: { upid: 'no such task' } } });
    expect(await c.call('GET', '/nodes/pve/tasks/garbage/status')).toMatchObject({ status: 400, body: { errors: { upid: 'unable to parse worker upid' } } });
  });
});

describe('VM lifecycle quirks', () => {
  it('pcie=1 on i440fx is accepted at create and fails at start (q35 quirk)', async () => {
    await setupRouterMappings();
    await createVm({ vmid: '100', hostpci0: 'mapping=wan0,pcie=1' });
    const st = await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'));
    expect(st.exitstatus).toBe((sample('task-status-error-q35').response.body.data as { exitstatus: string }).exitstatus);
    await c.data('PUT', '/nodes/pve/qemu/100/config', { machine: 'q35' });
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe('OK');
  });

  it('IOMMU off: start fails in prepare_pci_device; a mapping recorded with an iommugroup fails earlier', async () => {
    d.grant(TOKEN, '/mapping', ['Mapping.Modify', 'Mapping.Use']);
    d.setIommu(false);
    await c.data('POST', '/cluster/mapping/pci', { id: 'wan0', map: 'node=pve,path=0000:01:00.0,id=8086:125c,subsystem-id=8086:0000' });
    await c.data('POST', '/cluster/mapping/pci', { id: 'lan0', map: ROUTER_MAPS.lan0 });
    await createVm({ vmid: '100', machine: 'q35', hostpci0: 'mapping=wan0,pcie=1' });
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe('cannot prepare PCI pass-through, IOMMU not present');
    await createVm({ vmid: '101', machine: 'q35', hostpci0: 'mapping=lan0,pcie=1' });
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/101/status/start'))).exitstatus).toBe("PCI device mapping invalid (hardware probably changed): unexpected property 'iommugroup' configured for device '0000:02:00.0' ");
  });

  it('a USB mapping whose device changed id blocks the start', async () => {
    await setupRouterMappings();
    await createVm({ vmid: '100', usb0: 'mapping=phone-wan' });
    d.setPhoneUsbProductId('4ee1');
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe("USB Mapping invalid (hardware probably changed): 'id' does not match for 'phone-wan' (18d1:4ee1 != 18d1:4ee3) ");
    d.setPhoneUsbProductId('4ee3');
    expect((await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'))).exitstatus).toBe('OK');
    const phone = (await c.data<{ vendid: string; devnum: number }[]>('GET', '/nodes/pve/hardware/usb')).find((x) => x.vendid === '18d1');
    expect(phone!.devnum).toBe(7); // re-enumerated twice
  });

  it('changes to a running VM stay pending until stop; hot-pluggable ones apply at once', async () => {
    await setupRouterMappings();
    await createVm({ vmid: '100', machine: 'q35', name: 'router', ostype: 'other', hostpci0: 'mapping=wan0,pcie=1' });
    await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/start'));
    const upid = await c.data<string>('POST', '/nodes/pve/qemu/100/config', { hostpci1: 'mapping=lan0,pcie=1', usb0: 'mapping=phone-wan', name: 'edge', delete: 'hostpci0' });
    expect((await c.task(upid)).exitstatus).toBe('OK');
    const pending = await c.data<{ key: string; value?: unknown; pending?: unknown; delete?: number }[]>('GET', '/nodes/pve/qemu/100/pending');
    const byKey = Object.fromEntries(pending.map((p) => [p.key, p]));
    expect(byKey.hostpci1).toEqual({ key: 'hostpci1', pending: 'mapping=lan0,pcie=1' });
    expect(byKey.usb0).toEqual({ key: 'usb0', pending: 'mapping=phone-wan' }); // ostype other: no USB hotplug
    expect(byKey.hostpci0).toEqual({ key: 'hostpci0', value: 'mapping=wan0,pcie=1', delete: 1 });
    expect(byKey.name).toEqual({ key: 'name', value: 'edge' });
    expect(await c.data('GET', '/nodes/pve/qemu/100/config', { current: 1 })).not.toHaveProperty('hostpci1');
    expect(await c.data('GET', '/nodes/pve/qemu/100/config')).toMatchObject({ hostpci1: 'mapping=lan0,pcie=1' });
    await c.task(await c.data<string>('POST', '/nodes/pve/qemu/100/status/stop'));
    const after = await c.data<{ key: string; pending?: unknown; delete?: number }[]>('GET', '/nodes/pve/qemu/100/pending');
    expect(after.filter((p) => p.pending !== undefined || p.delete !== undefined)).toEqual([]);
    const conf = await c.data<Record<string, unknown>>('GET', '/nodes/pve/qemu/100/config', { current: 1 });
    expect(conf).toMatchObject({ hostpci1: 'mapping=lan0,pcie=1', usb0: 'mapping=phone-wan' });
    expect(conf).not.toHaveProperty('hostpci0');
  });

  it('PUT config is synchronous, POST returns a qmconfig UPID', async () => {
    await createVm({ vmid: '100' });
    expect(await c.call('PUT', '/nodes/pve/qemu/100/config', { cores: 4, delete: 'nonexistent' })).toMatchObject({ status: 400, body: { errors: { delete: "unknown option 'nonexistent'" } } });
    expect(await c.call('PUT', '/nodes/pve/qemu/100/config', { cores: 4 })).toMatchObject({ status: 200, body: { data: null } });
    expect(await c.data('POST', '/nodes/pve/qemu/100/config', { cores: 2 })).toMatch(/:qmconfig:100:dualwan@pve!setup:$/);
  });

  it('dropNextConnection destroys the socket without an answer; writeCount counts accepted writes', async () => {
    d.dropNextConnection();
    await expect(c.call('GET', '/version')).rejects.toThrow();
    expect((await c.call('GET', '/version')).status).toBe(200);
    await createVm({ vmid: '100' });
    await c.call('POST', '/nodes/pve/qemu', { vmid: '100' }); // 500: not counted
    expect(d.writeCount).toBe(1);
    expect(d.requests.map((r) => [r.method, r.template, r.status])).toEqual(
      expect.arrayContaining([
        ['GET', undefined, 0],
        ['POST', '/nodes/{node}/qemu', 200],
        ['POST', '/nodes/{node}/qemu', 500],
      ]),
    );
  });
});

describe('schema versions', () => {
  it('8.4 answers with an 8.4 version and rejects 9.1-only parameters; switchable at runtime', async () => {
    d.setSchemaVersion('8.4');
    expect(await c.data('GET', '/version')).toMatchObject({ release: '8.4', version: expect.stringMatching(/^8\.4\.\d+$/) });
    expect(await c.call('POST', '/nodes/pve/qemu', { vmid: '100', 'allow-ksm': '1' })).toMatchObject({ status: 400, body: { errors: { 'allow-ksm': 'property is not defined in schema and the schema does not allow additional properties' } } });
    d.setSchemaVersion('9.1');
    expect((await c.call('POST', '/nodes/pve/qemu', { vmid: '100', 'allow-ksm': '1' })).status).toBe(200);
  });
});

describe('TLS', () => {
  it('serves the certificate whose fingerprint it reports', async () => {
    const fp = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: d.host, port: d.port, ca: d.certPem, servername: 'localhost' }, () => {
        resolve(s.getPeerCertificate().fingerprint256);
        s.end();
      });
      s.on('error', reject);
    });
    expect(fp).toBe(d.fingerprint);
    expect(d.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });
});
