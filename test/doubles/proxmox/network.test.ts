import { type ProxmoxDouble } from './server';
import { RawClient } from './test-client';
import { useRawDouble } from '../../helpers/raw-double';
import { renderInterfaces, unifiedDiff } from './network';

let d: ProxmoxDouble;
let c: RawClient;

useRawDouble({ authFailDelayMs: 0, taskDurationMs: 5 }, (double, client) => ((d = double), (c = client)));

type Iface = { iface: string; [k: string]: unknown };

describe.each(['9.1', '8.4'] as const)('staged host network (PVE %s)', (version) => {
  beforeEach(() => d.setSchemaVersion(version));

  it('writes go to interfaces.new: GET shows them with a `changes` diff; PUT applies in a srvreload task', async () => {
    await c.data('POST', '/nodes/pve/network', { iface: 'vmbr1', type: 'bridge', cidr: '10.10.99.2/24', autostart: 1 });
    const staged = await c.call('GET', '/nodes/pve/network');
    const body = staged.body as { data: Iface[]; changes?: string };
    expect(body.data.find((i) => i.iface === 'vmbr1')).toMatchObject({ type: 'bridge', method: 'static', address: '10.10.99.2', netmask: '24', cidr: '10.10.99.2/24', autostart: 1, families: ['inet'] });
    expect(body.data.find((i) => i.iface === 'vmbr1')!.active).toBeUndefined(); // not up yet
    expect(body.changes).toMatch(/^--- \/etc\/network\/interfaces\t.*\n\+\+\+ \/etc\/network\/interfaces\.new\t/);
    expect(body.changes).toContain('+auto vmbr1\n+iface vmbr1 inet static\n+\taddress 10.10.99.2/24\n');
    // the running config (what VM start checks) is unchanged
    expect(d.state.network.some((i) => i.iface === 'vmbr1')).toBe(false);
    const upid = await c.data<string>('PUT', '/nodes/pve/network');
    expect(await c.task(upid)).toMatchObject({ exitstatus: 'OK', type: 'srvreload', id: 'networking' });
    const applied = await c.call('GET', '/nodes/pve/network');
    expect((applied.body as { changes?: string }).changes).toBeUndefined();
    expect((applied.body as { data: Iface[] }).data.find((i) => i.iface === 'vmbr1')).toMatchObject({ cidr: '10.10.99.2/24', active: 1 });
  });

  it('DELETE reverts what is staged; the upstream parameter errors come back as 400s', async () => {
    // one default gateway only
    const dup = await c.call('POST', '/nodes/pve/network', { iface: 'vmbr1', type: 'bridge', cidr: '10.10.99.2/24', gateway: '10.10.99.1' });
    expect(dup.status).toBe(400);
    expect(dup.body?.errors).toEqual({ gateway: "Default gateway already exists on interface 'vmbr0'." });
    const port = await c.call('POST', '/nodes/pve/network', { iface: 'vmbr1', type: 'bridge', bridge_ports: 'enp1s0' });
    expect(port.body?.errors).toEqual({ bridge_ports: "enp1s0 is already used on interface 'vmbr0'." });
    const both = await c.call('PUT', '/nodes/pve/network/vmbr0', { type: 'bridge', cidr: '192.168.1.10/24', address: '192.168.1.10', netmask: '255.255.255.0' });
    expect(both.body?.errors).toEqual({ address: 'address conflicts with cidr' });
    expect((await c.call('PUT', '/nodes/pve/network/vmbr9', { type: 'bridge' })).body?.errors).toEqual({ iface: 'interface does not exist' });
    // PUT replaces: without an address the bridge becomes `manual`
    await c.data('PUT', '/nodes/pve/network/vmbr0', { type: 'bridge', delete: 'gateway' });
    const view = await c.data<Iface[]>('GET', '/nodes/pve/network/vmbr0');
    expect(view).toMatchObject({ method: 'manual', bridge_ports: 'enp1s0' });
    expect((view as unknown as Iface).gateway).toBeUndefined();
    await c.data('DELETE', '/nodes/pve/network');
    const after = await c.call('GET', '/nodes/pve/network');
    expect((after.body as { changes?: string }).changes).toBeUndefined();
    expect((after.body as { data: Iface[] }).data.find((i) => i.iface === 'vmbr0')).toMatchObject({ method: 'static', gateway: '192.168.1.1' });
  });

  it('network writes need Sys.Modify on /nodes/{node}', async () => {
    d.addToken({ id: 'reader@pve!ro', secret: '11111111-2222-3333-4444-555555555555', acl: { '/': ['Sys.Audit'] } });
    const ro = new RawClient(d, { auth: 'PVEAPIToken=reader@pve!ro=11111111-2222-3333-4444-555555555555' });
    try {
      const r = await ro.call('PUT', '/nodes/pve/network');
      expect(r.status).toBe(403);
      expect(r.reason).toBe('Permission check failed (/nodes/pve, Sys.Modify)');
    } finally {
      await ro.close();
    }
  });
});

describe('interfaces text and diff', () => {
  it('renders the installer layout and diffs like diff -u', () => {
    const before = renderInterfaces([{ iface: 'vmbr0', type: 'bridge', method: 'static', address: '192.168.1.10', netmask: '24', gateway: '192.168.1.1', bridge_ports: 'enp1s0', autostart: 1, priority: 1 }]);
    expect(before).toContain('auto vmbr0\niface vmbr0 inet static\n\taddress 192.168.1.10/24\n\tgateway 192.168.1.1\n\tbridge-ports enp1s0\n');
    const after = before.replace('\tgateway 192.168.1.1\n', '');
    expect(unifiedDiff(before, after, 'a', 'b')).toMatch(/@@ -\d+,7 \+\d+,6 @@\n(?: .*\n){3}-\tgateway 192\.168\.1\.1\n/);
    expect(unifiedDiff(before, before, 'a', 'b')).toBeUndefined();
  });
});
