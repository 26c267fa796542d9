/**
 * The dead-man timer's `daemon` kind (FreeBSD, i.e. OPNsense): the commands it sends (no quoted
 * argument spanning lines, since root's shell there is csh; scripts go to `/bin/sh -s` on stdin),
 * and the protocol for real on this machine through the RemoteShell interface, with a stand-in for
 * daemon(8) -f.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { armDeadman, deadmanLog, deadmanState, disarmDeadman, newDeadmanId, snippet, type ArmedDeadman } from '../../../src/cutover/deadman';
import { LocalShell } from '../../../src/providers/linux/local';
import { RecordingShell } from '../../helpers/canned-shell';
import { until } from '../../helpers/until';

jest.setTimeout(30_000);

const newRecorder = () => new RecordingShell((_argv, stdin) => (stdin?.includes('echo disarmed') ? 'disarmed\n' : ''));

describe('dead-man timer, daemon kind: the commands', () => {
  it('detaches the waiting shell with daemon -f, and sends every script on stdin, never as a multi-line argument', async () => {
    const rec = newRecorder();
    const a = await armDeadman(rec, { id: 'dualwan-apply-abcd1234', kind: 'daemon', stateDir: '/var/run/dualwan', timeoutSeconds: 600, revert: [['cp', '--', '/conf/backup/config-1718050000.1234.xml', '/conf/config.xml'], ['configctl', 'service', 'reload', 'all']] });
    expect(a).toMatchObject({ kind: 'daemon', script: '/var/run/dualwan/dualwan-apply-abcd1234.wait.sh', timeoutSeconds: 600 });
    expect(rec.calls.map((c) => c.argv)).toEqual([
      ['mkdir', '-p', '-m', '0700', '/var/run/dualwan'],
      ['daemon', '-f', '/bin/sh', '/var/run/dualwan/dualwan-apply-abcd1234.wait.sh'],
      ['/bin/sh', '-s', '/var/run/dualwan/dualwan-apply-abcd1234.pid'],
    ]);
    expect(rec.calls[2]!.stdin).toMatch(/while \[ ! -s "\$1" \]/);
    expect(rec.files.get('/var/run/dualwan/dualwan-apply-abcd1234.wait.sh')).toContain('sleep 600 & s=$!');
    const fire = rec.files.get('/var/run/dualwan/dualwan-apply-abcd1234.fire.sh')!;
    expect(fire).toContain('cp -- /conf/backup/config-1718050000.1234.xml /conf/config.xml || echo');
    expect(fire).toContain('configctl service reload all || echo');
    expect(rec.files.get('/var/run/dualwan/dualwan-apply-abcd1234.state')).toBe('armed\n');

    rec.calls.length = 0;
    expect(await disarmDeadman(rec, a)).toBe('disarmed');
    expect(rec.calls).toHaveLength(1);
    expect(rec.calls[0]!.argv).toEqual(['/bin/sh', '-s', '/var/run/dualwan', 'dualwan-apply-abcd1234', 'daemon']);
    // FreeBSD has no /proc: the pid is checked with ps before the kill
    expect(rec.calls[0]!.stdin).toContain('ps -o args= -p "$pid"');
    rec.calls.length = 0;
    await deadmanState(rec, a);
    expect(rec.calls[0]!.argv).toEqual(['/bin/sh', '-s', '/var/run/dualwan', 'dualwan-apply-abcd1234']);
    expect([...rec.calls, { argv: ['daemon', '-f', '/bin/sh', a.script] }].flatMap((c) => c.argv).some((arg) => arg.includes('\n'))).toBe(false);
  });

  it('uses the daemon program it is given (a stand-in in tests)', async () => {
    const rec = newRecorder();
    await armDeadman(rec, { id: 'dualwan-apply-00000001', kind: 'daemon', stateDir: '/tmp/x', timeoutSeconds: 10, revert: [['true']], daemonBin: '/opt/stand-in/daemon' });
    expect(rec.calls.map((c) => c.argv[0])).toContain('/opt/stand-in/daemon');
  });

  it('keeps the Linux kinds on sh -c, as before', () => {
    expect(snippet('process', 'status', 'echo $1', ['a'])).toEqual({ argv: ['sh', '-c', 'echo $1', 'status', 'a'] });
    expect(snippet('daemon', 'status', 'echo $1', ['a'])).toEqual({ argv: ['/bin/sh', '-s', 'a'], stdin: 'echo $1\n' });
    expect(newDeadmanId('apply')).toMatch(/^dualwan-apply-[0-9a-f]{8}$/);
    expect(newDeadmanId()).toMatch(/^dualwan-cutover-[0-9a-f]{8}$/);
  });
});

describe('dead-man timer, daemon kind: for real with a stand-in daemon(8)', () => {
  let dir: string;
  const shell = new LocalShell();
  const armedHere: ArmedDeadman[] = [];
  const daemonBin = () => path.join(dir, 'daemon');

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dwdd-unit-'));
    fs.writeFileSync(daemonBin(), '#!/bin/sh\n[ "$1" = -f ] || exit 64\nshift\nsetsid -f "$@" </dev/null >/dev/null 2>&1\n', { mode: 0o755 });
  });
  afterEach(async () => {
    for (const a of armedHere.splice(0)) await disarmDeadman(shell, a).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('nobody disarms: it fires and runs the revert; a late disarm reports fired', async () => {
    const marker = path.join(dir, 'restored');
    const a = await armDeadman(shell, { kind: 'daemon', daemonBin: daemonBin(), stateDir: path.join(dir, 'state'), timeoutSeconds: 2, revert: [['touch', marker]] });
    armedHere.push(a);
    expect(await deadmanState(shell, a)).toBe('armed');
    await until(async () => (await deadmanState(shell, a)) === 'fired', 8_000);
    expect(fs.existsSync(marker)).toBe(true);
    expect(await deadmanLog(shell, a)).toContain(`+ touch ${marker}`);
    expect(await disarmDeadman(shell, a)).toBe('fired');
  });

  it('disarmed in time: its process found by ps is stopped, and it never fires', async () => {
    const marker = path.join(dir, 'restored');
    const stateDir = path.join(dir, 'state');
    const a = await armDeadman(shell, { kind: 'daemon', daemonBin: daemonBin(), stateDir, timeoutSeconds: 2, revert: [['touch', marker]] });
    const pid = Number(fs.readFileSync(path.join(stateDir, `${a.id}.pid`), 'utf8'));
    expect(await disarmDeadman(shell, a)).toBe('disarmed');
    await until(() => !fs.existsSync(`/proc/${pid}`), 3_000);
    expect(await deadmanState(shell, a)).toBe('disarmed');
    expect(fs.existsSync(marker)).toBe(false);
  });
});
