import { spawnSync } from 'node:child_process';
import { buildLinuxContext, type LinuxContext } from '../../../src/providers/linux/context';
import { monitorExecStart, renderRestoreScript, routerFiles, ROUTER_PATHS } from '../../../src/providers/linux/persist';
import { parseMonitorDaemonConfig } from '../../../src/providers/linux/monitor/config';
import { routerFileHandler, sha256, unitHandler } from '../../../src/providers/linux/resources';
import { CannedShell, LAB_ROUTER_ADDR as ADDR } from '../../helpers/canned-shell';
import { ADDRESS_PLANS } from '../../lab/addressing';
import { labDesiredState } from '../../lab/desired';

const plan = ADDRESS_PLANS[0]!;
const ROUTES = '[{"dst":"default","gateway":"100.64.2.1","dev":"wan2","protocol":"dhcp","metric":1025,"flags":[]}]';

async function context(dhcp: (0 | 1)[] = [1], fsRoot = '/tmp/lab-root'): Promise<LinuxContext> {
  const state = labDesiredState(plan, 'SHA256:x', {}, { dhcpWans: dhcp });
  return buildLinuxContext(state, new CannedShell({ 'ip -j addr show': ADDR, 'ip -j route show table main': ROUTES }), { fsRoot, systemd: 'offline', dualwanCommand: ['/usr/bin/node', '/opt/dualwan/monitor.js'] });
}

describe('the boot script', () => {
  it('is valid POSIX sh', async () => {
    const script = renderRestoreScript(await context());
    const res = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
  });

  it('restores in order: nft, kernel settings with forwarding last, WANs, then the default route', async () => {
    const script = renderRestoreScript(await context());
    const at = (s: string) => {
      const i = script.indexOf(s);
      expect(i).toBeGreaterThan(-1);
      return i;
    };
    expect(at('try nft -f "$NFT_FILE"')).toBeLessThan(at('try sysctl -q -w net.ipv4.conf.all.rp_filter=2'));
    expect(at('net.ipv4.conf.all.rp_filter=2')).toBeLessThan(at('net.ipv4.ip_forward=1'));
    expect(at('net.ipv4.ip_forward=1')).toBeLessThan(at('restore_wan $line'));
    expect(at('restore_wan $line')).toBeLessThan(at('try ip route replace default proto static $args'));
  });

  it('bakes static WANs in and reads DHCP WANs at run time', async () => {
    const script = renderRestoreScript(await context([1]));
    expect(script).toContain('isp1 wan1 static 100.64.1.2/24 100.64.1.1 101 1001 1101 0x1 2 1');
    expect(script).toContain('isp2 wan2 dhcp - - 102 1002 1102 0x2 1 1');
    expect(script).toContain(`ACTIVE_FILE='/tmp/lab-root${ROUTER_PATHS.activeWans}'`);
  });

  it('refuses a value that could become shell syntax', async () => {
    const ctx = await context();
    const evil = { ...ctx, lan: { ...ctx.lan, subnet: '192.168.77.0/24; reboot' } };
    expect(() => renderRestoreScript(evil)).toThrow(/Refusing/);
  });
});

describe('the files and units', () => {
  it('adds the DHCP hooks only when a WAN uses DHCP, and the monitor unit runs the configured dualwan', async () => {
    const withDhcp = routerFiles(await context([1])).map((f) => f.path);
    const staticOnly = routerFiles(await context([])).map((f) => f.path);
    expect(withDhcp).toContain(`/tmp/lab-root${ROUTER_PATHS.networkdHook}`);
    expect(withDhcp).toContain(`/tmp/lab-root${ROUTER_PATHS.dhclientHook}`);
    expect(staticOnly).not.toContain(`/tmp/lab-root${ROUTER_PATHS.networkdHook}`);
    expect(monitorExecStart(await context())).toEqual(['/usr/bin/node', '/opt/dualwan/monitor.js', 'monitor', '--config', `/tmp/lab-root${ROUTER_PATHS.monitorConfig}`]);
    const monitorJson = routerFiles(await context()).find((f) => f.path.endsWith('monitor.json'))!;
    const parsed = parseMonitorDaemonConfig(monitorJson.content, 'monitor.json');
    expect(parsed.wans.map((w) => [w.name, w.addressing, w.address ?? null])).toEqual([
      ['isp1', 'static', '100.64.1.2'],
      ['isp2', 'dhcp', null],
    ]);
  });

  it('compares files by hash and mode, as the router reports them', async () => {
    const [d] = routerFileHandler.desired(await context());
    expect(routerFileHandler.diff(d!.value, { path: d!.value.path, sha256: sha256(d!.value.content), mode: d!.value.mode }).action).toBe('noop');
    expect(routerFileHandler.diff(d!.value, { path: d!.value.path, sha256: sha256(d!.value.content), mode: '644' }).action).toBe('update');
    expect(routerFileHandler.diff(d!.value, undefined).action).toBe('create');
  });

  it('enables the units offline under the lab root', async () => {
    const units = unitHandler.desired(await context());
    expect(units.map((u) => u.address)).toEqual(['linux.unit/dualwan-restore.service', 'linux.unit/dualwan-monitor.service']);
    expect(units[0]!.dependsOn).toContain('linux.file//etc/systemd/system/dualwan-restore.service');
    expect(unitHandler.diff(units[0]!.value, { unit: 'dualwan-restore.service', state: 'enabled' }).action).toBe('noop');
    expect(unitHandler.diff(units[0]!.value, { unit: 'dualwan-restore.service', state: 'disabled' }).action).toBe('update');
  });
});
