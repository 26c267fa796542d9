// The double's mutable core: state, access control, schema version and the task engine.
import type { PveVersion } from './data';
import { ExceptionWithErrors, PerlDie, type ErrorMap } from './jsonschema';
import { AccessControl, PermissionDenied } from './perms';
import { PARAM_FAILED } from './schema';
import { seedInventory, type Inventory, type InventoryOverrides, type Task, type Vm } from './state';
import type { TlsMaterial } from './certs';

/** raise_param_exc: HTTP 400 with an errors map */
export class ParamError extends Error {
  constructor(readonly errors: ErrorMap) {
    super(PARAM_FAILED.trim());
    this.name = 'ParamError';
  }
}

/** Any other HTTP error the double wants to send as is. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly text: string,
  ) {
    super(text.trim());
    this.name = 'HttpError';
  }
}

export interface TaskContext {
  readonly task: Task;
  log(line: string): void;
  /** prints "WARN: ..." and counts it: the task then ends with "TASK WARNINGS: n" */
  warn(line: string): void;
  /** throws the failure armed with failNextTask() for this task, if any */
  checkpoint(): void;
}

export type TaskWork = (t: TaskContext) => void;

export interface TaskOptions {
  /** the work calls t.checkpoint() itself (to clean up after an injected failure) */
  checkpointInside?: boolean;
}

interface RunningTask {
  task: Task;
  forced?: string;
  warnings: number;
  timer?: NodeJS.Timeout;
}

export interface CoreOptions {
  schemaVersion: PveVersion;
  taskDurationMs: number;
  inventory?: InventoryOverrides;
}

/** What "$@" holds in Perl for an error thrown by the double. */
export function perlErrorText(e: unknown): string {
  if (e instanceof PerlDie) return e.text;
  if (e instanceof PermissionDenied) return `403 ${e.text}`;
  if (e instanceof ParamError) return new ExceptionWithErrors(`400 ${PARAM_FAILED}`, e.errors).text;
  if (e instanceof HttpError) return e.text;
  return `${e instanceof Error ? e.message : String(e)}\n`;
}

/** Errors as the client sees them inside task logs: chomp once, then newlines become spaces. */
export function taskErrorText(e: unknown): string {
  return perlErrorText(e).replace(/\n$/, '').replace(/\n/g, ' ');
}

export class DoubleCore {
  version: PveVersion;
  taskDurationMs: number;
  inv: Inventory;
  acl = new AccessControl();
  tasks = new Map<string, RunningTask>();
  tls!: TlsMaterial;
  private armedFailure: string | undefined;
  private pidCounter = 0x3a2f;
  private readonly pstartBase = 0x1b2c3d;
  private readonly bootTime = Date.now();
  private macCounter = 0;

  constructor(private readonly opts: CoreOptions) {
    this.version = opts.schemaVersion;
    this.taskDurationMs = opts.taskDurationMs;
    this.inv = seedInventory(opts.inventory);
  }

  resetState(): void {
    for (const t of this.tasks.values()) if (t.timer) clearTimeout(t.timer);
    this.tasks.clear();
    this.inv = seedInventory(this.opts.inventory);
    this.armedFailure = undefined;
    this.version = this.opts.schemaVersion;
    this.macCounter = 0;
  }

  close(): void {
    for (const t of this.tasks.values()) if (t.timer) clearTimeout(t.timer);
  }

  get node(): string {
    return this.inv.node;
  }

  armFailure(message: string): void {
    this.armedFailure = message;
  }

  nextPid(): number {
    return ++this.pidCounter;
  }

  uptimeSeconds(): number {
    return Math.floor((Date.now() - this.bootTime) / 1000) + 3712;
  }

  /** BC:24:11 is the default datacenter mac_prefix */
  randomMac(): string {
    const n = ++this.macCounter;
    const b = [0x5a, 0x3e, n & 0xff].map((x) => x.toString(16).toUpperCase().padStart(2, '0'));
    return `BC:24:11:${b.join(':')}`;
  }

  findVm(vmid: number | string): Vm | undefined {
    return this.inv.vms.find((v) => v.vmid === Number(vmid));
  }

  /** PVE::QemuConfig->load_config */
  loadVm(vmid: number | string): Vm {
    const vm = this.findVm(vmid);
    if (!vm) throw new PerlDie(`Configuration file 'nodes/${this.node}/qemu-server/${vmid}.conf' does not exist\n`);
    return vm;
  }

  /** fork_worker: returns the UPID; `work` runs when the task's time is up. */
  startTask(type: string, id: string, user: string, work: TaskWork, options: TaskOptions = {}): string {
    const pid = this.nextPid();
    const pstart = this.pstartBase + Math.floor((Date.now() - this.bootTime) / 10);
    const starttime = Math.floor(Date.now() / 1000);
    const upid = `UPID:${this.node}:${hex8(pid)}:${hex8(pstart)}:${hex8(starttime)}:${type}:${id}:${user}:`;
    const task: Task = { upid, node: this.node, pid, pstart, starttime, type, id, user, status: 'running', log: [] };
    const rt: RunningTask = { task, warnings: 0 };
    if (this.armedFailure !== undefined) {
      rt.forced = this.armedFailure;
      this.armedFailure = undefined;
    }
    this.tasks.set(upid, rt);
    const ctx: TaskContext = {
      task,
      log: (line) => task.log.push(...line.split('\n')),
      warn: (line) => {
        rt.warnings++;
        task.log.push(`WARN: ${line.replace(/\n$/, '')}`);
      },
      checkpoint: () => {
        if (rt.forced !== undefined) {
          const msg = rt.forced;
          rt.forced = undefined;
          throw new PerlDie(msg.endsWith('\n') ? msg : `${msg}\n`);
        }
      },
    };
    rt.timer = setTimeout(() => {
      rt.timer = undefined;
      try {
        if (!options.checkpointInside) ctx.checkpoint();
        work(ctx);
        ctx.checkpoint();
        task.log.push(rt.warnings ? `TASK WARNINGS: ${rt.warnings}` : 'TASK OK');
        task.exitstatus = rt.warnings ? `WARNINGS: ${rt.warnings}` : 'OK';
      } catch (e) {
        const msg = taskErrorText(e);
        task.log.push(`TASK ERROR: ${msg}`);
        task.exitstatus = msg;
      }
      task.status = 'stopped';
    }, this.taskDurationMs);
    rt.timer.unref?.();
    return upid;
  }

  /** Resolves when every task has finished (test helper). */
  async settle(): Promise<void> {
    for (;;) {
      const busy = [...this.tasks.values()].some((t) => t.task.status === 'running');
      if (!busy) return;
      await new Promise((r) => setTimeout(r, Math.max(5, Math.min(this.taskDurationMs, 20))));
    }
  }
}

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}
