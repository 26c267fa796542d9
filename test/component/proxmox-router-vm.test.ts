import { PreflightError, StalePlanError, TaskError } from '../../src/core/errors';
import { pendingChanges } from '../../src/core/plan';
import { applyStagePlan, planStage } from '../../src/flows/stages';
import { proxmoxStage } from '../../src/flows/router-vm';
import * as fs from 'node:fs';
import { proxmoxHarness, type Harness } from '../helpers/proxmox-harness';
import { sampleData } from '../helpers/pve-samples';
import { TestUi } from '../helpers/test-ui';

jest.setTimeout(60_000);

const codesOf = (e: unknown) => (e instanceof PreflightError ? e.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code) : []);

async function refusal(h: Harness): Promise<PreflightError> {
  const err = await h.plan().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PreflightError);
  expect(h.host.writeCount).toBe(0);
  return err as PreflightError;
}

describe.each(['9.1', '8.4'] as const)('router VM on Proxmox VE %s', (schemaVersion) => {
  let h: Harness;
  beforeAll(async () => {
    h = await proxmoxHarness({ schemaVersion });
  });
  afterAll(() => h.close());

  it('applies the hotspot-failover playbook: mappings, image, VM, start', async () => {
    const { plan, report } = await h.apply();
    expect(pendingChanges(plan).map((c) => `${c.action} ${c.address}`)).toEqual([
      'create proxmox.pci-mapping/dualwan-isp',
      'create proxmox.usb-mapping/dualwan-hotspot',
      'create proxmox.image/local:import/OPNsense-26.7-nano-amd64.raw',
      'create proxmox.vm/100',
      'update proxmox.vm-state/100',
    ]);
    const image = pendingChanges(plan).find((c) => c.kind === 'proxmox.image')!;
    expect(image.disruption).toEqual(['downloads-image']);
    expect(image.properties).toContainEqual({ path: 'download', before: null, after: `${Math.round(h.host.localImage.compressed.length / 1e3)} kB` });
    expect(report.writeCalls).toBe(h.host.writeCount);
    // dualwan fetched the image once from the (local) mirror and uploaded it unpacked, as .raw, to import
    expect(h.host.localImage.requests.filter((r) => r.method === 'GET')).toHaveLength(1);
    const uploads = h.host.requests.filter((r) => r.template === '/nodes/{node}/storage/{storage}/upload');
    expect(uploads.map((r) => [r.status, r.params.content, r.params.filename, r.params['checksum-algorithm'], r.params.checksum])).toEqual([[200, 'import', 'OPNsense-26.7-nano-amd64.raw', 'sha256', h.host.localImage.rawSha256]]);
    expect(h.host.state.volumes.find((v) => v.volid === 'local:import/OPNsense-26.7-nano-amd64.raw')?.bytes?.equals(h.host.localImage.raw)).toBe(true);
    // the VM disk was imported from it, then grown to diskGiB
    const create = h.host.requests.find((r) => r.template === '/nodes/{node}/qemu' && r.method === 'POST')!;
    expect(create.params.scsi0).toBe('local-lvm:0,import-from=local:import/OPNsense-26.7-nano-amd64.raw,discard=on,iothread=1');
    const disk = h.host.state.volumes.find((v) => v.vmid === 100 && v.content === 'images')!;
    expect(disk).toMatchObject({ importedFrom: 'local:import/OPNsense-26.7-nano-amd64.raw', size: 16 * 1024 ** 3 });
    expect(disk.bytes?.equals(h.host.localImage.raw)).toBe(true);
    expect(h.host.requests.filter((r) => r.template === '/nodes/{node}/qemu/{vmid}/resize').map((r) => r.params)).toEqual([expect.objectContaining({ disk: 'scsi0', size: '16G' })]);
    const s = await h.open();
    try {
      const client = (s.ctx as { client: import('../../src/providers/proxmox/client').ProxmoxClient }).client;
      const cfg = await client.vmConfig(100);
      expect(cfg).toMatchObject({ machine: 'q35', cpu: 'host', balloon: 0, onboot: 1, serial0: 'socket', hostpci0: 'mapping=dualwan-isp,pcie=1', usb0: 'mapping=dualwan-hotspot,usb3=1' });
      expect(String(cfg.net0)).toMatch(/^virtio=[0-9A-F:]{17},bridge=vmbr0,firewall=0$/);
      expect((await client.vmStatus(100)).status).toBe('running');
      const maps = await client.pciMappings();
      expect(maps.find((m) => m.id === 'dualwan-isp')?.map[0]).toContain('path=0000:02:00.0');
    } finally {
      await s.close();
    }
  });

  it('plans nothing and writes nothing the second time', async () => {
    const writes = h.host.writeCount;
    const { plan, report } = await h.apply();
    expect(pendingChanges(plan)).toEqual([]);
    expect(report.writeCalls).toBe(0);
    expect(h.host.writeCount).toBe(writes);
  });

  it('sent only requests that both schemas accept', () => {
    expect(h.host.contractViolations).toEqual([]);
  });
});

