/**
 * The SSH client for the Linux router backend.
 *
 * - Host keys are pinned by their OpenSSH fingerprint (`SHA256:` + unpadded base64 of the SHA-256
 *   of the key blob, exactly what `ssh-keygen -lf` prints). Nothing is sent after the key exchange
 *   unless the presented key matches the pin; trust on first use must be asked for explicitly.
 * - `exec` takes an argv array and builds the remote command line with `shell.ts`; it reports the
 *   exit status instead of throwing on a non-zero one, and stops a command that runs too long.
 * - `writeFile` replaces a file atomically: write a temporary file next to it, set its mode,
 *   rename it over the target.
 */
import { createHash, randomBytes } from 'node:crypto';
import { posix as posixPath } from 'node:path';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { DualwanError, RemoteApiError } from '../../core/errors';
import { commandLine, displayArgv, type Argv } from './shell';

const PIN_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** OpenSSH's fingerprint of a public key blob (the wire form, as in the base64 part of a `.pub` line). */
export function sshFingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The fingerprint of one line of an OpenSSH `.pub` or `authorized_keys` file. */
export function fingerprintOfPublicKeyLine(line: string): string {
  const [type, blob] = line.trim().split(/\s+/);
  const bytes = blob !== undefined && /^[A-Za-z0-9+/]+=*$/.test(blob) ? Buffer.from(blob, 'base64') : undefined;
  // The blob names its own key type; it must agree with the first field.
  if (type === undefined || bytes === undefined || keyTypeOfBlob(bytes) !== type) {
    throw new DualwanError('SSH_PUBLIC_KEY_INVALID', 'Not an OpenSSH public key line (expected "<type> <base64> [comment]").', { source: 'user' });
  }
  return sshFingerprint(bytes);
}

/** The key type named inside a key blob ("ssh-ed25519", "ecdsa-sha2-nistp256", …). */
export function keyTypeOfBlob(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const len = keyBlob.readUInt32BE(0);
  if (len > 64 || 4 + len > keyBlob.length) return 'unknown';
  return keyBlob.subarray(4, 4 + len).toString('latin1');
}

/** Accepts a pin as `ssh-keygen -lf` prints it (tolerating base64 padding); undefined if it is not one. */
export function normaliseHostKeyPin(pin: string): string | undefined {
  const trimmed = pin.trim().replace(/=+$/, '');
  return PIN_RE.test(trimmed) ? trimmed : undefined;
}

export class HostKeyMismatchError extends DualwanError {
  readonly expected: string;
  readonly presented: string;
  constructor(target: string, expected: string, presented: string, keyType: string) {
    super(
      'SSH_HOST_KEY_MISMATCH',
      `The SSH host key of ${target} does not match the pinned key; nothing was sent.\n  pinned:    ${expected}\n  presented: ${presented} (${keyType})`,
      {
        source: 'remote',
        remedy:
          'If the router was reinstalled or its host keys were regenerated on purpose, read the new fingerprint on the router itself ' +
          '(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and put it in dualwan.yaml as linux.hostKey. ' +
          'If nothing changed on the router, someone may be intercepting the connection: do not continue.',
      },
    );
    this.expected = expected;
    this.presented = presented;
  }
}

