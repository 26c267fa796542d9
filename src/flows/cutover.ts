import * as fs from 'node:fs';
import type { Diagnostic } from '../core/diagnostics';
import { DualwanError, PreflightError, RemoteApiError } from '../core/errors';
import { pendingChanges } from '../core/plan';
import { OpnsenseClient } from '../providers/opnsense/client';
import { layoutOf } from '../providers/opnsense/layout';
import { gridSchema, InterfaceInfoRowSchema } from '../providers/opnsense/schemas';
import { connectProxmox, type ProxmoxConnection } from '../providers/proxmox/provider';
import { cutoverHandler, type CutoverIo } from '../providers/proxmox/resources/cutover';
import { loadCredentials } from '../secrets/credentials';
import { openOpnsenseReach, proxmoxHostSsh, type OpnsenseReach } from './opnsense-route';
import { openProxmoxSession } from './router-vm';
import type { Stage, StageEnv } from './stage';
import { recordFingerprint } from './trust';

/** The stages the cutover waits for: the router must be created, given its first config, and configured. */
const BEFORE = ['proxmox', 'bootstrap', 'opnsense'] as const;

/**
 * The lockout-safe cutover (proxmox.cutover, docs/cutover.md) as the last stage of the
 * opnsense-vm backend: only once OPNsense answers at proxmox.cutover.gateway on the VM's NIC on the
 * cutover bridge and routes between it and the LAN can the host be reached through the router. The
 * Proxmox stage creates the VM without the management NIC; this stage adds it, restarting the VM
 * under the dead-man timer (`cutoverHandler`). Done, it plans nothing.
 */
export function cutoverStage(): Stage {
  return {
    name: 'cutover',
    title: 'Proxmox host: management NIC to the router (guarded cutover)',
    deferred: cutoverDeferred,
    async open(env) {
      const reach = await openOpnsenseReach(env);
      try {
        await requireRouterReady(env, reach);
      } finally {
        await reach.close();
      }
      return openProxmoxSession(env, [cutoverHandler], (fingerprint, secret, opened) => cutoverIo(env, fingerprint, secret, opened));
    },
  };
}

/** Deferred while an earlier stage has changes to apply, or was not planned at all (deferred itself). */
export function cutoverDeferred(env: Pick<StageEnv, 'earlier'>): string | undefined {
  for (const name of BEFORE) {
    const e = env.earlier.find((x) => x.stage === name);
    if (!e) return `the ${name} stage comes first (it is itself waiting); the cutover runs once OPNsense is set up and answers on the cutover bridge`;
    if (pendingChanges(e.plan).length) return `the ${name} stage of this apply has changes first; the cutover runs once OPNsense is set up and answers on the cutover bridge`;
  }
  return undefined;
}

/**
 * Before any cutover write: OPNsense answers its API with the key dualwan keeps, over the pinned
 * certificate, and has its interface on the cutover bridge up at proxmox.cutover.gateway. A router
 * that does not answer yet (or was never set up) is reported as not reachable, so that `apply`
 * defers this stage when an earlier one was deferred; a router without that interface is refused.
 * Before the cutover, `reach` is the route through the Proxmox host (src/flows/opnsense-route.ts).
 */
