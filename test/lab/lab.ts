/**
 * A dual-WAN lab in network namespaces: lan — router — isp1/isp2 — internet, with real iproute2,
 * nftables NAT in each ISP, services in the internet namespace and a real OpenSSH server in the
 * router namespace. Topology and addresses: README.md beside this file.
 *
 * Rules this module keeps (see the README for why):
 * - Everything it creates carries the lab's prefix `dwlab-<id>-`; teardown deletes exactly those
 *   namespaces by name and kills only processes inside them or recorded in its state file.
 * - Nothing touches the root namespace's interfaces, routes or firewall.
 * - `up()` is idempotent: each step checks what exists and only adds what is missing.
 * - Every command and every wait is bounded. Calls are synchronous so teardown can run from a
 *   process 'exit' hook.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import { ADDRESS_PLANS, chooseAddressPlan, hostPrefixes, type LabAddressPlan } from './addressing';
import { labScriptsDir } from './runtime';

export type LabNode = 'lan' | 'router' | 'isp1' | 'isp2' | 'internet';
export const LAB_NODES: readonly LabNode[] = ['lan', 'router', 'isp1', 'isp2', 'internet'];

/** Interface names inside the namespaces. */
export const LAB_IFACES = {
  lan: { eth: 'eth0' },
  router: { lan: 'lan0', wan1: 'wan1', wan2: 'wan2' },
  isp: { down: 'down0', up: 'up0' },
  internet: { isp1: 'isp1', isp2: 'isp2' },
} as const;

/** Debian packages the lab needs besides iproute2 and node. */
export const LAB_PACKAGES = ['openssh-server', 'nftables', 'iputils-ping', 'conntrack'] as const;

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface LabOptions {
  /** Short id; random when omitted. Lower-case letters and digits, 3–10 characters. */
  readonly id?: string;
  /** Where the state directory goes (keys, sshd config, logs); default the OS temp dir. */
  readonly stateRoot?: string;
  /** Upper bound on the life of every process the lab starts, seconds. */
  readonly maxLifetimeS?: number;
  /** The process that owns the lab; `reapStaleLabs` removes labs whose owner is gone. null = kept until `down`. */
  readonly ownerPid?: number | null;
  readonly log?: (line: string) => void;
}

export interface LabState {
  readonly id: string;
  readonly prefix: string;
  readonly namespaces: Readonly<Record<LabNode, string>>;
  readonly plan: LabAddressPlan;
  readonly ownerPid: number | null;
  readonly createdAt: string;
  readonly pids: { readonly sshd?: number; readonly services?: number; readonly watchdog?: number };
}

export interface LabProcess {
  readonly pid: number | undefined;
  readonly done: Promise<RunResult>;
  /** What it printed so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<RunResult>;
}

export interface LabSshTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKey: string;
  /** The pinned host key, as `ssh-keygen -lf` prints it. */
  readonly hostKey: string;
}