describe('changes to an existing router VM', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await proxmoxHarness();
    await h.apply();
  });
  afterAll(() => h.close());

  it('shows hardware changes as restarting the VM, restarts it, reads back, then converges', async () => {
    fs.writeFileSync(h.file, fs.readFileSync(h.file, 'utf8').replace('name: opnsense\n', 'name: opnsense\n  cores: 4\n'));
    const ui = new TestUi();
    const { plan } = await h.apply(ui);
    const vm = pendingChanges(plan).find((c) => c.address === 'proxmox.vm/100')!;
    expect(vm.properties).toEqual([{ path: 'cores', before: '2', after: '4' }]);
    expect(vm.disruption).toEqual(['restarts-router-vm']);
    const paths = h.host.requests.map((r) => `${r.method} ${r.template ?? r.path}`);
    expect(paths).toContain('POST /nodes/{node}/qemu/{vmid}/status/shutdown');
    expect(paths.lastIndexOf('POST /nodes/{node}/qemu/{vmid}/status/start')).toBeGreaterThan(paths.indexOf('POST /nodes/{node}/qemu/{vmid}/status/shutdown'));
    expect(pendingChanges(await h.plan())).toEqual([]);
  });
});

describe('preflight refuses with a reason and a remedy, and writes nothing', () => {
  it('the NIC that carries the management bridge', async () => {
    const h = await proxmoxHarness({ edit: (d) => d.setIn(['wans', 0, 'uplink', 'pci'], '0000:01:00.0') });
    try {
      const e = await refusal(h);
      expect(codesOf(e)).toContain('PREFLIGHT_MANAGEMENT_NIC');
      expect(e.message).toMatch(/carries the Proxmox management bridge vmbr0.*lock you out/s);
      expect(e.message).toMatch(/remedy: Pass through the other NIC/);
    } finally {
      await h.close();
    }
  });

  it('an image storage without import content (a fresh install\'s local): the exact pvesm command, nothing downloaded', async () => {
    const h = await proxmoxHarness();
    h.host.state.storages.find((st) => st.storage === 'local')!.content = ['iso', 'vztmpl', 'backup'];
    try {
      const e = await refusal(h);
      expect(codesOf(e)).toEqual(['PREFLIGHT_STORAGE_NO_IMPORT']);
      expect(e.message).toMatch(/Storage 'local' does not accept disk images for import/);
      expect(e.message).toMatch(/remedy: Enable the 'import' content type on local, as root on the Proxmox host: pvesm set local --content iso,vztmpl,backup,import/);
      expect(h.host.localImage.requests).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it('IOMMU off', async () => {
    const h = await proxmoxHarness();
    h.host.setIommu(false);
    try {
      const e = await refusal(h);
      expect(codesOf(e)).toEqual(['PREFLIGHT_IOMMU_OFF']);
      expect(e.message).toMatch(/Enable VT-d/);
    } finally {
      await h.close();
    }
  });

  it('a NIC that shares its IOMMU group, unless the peers are named', async () => {
    const pci = sampleData<{ id: string; iommugroup: number }[]>('hardware-pci-n100-2x-i226.json').map((p) => (p.id === '0000:02:00.0' ? { ...p, iommugroup: 12 } : p));
    const h = await proxmoxHarness({ inventory: { pci: pci as never } });
    try {
      const e = await refusal(h);
      expect(codesOf(e)).toEqual(['PREFLIGHT_IOMMU_GROUP_SHARED']);
      expect(e.message).toContain('shares IOMMU group 12 with 0000:00:1f.3');
      expect(e.message).toMatch(/allowIommuGroupPeers: \[0000:00:1f\.3, 0000:00:1f\.4, 0000:00:1f\.5\]/);
    } finally {
      await h.close();
    }
    const ok = await proxmoxHarness({ inventory: { pci: pci as never }, edit: (d) => d.setIn(['vm', 'allowIommuGroupPeers'], ['0000:00:1f.3', '0000:00:1f.4', '0000:00:1f.5']) });
    try {
      await expect(ok.plan()).resolves.toBeDefined();
    } finally {
      await ok.close();
    }
  });

  it('missing privileges, each one named', async () => {
    const h = await proxmoxHarness();
    h.host.revoke(h.host.tokenId, '/mapping/pci', ['Mapping.Modify', 'Mapping.Use']);
    h.host.revoke(h.host.tokenId, '/vms', ['VM.PowerMgmt']);
    try {
      const e = await refusal(h);
      expect(codesOf(e)).toEqual(['PREFLIGHT_PRIVILEGES']);
      expect(e.message).toContain('Mapping.Modify on /mapping/pci');
      expect(e.message).toContain('Mapping.Use on /mapping/pci/dualwan-isp');
      expect(e.message).toContain('VM.PowerMgmt on /vms/100');
      expect(e.message).not.toContain('/mapping/usb/');
    } finally {
      await h.close();
    }
  });

  it('an occupied VM id, suggesting a free one', async () => {
    const h = await proxmoxHarness({ inventory: { vms: { 100: { name: 'homeassistant', memory: '4096', ostype: 'l26' } } } });
    try {
      const e = await refusal(h);
      expect(codesOf(e)).toEqual(['PREFLIGHT_VMID_TAKEN']);
      expect(e.message).toMatch(/VM id 100 is already used by qemu 'homeassistant'.*for example 101/s);
    } finally {
      await h.close();
    }
  });

  it('a phone that is not in tethering mode', async () => {
    const h = await proxmoxHarness();
    h.host.setPhoneUsbProductId('4ee1');
    try {
      const e = await refusal(h);
      expect(codesOf(e)).toEqual(['PREFLIGHT_USB_ABSENT']);
      expect(e.message).toContain('attached as 18d1:4ee1');
    } finally {
      await h.close();
    }
  });
});

describe('apply is guarded', () => {
  it('refuses a stale plan before writing', async () => {
    const h = await proxmoxHarness();
    try {
      const senv = h.stageEnv();
      const s = await proxmoxStage().open(senv);
      const plan = await planStage(s, senv.state);
      // Someone else creates the mapping between plan and apply.
      await (s.ctx as { client: import('../../src/providers/proxmox/client').ProxmoxClient }).client.createMapping('usb', 'dualwan-hotspot', ['node=pve,id=18d1:4ee3'], 'made by hand');
      const writes = h.host.writeCount;
      await expect(applyStagePlan(s, plan, senv)).rejects.toBeInstanceOf(StalePlanError);
      expect(h.host.writeCount).toBe(writes);
      await s.close();
    } finally {
      await h.close();
    }
  });

  it('reports a failed task with its id and log, naming the change', async () => {
    const h = await proxmoxHarness();
    h.host.failNextTask('storage local: no space left on device');
    try {
      const e = await h.apply().catch((x: unknown) => x);
      expect((e as Error).message).toMatch(/^Unable to create proxmox\.image\/local:import\/OPNsense-26\.7-nano-amd64\.raw: Proxmox task upload of OPNsense-26\.7-nano-amd64\.raw failed: storage local: no space left on device/);
      expect((e as Error).message).toMatch(/task: UPID:pve:[0-9A-F]{8}:/);
      expect((e as { cause?: unknown }).cause).toBeInstanceOf(TaskError);
    } finally {
      await h.close();
    }
  });

  it('survives a dropped connection on a write: retried once, done once', async () => {
    const h = await proxmoxHarness();
    try {
      h.host.dropNextConnection('POST');
      await h.apply();
      const creates = h.host.requests.filter((r) => r.method === 'POST' && r.path === '/cluster/mapping/pci');
      expect(creates.map((r) => r.status)).toEqual([0, 200]);
      expect(pendingChanges(await h.plan())).toEqual([]);
    } finally {
      await h.close();
    }
  });

  it('retries a read whose connection dropped', async () => {
    const h = await proxmoxHarness();
    try {
      h.host.dropNextConnection('GET');
      await expect(h.plan()).resolves.toBeDefined();
      expect(h.host.requests.filter((r) => r.status === 0)).toHaveLength(1);
    } finally {
      await h.close();
    }
  });

  it('stops at a wrong download checksum: nothing is unpacked or uploaded, nothing after it runs', async () => {
    const h = await proxmoxHarness();
    h.host.localImage.serveInstead(Buffer.from('a damaged or different file'));
    try {
      const e = await h.apply().catch((x: unknown) => x);
      expect((e as Error).message).toMatch(/Unable to create proxmox\.image.*has sha256 [0-9a-f]{64}, but vm\.image pins/is);
      expect(h.host.requests.some((r) => r.template === '/nodes/{node}/storage/{storage}/upload')).toBe(false);
      expect(h.host.requests.some((r) => r.template === '/nodes/{node}/qemu' && r.method === 'POST')).toBe(false);
    } finally {
      await h.close();
    }
  });
});
