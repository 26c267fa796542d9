/**
 * The Linux router stage: SSH with the router's host key pinned (trust on first use asked for, or
 * granted by --trust-on-first-use, and then written into dualwan.yaml at linux.hostKey), a
 * read-only preflight of the tools the backend runs, then the handlers in order: kernel settings,
 * NAT, tables, rules, default route, and the boot files and units that bring it all back.
 */
import * as fs from 'node:fs';
import type { Duplex } from 'node:stream';
import type { DesiredState } from '../core/desired';
import type { Diagnostic } from '../core/diagnostics';
import { PreflightError, TtyRequiredError, DualwanError } from '../core/errors';
import type { Ui } from '../core/ui';
import { buildLinuxContext, type LinuxContext, type LinuxRouterOptions } from '../providers/linux/context';
import { linuxHandlers } from '../providers/linux/resources';
import { connectSsh, HostKeyUnknownError, type SshClient, type SshConnectOptions } from '../providers/linux/ssh';
import { loadCredentials } from '../secrets/credentials';
import type { Stage, StageEnv, StageSession } from './stage';
import { recordFingerprint } from './trust';

export interface LinuxStageOptions {
  /** Where persistent files go and how units are managed (the lab passes a private root). */
  readonly router?: Partial<LinuxRouterOptions>;
  /** A byte stream to the router's sshd instead of TCP (the lab reaches its router through one). */
  readonly transport?: () => Duplex;
}

/** Programs the backend runs on the router, and the Debian package of each. */
export const ROUTER_TOOLS: readonly { readonly program: string; readonly pkg: string; readonly liveSystemdOnly?: boolean }[] = [
  { program: 'ip', pkg: 'iproute2' },
  { program: 'nft', pkg: 'nftables' },
  { program: 'sysctl', pkg: 'procps' },
  { program: 'conntrack', pkg: 'conntrack' },
  { program: 'ping', pkg: 'iputils-ping' },
  { program: 'sha256sum', pkg: 'coreutils' },
  { program: 'timeout', pkg: 'coreutils' },
  { program: 'awk', pkg: 'mawk' },
  { program: 'systemctl', pkg: 'systemd' },
];

interface PinResult {
  readonly hostKey: string;
}

/**
 * First contact: learn the presented key without authenticating (the handshake is refused, so
 * nothing is sent), show it, ask (or take --trust-on-first-use), record it in dualwan.yaml.
 */
