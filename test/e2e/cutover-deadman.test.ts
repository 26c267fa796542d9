/**
 * The lockout-safe cutover for real, in network namespaces (root only; skipped with the reason
 * otherwise). Three namespaces with the prefix dwdm<id>-:
 *
 *   admin (dualwan)  oldA 10.251.1.2 ───────────── mgmt0 10.251.1.1   host (sshd :22)
 *                    toVm 10.251.2.2 ── toAdmin 10.251.2.1  vm (router)
 *                                        toHost 10.251.3.1 ── vmbr1 (10.251.3.2 after the change)
 *
 * The "network change" takes the host's management link down and moves its address onto the
 * bridge the VM joins (what passing the management NIC through does). dualwan arms the dead-man
 * timer over SSH on the old path, applies the change, then tries the new path through the VM.
 * - The VM does not route: the new path never answers, the timer fires on the host, restores the
 *   link, and dualwan finds the host again on the old path with the revert's log.
 * - The VM routes: dualwan reaches the host through it and disarms the timer; past the timeout
 *   nothing is reverted.
 * The timer is the `process` backend (no systemd inside a namespace); on a real host the same
 * scripts run under `systemd-run --on-active` (docs/cutover.md).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import { CutoverRevertedError, guardedCutover } from '../../src/cutover/cutover';
import { connectSsh, type RemoteShell } from '../../src/providers/linux/ssh';
import { describeIfRoot } from '../lab/jest-lab';
import { writeLabSshdConfig } from '../lab/lab';

jest.setTimeout(90_000);

const ID = `dwdm${randomBytes(3).toString('hex')}`;
const NS = { admin: `${ID}-admin`, host: `${ID}-host`, vm: `${ID}-vm` } as const;
const LAB_CLIENT = path.resolve(__dirname, '../lab/lab-client.js');
let dir = '';
let sshdPid: number | undefined;
const pipes = new Set<ReturnType<typeof spawn>>();

function run(argv: string[], ok = true): { code: number | null; out: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  if (ok && r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr || r.stdout}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}
const inNs = (ns: string, argv: string[], ok = true) => run(['ip', 'netns', 'exec', ns, ...argv], ok);

function teardown(): void {
  for (const p of pipes) if (p.exitCode === null) p.kill('SIGTERM');
  pipes.clear();
  // only the sshd this test started, by its pid
  if (sshdPid !== undefined) {
    try {
      process.kill(sshdPid, 'SIGTERM');
    } catch {
      // already gone
    }
    sshdPid = undefined;
  }
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

function build(): void {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), `${ID}-`));
  for (const ns of Object.values(NS)) run(['ip', 'netns', 'add', ns]);
  for (const ns of Object.values(NS)) inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  run(['ip', '-n', NS.admin, 'link', 'add', 'oldA', 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', NS.host]);
  run(['ip', '-n', NS.admin, 'link', 'add', 'toVm', 'type', 'veth', 'peer', 'name', 'toAdmin', 'netns', NS.vm]);
  run(['ip', '-n', NS.vm, 'link', 'add', 'toHost', 'type', 'veth', 'peer', 'name', 'vmbr1', 'netns', NS.host]);
  const addr = (ns: string, dev: string, cidr: string) => {
    run(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev]);
    run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  };
  addr(NS.admin, 'oldA', '10.251.1.2/24');
  addr(NS.host, 'mgmt0', '10.251.1.1/24');
  addr(NS.admin, 'toVm', '10.251.2.2/24');
  addr(NS.vm, 'toAdmin', '10.251.2.1/24');
  addr(NS.vm, 'toHost', '10.251.3.1/24');
  run(['ip', '-n', NS.admin, 'route', 'add', '10.251.3.0/24', 'via', '10.251.2.1']);

  // the host's sshd, keys made for this test
  run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key')]);
  fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
  const config = path.join(dir, 'sshd_config');
  writeLabSshdConfig(config, {
    comment: `${ID}: host sshd for the dead-man test`,
    listen: '0.0.0.0:22',
    hostKey: path.join(dir, 'host_key'),
    pidFile: path.join(dir, 'sshd.pid'),
    authorizedKeys: path.join(dir, 'authorized_keys'),
  });
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const child = spawn('ip', ['netns', 'exec', NS.host, 'timeout', '-k', '5', '300', '/usr/sbin/sshd', '-D', '-f', config, '-E', path.join(dir, 'sshd.log')], { detached: true, stdio: 'ignore' });
  child.unref();
  sshdPid = child.pid;
  const end = Date.now() + 15_000;
  while (!fs.existsSync(path.join(dir, 'sshd.pid'))) {
    if (Date.now() > end) throw new Error(`sshd did not start: ${fs.readFileSync(path.join(dir, 'sshd.log'), 'utf8')}`);
    spawnSync('sleep', ['0.05']);
  }
}

function hostKeyPin(): string {
  return run(['ssh-keygen', '-l', '-E', 'sha256', '-f', path.join(dir, 'host_key.pub')]).out.split(/\s+/)[1]!;
}

/** SSH to the host from the admin namespace, through `address`. */
async function sshVia(address: string): Promise<RemoteShell> {
  const child = spawn('ip', ['netns', 'exec', NS.admin, process.execPath, LAB_CLIENT, 'pipe', address, '22', '--timeout', '1000'], { stdio: ['pipe', 'pipe', 'pipe'] });
  pipes.add(child);
  child.on('exit', () => pipes.delete(child));
  child.stderr.resume();
  const sock = Duplex.from({ readable: child.stdout, writable: child.stdin });
  sock.on('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return connectSsh({ host: address, user: 'root', privateKey: fs.readFileSync(path.join(dir, 'client_key'), 'utf8'), hostKey: hostKeyPin(), sock, readyTimeoutMs: 3_000, commandTimeoutMs: 10_000 });
}

const CHANGE = 'ip link set mgmt0 down; ip addr add 10.251.3.2/24 dev vmbr1; ip link set vmbr1 up; ip route add 10.251.2.0/24 via 10.251.3.1';
const REVERT: [string, ...string[]][] = [
  ['ip', 'addr', 'flush', 'dev', 'vmbr1'],
  ['ip', 'link', 'set', 'vmbr1', 'down'], // "stop the VM": the host leaves the VM's bridge
  ['ip', 'link', 'set', 'mgmt0', 'up'],
];

function linkUp(ns: string, dev: string): boolean {
  return /state UP|,UP[,>]/.test(run(['ip', '-n', ns, '-o', 'link', 'show', dev]).out) && !/state DOWN/.test(run(['ip', '-n', ns, '-o', 'link', 'show', dev]).out);
}

function resetHost(vmRoutes: boolean): void {
  run(['ip', '-n', NS.host, 'addr', 'flush', 'dev', 'vmbr1']);
  run(['ip', '-n', NS.host, 'link', 'set', 'mgmt0', 'up']);
  inNs(NS.vm, ['sysctl', '-q', '-w', `net.ipv4.ip_forward=${vmRoutes ? 1 : 0}`]);
}

const spec = (stateDir: string) => ({
  timeoutSeconds: 10,
  revert: REVERT,
  kind: 'process' as const,
  stateDir,
  confirmWithinMs: 7_000,
  recoverWithinMs: 20_000,
  connectOld: () => sshVia('10.251.1.1'),
  connectNew: () => sshVia('10.251.3.2'),
  // detached, so our own session returning does not depend on the link it takes down
  change: async (old: RemoteShell) => {
    const r = await old.exec(['sh', '-c', 'setsid -f sh -c "$0" </dev/null >/dev/null 2>&1', CHANGE], { timeoutMs: 5_000 });
    if (r.code !== 0) throw new Error(r.stderr);
  },
});

describeIfRoot('lockout-safe cutover in network namespaces', () => {
  beforeAll(() => {
    const onExit = () => teardown();
    process.once('exit', onExit);
    build();
  });
  afterAll(() => teardown());

  it('a host that loses its link is restored by the dead-man timer when the new path never answers', async () => {
    resetHost(false); // the VM does not route: the new path is dead
    const stateDir = path.join(dir, 'state-fire');
    const started = Date.now();
    const err = await guardedCutover(spec(stateDir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CutoverRevertedError);
    const e = err as CutoverRevertedError;
    expect(e.deadmanState).toBe('fired');
    expect(e.revertLog).toContain('+ ip link set mgmt0 up');
    expect(e.message).toMatch(/restored its previous network config \(state: fired\)/);
    // the host is as before: management link up, off the VM's bridge, reachable on the old path
    expect(linkUp(NS.host, 'mgmt0')).toBe(true);
    expect(run(['ip', '-n', NS.host, '-o', 'addr', 'show', 'dev', 'vmbr1']).out).not.toContain('10.251.3.2');
    const back = await sshVia('10.251.1.1');
    expect((await back.exec(['true'])).code).toBe(0);
    await back.close();
    // it fired after the timeout, not before
    expect(Date.now() - started).toBeGreaterThanOrEqual(10_000);
  });

  it('a confirmed cutover disarms the timer: past its timeout nothing is reverted', async () => {
    resetHost(true); // the VM routes: the host is reachable through it after the change
    const stateDir = path.join(dir, 'state-confirm');
    const r = await guardedCutover(spec(stateDir));
    expect(r.outcome).toBe('confirmed');
    const pidFile = path.join(stateDir, `${r.deadman.id}.pid`);
    expect(fs.existsSync(pidFile)).toBe(false); // cleaned up after the disarm
    // wait past the timer's deadline (test-side only), then check nothing was reverted
    const left = r.deadman.armedAt + r.deadman.timeoutSeconds * 1000 + 1_500 - Date.now();
    if (left > 0) await new Promise((res) => setTimeout(res, left));
    expect(linkUp(NS.host, 'mgmt0')).toBe(false);
    expect(run(['ip', '-n', NS.host, '-o', 'addr', 'show', 'dev', 'vmbr1']).out).toContain('10.251.3.2/24');
    expect(fs.existsSync(path.join(stateDir, `${r.deadman.id}.log`))).toBe(false);
    const fresh = await sshVia('10.251.3.2');
    expect((await fresh.exec(['true'])).code).toBe(0);
    await fresh.close();
  });
});
