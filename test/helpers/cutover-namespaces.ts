/**
 * The network the cutover tests run on (root only), three namespaces with a unique prefix:
 *
 *   admin (dualwan)  oldA 10.251.1.2 ───────────── mgmt0 10.251.1.1   host (sshd :22)
 *                    toVm 10.251.2.2 ── toAdmin 10.251.2.1  vm (router)
 *                                        toHost 10.251.3.1 ── vmbr1 (the bridge the VM joins)
 *
 * The host runs a real sshd with keys made for the test; dualwan reaches it from the admin
 * namespace through a byte pipe (test/lab/lab-client.js), never from the machine's own namespace.
 * Everything is removed by name: the namespaces, the sshd by its pid, the pipes, the directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import { connectSsh, type RemoteShell } from '../../src/providers/linux/ssh';
import { namespacePipe, writeLabSshdConfig } from '../lab/lab';


export class CutoverNamespaces {
  readonly id: string;
  readonly ns: { readonly admin: string; readonly host: string; readonly vm: string };
  dir = '';
  private sshdPid: number | undefined;
  private readonly pipes = new Set<ChildProcess>();

  /** `prefix`: four letters naming the test in the namespace names (e.g. dwdm, dwco). */
  constructor(prefix: string) {
    this.id = `${prefix}${randomBytes(3).toString('hex')}`;
    this.ns = { admin: `${this.id}-admin`, host: `${this.id}-host`, vm: `${this.id}-vm` };
  }

  run(argv: string[], ok = true): { code: number | null; out: string } {
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
    if (ok && r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr || r.stdout}`);
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  }

  inNs(ns: string, argv: string[], ok = true): { code: number | null; out: string } {
    return this.run(['ip', 'netns', 'exec', ns, ...argv], ok);
  }

  /**
   * Builds the namespaces and links, then `beforeSshd(dir)` (stand-in commands for the host, say),
   * then starts the host's sshd and waits for its pid file (bounded).
   */
  build(sshdComment: string, beforeSshd?: (dir: string) => void): void {
    const r = (argv: string[]) => this.run(argv);
    const NS = this.ns;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${this.id}-`));
    for (const ns of Object.values(NS)) r(['ip', 'netns', 'add', ns]);
    for (const ns of Object.values(NS)) r(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    r(['ip', '-n', NS.admin, 'link', 'add', 'oldA', 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', NS.host]);
    r(['ip', '-n', NS.admin, 'link', 'add', 'toVm', 'type', 'veth', 'peer', 'name', 'toAdmin', 'netns', NS.vm]);
    r(['ip', '-n', NS.vm, 'link', 'add', 'toHost', 'type', 'veth', 'peer', 'name', 'vmbr1', 'netns', NS.host]);
    const addr = (ns: string, dev: string, cidr: string) => {
      r(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', dev]);
      r(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    };
    addr(NS.admin, 'oldA', '10.251.1.2/24');
    addr(NS.host, 'mgmt0', '10.251.1.1/24');
    addr(NS.admin, 'toVm', '10.251.2.2/24');
    addr(NS.vm, 'toAdmin', '10.251.2.1/24');
    addr(NS.vm, 'toHost', '10.251.3.1/24');
    r(['ip', '-n', NS.admin, 'route', 'add', '10.251.3.0/24', 'via', '10.251.2.1']);

    beforeSshd?.(this.dir);

    const dir = this.dir;
    r(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
    r(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key')]);
    fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
    const config = path.join(dir, 'sshd_config');
    writeLabSshdConfig(config, { comment: `${this.id}: ${sshdComment}`, listen: '0.0.0.0:22', hostKey: path.join(dir, 'host_key'), pidFile: path.join(dir, 'sshd.pid'), authorizedKeys: path.join(dir, 'authorized_keys') });
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const child = spawn('ip', ['netns', 'exec', NS.host, 'timeout', '-k', '5', '300', '/usr/sbin/sshd', '-D', '-f', config, '-E', path.join(dir, 'sshd.log')], { detached: true, stdio: 'ignore' });
    child.unref();
    this.sshdPid = child.pid;
    const end = Date.now() + 15_000;
    while (!fs.existsSync(path.join(dir, 'sshd.pid'))) {
      if (Date.now() > end) throw new Error(`sshd did not start: ${fs.readFileSync(path.join(dir, 'sshd.log'), 'utf8')}`);
      spawnSync('sleep', ['0.05']);
    }
  }

  /** The host key's SHA256 fingerprint, as dualwan pins it. */
  hostKeyPin(): string {
    return this.run(['ssh-keygen', '-l', '-E', 'sha256', '-f', path.join(this.dir, 'host_key.pub')]).out.split(/\s+/)[1]!;
  }

  /** The private key dualwan logs in with. */
  clientKey(): string {
    return fs.readFileSync(path.join(this.dir, 'client_key'), 'utf8');
  }

  /** A byte stream to the host's sshd at `address`, opened from inside the admin namespace. */
  pipeTo(address: string): Duplex {
    return namespacePipe(this.ns.admin, address, 22, 1_000, this.pipes);
  }


  /** SSH to the host from the admin namespace, through `address` (the old or the new path). */
  sshVia(address: string): Promise<RemoteShell> {
    return connectSsh({ host: address, user: 'root', privateKey: this.clientKey(), hostKey: this.hostKeyPin(), sock: this.pipeTo(address), readyTimeoutMs: 10_000, commandTimeoutMs: 15_000 });
  }

  teardown(): void {
    for (const p of this.pipes) if (p.exitCode === null) p.kill('SIGTERM');
    this.pipes.clear();
    // only the sshd this test started, by its pid
    if (this.sshdPid !== undefined) {
      try {
        process.kill(this.sshdPid, 'SIGTERM');
      } catch {
        // already gone
      }
      this.sshdPid = undefined;
    }
    for (const ns of Object.values(this.ns)) spawnSync('ip', ['netns', 'del', ns]);
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