export async function requireRouterReady(env: Pick<StageEnv, 'state' | 'env' | 'credentialsFile'>, reach: OpnsenseReach, timeoutMs = 10_000): Promise<void> {
  const { state } = env;
  const t = state.opnsense;
  const link = layoutOf(state).hostLink;
  if (!t || !link) {
    throw new DualwanError('CUTOVER_NOT_CONFIGURED', 'The cutover needs opnsense:, proxmox.cutover and vm.bridgeNic on the cutover bridge in dualwan.yaml.', {
      source: 'user',
      remedy: 'Add proxmox.cutover and vm.bridgeNic: {bridge: <proxmox.cutover.bridge>} (docs/cutover.md), or remove proxmox.cutover.',
    });
  }
  const where = `${reach.where}${reach.text ? ` ${reach.text}` : ''}`;
  const creds = loadCredentials({ env: env.env, file: env.credentialsFile });
  const apiKey = creds.get('DUALWAN_OPNSENSE_API_KEY');
  const apiSecret = creds.get('DUALWAN_OPNSENSE_API_SECRET');
  const notYet = (why: string): RemoteApiError =>
    new RemoteApiError({
      system: 'opnsense',
      method: 'GET',
      path: 'interfaces/overview/interfaces_info',
      message: `OPNsense at ${where} ${why}, so the cutover cannot run yet (the router must route the host's new path)`,
      remedy: 'Run dualwan apply: the bootstrap and OPNsense stages set the router up before the cutover.',
    });
  if (!t.fingerprint || !apiKey || !apiSecret) throw notYet('is not set up by dualwan yet (no pinned certificate or no API key)');
  const client = new OpnsenseClient({ ...reach.client, apiKey, apiSecret, fingerprint: t.fingerprint, connectTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs });
  try {
    let rows;
    try {
      rows = (await client.get('interfaces/overview/interfaces_info', gridSchema(InterfaceInfoRowSchema))).rows;
    } catch (e) {
      if (e instanceof RemoteApiError && e.status === undefined) throw notYet('does not answer');
      throw e;
    }
    const row = rows.find((r) => r.identifier === link.identifier);
    const ok = row && row.device === link.device && row.enabled !== false && (row.addr4 ?? '').split('/')[0] === link.address;
    if (!ok) {
      const d: Diagnostic = {
        severity: 'error',
        code: 'CUTOVER_ROUTER_NOT_READY',
        message: `OPNsense does not answer at ${link.address} on ${link.device} (${link.identifier}, the VM's NIC on ${link.bridge}): ${row ? `${row.identifier} is on ${row.device}, ${row.enabled === false ? 'disabled' : `at ${row.addr4 || 'no address'}`}` : `it has no ${link.identifier}`}. The host's new path would not work and the dead-man timer would revert it.`,
        remedy: `Run dualwan apply so that the OPNsense stage checks and configures it; for an OPNsense set up before, assign ${link.device} as ${link.identifier} with static IPv4 ${link.address}/${link.prefix} in Interfaces > Assignments first.`,
        path: 'proxmox.cutover.gateway',
      };
      throw new PreflightError([d]);
    }
  } finally {
    client.close();
  }
}

/**
 * SSH and the new-path API for the cutover: the host's SSH key pinned like the Linux router's
 * (asked on first contact, or --trust-on-first-use, then written to dualwan.yaml), the private key
 * from DUALWAN_SSH_PRIVATE_KEY_FILE, read only when the cutover runs.
 */
function cutoverIo(env: StageEnv, fingerprint: string, secret: string, opened: ProxmoxConnection[]): CutoverIo | undefined {
  const { state, ui } = env;
  const t = state.proxmox;
  const c = t?.cutover;
  if (!t || !c) return undefined;
  const newIp = c.hostAddress.split('/')[0]!;
  const ssh = proxmoxHostSsh(env, "it arms the cutover's dead-man timer");
  return {
    ui,
    connectOld: () => ssh.connect(t.host),
    // the same host, so the same key; never trust on first use here
    connectNew: () => ssh.connect(newIp, { readyTimeoutMs: 5_000, allowFirstContact: false }),
    async connectApiNew() {
      const conn = connectProxmox({ ...state, proxmox: { ...t, host: newIp } }, secret, fingerprint);
      opened.push(conn);
      return conn.client;
    },
    recordNewHost(host) {
      if (fs.existsSync(state.file)) recordFingerprint(state.file, ['proxmox', 'host'], host);
      ui.notify({ code: 'CUTOVER_HOST_RECORDED', level: 'info', text: `The Proxmox host now answers at ${host}; ${fs.existsSync(state.file) ? `proxmox.host in ${state.file} says so` : 'set proxmox.host to it'}.` });
    },
  };
}
