import type { Argv } from '../../src/providers/linux/shell';
import type { ExecOptions, ExecResult, RemoteShell } from '../../src/providers/linux/ssh';

/** `ip -j addr show` of the lab router (address plan a): lan0, wan1, wan2. */
export const LAB_ROUTER_ADDR =
  '[{"ifindex":2,"ifname":"lan0","flags":["UP"],"addr_info":[{"family":"inet","local":"192.168.77.1","prefixlen":24,"scope":"global"}]},' +
  '{"ifindex":3,"ifname":"wan1","flags":["UP"],"addr_info":[{"family":"inet","local":"100.64.1.2","prefixlen":24,"scope":"global"}]},' +
  '{"ifindex":4,"ifname":"wan2","flags":["UP"],"addr_info":[{"family":"inet","local":"100.64.2.2","prefixlen":24,"scope":"global"}]}]';

/** A router that answers reads from a table of canned outputs and records every command asked. */
export class CannedShell implements RemoteShell {
  readonly target = 'root@router:22';
  readonly calls: string[] = [];
  constructor(private readonly answers: Record<string, string>) {}
  async exec(argv: Argv, _options?: ExecOptions): Promise<ExecResult> {
    const key = argv.join(' ');
    this.calls.push(key);
    const stdout = this.answers[key];
    return { code: stdout === undefined ? 1 : 0, stdout: stdout ?? '', stderr: stdout === undefined ? 'not canned' : '', timedOut: false, truncated: false, durationMs: 1 };
  }
  async writeFile(): Promise<void> {}
  async readFile(): Promise<string | undefined> {
    return undefined;
  }
  async close(): Promise<void> {}
}

/**
 * A shell that records every command (argv, and what went to its stdin) and keeps written files in
 * memory. Every command succeeds; `answer` gives its stdout (default empty).
 */
export class RecordingShell implements RemoteShell {
  readonly target = 'recorder';
  readonly calls: { argv: Argv; stdin?: string }[] = [];
  readonly files = new Map<string, string>();
  constructor(private readonly answer: (argv: Argv, stdin?: string) => string = () => '') {}
  get argvs(): Argv[] {
    return this.calls.map((c) => c.argv);
  }
  async exec(argv: Argv, o: ExecOptions = {}): Promise<ExecResult> {
    const stdin = o.stdin === undefined ? undefined : o.stdin.toString();
    this.calls.push({ argv, ...(stdin === undefined ? {} : { stdin }) });
    return { code: 0, stdout: this.answer(argv, stdin), stderr: '', timedOut: false, truncated: false, durationMs: 0 };
  }
  async writeFile(p: string, c: string | Buffer): Promise<void> {
    this.files.set(p, c.toString());
  }
  async readFile(p: string): Promise<string | undefined> {
    return this.files.get(p);
  }
  async close(): Promise<void> {}
}
