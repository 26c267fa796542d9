import { connectPinnedProxmox } from './proxmox-connection';
import * as fs from 'node:fs';
import type { Duplex } from 'node:stream';
import { parseDocument } from 'yaml';
import type { DesiredState } from '../core/desired';
import { DualwanError } from '../core/errors';
import type { ConnectVia } from '../net/pinned-tls';
import { connectSsh, type SshClient } from '../providers/linux/ssh';
import type { OpnsenseClientOptions } from '../providers/opnsense/client';
import type { ProxmoxClient } from '../providers/proxmox/client';
import { cutoverStateOf } from '../providers/proxmox/resources/cutover';
import type { NetworkIface } from '../providers/proxmox/schemas';
import { loadCredentials } from '../secrets/credentials';
import { ensureSshHostKeyPinned } from './linux';
import type { StageEnv } from './stage';

/**
 * How dualwan reaches OPNsense's API (docs/cutover.md, "Reaching OPNsense before the cutover").
 *
 * - `direct`: TCP from this machine to opnsense.host (its LAN address) — without proxmox.cutover,
 *   and once the cutover is done (the LAN NIC is the router's).
 * - `proxmox-host`: with proxmox.cutover, until the cutover is done. The LAN NIC is still the
 *   host's management NIC, so OPNsense has no LAN port yet; its only address is
 *   proxmox.cutover.gateway on the cutover bridge, where the host has proxmox.cutover.hostAddress
 *   since the Proxmox stage. dualwan opens SSH to the host (its current address, the cutover's SSH
 *   settings and pinned host key) and, per connection, a channel from the host to
 *   gateway:opnsense.port; TLS with OPNsense's pinned certificate runs over that channel.
 */
export type OpnsenseRoute =
  | { readonly kind: 'direct'; readonly host: string; readonly port: number }
  | {
      readonly kind: 'proxmox-host';
      /** OPNsense's end: proxmox.cutover.gateway and the web GUI port. */
      readonly host: string;
      readonly port: number;
      /** The Proxmox host at its current address, over SSH. */
      readonly ssh: { readonly host: string; readonly port: number; readonly user: string };
      /** opnsense.host: where OPNsense answers once the cutover is done. */
      readonly lanAddress: string;
    };

const hostIp = (cidr: string) => cidr.split('/')[0]!;

/** The one place the route is chosen: from dualwan.yaml and whether the cutover is done. */
export function chooseOpnsenseRoute(state: Pick<DesiredState, 'opnsense' | 'proxmox'>, cutoverDone: boolean): OpnsenseRoute {
  const t = state.opnsense;
  if (!t) throw new DualwanError('OPNSENSE_NOT_CONFIGURED', 'dualwan.yaml has no OPNsense router (backend opnsense-vm).', { source: 'user', remedy: 'Use backend: opnsense-vm to configure an OPNsense router.' });
  const c = state.proxmox?.cutover;
  if (!c || cutoverDone) return { kind: 'direct', host: t.host, port: t.port };
  return { kind: 'proxmox-host', host: c.gateway, port: t.port, ssh: { host: state.proxmox!.host, port: c.ssh.port, user: c.ssh.user }, lanAddress: t.host };
}

/** The route in words, after "OPNsense at host:port" ('' when direct). */
export function routeText(r: OpnsenseRoute): string {
  return r.kind === 'direct' ? '' : `through the Proxmox host ${r.ssh.user}@${r.ssh.host} (SSH) — the LAN port is the host's until the cutover`;
}

/**
 * Whether the host's running network config is the cutover's: the management address on the
 * cutover bridge with the gateway (what `proxmox.network-cutover` observes as bridgeCidr and
 * bridgeGateway), nothing staged. Before the cutover the bridge has the address but no gateway.
 */