const ID_RE = /^[a-z0-9]{3,10}$/;
const COMMAND_TIMEOUT_MS = 15_000;
const SSHD = '/usr/sbin/sshd';
let hereCache: string | undefined;
/** test/lab of the checkout (the .js helpers), also when this module runs from dist/. */
function here(): string {
  hereCache ??= labScriptsDir();
  return hereCache;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs a program with a deadline; never throws for a non-zero exit. */
export function run(argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error('run: empty argv');
  const res = spawnSync(program, args, {
    input: opts.input,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? COMMAND_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 32 * 1024 * 1024,
  });
  if (res.error && (res.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`${program} is not installed: apt-get install -y ${LAB_PACKAGES.join(' ')}`);
  }
  const timedOut = (res.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  return { code: res.status, stdout: res.stdout ?? '', stderr: res.stderr ?? '', timedOut };
}

function must(argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
  const res = run(argv, opts);
  if (res.code !== 0) {
    throw new Error(`lab: \`${argv.join(' ')}\` failed (${res.timedOut ? 'timed out' : `exit ${String(res.code)}`}): ${res.stderr.trim() || res.stdout.trim()}`);
  }
  return res;
}

/** True for a running process; a zombie (exited, not yet reaped by its parent) counts as gone. */
function processAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X' && state !== '';
}

function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** Sends SIGTERM, waits up to `graceMs`, then SIGKILL; bounded in time. */
function terminate(pids: readonly number[], graceMs = 2_000): void {
  const live = pids.filter((p) => p > 1 && p !== process.pid && processAlive(p));
  for (const p of live) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && live.some(processAlive)) sleepMs(20);
  for (const p of live.filter(processAlive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function listNetns(): string[] {
  const res = run(['ip', '-j', 'netns', 'list']);
  if (res.code !== 0 || res.stdout.trim() === '') return [];
  try {
    return (JSON.parse(res.stdout) as { name: string }[]).map((n) => n.name);
  } catch {
    return [];
  }
}

export class DualWanLab {
  readonly id: string;
  readonly prefix: string;
  readonly namespaces: Readonly<Record<LabNode, string>>;
  readonly dir: string;
  private readonly maxLifetimeS: number;
  private readonly ownerPid: number | null;
  private readonly log: (line: string) => void;
  private planCache: LabAddressPlan | undefined;
  private readonly children = new Set<ChildProcess>();

  constructor(options: LabOptions = {}) {
    this.id = options.id ?? randomBytes(3).toString('hex');
    if (!ID_RE.test(this.id)) throw new Error(`lab id must match ${String(ID_RE)}: ${this.id}`);
    this.prefix = `dwlab-${this.id}-`;
    this.namespaces = Object.fromEntries(LAB_NODES.map((n) => [n, `${this.prefix}${n}`])) as Record<LabNode, string>;
    this.dir = path.join(options.stateRoot ?? os.tmpdir(), `dwlab-${this.id}`);
    this.maxLifetimeS = options.maxLifetimeS ?? 3_600;
    this.ownerPid = options.ownerPid === undefined ? process.pid : options.ownerPid;
    this.log = options.log ?? (() => undefined);
  }

  get plan(): LabAddressPlan {
    if (!this.planCache) throw new Error('lab: call up() first');
    return this.planCache;
  }

  /** Uses a lab built by another process (its state file), without touching it. */
  attach(): LabState {
    const state = this.readState();
    if (!state) throw new Error(`lab ${this.id}: no state in ${this.dir}`);
    this.planCache = state.plan;
    return state;
  }

  /** Builds the lab, or completes a partly built one. Returns the state written to disk. */
  up(): LabState {
    const started = Date.now();
    preflight();
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const watchdog = this.ensureWatchdog();
    this.planCache = this.readState()?.plan ?? this.pickPlan();
    const p = this.plan;
    const ns = this.namespaces;

    const existing = new Set(listNetns());
    for (const node of LAB_NODES) if (!existing.has(ns[node])) must(['ip', 'netns', 'add', ns[node]]);

    this.veth('router', LAB_IFACES.router.lan, 'lan', LAB_IFACES.lan.eth);
    this.veth('router', LAB_IFACES.router.wan1, 'isp1', LAB_IFACES.isp.down);
    this.veth('router', LAB_IFACES.router.wan2, 'isp2', LAB_IFACES.isp.down);
    this.veth('isp1', LAB_IFACES.isp.up, 'internet', LAB_IFACES.internet.isp1);
    this.veth('isp2', LAB_IFACES.isp.up, 'internet', LAB_IFACES.internet.isp2);

    // Kernel defaults in a new namespace: forwarding off, rp_filter 0 (devconf_inherit_init_net=0).
    // The router stays exactly like that: configuring it is the product's job.
    this.sysctl('router', { 'net.ipv4.ip_forward': '0' });
    this.sysctl('lan', { 'net.core.txrehash': '0' }); // see linux-lab.md, addendum
    for (const node of LAB_NODES) this.ip(node, ['link', 'set', 'lo', 'up']);

    this.address('lan', LAB_IFACES.lan.eth, p.lan.far, p.lan.prefix);
    this.ip('lan', ['route', 'replace', 'default', 'via', p.lan.near, 'dev', LAB_IFACES.lan.eth]);
    this.address('router', LAB_IFACES.router.lan, p.lan.near, p.lan.prefix);
    this.address('router', LAB_IFACES.router.wan1, p.wans[0].near, p.wans[0].prefix);
    this.address('router', LAB_IFACES.router.wan2, p.wans[1].near, p.wans[1].prefix);

    (['isp1', 'isp2'] as const).forEach((isp, i) => {
      const wan = p.wans[i]!;
      const upstream = p.upstreams[i]!;
      this.address(isp, LAB_IFACES.isp.down, wan.far, wan.prefix);
      this.address(isp, LAB_IFACES.isp.up, upstream.near, upstream.prefix);
      this.ip(isp, ['route', 'replace', 'default', 'via', upstream.far, 'dev', LAB_IFACES.isp.up]);
      // Like a modem: forward, NAT everything behind it, and drop spoofed sources (BCP38): a packet
      // NATed to the other ISP's address cannot leave through this one.
      this.sysctl(isp, { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '1', [`net.ipv4.conf.${LAB_IFACES.isp.down}.rp_filter`]: '1' });
      this.nft(isp, ispRuleset());
      this.address('internet', isp === 'isp1' ? LAB_IFACES.internet.isp1 : LAB_IFACES.internet.isp2, upstream.far, upstream.prefix);
    });
    for (const block of p.internetBlocks) this.ip('internet', ['route', 'replace', 'local', block, 'dev', 'lo']);

    this.ensureKeys();
    const services = this.ensureServices();
    const sshd = this.ensureSshd();
    this.selfCheck();

    const state: LabState = {
      id: this.id,
      prefix: this.prefix,
      namespaces: this.namespaces,
      plan: p,
      ownerPid: this.ownerPid,
      createdAt: this.readState()?.createdAt ?? new Date().toISOString(),
      pids: { sshd, services, watchdog },
    };
    fs.writeFileSync(path.join(this.dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    this.log(`lab ${this.id} up in ${Date.now() - started} ms (address plan ${p.name})`);
    return state;
  }

  /** Removes everything this lab created. Safe to call twice, and on a lab that never came up. */
  down(): void {
    for (const child of this.children) {
      if (child.exitCode === null && child.pid !== undefined) terminate([child.pid], 500);
    }
    this.children.clear();
    const state = this.readState();
    const recorded = [state?.pids.sshd, state?.pids.services, state?.pids.watchdog].filter((p): p is number => p !== undefined);
    // Only kill a recorded pid if it still is our process (pids are reused).
    terminate(recorded.filter((p) => cmdlineOf(p).includes(this.dir)));
    const present = new Set(listNetns());
    for (const node of LAB_NODES) {
      const name = this.namespaces[node];
      if (!present.has(name)) continue;
      terminate(this.pidsIn(name));
      run(['ip', 'netns', 'del', name]);
    }
    if (path.basename(this.dir).startsWith('dwlab-') && fs.existsSync(this.dir)) fs.rmSync(this.dir, { recursive: true, force: true });
    this.log(`lab ${this.id} down`);
  }

  /** True when every namespace of this lab exists. */
  exists(): boolean {
    const present = new Set(listNetns());
    return LAB_NODES.every((n) => present.has(this.namespaces[n]));
  }

  /** Runs a program inside one of the lab's namespaces. */
  exec(node: LabNode, argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
    return run(['ip', 'netns', 'exec', this.namespaces[node], ...argv], opts);
  }

  /** Runs the lab client (lab-client.js) in a namespace and returns its JSON line. */
  client(node: LabNode, args: readonly string[], timeoutMs = 5_000): { ok: boolean; [key: string]: unknown } {
    const res = this.exec(node, [process.execPath, path.join(here(), 'lab-client.js'), ...args, '--timeout', String(timeoutMs)], { timeoutMs: timeoutMs + 5_000 });
    const line = res.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as { ok: boolean };
    } catch {
      return { ok: false, error: `no JSON from lab client (exit ${String(res.code)}): ${res.stderr.trim()}` };
    }
  }

  /**
   * Starts a program in a namespace without waiting for it (a measurement that runs while the test
   * breaks things). It is killed at `down()` at the latest, and by its own deadline.
   */
  spawnIn(node: LabNode, argv: readonly string[], opts: { timeoutMs?: number } = {}): LabProcess {
    const child = spawn('ip', ['netns', 'exec', this.namespaces[node], ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      if (stdout.length < 32 * 1024 * 1024) stdout += c;
    });
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      if (stderr.length < 1024 * 1024) stderr += c;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    const done = new Promise<RunResult>((resolve) => {
      child.on('close', (code) => {
        clearTimeout(timer);
        this.children.delete(child);
        resolve({ code, stdout, stderr, timedOut });
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        this.children.delete(child);
        resolve({ code: null, stdout, stderr: `${stderr}${e.message}`, timedOut });
      });
    });
    return {
      pid: child.pid,
      done,
      output: () => stdout,
      stop: (signal: NodeJS.Signals = 'SIGTERM') => {
        if (child.exitCode === null) child.kill(signal);
        return done;
      },
    };
  }

  /** The lab client in the background; its JSON line once it ends (`stop()` makes it print early). */
  clientAsync(node: LabNode, args: readonly string[], timeoutMs: number): { done: Promise<{ ok: boolean; [key: string]: unknown }>; stop: () => Promise<{ ok: boolean; [key: string]: unknown }> } {
    const p = this.spawnIn(node, [process.execPath, path.join(here(), 'lab-client.js'), ...args, '--timeout', String(timeoutMs)], { timeoutMs: timeoutMs + 10_000 });
    const parse = (res: RunResult): { ok: boolean; [key: string]: unknown } => {
      const line = res.stdout.trim().split('\n').pop() ?? '';
      try {
        return JSON.parse(line) as { ok: boolean };
      } catch {
        return { ok: false, error: `no JSON from lab client (exit ${String(res.code)}): ${res.stderr.trim().slice(0, 500)}` };
      }
    };
    return { done: p.done.then(parse), stop: () => p.stop('SIGTERM').then(parse) };
  }

  /**
   * Where the router's persistent files go in the lab: the namespaces share this machine's file
   * system, so the product is told to write under this private root instead of /etc.
   */
  get routerRoot(): string {
    return path.join(this.dir, 'router-root');
  }

  /**
   * What a DHCP client does on a lease: the address on the WAN and a default route of its own with
   * a metric (as systemd-networkd installs it). `host` picks the address's last octet (default .2).
   */
  dhcpLease(wan: 0 | 1, host = 2): { address: string; gateway: string } {
    const link = this.plan.wans[wan];
    const dev = wan === 0 ? LAB_IFACES.router.wan1 : LAB_IFACES.router.wan2;
    const base = link.near.split('.').slice(0, 3).join('.');
    const address = `${base}.${host}`;
    this.ip('router', ['-4', 'addr', 'flush', 'dev', dev]);
    this.ip('router', ['addr', 'add', `${address}/${link.prefix}`, 'dev', dev]);
    this.ip('router', ['route', 'replace', 'default', 'via', link.far, 'dev', dev, 'proto', 'dhcp', 'metric', String(1024 + wan)]);
    return { address, gateway: link.far };
  }

  /**
   * A reboot of the router as far as networking goes: the kernel forgets routes, rules, the
   * ruleset, connection tracking and its settings, and /run is empty; interfaces keep their
   * addresses (the network configuration brings them back before our units run). Processes
   * started in the router namespace other than sshd are stopped.
   */
  simulateRouterReboot(keep: readonly number[] = []): void {
    const sshd = this.readState()?.pids.sshd;
    const keepPids = new Set([...(sshd === undefined ? [] : [sshd]), ...keep]);
    const others = this.pidsIn(this.namespaces.router).filter((pid) => !keepPids.has(pid) && !cmdlineOf(pid).includes('sshd'));
    terminate(others, 2_000);
    const r = (args: readonly string[]) => run(['ip', 'netns', 'exec', this.namespaces.router, ...args]);
    r(['nft', 'flush', 'ruleset']);
    for (const t of ['101', '102']) r(['ip', 'route', 'flush', 'table', t]);
    const rules = JSON.parse(r(['ip', '-j', 'rule', 'show']).stdout || '[]') as { priority: number }[];
    for (const rule of rules) if (rule.priority > 0 && rule.priority < 32766) r(['ip', 'rule', 'del', 'priority', String(rule.priority)]);
    const routes = JSON.parse(r(['ip', '-j', 'route', 'show', 'table', 'main']).stdout || '[]') as { dst: string; protocol?: string; metric?: number }[];
    for (const route of routes) if (route.dst === 'default' && route.protocol !== 'dhcp') r(['ip', 'route', 'del', 'default', ...(route.metric ? ['metric', String(route.metric)] : [])]);
    r(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.fib_multipath_hash_policy=0', 'net.ipv4.conf.all.ignore_routes_with_linkdown=0', 'net.ipv4.conf.wan1.rp_filter=0', 'net.ipv4.conf.wan2.rp_filter=0']);
    r(['conntrack', '-F']);
    fs.rmSync(path.join(this.routerRoot, 'run'), { recursive: true, force: true });
  }

  /** Starts a long-running program in a namespace, detached, logging to a file in the state dir. */
  startProcess(node: LabNode, argv: readonly string[], logName: string): number {
    return this.startDetached(node, argv, logName);
  }

  /** Stops a process this lab started (SIGTERM, then SIGKILL after `graceMs`). */
  stopProcess(pid: number, graceMs = 3_000): void {
    if (this.pidsIn(this.namespaces.router).includes(pid) || cmdlineOf(pid).includes(this.dir)) terminate([pid], graceMs);
  }

  /** ping from a namespace; true when a reply came back. */
  ping(node: LabNode, dst: string, opts: { from?: string; count?: number; waitS?: number } = {}): boolean {
    const argv = ['ping', '-n', '-q', '-c', String(opts.count ?? 1), '-W', String(opts.waitS ?? 1)];
    if (opts.from !== undefined) argv.push('-I', opts.from);
    argv.push(dst);
    return this.exec(node, argv, { timeoutMs: ((opts.waitS ?? 1) * (opts.count ?? 1) + 5) * 1_000 }).code === 0;
  }

  /** The router's SSH endpoint as seen from the LAN, with the pinned host key and the client key. */
  sshTarget(): LabSshTarget {
    return {
      host: this.plan.lan.near,
      port: 22,
      user: 'root',
      privateKey: fs.readFileSync(path.join(this.dir, 'client_ed25519'), 'utf8'),
      hostKey: opensshFingerprint(path.join(this.dir, 'ssh_host_ed25519_key.pub')),
    };
  }

  /**
   * A byte stream to the router's sshd, opened from inside the LAN namespace (the way an admin on
   * the LAN reaches it; the lab has no link to the root namespace). Pass it as `sock` to ssh2.
   */
  sshTransport(): Duplex {
    return namespacePipe(this.namespaces.lan, this.plan.lan.near, 22, 10_000, this.children);
  }


  /**
   * Breaks an ISP the way real lines break: `blackhole` (modem up, upstream dead), `loss` (random
   * loss upstream), `linkdown` (carrier lost on the router side), `clear` undoes all of them.
   */
  impair(isp: 'isp1' | 'isp2', impairment: { kind: 'blackhole' } | { kind: 'loss'; percent: number } | { kind: 'linkdown' } | { kind: 'clear' }): void {
    const down = LAB_IFACES.isp.down;
    const table = 'table ip dwlab_impair {}\ndelete table ip dwlab_impair\n';
    switch (impairment.kind) {
      case 'blackhole':
        this.nft(isp, `${table}table ip dwlab_impair {\n  chain forward_impair {\n    type filter hook forward priority -10; policy accept;\n    iifname "${down}" drop\n  }\n}\n`);
        return;
      case 'loss': {
        const pct = Math.round(impairment.percent);
        if (!(pct >= 0 && pct <= 100)) throw new Error('loss percent must be 0–100');
        this.nft(isp, `${table}table ip dwlab_impair {\n  chain forward_impair {\n    type filter hook forward priority -10; policy accept;\n    iifname "${down}" numgen random mod 100 < ${pct} drop\n  }\n}\n`);
        return;
      }
      case 'linkdown':
        this.ip(isp, ['link', 'set', down, 'down']);
        return;
      case 'clear':
        this.nft(isp, table);
        this.ip(isp, ['link', 'set', down, 'up']);
        return;
    }
  }

  // -------------------------------------------------------------------------------------------

  private readState(): LabState | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, 'state.json'), 'utf8')) as LabState;
    } catch {
      return undefined;
    }
  }

  private pickPlan(): LabAddressPlan {
    const addr = must(['ip', '-j', '-4', 'addr', 'show']).stdout;
    const routes = must(['ip', '-j', '-4', 'route', 'show', 'table', 'all']).stdout;
    const inUse = hostPrefixes(JSON.parse(addr || '[]'), JSON.parse(routes || '[]'));
    const choice = chooseAddressPlan(inUse, ADDRESS_PLANS);
    if (!choice.plan) throw new Error(`lab: every address plan collides with this machine:\n  ${choice.skipped.join('\n  ')}`);
    for (const s of choice.skipped) this.log(`skipped address ${s}`);
    return choice.plan;
  }

  private pidsIn(ns: string): number[] {
    const res = run(['ip', 'netns', 'pids', ns]);
    return res.stdout
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => Number.isInteger(n) && n > 1);
  }

  private ip(node: LabNode, args: readonly string[]): void {
    must(['ip', '-n', this.namespaces[node], ...args]);
  }

  private sysctl(node: LabNode, values: Record<string, string>): void {
    must(['ip', 'netns', 'exec', this.namespaces[node], 'sysctl', '-q', '-w', ...Object.entries(values).map(([k, v]) => `${k}=${v}`)]);
  }

  private nft(node: LabNode, ruleset: string): void {
    must(['ip', 'netns', 'exec', this.namespaces[node], 'nft', '-f', '-'], { input: ruleset });
  }

  private address(node: LabNode, dev: string, addr: string, prefix: number): void {
    this.ip(node, ['addr', 'replace', `${addr}/${prefix}`, 'dev', dev]);
    this.ip(node, ['link', 'set', dev, 'up']);
  }

  /** Creates a veth pair straight inside the two namespaces (never in the root namespace). */
  private veth(a: LabNode, ifA: string, b: LabNode, ifB: string): void {
    const haveA = run(['ip', '-n', this.namespaces[a], 'link', 'show', 'dev', ifA]).code === 0;
    const haveB = run(['ip', '-n', this.namespaces[b], 'link', 'show', 'dev', ifB]).code === 0;
    if (haveA && haveB) return;
    // Half a pair cannot be repaired (its peer is elsewhere): remove what is left and recreate.
    if (haveA) this.ip(a, ['link', 'del', ifA]);
    if (haveB) this.ip(b, ['link', 'del', ifB]);
    this.ip(a, ['link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', this.namespaces[b]]);
  }

  private ensureKeys(): void {
    const keygen = (file: string, comment: string) => {
      if (fs.existsSync(file) && fs.existsSync(`${file}.pub`)) return;
      fs.rmSync(file, { force: true });
      fs.rmSync(`${file}.pub`, { force: true });
      must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
    };
    keygen(path.join(this.dir, 'ssh_host_ed25519_key'), `${this.prefix}router host key`);
    keygen(path.join(this.dir, 'client_ed25519'), `${this.prefix}test client`);
    fs.copyFileSync(path.join(this.dir, 'client_ed25519.pub'), path.join(this.dir, 'authorized_keys'));
    fs.chmodSync(path.join(this.dir, 'authorized_keys'), 0o600);
  }

  /** A detached process that tears the lab down if its owner dies first (see watchdog.js). */
  private ensureWatchdog(): number | undefined {
    if (this.ownerPid === null) return undefined;
    const recorded = this.readState()?.pids.watchdog;
    if (recorded !== undefined && processAlive(recorded) && cmdlineOf(recorded).includes(this.dir)) return recorded;
    const args = [path.join(here(), 'watchdog.js'), String(this.ownerPid), this.id, path.dirname(this.dir), String(this.maxLifetimeS), this.dir];
    const child = spawn(process.execPath, args, { detached: true, stdio: 'ignore' });
    child.unref();
    return child.pid;
  }

  private ensureSshd(): number {
    const pidFile = path.join(this.dir, 'sshd.pid');
    const recorded = this.readState()?.pids.sshd;
    if (recorded !== undefined && processAlive(recorded) && cmdlineOf(recorded).includes(this.dir) && fs.existsSync(pidFile)) return recorded;

    const config = path.join(this.dir, 'sshd_config');
    writeLabSshdConfig(config, {
      comment: `${this.prefix}router: lab sshd, started by test/lab/lab.ts`,
      listen: `${this.plan.lan.near}:22`,
      hostKey: path.join(this.dir, 'ssh_host_ed25519_key'),
      pidFile,
      authorizedKeys: path.join(this.dir, 'authorized_keys'),
      extra: ['MaxStartups 20:30:60', 'LogLevel VERBOSE'],
    });
    // sshd insists on its privilege-separation directory, which Debian creates only when the
    // service runs; creating it is what the ssh service itself would do.
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    must([SSHD, '-t', '-f', config]);
    fs.rmSync(pidFile, { force: true });
    const pid = this.startDetached('router', ['timeout', '-k', '5', String(this.maxLifetimeS), SSHD, '-D', '-f', config, '-E', path.join(this.dir, 'sshd.log')], 'sshd.out');
    // sshd writes its PidFile only after its listening socket is bound.
    this.waitFor(() => fs.existsSync(pidFile), 15_000, `sshd in ${this.namespaces.router} did not start; see ${path.join(this.dir, 'sshd.log')}`);
    return pid;
  }

  private ensureServices(): number {
    const ready = path.join(this.dir, 'services.ready');
    const recorded = this.readState()?.pids.services;
    if (recorded !== undefined && processAlive(recorded) && cmdlineOf(recorded).includes(this.dir) && fs.existsSync(ready)) return recorded;
    const p = this.plan;
    const config = path.join(this.dir, 'services.json');
    const zone: Record<string, string> = {
      'server.dualwan.test': p.server,
      'monitor1.dualwan.test': p.monitors[0][0],
      'monitor2.dualwan.test': p.monitors[0][1],
      'monitor3.dualwan.test': p.monitors[1][0],
      'monitor4.dualwan.test': p.monitors[1][1],
    };
    fs.writeFileSync(config, JSON.stringify({ server: p.server, stickyServer: p.stickyServer, dns: p.dns, zone, readyFile: ready, maxLifetimeS: this.maxLifetimeS }, null, 2), { mode: 0o600 });
    fs.rmSync(ready, { force: true });
    const pid = this.startDetached('internet', [process.execPath, path.join(here(), 'internet-services.js'), config], 'services.log');
    this.waitFor(() => fs.existsSync(ready), 15_000, `internet services did not start; see ${path.join(this.dir, 'services.log')}`);
    return pid;
  }

  /** Starts a long-running process inside a namespace, detached, output to a file in the state dir. */
  private startDetached(node: LabNode, argv: readonly string[], logName: string): number {
    const out = fs.openSync(path.join(this.dir, logName), 'a', 0o600);
    try {
      // `ip netns exec` execs the program, so the pid we get is the program's own.
      const child = spawn('ip', ['netns', 'exec', this.namespaces[node], ...argv], { detached: true, stdio: ['ignore', out, out] });
      child.unref();
      if (child.pid === undefined) throw new Error(`lab: could not start ${argv[0] ?? ''}`);
      return child.pid;
    } finally {
      fs.closeSync(out);
    }
  }

  private waitFor(condition: () => boolean, timeoutMs: number, failure: string): void {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
      if (condition()) return;
      sleepMs(25);
    }
    if (!condition()) throw new Error(`lab: ${failure}`);
  }

  /** Checks the links and the internet services without configuring the router. */
  private selfCheck(): void {
    const p = this.plan;
    const checks: [LabNode, string][] = [
      ['lan', p.lan.near],
      ['router', p.wans[0].far],
      ['router', p.wans[1].far],
      ['isp1', p.server],
      ['isp2', p.server],
      ['isp1', p.monitors[0][0]],
      ['isp2', p.monitors[1][1]],
    ];
    for (const [node, dst] of checks) {
      if (!this.ping(node, dst, { count: 1, waitS: 2 })) throw new Error(`lab self-check: no ping reply from ${dst} in ${this.namespaces[node]}`);
    }
  }
}

