/**
 * The SSH client against an in-process ssh2 server on 127.0.0.1 (no root, no sshd): host key
 * pinning, authentication failure, and exec semantics. The server runs each exec request through
 * /bin/sh -c, so the quoting is checked by a real shell end to end. The same client is checked
 * against a real OpenSSH server in test/e2e/linux-lab.test.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, utils, type Connection } from 'ssh2';
import { DualwanError, RemoteApiError } from '../../../src/core/errors';
import {
  connectSsh,
  fingerprintOfPublicKeyLine,
  HostKeyMismatchError,
  HostKeyUnknownError,
  keyTypeOfBlob,
  normaliseHostKeyPin,
  sshFingerprint,
  type SshClient,
} from '../../../src/providers/linux/ssh';

const hostKey = utils.generateKeyPairSync('ed25519');
const clientKey = utils.generateKeyPairSync('ed25519');
const otherClientKey = utils.generateKeyPairSync('ed25519');
const hostFingerprint = `SHA256:${createHash('sha256')
  .update(Buffer.from(hostKey.public.split(' ')[1]!, 'base64'))
  .digest('base64')
  .replace(/=+$/, '')}`;

function allowedKey(): { algo: string; data: Buffer } {
  const parsed = utils.parseKey(clientKey.public);
  if (parsed instanceof Error) throw parsed;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return { algo: key.type, data: key.getPublicSSH() };
}

function killGroup(child: ReturnType<typeof spawn>): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

let server: Server;
let port = 0;
const connections = new Set<Connection>();
const children = new Set<ReturnType<typeof spawn>>();

beforeAll(async () => {
  const allowed = allowedKey();
  server = new Server({ hostKeys: [hostKey.private] }, (conn) => {
    connections.add(conn);
    conn.on('close', () => connections.delete(conn));
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx) => {
      if (ctx.method === 'publickey' && ctx.key.algo === allowed.algo && ctx.key.data.length === allowed.data.length && timingSafeEqual(ctx.key.data, allowed.data)) {
        ctx.accept();
      } else {
        ctx.reject(['publickey']);
      }
    });
    conn.on('ready', () => {
      conn.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec, _reject, info) => {
          const stream = acceptExec();
          // Its own process group, so a kill reaches what the shell started too.
          const child = spawn('/bin/sh', ['-c', info.command], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
          children.add(child);
          stream.pipe(child.stdin);
          child.stdout.pipe(stream, { end: false });
          child.stderr.pipe(stream.stderr, { end: false });
          child.on('close', (code) => {
            children.delete(child);
            stream.exit(code ?? 1);
            stream.end();
          });
          stream.on('close', () => killGroup(child));
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const c of connections) c.end();
  for (const child of children) killGroup(child);
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const base = () => ({ host: '127.0.0.1', port, user: 'tester', privateKey: clientKey.private, hostKey: hostFingerprint, remoteTimeout: false });

describe('fingerprints', () => {
  it('match what ssh-keygen prints', () => {
    expect(fingerprintOfPublicKeyLine(hostKey.public)).toBe(hostFingerprint);
    const dir = mkdtempSync(join(tmpdir(), 'dualwan-ssh-'));
    try {
      writeFileSync(join(dir, 'k.pub'), `${hostKey.public}\n`);
      const res = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'k.pub')], { encoding: 'utf8' });
      if (res.error) return; // ssh-keygen not installed: the e2e test covers the comparison with OpenSSH
      expect(res.stdout).toContain(hostFingerprint);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the key type and accepts pins with or without padding only in SHA256: form', () => {
    const blob = Buffer.from(hostKey.public.split(' ')[1]!, 'base64');
    expect(keyTypeOfBlob(blob)).toBe('ssh-ed25519');
    expect(keyTypeOfBlob(Buffer.from([0, 0]))).toBe('unknown');
    expect(sshFingerprint(blob)).toBe(hostFingerprint);
    expect(normaliseHostKeyPin(` ${hostFingerprint}= `)).toBe(hostFingerprint);
    expect(normaliseHostKeyPin('MD5:aa:bb')).toBeUndefined();
    expect(normaliseHostKeyPin(hostFingerprint.slice(7))).toBeUndefined();
    expect(() => fingerprintOfPublicKeyLine('not a key')).toThrow(DualwanError);
  });
});

describe('connectSsh host key pinning', () => {
  it('connects when the pin matches', async () => {
    const ssh = await connectSsh(base());
    expect(ssh.hostKeyFingerprint).toBe(hostFingerprint);
    expect(ssh.trustedOnFirstUse).toBe(false);
    await ssh.close();
  });

  it('refuses a different key, naming both fingerprints and the remedy', async () => {
    const pinned = 'SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
    const attempt = connectSsh({ ...base(), hostKey: pinned });
    await expect(attempt).rejects.toBeInstanceOf(HostKeyMismatchError);
    const error = (await attempt.catch((e: unknown) => e)) as HostKeyMismatchError;
    expect(error.message).toContain(pinned);
    expect(error.message).toContain(hostFingerprint);
    expect(error.remedy).toMatch(/ssh-keygen -lf/);
    expect(error.code).toBe('SSH_HOST_KEY_MISMATCH');
  });

  it('refuses an unpinned key unless trust on first use is asked for, and tells the fingerprint', async () => {
    const attempt = connectSsh({ ...base(), hostKey: undefined });
    await expect(attempt).rejects.toBeInstanceOf(HostKeyUnknownError);
    const error = (await attempt.catch((e: unknown) => e)) as HostKeyUnknownError;
    expect(error.presented).toBe(hostFingerprint);
    expect(error.remedy).toContain(`linux.hostKey: "${hostFingerprint}"`);
    expect(error.remedy).toContain('--trust-on-first-use');

    const tofu = await connectSsh({ ...base(), hostKey: undefined, trustOnFirstUse: true });
    expect(tofu.trustedOnFirstUse).toBe(true);
    expect(tofu.hostKeyFingerprint).toBe(hostFingerprint);
    await tofu.close();
  });

  it('rejects a malformed pin before connecting', async () => {
    await expect(connectSsh({ ...base(), hostKey: 'SHA256:short' })).rejects.toMatchObject({ code: 'SSH_HOST_KEY_PIN_INVALID' });
  });

  it('reports a refused client key as an authentication problem', async () => {
    await expect(connectSsh({ ...base(), privateKey: otherClientKey.private })).rejects.toMatchObject({ code: 'SSH_AUTH_FAILED' });
  });

  it('reports an unreachable server as a transient remote error', async () => {
    const closed = new Server({ hostKeys: [hostKey.private] }, () => undefined);
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await connectSsh({ ...base(), port: deadPort }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteApiError);
    expect((error as RemoteApiError).transient).toBe(true);
  });
});

describe('SshClient.exec', () => {
  let ssh: SshClient;
  beforeAll(async () => {
    ssh = await connectSsh(base());
  });
  afterAll(async () => {
    await ssh.close();
  });

  it('returns stdout, stderr and the exit code without throwing', async () => {
    const ok = await ssh.exec(['printf', '%s', 'hello']);
    expect(ok).toMatchObject({ code: 0, stdout: 'hello', stderr: '', timedOut: false });
    const failed = await ssh.exec(['sh', '-c', 'echo oops >&2; exit 3']);
    expect(failed).toMatchObject({ code: 3, stderr: 'oops\n', timedOut: false });
  });

  it('passes hostile arguments through the remote shell unchanged', async () => {
    const hostile = ["it's", '$(id)', '`id`', '; exit 7', '"q"', 'a\nb', '', '*', '\\'];
    const res = await ssh.exec(['printf', '%s\\0', ...hostile]);
    expect(res.code).toBe(0);
    expect(res.stdout.split('\0').slice(0, -1)).toEqual(hostile);
  });

  it('feeds stdin and sets environment variables', async () => {
    expect((await ssh.exec(['cat'], { stdin: 'table ip x {}\n' })).stdout).toBe('table ip x {}\n');
    expect((await ssh.exec(['sh', '-c', 'printf %s "$GREETING"'], { env: { GREETING: "it's $HOME" } })).stdout).toBe("it's $HOME");
  });

  it('stops waiting at the timeout and says so', async () => {
    const res = await ssh.exec(['sleep', '20'], { timeoutMs: 300 });
    expect(res.timedOut).toBe(true);
    expect(res.code).toBeNull();
  });

  it('caps output and reports the truncation', async () => {
    const res = await ssh.exec(['sh', '-c', 'head -c 100000 /dev/zero'], { maxOutputBytes: 1000 });
    expect(res.stdout.length).toBe(1000);
    expect(res.truncated).toBe(true);
  });

  it('wraps commands in the remote timeout when asked', async () => {
    const wrapped = await connectSsh({ ...base(), remoteTimeout: true });
    try {
      const res = await wrapped.exec(['sleep', '5'], { timeoutMs: 1_000 });
      expect(res.timedOut).toBe(true);
      expect(res.durationMs).toBeLessThan(4_500);
      expect((await wrapped.exec(['printf', 'x'])).stdout).toBe('x');
    } finally {
      await wrapped.close();
    }
  });

  it('refuses a relative path for writeFile', async () => {
    await expect(ssh.writeFile('relative/file', 'x', 0o600)).rejects.toMatchObject({ code: 'SSH_PATH_INVALID' });
  });
});
