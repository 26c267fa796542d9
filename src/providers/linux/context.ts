/**
 * What the Linux router's resource handlers work with: the desired state, a counting session on
 * the router, and the facts each WAN needs (interface, address, gateway, routing table, mark).
 *
 * Numbering (fixed, so a re-run finds its own objects): WAN i (0-based, in dualwan.yaml order) gets
 * routing table 101+i (numbered, not named: /etc/iproute2/rt_tables is the host's, see
 * shared/research/linux-lab.md), source rule priority 1001+i, mark rule priority 1101+i and
 * connection mark i+1 within MARK_MASK.
 */
import type { DesiredState, WanSpec } from '../../core/desired';
import { CapabilityError, DualwanError, RemoteApiError } from '../../core/errors';
import { ipAddrShow, ipRouteShow, isCidr, isInterfaceName } from './commands';
import { parseIpAddr, parseIpRoutes } from './parse';
import { displayArgv, type Argv } from './shell';
import type { ExecResult, RemoteShell } from './ssh';

export const TABLE_BASE = 100;
export const SOURCE_RULE_BASE = 1000;
export const MARK_RULE_BASE = 1100;
export const MARK_MASK = 0xff;
export const NFT_TABLE = 'dualwan';

/** A router session that tells reads from writes, counts the writes and checks exit codes. */
export class RouterSession {
  private writeCount = 0;
  constructor(readonly shell: RemoteShell) {}

  get writes(): number {
    return this.writeCount;
  }

  /** A read-only command; its stdout, or a RemoteApiError when it fails. */
  async read(argv: Argv, okCodes: readonly number[] = [0]): Promise<ExecResult> {
    const res = await this.shell.exec(argv);
    if (res.code === null || !okCodes.includes(res.code)) throw this.failure(argv, res);
    return res;
  }

  /** A command that changes the router. `accept` decides success (default: exit 0). */
  async write(argv: Argv, opts: { stdin?: string; accept?: (res: ExecResult) => boolean } = {}): Promise<ExecResult> {
    this.writeCount++;
    const res = await this.shell.exec(argv, opts.stdin === undefined ? {} : { stdin: opts.stdin });
    const ok = opts.accept ? opts.accept(res) : res.code === 0;
    if (!ok) throw this.failure(argv, res);
    return res;
  }

  /** Replaces a file on the router atomically (one write call). */
  async writeFile(path: string, content: string, mode: number): Promise<void> {
    this.writeCount++;
    await this.shell.writeFile(path, content, mode);
  }

  private failure(argv: Argv, res: ExecResult): RemoteApiError {
    const why = res.timedOut ? 'timed out' : `exited ${String(res.code)}`;
    return new RemoteApiError({
      system: 'ssh',
      method: 'exec',
      path: displayArgv(argv),
      message: `${why} on ${this.shell.target}: ${(res.stderr || res.stdout).trim().slice(0, 500)}`,
      bodyExcerpt: res.stderr.slice(0, 2_000),
    });
  }
}

export interface WanFacts {
  readonly name: string;
  readonly interface: string;
  /** Static addresses are baked into the boot script; DHCP ones are read again at boot and on each lease. */
  readonly addressing: 'static' | 'dhcp';
  /** The WAN's own address on the router. */
  readonly address: string;
  /** Its on-link subnet, e.g. "100.64.1.0/24". */
  readonly subnet: string;
  readonly gateway: string;
  readonly table: number;
  readonly sourceRulePriority: number;
  readonly markRulePriority: number;
  readonly mark: number;
  readonly weight: number;
  readonly tier: number;
}

/**
 * Where the router keeps what persists, and how its units are managed. A real router uses the
 * defaults; the namespace lab shares this machine's file system, so it passes a private `fsRoot`
 * and `systemd: 'offline'` (unit files enabled with `systemctl --root`, nothing started).
 */
export interface LinuxRouterOptions {
  /** Prefix of every file the tool writes on the router ('' on a real router). */
  readonly fsRoot: string;
  /** 'live': `systemctl enable --now`, `daemon-reload`; 'offline': `systemctl --root=<fsRoot> enable` only. */
  readonly systemd: 'live' | 'offline';
  /** The command that runs dualwan on the router, for the monitor unit's ExecStart. */
  readonly dualwanCommand: readonly string[];
}

export const DEFAULT_ROUTER_OPTIONS: LinuxRouterOptions = Object.freeze({
  fsRoot: '',
  systemd: 'live',
  dualwanCommand: Object.freeze(['/usr/local/bin/dualwan']) as readonly string[],
});

export interface LinuxContext {
  readonly state: DesiredState;
  readonly router: RouterSession;
  readonly wans: readonly WanFacts[];
  readonly lan: { readonly interface: string; readonly subnet: string };
  readonly options: LinuxRouterOptions;
  /**
   * The WANs the running health monitor currently sends new connections through (its fresh
   * `active-wans` file), or undefined when no monitor runs. The default route follows it, so a
   * plan never undoes a failover.
   */
  readonly monitorActive?: readonly string[];
  /** Whether the dualwan command the monitor unit runs exists on the router. */
  readonly runtimeInstalled: boolean;
}

/** Where the monitor publishes its active WANs (relative to the file-system root); see persist.ts. */
const ACTIVE_WANS_PATH = '/run/dualwan/active-wans';

const SAFE_PATH_RE = /^(\/[A-Za-z0-9_.+@-]+)*$/;

