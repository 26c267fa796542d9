// The revert timer of an OPNsense apply (src/providers/opnsense/revert-timer.ts): which file it
// restores, what it runs, and what arming/disarming does when SSH or the backup is not there.
import { HostKeyMismatchError, type ExecOptions, type ExecResult, type RemoteShell } from '../../../src/providers/linux/ssh';
import type { Argv } from '../../../src/providers/linux/shell';
import { armRevertTimer, backupFile, disarmRevertTimer, restoreCommands, REVERT_TIMER_DEFAULTS, RevertTimerError, type RevertTimerSettings } from '../../../src/providers/opnsense/revert-timer';

const ID = 'config-1718050000.1234.xml';

class FakeOpnsense implements RemoteShell {
  readonly target = 'root@192.168.10.1:22';
  readonly argvs: Argv[] = [];
  constructor(private readonly files: Set<string>) {}
  async exec(argv: Argv, o: ExecOptions = {}): Promise<ExecResult> {
    this.argvs.push(argv);
    const ok = (stdout = '') => ({ code: 0, stdout, stderr: '', timedOut: false, truncated: false, durationMs: 0 });
    if (argv[0] === 'test') return this.files.has(argv[2]!) ? ok() : { ...ok(), code: 1 };
    if (o.stdin?.toString().includes('echo disarmed')) return ok('disarmed\n');
    return ok();
  }
  async writeFile(p: string): Promise<void> {
    this.files.add(p);
  }
  async readFile(): Promise<string | undefined> {
    return undefined;
  }
  closed = 0;
  async close(): Promise<void> {
    this.closed++;
  }
}

function settings(connect: () => Promise<RemoteShell>): RevertTimerSettings {
  return { target: 'root@192.168.10.1:22', connect, ...REVERT_TIMER_DEFAULTS };
}

describe('revert timer of an OPNsense apply', () => {
  it('restores the history file the backup id names, then reloads every service', () => {
    expect(backupFile('/conf/backup', ID)).toBe(`/conf/backup/${ID}`);
    expect(restoreCommands(REVERT_TIMER_DEFAULTS, ID)).toEqual([
      ['cp', '--', `/conf/backup/${ID}`, '/conf/config.xml'],
      ['configctl', 'service', 'reload', 'all'],
    ]);
    expect(REVERT_TIMER_DEFAULTS).toMatchObject({ kind: 'daemon', stateDir: '/var/run/dualwan' });
  });

  it.each(['../config.xml', 'config-1.xml; reboot', 'config-x.xml', '/conf/config.xml'])('refuses a backup id that is not a history file name: %s', (id) => {
    expect(() => backupFile('/conf/backup', id)).toThrow(RevertTimerError);
    expect(() => backupFile('/conf/backup', id)).toThrow(/not a history file name/);
  });

  it('arms only once the backup file is there, over a session it closes', async () => {
    const box = new FakeOpnsense(new Set([`/conf/backup/${ID}`]));
    const armed = await armRevertTimer(settings(async () => box), ID);
    expect(armed.id).toMatch(/^dualwan-apply-[0-9a-f]{8}$/);
    expect(box.argvs[0]).toEqual(['test', '-f', `/conf/backup/${ID}`]);
    expect(box.argvs).toContainEqual(['daemon', '-f', '/bin/sh', `/var/run/dualwan/${armed.id}.wait.sh`]);
    expect(box.closed).toBe(1);
  });

  it('a missing backup file, or SSH failing, is an error that does not refuse the apply', async () => {
    const missing = await armRevertTimer(settings(async () => new FakeOpnsense(new Set())), ID).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(RevertTimerError);
    expect((missing as RevertTimerError).message).toBe(`backup ${ID} is not at /conf/backup/${ID} on OPNsense, so a timer could not restore it`);
    expect((missing as RevertTimerError).refuse).toBe(false);
    const down = await armRevertTimer(settings(async () => Promise.reject(new Error('connect ECONNREFUSED 192.168.10.1:22'))), ID).catch((e: unknown) => e);
    expect((down as RevertTimerError).message).toBe('SSH to root@192.168.10.1:22 failed: connect ECONNREFUSED 192.168.10.1:22');
    expect((down as RevertTimerError).refuse).toBe(false);
    expect((down as RevertTimerError).remedy).toMatch(/opnsense\.sshHostKey/);
  });

  it('a host key other than the pinned one refuses the apply, naming opnsense.sshHostKey', async () => {
    const e = (await armRevertTimer(settings(async () => Promise.reject(new HostKeyMismatchError('root@192.168.10.1:22', 'SHA256:aaa', 'SHA256:bbb', 'ssh-ed25519'))), ID).catch((x: unknown) => x)) as RevertTimerError;
    expect(e.refuse).toBe(true);
    expect(e.code).toBe('OPNSENSE_SSH_HOST_KEY_MISMATCH');
    expect(e.message).toContain('nothing was sent to it over SSH, and nothing was written');
    expect(e.message).toContain('presented: SHA256:bbb');
    expect(e.remedy).toContain('opnsense.sshHostKey');
  });

  it('disarming retries a failed SSH session a bounded number of times, then says why', async () => {
    const box = new FakeOpnsense(new Set([`/conf/backup/${ID}`]));
    const armed = await armRevertTimer(settings(async () => box), ID);
    let tries = 0;
    const flaky = settings(async () => {
      tries++;
      if (tries < 3) throw new Error('connection reset');
      return box;
    });
    const slept: number[] = [];
    await expect(disarmRevertTimer(flaky, armed, { sleep: async (ms) => void slept.push(ms), backoffMs: 10 })).resolves.toBe('disarmed');
    expect(tries).toBe(3);
    expect(slept).toEqual([10, 20]);
    tries = 0;
    const dead = settings(async () => {
      tries++;
      throw new Error('no route to host');
    });
    await expect(disarmRevertTimer(dead, armed, { sleep: async () => undefined, attempts: 2 })).rejects.toThrow(`Unable to disarm the revert timer ${armed.id} on OPNsense (root@192.168.10.1:22): no route to host`);
    expect(tries).toBe(2);
  });
});
