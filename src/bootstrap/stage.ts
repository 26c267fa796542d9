import { connectPinnedProxmox } from '../flows/proxmox-connection';
import * as fs from 'node:fs';
import { utils } from 'ssh2';
import type { DesiredState } from '../core/desired';
import { CredentialsError, DualwanError, RemoteApiError, TlsPinError, TtyRequiredError } from '../core/errors';
import type { Ui } from '../core/ui';
import { pendingChanges } from '../core/plan';
import type { ResourceHandler } from '../plan/handler';
import { openOpnsenseReach, type OpnsenseReach } from '../flows/opnsense-route';
import { recordFingerprint, ensurePinned } from '../flows/trust';
import type { Stage, StageEnv, StageSession } from '../flows/stage';
import type { ProxmoxClient } from '../providers/proxmox/client';
import { defaultCredentialsPath, loadCredentials } from '../secrets/credentials';
import { bootstrapOpnsense, probeOpnsenseApi, seedVolumeName, type ApiAnswer, type ApiProbe, type BootstrapOptions, type BootstrapReport } from './flow';

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
  /** How OPNsense is reached: at opnsense.host, or before the cutover through the Proxmox host. */
  readonly reach: OpnsenseReach;
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

function storedKey(env: NodeJS.ProcessEnv, file: string): { apiKey: string; apiSecret: string } | undefined {
  const creds = loadCredentials({ env, file });
  const apiKey = creds.get('DUALWAN_OPNSENSE_API_KEY');
  const apiSecret = creds.get('DUALWAN_OPNSENSE_API_SECRET');
  return apiKey && apiSecret ? { apiKey, apiSecret } : undefined;
}

/**
 * How OPNsense answers the stored key over the pinned certificate (read-only); 'no-key' when the
 * credentials hold no key or nothing is pinned yet.
 */
async function storedKeyAnswer(ctx: BootstrapStageContext): Promise<ApiAnswer | 'no-key'> {
  const t = ctx.state.opnsense;
  const key = storedKey(ctx.env, ctx.credentialsFile);
  if (!t?.fingerprint || !key) return 'no-key';
  const r = ctx.reach.client;
  return ctx.probe({ host: r.host, port: r.port, fingerprint: t.fingerprint, ...key, timeoutMs: 5_000, ...(r.connectVia ? { connectVia: r.connectVia } : {}) });
}

/** Whether the VM still has this tool's seed CD in its drive (a bootstrap that did not finish). */
async function seedAttached(ctx: BootstrapStageContext, vmid: number): Promise<boolean> {
  try {
    const conf = await ctx.client.vmConfig(vmid);
    return String(conf.ide2 ?? '').split(',')[0]!.endsWith(`/${seedVolumeName(vmid)}`);
  } catch {
    return false;
  }
}

/**
 * Refuses, before anything is written, a bootstrap that would do harm: one whose new key the
 * environment would hide from the OPNsense stage, and one that would replace the configuration of
 * an OPNsense that was set up before (certificate pinned, key on file, no seed CD left in the
 * drive) but does not accept the key right now.
 */