function checkOptions(o: LinuxRouterOptions): LinuxRouterOptions {
  if (!SAFE_PATH_RE.test(o.fsRoot) || o.fsRoot.split('/').includes('..')) {
    throw new DualwanError('LINUX_FS_ROOT_INVALID', `The router file-system root must be '' or an absolute path of plain characters: ${JSON.stringify(o.fsRoot)}`, { source: 'tool' });
  }
  if (o.dualwanCommand.length === 0 || o.dualwanCommand.some((a) => !/^[A-Za-z0-9_.+@/=:-]+$/.test(a))) {
    throw new DualwanError('LINUX_RUNTIME_INVALID', `The dualwan command on the router must be plain words: ${JSON.stringify(o.dualwanCommand)}`, { source: 'tool' });
  }
  return o;
}

export function networkOf(cidr: string): string {
  const [addr, len] = cidr.split('/') as [string, string];
  const prefix = Number(len);
  const ip = addr.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
  const size = 2 ** (32 - prefix);
  const net = Math.floor(ip / size) * size;
  return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${prefix}`;
}

function interfaceOf(wan: WanSpec): string {
  if (wan.uplink.type !== 'interface' || !isInterfaceName(wan.uplink.interface)) {
    throw new DualwanError('LINUX_UPLINK_INVALID', `WAN ${wan.name} needs an interface uplink on the Linux backend (got ${wan.uplink.type}).`, { source: 'user' });
  }
  return wan.uplink.interface;
}

/**
 * Reads what the desired state leaves to the router (DHCP addresses and gateways) and puts
 * everything the handlers need in one place. Read-only.
 */
export async function buildLinuxContext(state: DesiredState, shell: RemoteShell, options: Partial<LinuxRouterOptions> = {}): Promise<LinuxContext> {
  const opts = checkOptions({ ...DEFAULT_ROUTER_OPTIONS, ...options });
  if (state.backend !== 'linux' || !state.linux) {
    throw new DualwanError('LINUX_BACKEND_MISSING', 'The Linux router handlers need `backend: linux` and a `linux:` section.', { source: 'user' });
  }
  const router = new RouterSession(shell);
  const links = parseIpAddr((await router.read(ipAddrShow())).stdout);
  const mainRoutes = parseIpRoutes((await router.read(ipRouteShow('main'))).stdout);
  // A DHCP WAN whose client installed no default route of its own still has the gateway we
  // recorded in its table (the boot script keeps the last known one there).
  const tableGateways = new Map<number, string>();
  for (let i = 0; i < state.wans.length; i++) {
    const wan = state.wans[i]!;
    if (wan.addressing.mode !== 'dhcp') continue;
    const table = TABLE_BASE + 1 + i;
    const res = await router.read(ipRouteShow(table), [0, 1, 2]);
    const gw = res.code === 0 ? parseIpRoutes(res.stdout).find((r) => r.dst === 'default' && r.gateway !== undefined)?.gateway : undefined;
    if (gw !== undefined) tableGateways.set(table, gw);
  }
  const wans = state.wans.map((wan, i): WanFacts => {
    const iface = interfaceOf(wan);
    let cidr: string;
    let gateway: string;
    if (wan.addressing.mode === 'static') {
      cidr = wan.addressing.address;
      gateway = wan.addressing.gateway;
    } else {
      const link = links.find((l) => l.ifname === iface);
      const inet = link?.addr_info.find((a) => a.family === 'inet' && a.scope !== 'host');
      const route = mainRoutes.find((r) => r.dst === 'default' && r.dev === iface && r.gateway !== undefined) ?? {
        gateway: tableGateways.get(TABLE_BASE + 1 + i),
      };
      if (!inet || !route?.gateway) {
        throw new CapabilityError(
          `WAN ${wan.name} uses DHCP, but ${iface} has ${inet ? 'no default route with a gateway' : 'no IPv4 address'} on the router yet.`,
          `Bring ${iface} up with its DHCP client (ip -br addr show ${iface}), or give the WAN a static address and gateway in dualwan.yaml.`,
        );
      }
      cidr = `${inet.local}/${inet.prefixlen}`;
      gateway = route.gateway;
    }
    if (!isCidr(cidr)) throw new DualwanError('LINUX_WAN_ADDRESS_INVALID', `WAN ${wan.name}: address ${cidr} is not a CIDR.`, { source: 'user' });
    return {
      name: wan.name,
      interface: iface,
      addressing: wan.addressing.mode,
      address: cidr.split('/')[0]!,
      subnet: networkOf(cidr),
      gateway,
      table: TABLE_BASE + 1 + i,
      sourceRulePriority: SOURCE_RULE_BASE + 1 + i,
      markRulePriority: MARK_RULE_BASE + 1 + i,
      mark: i + 1,
      weight: wan.weight,
      tier: wan.tier,
    };
  });
  if (wans.length > MARK_MASK) throw new DualwanError('LINUX_TOO_MANY_WANS', `At most ${MARK_MASK} WANs are supported.`, { source: 'user' });
  const lanIf = state.linux.lanInterface;
  if (!isInterfaceName(lanIf)) throw new DualwanError('LINUX_LAN_INVALID', `linux.lanInterface is not an interface name: ${lanIf}`, { source: 'user' });
  // Fresh (rewritten by the monitor within the last minute) or ignored.
  const active = await router.read(['find', `${opts.fsRoot}${ACTIVE_WANS_PATH}`, '-maxdepth', '0', '-mmin', '-1', '-exec', 'cat', '{}', ';'], [0, 1]);
  const names = new Set(wans.map((w) => w.name));
  const listed = active.code === 0 ? active.stdout.split('\n').map((l) => l.trim()).filter((l) => names.has(l)) : [];
  const runtime = await router.read(['test', '-x', opts.dualwanCommand[0]!], [0, 1]);
  return {
    state,
    router,
    wans,
    lan: { interface: lanIf, subnet: networkOf(state.lan.subnet) },
    options: opts,
    ...(listed.length > 0 ? { monitorActive: listed } : {}),
    runtimeInstalled: runtime.code === 0,
  };
}
