/**
 * The router's own shell, for code that runs on the router itself (the health monitor): the same
 * `RemoteShell` interface as the SSH client, with programs started directly (no shell at all:
 * argv goes to execve), a deadline per command and bounded output.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv } from './shell';
import type { ExecOptions, ExecResult, RemoteShell } from './ssh';

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024;

export class LocalShell implements RemoteShell {
  readonly target = 'localhost';

  exec(argv: Argv, options: ExecOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    const limit = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxOutput = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
    return new Promise<ExecResult>((resolve) => {
      const [program, ...args] = argv;
      const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ? { ...process.env, ...options.env } : process.env });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let truncated = false;
      let timedOut = false;
      const take = (into: Buffer[]) => (chunk: Buffer) => {
        if (size >= maxOutput) {
          truncated = true;
          return;
        }
        into.push(chunk);
        size += chunk.length;
      };
      child.stdout.on('data', take(out));
      child.stderr.on('data', take(err));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, limit);
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
        clearTimeout(timer);
        resolve({
          code: timedOut ? null : code,
          ...(signal ? { signal } : {}),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: spawnError ? `${program}: ${spawnError.message}` : Buffer.concat(err).toString('utf8'),
          timedOut,
          truncated,
          durationMs: Date.now() - started,
        });
      };
      child.on('error', (e) => finish(127, null, e));
      child.on('close', (code, signal) => finish(code, signal));
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.stdin ?? undefined);
    });
  }

  async writeFile(file: string, content: string | Buffer, mode: number): Promise<void> {
    writeFileAtomic(file, content, mode);
  }

  async readFile(file: string): Promise<string | undefined> {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {}
}

/** Temporary file beside the target, then rename: readers never see half a file. */
export function writeFileAtomic(file: string, content: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(tmp, content, { mode });
  fs.renameSync(tmp, file);
}