export function cutoverDoneIn(net: { readonly ifaces: readonly NetworkIface[]; readonly pending?: string }, c: { readonly bridge: string; readonly hostAddress: string; readonly gateway: string }): boolean {
  const s = cutoverStateOf(net.ifaces, !!net.pending, { bridge: c.bridge, passthrough: [], vmNics: [] });
  return !s.pending && s.bridgeCidr === c.hostAddress && s.bridgeGateway === c.gateway;
}

export type RouteEnv = Pick<StageEnv, 'state' | 'ui' | 'env' | 'credentialsFile' | 'trustOnFirstUse'>;

/**
 * Whether the cutover is done. dualwan writes the host's new address into proxmox.host when it
 * confirms a cutover, so that says done at once; otherwise the host's network is read through the
 * Proxmox API (`proxmox` when the caller has a session, else one is opened with the pinned
 * certificate and the token).
 */
export async function isCutoverDone(env: RouteEnv, proxmox?: ProxmoxClient): Promise<boolean> {
  const t = env.state.proxmox;
  const c = t?.cutover;
  if (!t || !c) return false;
  if (t.host === hostIp(c.hostAddress)) return true;
  if (proxmox) return cutoverDoneIn(await proxmox.networkWithChanges(), c);
  const { conn } = await connectPinnedProxmox({ state: env.state, ui: env.ui, env: env.env, credentialsFile: env.credentialsFile, trustOnFirstUse: env.trustOnFirstUse, purpose: 'dualwan asks the host whether the cutover is done, to know how OPNsense is reached' });
  try {
    return cutoverDoneIn(await conn.client.networkWithChanges(), c);
  } finally {
    await conn.close();
  }
}

/**
 * SSH to the Proxmox host with the cutover's settings: the private key from
 * DUALWAN_SSH_PRIVATE_KEY_FILE (read when first needed), the host key pinned in
 * proxmox.cutover.ssh.hostKey (asked on first contact, or --trust-on-first-use, then written
 * there; a pin written earlier in this run is read back from the file).
 */
export function proxmoxHostSsh(env: RouteEnv, purpose: string): { connect(host: string, extra?: { readyTimeoutMs?: number; allowFirstContact?: boolean }): Promise<SshClient>; pinned(): string | undefined } {
  const { state, ui } = env;
  const t = state.proxmox;
  const c = t?.cutover;
  if (!t || !c) throw new DualwanError('CUTOVER_NOT_CONFIGURED', 'SSH to the Proxmox host needs proxmox.cutover in dualwan.yaml.', { source: 'user', remedy: 'Add proxmox.cutover (docs/cutover.md).' });
  const keyPath = ['proxmox', 'cutover', 'ssh', 'hostKey'];
  let pin = c.ssh.hostKey;
  const fromFile = (): string | undefined => {
    if (!fs.existsSync(state.file)) return undefined;
    const v = parseDocument(fs.readFileSync(state.file, 'utf8')).getIn(keyPath);
    return typeof v === 'string' ? v : undefined;
  };
  let key: string | undefined;
  const privateKey = (): string => {
    if (key !== undefined) return key;
    const keyFile = loadCredentials({ env: env.env, file: env.credentialsFile }).require('DUALWAN_SSH_PRIVATE_KEY_FILE', `SSH to the Proxmox host ${c.ssh.user}@${t.host} (${purpose})`);
    try {
      key = fs.readFileSync(keyFile, 'utf8');
      return key;
    } catch (error) {
      throw new DualwanError('SSH_PRIVATE_KEY_UNREADABLE', `Cannot read the SSH private key ${keyFile}: ${error instanceof Error ? error.message : String(error)}`, {
        source: 'user',
        remedy: "Point DUALWAN_SSH_PRIVATE_KEY_FILE at an unencrypted OpenSSH private key file readable by you, whose public key is in root's authorized_keys on the host.",
      });
    }
  };
  return {
    pinned: () => pin,
    async connect(host, extra = {}) {
      const base = { host, port: c.ssh.port, user: c.ssh.user, privateKey: privateKey(), sudo: c.ssh.user !== 'root', ...(extra.readyTimeoutMs ? { readyTimeoutMs: extra.readyTimeoutMs } : {}) };
      pin ??= fromFile();
      if (!pin) {
        if (extra.allowFirstContact === false) throw new DualwanError('SSH_HOST_KEY_UNKNOWN', "The Proxmox host's SSH key is not pinned yet.", { source: 'tool' });
        const r = await ensureSshHostKeyPinned(base, {
          trustOnFirstUse: env.trustOnFirstUse,
          ui,
          label: 'the Proxmox host',
          record: fs.existsSync(state.file) ? { file: state.file, keyPath } : undefined,
        });
        pin = r.hostKey;
      }
      return connectSsh({ ...base, hostKey: pin });
    },
  };
}

