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

export interface LinuxContext {
  readonly state: DesiredState;
  readonly router: RouterSession;
  readonly wans: readonly WanFacts[];
  readonly lan: { readonly interface: string; readonly subnet: string };
}

function networkOf(cidr: string): string {
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
export async function buildLinuxContext(state: DesiredState, shell: RemoteShell): Promise<LinuxContext> {
  if (state.backend !== 'linux' || !state.linux) {
    throw new DualwanError('LINUX_BACKEND_MISSING', 'The Linux router handlers need `backend: linux` and a `linux:` section.', { source: 'user' });
  }
  const router = new RouterSession(shell);
  const links = parseIpAddr((await router.read(ipAddrShow())).stdout);
  const mainRoutes = parseIpRoutes((await router.read(ipRouteShow('main'))).stdout);
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
      const route = mainRoutes.find((r) => r.dst === 'default' && r.dev === iface && r.gateway !== undefined);
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
  return { state, router, wans, lan: { interface: lanIf, subnet: networkOf(state.lan.subnet) } };
}
