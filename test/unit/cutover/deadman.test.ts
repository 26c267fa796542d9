/**
 * The dead-man timer's protocol, on this machine through the same RemoteShell interface SSH uses
 * (no namespaces, no root): it fires and reverts when nobody disarms it, disarming stops it for
 * good, and the loser of a fire/disarm race does nothing. The namespace version with a host that
 * really loses its link is test/e2e/cutover-deadman.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { armDeadman, deadmanLog, deadmanState, disarmDeadman, fireScript, type ArmedDeadman } from '../../../src/cutover/deadman';
import { describeCutover, revertCommandsForProxmox } from '../../../src/cutover/cutover';
import { LocalShell } from '../../../src/providers/linux/local';
import { RecordingShell } from '../../helpers/canned-shell';
import { until } from '../../helpers/until';

jest.setTimeout(30_000);

let dir: string;
const shell = new LocalShell();
const armedHere: ArmedDeadman[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dwdm-unit-'));
});
afterEach(async () => {
  // never leave a timer ticking: disarm what this test armed (by its recorded pid, not a pattern)
  for (const a of armedHere.splice(0)) await disarmDeadman(shell, a).catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('dead-man timer', () => {
  it('systemd-run backend: a transient timer unit running the fire script', async () => {
    const rec = new RecordingShell();
    const a = await armDeadman(rec, { id: 'dualwan-cutover-abcd1234', timeoutSeconds: 300, revert: revertCommandsForProxmox({ backup: '/etc/network/interfaces.dualwan-abcd1234', vmid: 100 }) });
    expect(rec.argvs).toContainEqual(['systemd-run', '--unit=dualwan-cutover-abcd1234', '--on-active=300s', '--timer-property=AccuracySec=1s', '--description=dualwan dead-man timer dualwan-cutover-abcd1234', '/bin/sh', '/run/dualwan/dualwan-cutover-abcd1234.fire.sh']);
    const fire = rec.files.get(a.script)!;
    expect(fire).toContain("mkdir \"$dir/$id.claim\" 2>/dev/null || exit 0");
    expect(fire).toContain('cp -- /etc/network/interfaces.dualwan-abcd1234 /etc/network/interfaces || echo');
    expect(fire).toContain('ifreload -a ||');
    expect(fire).toContain('qm stop 100 ||');
    expect(fire).toContain('rm -f -- /etc/network/interfaces.new ||');
    expect(fire).toContain('qm set 100 --onboot 0 ||');
  });

  it('quotes every argument of a revert command for the shell', () => {
    const s = fireScript({ id: 'dualwan-cutover-x1', stateDir: '/run/dualwan', revert: [['ip', 'addr', 'add', "10.0.0.1/24; rm -rf /'", 'dev', 'eth0']] });
    expect(s).toContain("ip addr add '10.0.0.1/24; rm -rf /'\\''' dev eth0 ||");
  });

  it('refuses unsafe ids, paths and timeouts', async () => {
    await expect(armDeadman(shell, { id: 'bad id;', timeoutSeconds: 10, revert: [['true']] })).rejects.toThrow(/safe unit name/);
    await expect(armDeadman(shell, { stateDir: '/tmp/../etc', timeoutSeconds: 10, revert: [['true']] })).rejects.toThrow(/plain absolute path/);
    await expect(armDeadman(shell, { timeoutSeconds: 1, revert: [['true']] })).rejects.toThrow(/outside 2–3600/);
  });

  it('process backend: nobody disarms, it fires and runs the revert in order, logging each command', async () => {
    const marker = path.join(dir, 'reverted');
    const a = await armDeadman(shell, { kind: 'process', stateDir: dir, timeoutSeconds: 2, revert: [['sh', '-c', 'echo one >> "$0"', marker], ['false'], ['sh', '-c', 'echo two >> "$0"', marker]] });
    armedHere.push(a);
    expect(await deadmanState(shell, a)).toBe('armed');
    await until(async () => (await deadmanState(shell, a)) === 'fired', 8_000);
    expect(fs.readFileSync(marker, 'utf8')).toBe('one\ntwo\n');
    const log = await deadmanLog(shell, a);
    expect(log).toMatch(/dead-man timer dualwan-cutover-[0-9a-f]{8} fired at/);
    expect(log).toContain('+ false\n  (exit status 1)');
    expect(await disarmDeadman(shell, a)).toBe('fired');
  });

  it('process backend: disarmed in time, it never fires and its process is gone', async () => {
    const marker = path.join(dir, 'reverted');
    const a = await armDeadman(shell, { kind: 'process', stateDir: dir, timeoutSeconds: 2, revert: [['touch', marker]] });
    const pid = Number(fs.readFileSync(path.join(dir, `${a.id}.pid`), 'utf8'));
    expect(await disarmDeadman(shell, a)).toBe('disarmed');
    await until(() => !fs.existsSync(`/proc/${pid}`), 3_000);
    await new Promise((r) => setTimeout(r, 2_500)); // past the timeout: still nothing
    expect(fs.existsSync(marker)).toBe(false);
    expect(await deadmanState(shell, a)).toBe('disarmed');
    expect(await disarmDeadman(shell, a)).toBe('disarmed'); // a second disarm changes nothing
  });

  it('describes the cutover as disruptive, with the re-cabling spelled out', () => {
    const d = describeCutover({
      ports: [{ iface: 'enp1s0', pci: '0000:01:00.0', role: 'LAN', plug: 'the access point' }],
      managementBridge: 'vmbr0',
      oldAddress: '192.168.1.10/24',
      bridge: 'vmbr1',
      hostAddress: '10.10.99.2/24',
      gateway: '10.10.99.1',
      apiPort: 8006,
      sshPort: 22,
      lanSubnet: '192.168.10.0/24',
      lanAddress: '192.168.10.1',
      vmid: 100,
      vmRunning: true,
      timeoutSeconds: 300,
    });
    expect(d.disruption).toEqual(['drops-management-session', 'restarts-router-vm']);
    expect(d.steps.join('\n')).toMatch(/Re-cabling, before you confirm: enp1s0 \(PCI 0000:01:00\.0\) becomes the router's LAN port: plug the access point into it/);
    expect(d.steps.join('\n')).toMatch(/answers only through the router, at 10\.10\.99\.2 \(API https:\/\/10\.10\.99\.2:8006/);
  });
});