export async function ensureSshHostKeyPinned(
  base: Omit<SshConnectOptions, 'hostKey' | 'trustOnFirstUse' | 'sock'>,
  o: { readonly transport?: () => Duplex; readonly pinned?: string; readonly trustOnFirstUse: boolean; readonly ui: Ui; readonly record?: { file: string; keyPath: readonly string[] }; readonly label?: string },
): Promise<PinResult> {
  if (o.pinned) return { hostKey: o.pinned };
  let presented: string;
  let keyType = '';
  try {
    const c = await connectSsh({ ...base, ...(o.transport ? { sock: o.transport() } : {}), hostKey: undefined, trustOnFirstUse: false });
    await c.close();
    throw new DualwanError('SSH_HOST_KEY_UNCHECKED', 'The router accepted a session before its host key was checked.', { source: 'tool' });
  } catch (e) {
    if (!(e instanceof HostKeyUnknownError)) throw e;
    presented = e.presented;
    keyType = /\(([^)]+)\)\. Nothing was sent/.exec(e.message)?.[1] ?? '';
  }
  const target = `${base.user}@${base.host}:${base.port ?? 22}`;
  o.ui.notify({
    code: 'SSH_FIRST_CONTACT',
    level: 'info',
    text: `First contact with ${o.label ?? 'the Linux router'} at ${target}.\n  host key: ${presented}${keyType ? ` (${keyType})` : ''}\nCompare it with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` on ${o.label ?? 'the router'}.`,
    data: { hostKey: presented, keyType },
  });
  if (!o.trustOnFirstUse) {
    let ok: boolean;
    try {
      ok = await o.ui.request({ code: 'SSH_TRUST', kind: 'confirm', message: `Pin this host key for ${target}?`, default: false });
    } catch (e) {
      if (e instanceof TtyRequiredError) throw new TtyRequiredError(`pin the SSH host key of ${target} (${presented})`);
      throw e;
    }
    if (!ok) throw new DualwanError('SSH_HOST_KEY_REFUSED', `The host key of ${target} was not trusted; nothing was sent to it.`, { source: 'user', remedy: `Check the fingerprint on ${o.label ?? 'the router'}, then run again or set ${o.record?.keyPath.join('.') ?? 'linux.hostKey'} in dualwan.yaml.` });
  }
  if (o.record) recordFingerprint(o.record.file, o.record.keyPath, presented);
  o.ui.notify({ code: 'SSH_PINNED', level: 'success', text: `Pinned ${presented}${o.record ? ` in ${o.record.file}` : ''}.` });
  return { hostKey: presented };
}

/** Connects to the router named in dualwan.yaml with the pinned key (pinning it first if needed). */
export async function openLinuxRouter(env: StageEnv, options: LinuxStageOptions = {}): Promise<SshClient> {
  const { state, ui } = env;
  const target = state.linux;
  if (state.backend !== 'linux' || !target) {
    throw new DualwanError('LINUX_BACKEND_MISSING', 'The Linux stage needs `backend: linux` and a `linux:` section.', { source: 'user' });
  }
  const creds = loadCredentials({ env: env.env, file: env.credentialsFile });
  const keyFile = creds.require('DUALWAN_SSH_PRIVATE_KEY_FILE', `SSH to the Linux router ${target.user}@${target.host}`);
  let privateKey: string;
  try {
    privateKey = fs.readFileSync(keyFile, 'utf8');
  } catch (error) {
    throw new DualwanError('SSH_PRIVATE_KEY_UNREADABLE', `Cannot read the SSH private key ${keyFile}: ${error instanceof Error ? error.message : String(error)}`, {
      source: 'user',
      remedy: 'Point DUALWAN_SSH_PRIVATE_KEY_FILE at an unencrypted OpenSSH private key file readable by you.',
    });
  }
  const base = {
    host: target.host,
    port: target.port,
    user: target.user,
    privateKey,
    sudo: target.user !== 'root',
  };
  // Each connection attempt needs its own byte stream.
  const pin = await ensureSshHostKeyPinned(base, {
      ...(options.transport ? { transport: options.transport } : {}),
      pinned: target.hostKey,
      trustOnFirstUse: env.trustOnFirstUse,
      ui,
      record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['linux', 'hostKey'] } : undefined,
  });
  return connectSsh({ ...base, ...(options.transport ? { sock: options.transport() } : {}), hostKey: pin.hostKey });
}

/** Read-only checks before anything is planned: the router has the programs the backend runs. */
export async function linuxPreflight(ssh: SshClient, state: DesiredState, router: Partial<LinuxRouterOptions>): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  const offline = router.systemd === 'offline';
  for (const t of ROUTER_TOOLS) {
    if (t.liveSystemdOnly && offline) continue;
    const res = await ssh.exec(['sh', '-c', 'command -v "$1"', 'sh', t.program], { timeoutMs: 10_000 });
    if (res.code !== 0) {
      out.push({
        severity: 'error',
        code: 'LINUX_TOOL_MISSING',
        message: `The router has no \`${t.program}\`.`,
        remedy: `Install it on the router: apt-get install ${t.pkg}`,
      });
    }
  }
  for (const w of state.wans) {
    if (w.monitorIps.length < 2) {
      out.push({
        severity: 'error',
        code: 'LINUX_MONITOR_TARGETS',
        message: `WAN ${w.name} has ${w.monitorIps.length} monitor IP; the Linux health monitor needs at least 2 so one silent target cannot take the line down.`,
        remedy: `Give wans.${w.name}.monitorIps two far addresses that answer ping, e.g. [1.1.1.1, 9.9.9.9] (unique across WANs).`,
        ...(w.source ? { location: w.source } : {}),
      });
    }
  }
  return out;
}

/** The Linux router: kernel settings, NAT and marks, policy routing, boot persistence, the monitor unit. */
export function linuxStage(options: LinuxStageOptions = {}): Stage {
  return {
    name: 'linux',
    title: 'Linux router',
    async open(env): Promise<StageSession<LinuxContext>> {
      const ssh = await openLinuxRouter(env, options);
      try {
        const findings = await linuxPreflight(ssh, env.state, options.router ?? {});
        if (findings.some((f) => f.severity === 'error')) throw new PreflightError(findings);
        const ctx = await buildLinuxContext(env.state, ssh, options.router ?? {});
        if (!ctx.runtimeInstalled && ctx.options.systemd === 'live') {
          env.ui.notify({
            code: 'LINUX_MONITOR_RUNTIME_MISSING',
            level: 'warn',
            text:
              `dualwan is not installed on the router (${ctx.options.dualwanCommand.join(' ')}): the monitor unit is enabled, but it starts only once it is. ` +
              'On the router: install Node.js 20 and run `npm install -g dualwan`, then `systemctl start dualwan-monitor`.',
          });
        }
        if (ctx.monitorActive) {
          env.ui.notify({ code: 'LINUX_MONITOR_ACTIVE', level: 'info', text: `The health monitor runs and routes new connections through: ${ctx.monitorActive.join(', ')}.` });
        }
        return { ctx, handlers: linuxHandlers, writeCalls: () => ctx.router.writes, close: () => ssh.close() };
      } catch (e) {
        await ssh.close();
        throw e;
      }
    },
  };
}
