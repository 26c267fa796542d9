import * as fs from 'node:fs';
import { runDoctor, doctorExitCode, type Finding } from '../../src/doctor/run';
import type { ProxmoxClient } from '../../src/providers/proxmox/client';
import { proxmoxHarness, type Harness } from '../helpers/proxmox-harness';
import { TestUi } from '../helpers/test-ui';

jest.setTimeout(60_000);

const byCheck = (fs_: Finding[], check: string) => fs_.filter((f) => f.check === check).map((f) => f.status);

describe('dualwan doctor: host checks, each seeded fault flagged with a remedy', () => {
  let h: Harness;
  const doctor = () => runDoctor({ file: h.file, ui: new TestUi(), env: h.env, credentialsFile: `${h.dir}/none`, trustOnFirstUse: true });

  beforeAll(async () => {
    h = await proxmoxHarness();
    await h.apply();
  });
  afterAll(() => h.close());

  it('a healthy host: every host check ok (the router, only bootstrapped, is checked after it), zero writes', async () => {
    const writes = h.host.writeCount;
    const f = await doctor();
    expect(f.filter((x) => x.area === 'host' && x.status !== 'ok')).toEqual([]);
    expect(f.map((x) => x.check)).toEqual(expect.arrayContaining(['host.version', 'host.iommu', 'host.iommu-groups', 'host.management-nic', 'host.privileges', 'host.mapping.dualwan-isp', 'host.mapping.dualwan-hotspot', 'host.router-vm']));
    expect(byCheck(f, 'router.reachable')).toEqual(['ok']);
    expect(f.findIndex((x) => x.area === 'router')).toBeGreaterThan(f.map((x) => x.area).lastIndexOf('host'));
    expect(h.host.writeCount).toBe(writes);
  });

  it('IOMMU switched off in the firmware', async () => {
    h.host.setIommu(false);
    try {
      const f = await doctor();
      expect(byCheck(f, 'host.iommu')).toEqual(['fail']);
      expect(f.find((x) => x.check === 'host.iommu')!.remedy).toMatch(/VT-d/);
      expect(doctorExitCode(f)).toBe(1);
    } finally {
      h.host.setIommu(true);
    }
  });

  it('the phone out of tethering mode: absent for the VM, and its mapping no longer matches', async () => {
    h.host.setPhoneUsbProductId('4ee1');
    try {
      const f = await doctor();
      expect(byCheck(f, 'host.usb-phone')).toEqual(['fail']);
      expect(byCheck(f, 'host.mapping.dualwan-hotspot')).toContain('fail');
      expect(f.find((x) => x.check === 'host.mapping.dualwan-hotspot' && x.status === 'fail')!.remedy).toMatch(/USB tethering/);
    } finally {
      h.host.setPhoneUsbProductId('4ee3');
    }
  });

  it('a stopped router VM and settings waiting for a restart', async () => {
    const s = await h.open();
    try {
      const client = (s.ctx as { client: ProxmoxClient }).client;
      await client.updateVmConfig(100, { cores: '4' }, { what: 'test change' });
      let f = await doctor();
      expect(byCheck(f, 'host.router-vm-pending')).toEqual(['warn']);
      await client.shutdownVm(100, { what: 'test shutdown' });
      f = await doctor();
      expect(byCheck(f, 'host.router-vm')).toEqual(['fail']);
      expect(f.find((x) => x.check === 'host.router-vm')!.message).toMatch(/no router/);
    } finally {
      await s.close();
    }
  });

  it('an invalid dualwan.yaml is reported at file:line:column, and nothing is contacted', async () => {
    const requests = h.host.requests.length;
    const bad = `${h.dir}/bad.yaml`;
    fs.writeFileSync(bad, fs.readFileSync(h.file, 'utf8').replace('node: pve', 'node: pve\n  nodes: 2'));
    const f = await runDoctor({ file: bad, ui: new TestUi(), env: h.env, credentialsFile: `${h.dir}/none`, trustOnFirstUse: true, lan: 'off' });
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ area: 'config', status: 'fail' });
    expect(f[0]!.message).toMatch(/bad\.yaml:\d+:3: .*nodes/);
    expect(h.host.requests.length).toBe(requests);
  });
});