/** An open route to OPNsense: what the client, the pin check and the messages need. */
export interface OpnsenseReach {
  readonly route: OpnsenseRoute;
  /** host, port and, through the Proxmox host, connectVia and routeText: spread into OpnsenseClientOptions. */
  readonly client: Pick<OpnsenseClientOptions, 'host' | 'port' | 'connectVia' | 'routeText'>;
  /** For ensurePinned's first contact. */
  readonly via?: { readonly connect: ConnectVia; readonly text: string };
  /** `host:port`, and the route in words after it ('' when direct). */
  readonly where: string;
  readonly text: string;
  /** "OPNsense at 10.10.99.1:443 through the Proxmox host …" / "OPNsense at 192.168.10.1:443". */
  describe(): string;
  close(): Promise<void>;
}

export function directReach(route: Extract<OpnsenseRoute, { kind: 'direct' }>): OpnsenseReach {
  const where = `${route.host}:${route.port}`;
  return { route, client: { host: route.host, port: route.port }, where, text: '', describe: () => `OPNsense at ${where}`, close: async () => undefined };
}

/**
 * Opens the route chosen for this run: direct, or SSH to the Proxmox host (connected now, so that
 * a refused host key or login is reported before anything else; reconnected if it drops) with one
 * forwarded channel per TLS connection. `cutoverDone` skips asking the host (tests, callers that
 * know); `proxmox` is an API session to ask through.
 */
export async function openOpnsenseReach(env: RouteEnv, o: { cutoverDone?: boolean; proxmox?: ProxmoxClient } = {}): Promise<OpnsenseReach> {
  const c = env.state.proxmox?.cutover;
  const done = c ? (o.cutoverDone ?? (await isCutoverDone(env, o.proxmox))) : true;
  const route = chooseOpnsenseRoute(env.state, done);
  if (route.kind === 'direct') return directReach(route);
  const ssh = proxmoxHostSsh(env, 'reaching OPNsense through the host until the cutover');
  let session: Promise<SshClient> | undefined = ssh.connect(route.ssh.host, { readyTimeoutMs: 15_000 });
  let first: SshClient;
  try {
    first = await session;
  } catch (e) {
    session = undefined;
    throw e;
  }
  const open = async (): Promise<SshClient> => {
    const current = session ? await session.catch(() => undefined) : undefined;
    if (current?.isOpen) return current;
    session = ssh.connect(route.ssh.host, { readyTimeoutMs: 15_000, allowFirstContact: false });
    return session;
  };
  const connectVia: ConnectVia = async (): Promise<Duplex> => (await open()).forwardOut(route.host, route.port);
  const where = `${route.host}:${route.port}`;
  const text = routeText(route);
  return {
    route,
    client: { host: route.host, port: route.port, connectVia, routeText: text },
    via: { connect: connectVia, text },
    where,
    text,
    describe: () => `OPNsense at ${where} ${text}`,
    async close() {
      const s = session ? await session.catch(() => undefined) : first;
      await s?.close().catch(() => undefined);
      if (s !== first) await first.close().catch(() => undefined);
    },
  };
}
