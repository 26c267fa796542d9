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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CutoverRevertedError, guardedCutover } from '../../src/cutover/cutover';
import { type RemoteShell } from '../../src/providers/linux/ssh';
import { describeIfRoot } from '../lab/jest-lab';
import { CutoverNamespaces } from '../helpers/cutover-namespaces';

jest.setTimeout(90_000);

const lab = new CutoverNamespaces('dwdm');
const NS = lab.ns;
const run = (argv: string[], ok = true) => lab.run(argv, ok);
const inNs = (ns: string, argv: string[], ok = true) => lab.inNs(ns, argv, ok);
const sshVia = (address: string): Promise<RemoteShell> => lab.sshVia(address);
const build = () => lab.build('host sshd for the dead-man test');
const teardown = () => lab.teardown();

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
  // room for a loaded CI machine: the new path is tried for 11 s of the timer's 15 s
  timeoutSeconds: 15,
  revert: REVERT,
  kind: 'process' as const,
  stateDir,
  confirmWithinMs: 11_000,
  recoverWithinMs: 30_000,
  connectOld: () => sshVia('10.251.1.1'),
  connectNew: () => sshVia('10.251.3.2'),
  // detached, so our own session returning does not depend on the link it takes down
  change: async (old: RemoteShell) => {
    const r = await old.exec(['sh', '-c', 'setsid -f sh -c "$0" </dev/null >/dev/null 2>&1', CHANGE], { timeoutMs: 15_000 });
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
    const stateDir = path.join(lab.dir, 'state-fire');
    const started = Date.now();
    const err = await guardedCutover(spec(stateDir)).catch((e: unknown) => e);
    // anything but the revert report fails the test, shown as it is
    if (!(err instanceof CutoverRevertedError)) throw err;
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
    expect(Date.now() - started).toBeGreaterThanOrEqual(15_000);
  });

  it('a confirmed cutover disarms the timer: past its timeout nothing is reverted', async () => {
    resetHost(true); // the VM routes: the host is reachable through it after the change
    const stateDir = path.join(lab.dir, 'state-confirm');
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