async function guardRebootstrap(ctx: BootstrapStageContext, vmid: number, answer: ApiAnswer | 'no-key'): Promise<void> {
  const where = `${ctx.reach.where}${ctx.reach.text ? ` ${ctx.reach.text}` : ''}`;
  const inEnv = (['DUALWAN_OPNSENSE_API_KEY', 'DUALWAN_OPNSENSE_API_SECRET'] as const).filter((n) => ctx.env[n]);
  if (inEnv.length) {
    throw new DualwanError(
      'BOOTSTRAP_KEY_SHADOWED',
      `OPNsense at ${where} does not answer with the API key set in the environment (${inEnv.join(', ')}), so it would be bootstrapped; ` +
        `the bootstrap stores a new key in ${ctx.credentialsFile}, which the environment variable would hide from the next steps. Nothing was written.`,
      {
        source: 'user',
        remedy: `Unset ${inEnv.join(' and ')} (the bootstrap keeps the key in the credentials file), or fix the key there if this OPNsense was set up by hand; then run dualwan apply again.`,
      },
    );
  }
  if (answer === 'no-key' || (await seedAttached(ctx, vmid))) return;
  throw new DualwanError(
    'BOOTSTRAP_WOULD_REPLACE_CONFIG',
    `OPNsense at ${where} was set up before (its certificate is pinned and an API key is in ${ctx.credentialsFile}) but ${answer === 'unauthorized' ? 'refuses that key' : 'does not answer'}. ` +
      'A bootstrap would replace its whole configuration, so dualwan does not start one by itself. Nothing was written.',
    {
      source: 'remote',
      remedy:
        answer === 'unauthorized'
          ? `Put the right key in ${ctx.credentialsFile} (System > Access > Users > root > API keys in the web GUI), or, to give OPNsense its first configuration from dualwan.yaml again (this replaces everything on it), remove opnsense.fingerprint from dualwan.yaml and run dualwan apply again.`
          : `Check that VM ${vmid} runs and that this machine reaches ${where}, then run dualwan apply again; to start over from dualwan.yaml (this replaces everything on OPNsense), remove opnsense.fingerprint from dualwan.yaml first.`,
    },
  );
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
    for (const d of desired) {
      const answer = await storedKeyAnswer(ctx);
      if (answer === 'ok') out.push({ address: d.address, value: { ...d.value, answers: true as const } });
      else await guardRebootstrap(ctx, d.value.vmid, answer);
    }
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
        reach: ctx.reach,
        recordFingerprint: (fp) => {
          if (fs.existsSync(ctx.state.file)) recordFingerprint(ctx.state.file, ['opnsense', 'fingerprint'], fp);
          // later reads in this run use the pin at once
          (ctx as { state: DesiredState }).state = { ...ctx.state, opnsense: { ...ctx.state.opnsense!, fingerprint: fp } };
        },
        recordSshHostKey: (key) => {
          if (fs.existsSync(ctx.state.file)) recordFingerprint(ctx.state.file, ['opnsense', 'sshHostKey'], key);
          (ctx as { state: DesiredState }).state = { ...ctx.state, opnsense: { ...ctx.state.opnsense!, sshHostKey: key } };
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
  /** With proxmox.cutover: whether the cutover is done, when the caller knows (tests); default: asked of the host. */
  readonly cutoverDone?: boolean;
}

export function bootstrapStage(opts: BootstrapStageOptions = {}): Stage {
  return {
    name: 'bootstrap',
    title: 'OPNsense first configuration (serial console)',
    deferred(env: StageEnv) {
      const pve = env.earlier.find((e) => e.stage === 'proxmox');
      const pending = pve ? pendingChanges(pve.plan) : [];
      if (pending.some((c) => c.kind === 'proxmox.vm' && c.action === 'create')) return 'the router VM is created by this apply; its first configuration follows';
      if (pending.some((c) => c.kind === 'proxmox.vm-state')) return 'the router VM is started by this apply; its first configuration follows if it has none';
      return undefined;
    },
    async open(env: StageEnv): Promise<StageSession<BootstrapStageContext>> {
      const { state, ui } = env;
      if (!state.proxmox || !state.vm || !state.opnsense) throw new DualwanError('BOOTSTRAP_NOT_CONFIGURED', 'The bootstrap needs proxmox:, vm: and opnsense: in dualwan.yaml.', { source: 'user' });
      const creds = loadCredentials({ env: env.env, file: env.credentialsFile });
      const { conn } = await connectPinnedProxmox({ state, ui, env: env.env, credentialsFile: env.credentialsFile, trustOnFirstUse: env.trustOnFirstUse });
      const credentialsFile = env.credentialsFile ?? defaultCredentialsPath(env.env);
      let reach: OpnsenseReach;
      let opnsense: NonNullable<DesiredState['opnsense']>;
      try {
        // before the cutover (proxmox.cutover) OPNsense is reached through the Proxmox host
        reach = await openOpnsenseReach(env, { proxmox: conn.client, ...(opts.cutoverDone === undefined ? {} : { cutoverDone: opts.cutoverDone }) });
      } catch (e) {
        await conn.close();
        throw e;
      }
      const closeAll = async () => {
        await reach.close();
        await conn.close();
      };
      try {
        opnsense = await pinExistingOpnsense(env, credentialsFile, reach);
      } catch (e) {
        await closeAll();
        throw e;
      }
      const keyFile = creds.get('DUALWAN_SSH_PRIVATE_KEY_FILE');
      const ctx: BootstrapStageContext = {
        state: { ...state, opnsense },
        ui,
        client: conn.client,
        env: env.env,
        credentialsFile,
        sshPublicKeys: opts.sshPublicKeys ?? (keyFile ? [publicKeyOfPrivateKeyFile(keyFile)] : []),
        options: opts,
        probe: opts.probe ?? probeOpnsenseApi,
        reach,
      };
      // An OPNsense that was set up before and is still booting (the Proxmox stage of this run
      // started its VM) is not reachable yet: say so, so that apply defers this stage.
      if (opnsense.fingerprint && storedKey(env.env, credentialsFile)) {
        const answer = await storedKeyAnswer(ctx);
        if (answer === 'unreachable' && !(await seedAttached(ctx, state.vm.vmid))) {
          await closeAll();
          throw new RemoteApiError({
            system: 'opnsense',
            method: 'GET',
            path: 'core/firmware/status',
            message: `OPNsense at ${reach.where}${reach.text ? ` ${reach.text}` : ''} does not answer (yet)`,
            remedy: `Check that VM ${state.vm.vmid} runs and that ${reach.text ? `the Proxmox host reaches ${reach.where}` : `this machine reaches ${reach.where}`}; run dualwan apply again once OPNsense is up.`,
          });
        }
      }
      return { ctx, handlers: [bootstrapHandler], writeCalls: () => conn.transport.writeCalls, close: closeAll };
    },
  };
}

/**
 * An OPNsense that already has a key in the credentials file (set up by hand, or by an earlier run
 * whose pin was lost) is pinned on first contact, as the OPNsense stage would, so that it is
 * recognised as set up instead of being bootstrapped over. Not reachable: nothing to pin (a new
 * VM runs the factory config, whose LAN is elsewhere).
 */
async function pinExistingOpnsense(env: StageEnv, credentialsFile: string, reach: OpnsenseReach): Promise<NonNullable<DesiredState['opnsense']>> {
  const t = env.state.opnsense!;
  if (t.fingerprint || !storedKey(env.env, credentialsFile)) return t;
  try {
    const fp = await ensurePinned({
      system: 'OPNsense',
      host: reach.client.host,
      port: reach.client.port,
      ...(reach.via ? { via: reach.via } : {}),
      trustOnFirstUse: env.trustOnFirstUse,
      ui: env.ui,
      record: fs.existsSync(env.state.file) ? { file: env.state.file, keyPath: ['opnsense', 'fingerprint'] } : undefined,
      compareWith: 'the web GUI certificate in System > Trust > Certificates',
    });
    return { ...t, fingerprint: fp };
  } catch (e) {
    if (e instanceof TlsPinError || e instanceof TtyRequiredError) throw e;
    return t;
  }
}
