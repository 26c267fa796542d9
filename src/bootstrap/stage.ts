import * as fs from 'node:fs';
import { utils } from 'ssh2';
import type { DesiredState } from '../core/desired';
import { CredentialsError, DualwanError } from '../core/errors';
import type { Ui } from '../core/ui';
import type { ResourceHandler } from '../plan/handler';
import { recordFingerprint, ensurePinned } from '../flows/trust';
import type { Stage, StageEnv, StageSession } from '../flows/stage';
import { connectProxmox } from '../providers/proxmox/provider';
import type { ProxmoxClient } from '../providers/proxmox/client';
import { defaultCredentialsPath, loadCredentials } from '../secrets/credentials';
import { bootstrapOpnsense, probeOpnsenseApi, type ApiProbe, type BootstrapOptions, type BootstrapReport } from './flow';

/**
 * The bootstrap as a stage between the Proxmox host and the OPNsense REST configuration:
 * one resource, `opnsense.bootstrap/<vmid>`, present when OPNsense answers its REST API with the key
 * in the credentials file over the pinned certificate. Planning shows it (it stops and starts the
 * router VM and sets a root password that is shown once); applying runs `bootstrapOpnsense`.
 */
export interface BootstrapStageContext {
  readonly state: DesiredState;
  readonly ui: Ui;
  readonly client: ProxmoxClient;
  readonly env: NodeJS.ProcessEnv;
  readonly credentialsFile: string;
  readonly sshPublicKeys: readonly string[];
  readonly options: BootstrapOptions;
  readonly probe: ApiProbe;
  /** What the last apply did (for the CLI's summary and the tests). */
  lastReport?: BootstrapReport;
}

export interface BootstrapDesired {
  readonly vmid: number;
  readonly host: string;
  readonly port: number;
}

export interface BootstrapObserved extends BootstrapDesired {
  readonly answers: true;
}

/** Whether OPNsense already answers with the stored key (read-only). */
async function answersWithStoredKey(ctx: BootstrapStageContext): Promise<boolean> {
  const t = ctx.state.opnsense;
  if (!t?.fingerprint) return false;
  const creds = loadCredentials({ env: ctx.env, file: ctx.credentialsFile });
  const apiKey = creds.get('DUALWAN_OPNSENSE_API_KEY');
  const apiSecret = creds.get('DUALWAN_OPNSENSE_API_SECRET');
  if (!apiKey || !apiSecret) return false;
  return (await ctx.probe({ host: t.host, port: t.port, fingerprint: t.fingerprint, apiKey, apiSecret, timeoutMs: 5_000 })) === 'ok';
}

export const bootstrapHandler: ResourceHandler<BootstrapStageContext, BootstrapDesired, BootstrapObserved> = {
  kind: 'opnsense.bootstrap',
  desired(ctx) {
    const { vm, opnsense } = ctx.state;
    if (ctx.state.backend !== 'opnsense-vm' || !vm || !opnsense) return [];
    return [{ address: `opnsense.bootstrap/${vm.vmid}`, value: { vmid: vm.vmid, host: opnsense.host, port: opnsense.port }, dependsOn: [] }];
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) if (await answersWithStoredKey(ctx)) out.push({ address: d.address, value: { ...d.value, answers: true as const } });
    return out;
  },
  diff(desired, observed) {
    if (observed) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: 'create',
      properties: [{ path: 'config.xml', before: null, after: `seeded through the serial console of VM ${desired.vmid}` }],
      disruption: ['stops-router-vm', 'starts-router-vm'],
      reason:
        'OPNsense gets its first configuration from a seed CD through its own importer (no API can create the first key, enable SSH or address WAN2); ' +
        'the VM is stopped if it runs, started with the CD, and a new root password is shown once',
    };
  },
  async apply(ctx, change) {
    const report = await bootstrapOpnsense(
      {
        state: ctx.state,
        ui: ctx.ui,
        client: ctx.client,
        credentialsFile: ctx.credentialsFile,
        sshPublicKeys: ctx.sshPublicKeys,
        recordFingerprint: (fp) => {
          if (fs.existsSync(ctx.state.file)) recordFingerprint(ctx.state.file, ['opnsense', 'fingerprint'], fp);
          // later reads in this run use the pin at once
          (ctx as { state: DesiredState }).state = { ...ctx.state, opnsense: { ...ctx.state.opnsense!, fingerprint: fp } };
        },
      },
      { probeApi: ctx.probe, ...ctx.options },
    );
    ctx.lastReport = report;
    return { ...change.desired, answers: true as const };
  },
};

/** The public key line of an OpenSSH or PEM private key file (for root's authorized keys). */
export function publicKeyOfPrivateKeyFile(file: string, passphrase?: string): string {
  const parsed = utils.parseKey(fs.readFileSync(file), passphrase);
  if (parsed instanceof Error) throw new CredentialsError(`${file} is not a private key ssh2 can read: ${parsed.message}`, 'Point DUALWAN_SSH_PRIVATE_KEY_FILE at an OpenSSH private key (ssh-keygen -t ed25519).');
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  return `${key.type} ${key.getPublicSSH().toString('base64')} dualwan`;
}

export interface BootstrapStageOptions extends BootstrapOptions {
  /** Public keys for root; default: the one of DUALWAN_SSH_PRIVATE_KEY_FILE when set. */
  readonly sshPublicKeys?: readonly string[];
  readonly probe?: ApiProbe;
}

export function bootstrapStage(opts: BootstrapStageOptions = {}): Stage {
  return {
    name: 'bootstrap',
    title: 'OPNsense first configuration (serial console)',
    deferred(env: StageEnv) {
      const pve = env.earlier.find((e) => e.stage === 'proxmox');
      if (pve?.plan.changes.some((c) => c.kind === 'proxmox.vm' && c.action === 'create')) return 'the router VM is created by this apply; its first configuration follows';
      return undefined;
    },
    async open(env: StageEnv): Promise<StageSession<BootstrapStageContext>> {
      const { state, ui } = env;
      if (!state.proxmox || !state.vm || !state.opnsense) throw new DualwanError('BOOTSTRAP_NOT_CONFIGURED', 'The bootstrap needs proxmox:, vm: and opnsense: in dualwan.yaml.', { source: 'user' });
      const creds = loadCredentials({ env: env.env, file: env.credentialsFile });
      const secret = creds.require('DUALWAN_PROXMOX_TOKEN_SECRET', `The Proxmox API token ${state.proxmox.tokenId}`);
      const fingerprint = await ensurePinned({
        system: 'Proxmox VE',
        host: state.proxmox.host,
        port: state.proxmox.port,
        pinned: state.proxmox.fingerprint,
        trustOnFirstUse: env.trustOnFirstUse,
        ui,
        record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['proxmox', 'fingerprint'] } : undefined,
        compareWith: 'pvenode cert info',
      });
      const conn = connectProxmox(state, secret, fingerprint);
      const keyFile = creds.get('DUALWAN_SSH_PRIVATE_KEY_FILE');
      const ctx: BootstrapStageContext = {
        state,
        ui,
        client: conn.client,
        env: env.env,
        credentialsFile: env.credentialsFile ?? defaultCredentialsPath(env.env),
        sshPublicKeys: opts.sshPublicKeys ?? (keyFile ? [publicKeyOfPrivateKeyFile(keyFile)] : []),
        options: opts,
        probe: opts.probe ?? probeOpnsenseApi,
      };
      return { ctx, handlers: [bootstrapHandler], writeCalls: () => conn.transport.writeCalls, close: () => conn.close() };
    },
  };
}