export class HostKeyUnknownError extends DualwanError {
  readonly presented: string;
  constructor(target: string, presented: string, keyType: string) {
    super('SSH_HOST_KEY_UNKNOWN', `No SSH host key is pinned for ${target}; it presented ${presented} (${keyType}). Nothing was sent.`, {
      source: 'user',
      remedy:
        `Compare this fingerprint with the one the router prints (\`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`), then pin it: ` +
        `set linux.hostKey: "${presented}" in dualwan.yaml, or run again with --trust-on-first-use to pin what the router presents.`,
    });
    this.presented = presented;
  }
}

export interface SshConnectOptions {
  readonly host: string;
  readonly port?: number;
  readonly user: string;
  /** OpenSSH or PEM private key text. Comes from the credentials file or the environment, never dualwan.yaml. */
  readonly privateKey: string | Buffer;
  readonly passphrase?: string;
  /** The pinned host key fingerprint, `SHA256:…`. */
  readonly hostKey?: string;
  /** Accept whatever key the server presents when none is pinned; the caller then pins `hostKeyFingerprint`. */
  readonly trustOnFirstUse?: boolean;
  /** An already-open byte stream to the server (what OpenSSH's ProxyCommand gives), instead of TCP to host:port. */
  readonly sock?: Duplex;
  /** Handshake deadline, ms. */
  readonly readyTimeoutMs?: number;
  /** Default per-command timeout for `exec`, ms. */
  readonly commandTimeoutMs?: number;
  /** Prefix every command with `sudo -n --` (log in as an unprivileged user with passwordless sudo). */
  readonly sudo?: boolean;
  /**
   * Enforce `exec` time limits on the router with coreutils `timeout` (default true). Without it
   * a timed-out command is abandoned, not stopped.
   */
  readonly remoteTimeout?: boolean;
}

export interface ExecOptions {
  /** Stop the command and report `timedOut` after this long (rounded up to whole seconds on the router). */
  readonly timeoutMs?: number;
  /** Fed to the command's standard input, then closed. */
  readonly stdin?: string | Buffer;
  readonly env?: Readonly<Record<string, string>>;
  /** Output kept per stream; the rest is dropped and `truncated` set. */
  readonly maxOutputBytes?: number;
}

export interface ExecResult {
  /** The exit status; null when the command was ended by a signal or by our timeout. */
  readonly code: number | null;
  readonly signal?: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly truncated: boolean;
  readonly durationMs: number;
}

/**
 * What resource handlers need from a router session. The SSH client implements it; tests may use a
 * double. Nothing here accepts a shell string.
 */
export interface RemoteShell {
  /** `user@host:port`, for messages. */
  readonly target: string;
  exec(argv: Argv, options?: ExecOptions): Promise<ExecResult>;
  writeFile(path: string, content: string | Buffer, mode: number): Promise<void>;
  /** The file's content, or undefined when it does not exist. */
  readFile(path: string): Promise<string | undefined>;
  close(): Promise<void>;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;

export class SshClient implements RemoteShell {
  readonly target: string;
  /** The fingerprint the server presented (equal to the pin when one was given). */
  readonly hostKeyFingerprint: string;
  /** True when the key was accepted only because trust on first use was asked for. */
  readonly trustedOnFirstUse: boolean;
  private readonly client: Client;
  private readonly sudo: boolean;
  private readonly commandTimeoutMs: number;
  private readonly remoteTimeout: boolean;
  private sftpSession: Promise<SFTPWrapper> | undefined;
  private closed = false;

  /** Use `connectSsh`; the constructor only wraps a connection that is already authenticated. */
  constructor(
    client: Client,
    init: { target: string; hostKeyFingerprint: string; trustedOnFirstUse: boolean; sudo: boolean; commandTimeoutMs: number; remoteTimeout: boolean },
  ) {
    this.client = client;
    this.target = init.target;
    this.hostKeyFingerprint = init.hostKeyFingerprint;
    this.trustedOnFirstUse = init.trustedOnFirstUse;
    this.sudo = init.sudo;
    this.commandTimeoutMs = init.commandTimeoutMs;
    this.remoteTimeout = init.remoteTimeout;
    client.on('close', () => {
      this.closed = true;
    });
  }

  exec(argv: Argv, options: ExecOptions = {}): Promise<ExecResult> {
    const limitMs = options.timeoutMs ?? this.commandTimeoutMs;
    // OpenSSH refuses "signal" requests for root sessions ("session signalling requires privilege
    // separation"), and closing the channel does not stop the command, so the router's own
    // `timeout` enforces the limit (whole seconds); our timer is the backstop if even that hangs.
    const remoteSecs = Math.max(1, Math.ceil(limitMs / 1000));
    const wrapped: Argv = this.remoteTimeout ? ['timeout', '-k', '2', String(remoteSecs), ...argv] : argv;
    const line = commandLine(wrapped, { env: options.env, sudo: this.sudo });
    const timeoutMs = this.remoteTimeout ? remoteSecs * 1000 + 3_000 : limitMs;
    const maxOutput = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
    const started = Date.now();
    const shown = displayArgv(argv);
    return new Promise<ExecResult>((resolve, reject) => {
      if (this.closed) {
        reject(this.connectionLost('exec', shown));
        return;
      }
      this.client.exec(line, (err, stream: ClientChannel) => {
        if (err) {
          reject(new RemoteApiError({ system: 'ssh', method: 'exec', path: shown, message: `could not start the command on ${this.target}: ${err.message}`, transient: true, cause: err }));
          return;
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let outBytes = 0;
        let errBytes = 0;
        let truncated = false;
        let code: number | null | undefined;
        let signal: string | undefined;
        let timedOut = false;
        const take = (chunks: Buffer[], size: number, chunk: Buffer): number => {
          const room = maxOutput - size;
          if (room <= 0) {
            truncated = true;
            return size;
          }
          if (chunk.length > room) truncated = true;
          const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
          chunks.push(kept);
          return size + kept.length;
        };
        stream.on('data', (chunk: Buffer) => {
          outBytes = take(out, outBytes, chunk);
        });
        stream.stderr.on('data', (chunk: Buffer) => {
          errBytes = take(errOut, errBytes, chunk);
        });
        stream.on('exit', (exitCode: number | null, exitSignal?: string) => {
          code = typeof exitCode === 'number' ? exitCode : null;
          if (exitSignal) signal = exitSignal;
        });
        const result = (): ExecResult => {
          // coreutils timeout exits 124 (TERM was enough) or 137 (it needed KILL) when the limit hit.
          if (this.remoteTimeout && (code === 124 || code === 137) && Date.now() - started >= remoteSecs * 1000 - 50) timedOut = true;
          return {
            code: timedOut ? null : (code ?? null),
            signal,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(errOut).toString('utf8'),
            timedOut,
            truncated,
            durationMs: Date.now() - started,
          };
        };
        const timer = setTimeout(() => {
          timedOut = true;
          if (stream.writable) stream.signal('KILL');
          // OpenSSH answers our channel close only once the command has exited, so do not wait for it.
          stream.close();
          resolve(result());
        }, timeoutMs);
        stream.on('close', () => {
          clearTimeout(timer);
          if (timedOut) return;
          if (code === undefined) reject(this.connectionLost('exec', shown));
          else resolve(result());
        });
        stream.end(options.stdin ?? undefined);
      });
    });
  }

  /** Atomically replaces `path` (temporary file in the same directory, chmod, rename). */
  async writeFile(path: string, content: string | Buffer, mode: number): Promise<void> {
    if (!path.startsWith('/') || path.endsWith('/') || path.includes('\0')) {
      throw new DualwanError('SSH_PATH_INVALID', `Refusing to write ${JSON.stringify(path)}: an absolute file path is needed.`, { source: 'tool' });
    }
    const tmp = posixPath.join(posixPath.dirname(path), `.${posixPath.basename(path)}.dualwan-${randomBytes(6).toString('hex')}`);
    const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    if (this.sudo) {
      // The SFTP server runs as the login user, so with sudo the file goes through commands instead.
      await this.writeFileWithCommands(path, tmp, data, mode);
      return;
    }
    const sftp = await this.sftp();
    const step = (what: string, run: (cb: (err?: Error | null) => void) => void) =>
      new Promise<void>((resolve, reject) => {
        run((err) => (err ? reject(new RemoteApiError({ system: 'ssh', method: 'sftp', path, message: `${what} failed on ${this.target}: ${err.message}`, cause: err })) : resolve()));
      });
    try {
      await step('write', (cb) => sftp.writeFile(tmp, data, { mode }, cb));
      await step('chmod', (cb) => sftp.chmod(tmp, mode, cb));
      await step('rename', (cb) => sftp.ext_openssh_rename(tmp, path, cb));
    } catch (error) {
      await new Promise<void>((resolve) => sftp.unlink(tmp, () => resolve()));
      throw error;
    }
  }

  /** Whether the session is still open (a closed one cannot run commands or open channels). */
  get isOpen(): boolean {
    return !this.closed;
  }

  /**
   * A TCP connection from the server to `host:port` (OpenSSH's `direct-tcpip`, what `ssh -L` uses),
   * as a byte stream on this session; e.g. to reach a router that only the server can reach.
   */
  forwardOut(host: string, port: number): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      if (this.closed) {
        reject(this.connectionLost('forward', `${host}:${port}`));
        return;
      }
      this.client.forwardOut('127.0.0.1', 0, host, port, (err, channel) => {
        if (err) reject(new RemoteApiError({ system: 'ssh', method: 'forward', path: `${host}:${port}`, message: `${this.target} could not connect to ${host}:${port}: ${err.message}`, transient: true, cause: err }));
        else resolve(channel);
      });
    });
  }

  async readFile(path: string): Promise<string | undefined> {
    const exists = await this.exec(['test', '-e', path]);
    if (exists.code !== 0) return undefined;
    const res = await this.exec(['cat', '--', path]);
    if (res.code !== 0) {
      throw new RemoteApiError({ system: 'ssh', method: 'read', path, message: `cat exited ${String(res.code)}: ${res.stderr.trim()}` });
    }
    return res.stdout;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2_000);
      this.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.end();
    });
  }

  private async writeFileWithCommands(path: string, tmp: string, data: Buffer, mode: number): Promise<void> {
    const run = async (argv: Argv, stdin?: Buffer) => {
      const res = await this.exec(argv, stdin === undefined ? {} : { stdin });
      if (res.code !== 0) {
        await this.exec(['rm', '-f', '--', tmp]);
        throw new RemoteApiError({ system: 'ssh', method: 'write', path, message: `${displayArgv(argv)} exited ${String(res.code)}: ${res.stderr.trim()}` });
      }
    };
    await run(['dd', `of=${tmp}`, 'status=none'], data);
    await run(['chmod', mode.toString(8), '--', tmp]);
    await run(['mv', '-f', '--', tmp, path]);
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((err, sftp) => {
        if (err) {
          this.sftpSession = undefined;
          reject(new RemoteApiError({ system: 'ssh', method: 'sftp', path: this.target, message: `the SFTP subsystem is not available: ${err.message}`, cause: err, remedy: 'Enable the sftp Subsystem in the router’s sshd_config.' }));
        } else resolve(sftp);
      });
    });
    return this.sftpSession;
  }

  private connectionLost(method: string, what: string): RemoteApiError {
    return new RemoteApiError({ system: 'ssh', method, path: what, message: `the connection to ${this.target} was lost`, transient: true });
  }
}

/** Opens an authenticated session, refusing any host key but the pinned one. */
export function connectSsh(options: SshConnectOptions): Promise<SshClient> {
  const port = options.port ?? 22;
  const target = `${options.user}@${options.host}:${port}`;
  let pin: string | undefined;
  if (options.hostKey !== undefined) {
    pin = normaliseHostKeyPin(options.hostKey);
    if (pin === undefined) {
      return Promise.reject(
        new DualwanError('SSH_HOST_KEY_PIN_INVALID', `The pinned host key for ${target} is not an OpenSSH SHA-256 fingerprint: ${JSON.stringify(options.hostKey)}`, {
          source: 'user',
          remedy: 'Write it as ssh-keygen -lf prints it, e.g. "SHA256:" followed by 43 base64 characters.',
        }),
      );
    }
  }
  const client = new Client();
  let presented: { fingerprint: string; keyType: string } | undefined;
  let refused: DualwanError | undefined;
  return new Promise<SshClient>((resolve, reject) => {
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      client.destroy();
      reject(error);
    };
    client.on('ready', () => {
      if (settled) return;
      settled = true;
      resolve(
        new SshClient(client, {
          target,
          hostKeyFingerprint: presented?.fingerprint ?? '',
          trustedOnFirstUse: pin === undefined,
          sudo: options.sudo ?? false,
          commandTimeoutMs: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
          remoteTimeout: options.remoteTimeout ?? true,
        }),
      );
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (refused) {
        fail(refused);
        return;
      }
      if (err.level === 'client-authentication') {
        fail(
          new DualwanError('SSH_AUTH_FAILED', `${target} refused our key (${err.message}).`, {
            source: 'user',
            remedy: `Add the public half of the configured key to ~${options.user}/.ssh/authorized_keys on the router.`,
            cause: err,
          }),
        );
        return;
      }
      const transient = err.level === 'client-socket' || err.level === 'client-timeout';
      fail(new RemoteApiError({ system: 'ssh', method: 'connect', path: target, message: err.message, transient, cause: err }));
    });
    client.on('close', () => fail(refused ?? new RemoteApiError({ system: 'ssh', method: 'connect', path: target, message: 'the connection closed during the handshake', transient: true })));
    try {
      client.connect({
        host: options.host,
        port,
        username: options.user,
        privateKey: options.privateKey,
        passphrase: options.passphrase,
        readyTimeout: options.readyTimeoutMs ?? 20_000,
        sock: options.sock,
        // Only the methods we configure: no agent, no password, no keyboard-interactive.
        authHandler: ['publickey'],
        hostVerifier: (key: Buffer): boolean => {
          presented = { fingerprint: sshFingerprint(key), keyType: keyTypeOfBlob(key) };
          if (pin !== undefined) {
            if (presented.fingerprint === pin) return true;
            refused = new HostKeyMismatchError(target, pin, presented.fingerprint, presented.keyType);
            return false;
          }
          if (options.trustOnFirstUse) return true;
          refused = new HostKeyUnknownError(target, presented.fingerprint, presented.keyType);
          return false;
        },
      });
    } catch (error) {
      // ssh2 throws synchronously for an unreadable private key.
      fail(
        new DualwanError('SSH_PRIVATE_KEY_INVALID', `The private key for ${target} cannot be used: ${error instanceof Error ? error.message : String(error)}`, {
          source: 'user',
          remedy: 'Give an unencrypted OpenSSH/PEM private key, or its passphrase.',
          cause: error,
        }),
      );
    }
  });
}