function preflight(): void {
  if (process.getuid?.() !== 0) throw new Error('lab: needs root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)');
  const missing = [SSHD, '/usr/bin/ssh-keygen', '/usr/sbin/nft', '/usr/bin/ping', '/usr/bin/timeout'].filter((f) => !fs.existsSync(f));
  if (missing.length > 0) throw new Error(`lab: missing ${missing.join(', ')}: apt-get install -y ${LAB_PACKAGES.join(' ')}`);
}

/** Each ISP is a NATing modem: everything leaving upstream gets its up0 address. */
function ispRuleset(): string {
  return [
    'table ip dwlab_isp {}',
    'delete table ip dwlab_isp',
    'table ip dwlab_isp {',
    '  chain postrouting_nat {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    oifname "${LAB_IFACES.isp.up}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The SHA-256 fingerprint of a public key file as OpenSSH itself prints it (`ssh-keygen -lf`). */
export function opensshFingerprint(pubFile: string): string {
  const out = must(['ssh-keygen', '-l', '-E', 'sha256', '-f', pubFile]).stdout;
  const fp = /SHA256:[A-Za-z0-9+/]{43}/.exec(out)?.[0];
  if (fp === undefined) throw new Error(`lab: cannot read a fingerprint from ssh-keygen: ${out.trim()}`);
  return fp;
}

/** Tears down labs whose owning process has exited (a crashed test run). Only labs with our state file. */
export function reapStaleLabs(stateRoot: string = os.tmpdir(), log: (line: string) => void = () => undefined): string[] {
  const reaped: string[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(stateRoot).filter((e) => /^dwlab-[a-z0-9]{3,10}$/.test(e));
  } catch {
    return reaped;
  }
  for (const entry of entries.slice(0, 100)) {
    let state: LabState;
    try {
      state = JSON.parse(fs.readFileSync(path.join(stateRoot, entry, 'state.json'), 'utf8')) as LabState;
    } catch {
      continue;
    }
    if (state.ownerPid === null || processAlive(state.ownerPid)) continue;
    new DualWanLab({ id: state.id, stateRoot, log }).down();
    reaped.push(state.id);
  }
  return reaped;
}

/**
 * An sshd configuration for a test host: key-only root login, no PAM, SFTP, state in a test
 * directory under /tmp (mode 1777, which StrictModes would refuse).
 */
export function writeLabSshdConfig(file: string, o: { comment: string; listen: string; hostKey: string; pidFile: string; authorizedKeys: string; extra?: readonly string[] }): void {
  const lines = [
    `# ${o.comment}`,
    `ListenAddress ${o.listen}`,
    `HostKey ${o.hostKey}`,
    `PidFile ${o.pidFile}`,
    `AuthorizedKeysFile ${o.authorizedKeys}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'Subsystem sftp internal-sftp',
    'LoginGraceTime 20',
    ...(o.extra ?? []),
    '',
  ];
  fs.writeFileSync(file, lines.join('\n'), { mode: 0o600 });
}

/**
 * A byte stream to `address:port` opened from inside network namespace `ns` by the lab client
 * (`lab-client.js pipe`), for ssh2's `sock`: nothing connects from the machine's own namespace.
 * The helper process is tracked in `children` and ended when the stream closes.
 */
export function namespacePipe(ns: string, address: string, port: number, connectTimeoutMs: number, children: Set<ChildProcess>): Duplex {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, path.join(here(), 'lab-client.js'), 'pipe', address, String(port), '--timeout', String(connectTimeoutMs)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.stderr.resume();
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  stream.on('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return stream;
}
