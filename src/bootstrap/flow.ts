import type { DesiredState } from '../core/desired';
import { DualwanError, RemoteApiError } from '../core/errors';
import type { Ui } from '../core/ui';
import type { OpnsenseReach } from '../flows/opnsense-route';
import type { ConnectVia } from '../net/pinned-tls';
import { OpnsenseClient } from '../providers/opnsense/client';
import { FirmwareStatusSchema } from '../providers/opnsense/schemas';
import type { ProxmoxClient } from '../providers/proxmox/client';
import { hasPrivilege } from '../providers/proxmox/privileges';
import { redact, registerSecret } from '../secrets/redact';
import { openSerialConsole, type SerialConsole } from './console';
import { storeOpnsenseApiKey } from './credentials-store';
import { runImporterDialogue, type DialogueResult, type DialogueTimeouts } from './dialogue';
import { Expect } from './expect';
import { FACTORY_ROOT_PASSWORD } from './factory-config';
import { buildSeedImage } from './image';
import { buildSeedConfig, hashSecrets, newBootstrapSecrets, type BootstrapSecrets } from './seed-config';

/**
 * From an empty router VM to an OPNsense that answers its REST API with a key only dualwan holds:
 *
 *   seed config (from the DesiredState) → ISO image → upload to the host's ISO storage → attach as
 *   the VM's CD (ide2) → start the VM → serial console (termproxy + websocket) → answer the
 *   importer → pin the web GUI certificate from the console banner → the factory password is
 *   refused and the new one accepted on the console → the REST API answers with the new key →
 *   eject the seed CD.
 *
 * Nothing waits for a fixed time: the console steps react to what OPNsense prints, each with its
 * own timeout, and the REST check polls with a growing interval under one deadline. The API key
 * is written to the credentials file (0600) and the root password shown once, both *before* the
 * VM can import the seed, so no run can leave a box whose credentials nobody has.
 */
export interface BootstrapContext {
  readonly state: DesiredState;
  readonly ui: Ui;
  readonly client: ProxmoxClient;
  /** The credentials file the API key is kept in (mode 0600). */
  readonly credentialsFile: string;
  /** OpenSSH public keys allowed to log in to OPNsense as root (SSH is keys only). */
  readonly sshPublicKeys: readonly string[];
  /** Records the pinned web GUI fingerprint (opnsense.fingerprint in dualwan.yaml). */
  readonly recordFingerprint?: (fingerprint: string) => void;
  /** Records OPNsense's SSH host key, ED25519, "SHA256:…" (opnsense.sshHostKey in dualwan.yaml). */
  readonly recordSshHostKey?: (fingerprint: string) => void;
  /** How the REST check reaches OPNsense (default: directly at opnsense.host). */
  readonly reach?: Pick<OpnsenseReach, 'client' | 'where' | 'text'>;
}

export type ApiAnswer = 'ok' | 'unauthorized' | 'unreachable';
/** `connectVia`: the path when OPNsense is not reached by TCP from here (before the cutover, through the Proxmox host). */
export type ApiProbe = (t: { host: string; port: number; fingerprint: string; apiKey: string; apiSecret: string; timeoutMs: number; connectVia?: ConnectVia }) => Promise<ApiAnswer>;

export interface BootstrapOptions {
  readonly timeouts?: Partial<DialogueTimeouts>;
  /** How long the REST API may take to answer after the console's login prompt (default 3 min). */
  readonly apiWaitMs?: number;
  /** One REST request (default 10 s). */
  readonly apiRequestTimeoutMs?: number;
  readonly hostname?: string;
  readonly domain?: string;
  /** Fresh secrets (tests pass known ones). */
  readonly secrets?: () => BootstrapSecrets;
  readonly openConsole?: (client: ProxmoxClient, vmid: number) => Promise<SerialConsole>;
  readonly probeApi?: ApiProbe;
  /** Raw console output, e.g. for a transcript file (never holds a password: none is echoed). */
  readonly onConsoleOutput?: (raw: string) => void;
  /** Recorded in the image as its date (default now). */
  readonly now?: () => Date;
}

export interface BootstrapReport {
  readonly vmid: number;
  readonly seedVolume: string;
  readonly importedBy: DialogueResult['importedBy'];
  readonly device: string;
  readonly httpsFingerprint: string;
  readonly sshHostKeys: DialogueResult['sshHostKeys'];
  readonly apiKey: string;
  readonly seedCd: 'ejected' | 'ejected-at-next-restart';
  /** The uploaded seed image afterwards: deleted from the storage, or kept (and why). */
  readonly seedImage: 'deleted' | 'kept';
  readonly durationMs: number;
}

export class BootstrapError extends DualwanError {
  constructor(message: string, remedy: string, cause?: unknown) {
    super('BOOTSTRAP_FAILED', message, { source: 'remote', remedy, cause });
  }
}

/** The REST check: GET core/firmware/status with the key, over the pinned certificate. */
export const probeOpnsenseApi: ApiProbe = async (t) => {
  const c = new OpnsenseClient({ host: t.host, port: t.port, apiKey: t.apiKey, apiSecret: t.apiSecret, fingerprint: t.fingerprint, connectTimeoutMs: t.timeoutMs, requestTimeoutMs: t.timeoutMs, ...(t.connectVia ? { connectVia: t.connectVia } : {}) });
  try {
    await c.get('core/firmware/status', FirmwareStatusSchema);
    return 'ok';
  } catch (e) {
    if (e instanceof RemoteApiError && (e.status === 401 || e.status === 403)) return 'unauthorized';
    // a refusal (certificate not the pinned one; on the path through the Proxmox host, its SSH key
    // or login) is no "not yet": waiting would not help
    if (e instanceof DualwanError && !(e instanceof RemoteApiError)) throw e;
    return 'unreachable';
  } finally {
    c.close();
  }
};

export function seedVolumeName(vmid: number): string {
  return `dualwan-seed-${vmid}.iso`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until the API answers with the key, with a growing interval under one deadline. */
export async function waitForApi(probe: () => Promise<ApiAnswer>, deadlineMs: number, now: () => number = Date.now): Promise<ApiAnswer> {
  const end = now() + deadlineMs;
  let delay = 250;
  let last: ApiAnswer = 'unreachable';
  for (let attempt = 0; attempt < 500; attempt++) {
    last = await probe();
    if (last === 'ok') return last;
    // A 401 with the key we just seeded means the import did not take; waiting will not help.
    if (last === 'unauthorized' && attempt >= 2) return last;
    if (now() + delay > end) return last;
    await sleep(delay);
    delay = Math.min(delay * 2, 5_000);
  }
  return last;
}

/**
 * The seed image holds hashes and public keys only, but it is litter: it is deleted once the CD is
 * out of the drive, when the token may (Datastore.Allocate on the storage, which the dualwan role
 * leaves out because it would also allow deleting anything else there, backups included).
 */
async function removeSeedImage(client: ProxmoxClient, ui: Ui, storage: string, volid: string, seedCd: BootstrapReport['seedCd']): Promise<BootstrapReport['seedImage']> {
  const keep = (why: string) => {
    ui.notify({ code: 'BOOTSTRAP_SEED_KEPT', level: 'info', text: `The seed image ${volid} stays on storage ${storage}: ${why}. It holds hashes and public keys only; remove it with \`pvesm free ${volid}\` on the host if you like.` });
    return 'kept' as const;
  };
  if (seedCd !== 'ejected') return keep('the VM still has it in its drive until its next restart');
  if (!hasPrivilege(await client.permissions(), `/storage/${storage}`, 'Datastore.Allocate')) return keep(`deleting it needs Datastore.Allocate on /storage/${storage}, which the token does not have (docs/proxmox-token.md)`);
  await client.deleteVolume(storage, volid, { what: `delete ${volid}` });
  ui.notify({ code: 'BOOTSTRAP_SEED_DELETED', level: 'info', text: `Deleted the seed image ${volid} from storage ${storage}.` });
  return 'deleted';
}

export async function bootstrapOpnsense(ctx: BootstrapContext, opts: BootstrapOptions = {}): Promise<BootstrapReport> {
  const started = Date.now();
  const { state, ui, client } = ctx;
  const vm = state.vm;
  const target = state.opnsense;
  if (!vm || !target) throw new BootstrapError('The bootstrap needs a router VM and an OPNsense address in dualwan.yaml.', 'Use backend: opnsense-vm with vm: and opnsense: sections.');
  const vmid = vm.vmid;
  const step = (text: string) => ui.notify({ code: 'BOOTSTRAP_STEP', level: 'info', text });

  // 0. The VM must offer a serial console; it is stopped if it runs (a fresh VM has nothing to lose).
  const config = await client.vmConfig(vmid);
  if (config.serial0 !== 'socket') {
    throw new BootstrapError(`VM ${vmid} has no serial console (serial0: socket); OPNsense's importer cannot be reached.`, 'Set serialConsole: true for the VM (the opnsense template does) and run dualwan apply again.');
  }

  // 1. Secrets and the seed. The key goes to the credentials file and the password to the screen
  //    now, before anything could make them necessary.
  const secrets = (opts.secrets ?? newBootstrapSecrets)();
  registerSecret(secrets.apiSecret);
  const hostname = opts.hostname ?? target.hostname;
  const domain = opts.domain ?? target.domain;
  const seed = buildSeedConfig(state, hashSecrets(secrets, ctx.sshPublicKeys), { ...(hostname ? { hostname } : {}), ...(domain ? { domain } : {}) });
  storeOpnsenseApiKey(ctx.credentialsFile, secrets.apiKey, secrets.apiSecret);
  ui.notify({ code: 'BOOTSTRAP_API_KEY_STORED', level: 'info', text: `OPNsense API key stored in ${ctx.credentialsFile} (mode 0600); OPNsense keeps only a hash of its secret.` });
  ui.notify({
    code: 'BOOTSTRAP_ROOT_PASSWORD',
    level: 'warn',
    text: `New OPNsense root password, shown this once and stored nowhere by dualwan:\n\n    ${secrets.rootPassword}\n\nWrite it down now: it is for the console and the web GUI (user root).`,
  });
  if (!ctx.sshPublicKeys.length) ui.notify({ code: 'BOOTSTRAP_NO_SSH_KEY', level: 'warn', text: 'SSH is switched on for keys only, but no public key was given: nobody can log in over SSH until you add one.' });
  const image = buildSeedImage(seed.xml, { date: (opts.now ?? (() => new Date()))() });

  // 2. Upload and attach (with the VM stopped, so the CD is there from the first instruction).
  const status = await client.vmStatus(vmid);
  if (status.status === 'running') {
    step(`Stopping VM ${vmid} to attach the seed CD (it has no configuration yet).`);
    await client.shutdownVm(vmid, { what: `stop of VM ${vmid} for the bootstrap`, forceStopAfterSeconds: 30 });
  }
  const filename = seedVolumeName(vmid);
  const volid = `${vm.imageStorage}:iso/${filename}`;
  step(`Uploading the seed image (${image.length} bytes) to ${volid}.`);
  await client.uploadFile(vm.imageStorage, 'iso', filename, image, { what: `upload of ${filename}` });
  const cd = `${volid},media=cdrom`;
  await client.updateVmConfig(vmid, { ide2: cd }, { what: `attach ${filename} to VM ${vmid}` });
  const attached = await client.vmConfig(vmid);
  if (!String(attached.ide2 ?? '').startsWith(volid)) {
    throw new BootstrapError(`The seed CD did not stay attached to VM ${vmid} (ide2 is ${JSON.stringify(attached.ide2 ?? null)}).`, 'Check VM.Config.CDROM for the token, then run dualwan apply again.');
  }

  // 3. Start and talk to the console at once: the importer asks for only seven seconds.
  step(`Starting VM ${vmid} and opening its serial console.`);
  await client.startVm(vmid, { what: `start of VM ${vmid}` });
  const open = opts.openConsole ?? ((c: ProxmoxClient, id: number) => openSerialConsole(c, id));
  const con = await open(client, vmid);
  let dialogue: DialogueResult;
  try {
    const x = new Expect(con, { ...(opts.onConsoleOutput ? { onOutput: (raw: string) => opts.onConsoleOutput!(redact(raw)) } : {}) });
    dialogue = await runImporterDialogue(x, { rootPassword: secrets.rootPassword, factoryPassword: FACTORY_ROOT_PASSWORD, timeouts: opts.timeouts ?? {}, progress: step });
  } finally {
    con.close();
  }

  // 4. Pin the certificate the console showed, then the REST API must answer with the new key.
  const fingerprint = dialogue.httpsFingerprint;
  if (!fingerprint) {
    throw new BootstrapError('The console banner showed no HTTPS certificate fingerprint, so the web GUI cannot be pinned.', 'Check the web GUI protocol (https) in the seed; pin it by hand with opnsense.fingerprint in dualwan.yaml.');
  }
  ctx.recordFingerprint?.(fingerprint);
  ui.notify({ code: 'BOOTSTRAP_PINNED', level: 'success', text: `Pinned OPNsense's web GUI certificate ${fingerprint}, read from its own console through Proxmox.`, data: { fingerprint, ssh: dialogue.sshHostKeys } });
  // its SSH host key from the same banner: what the revert timer of later applies logs in to
  const sshHostKey = dialogue.sshHostKeys.find((k) => k.type === 'ED25519')?.fingerprint;
  if (sshHostKey) {
    ctx.recordSshHostKey?.(sshHostKey);
    ui.notify({ code: 'BOOTSTRAP_SSH_PINNED', level: 'success', text: `Pinned OPNsense's SSH host key ${sshHostKey} (ED25519), read from the same banner.`, data: { sshHostKey } });
  } else {
    ui.notify({
      code: 'BOOTSTRAP_SSH_NOT_PINNED',
      level: 'warn',
      text: `The console banner showed no ED25519 SSH host key${dialogue.sshHostKeys.length ? ` (only ${dialogue.sshHostKeys.map((k) => k.type).join(', ')})` : ''}, so opnsense.sshHostKey is not recorded and applies arm no revert timer; put what \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` prints on OPNsense there.`,
    });
  }
  const probe = opts.probeApi ?? probeOpnsenseApi;
  const timeoutMs = opts.apiRequestTimeoutMs ?? 10_000;
  const reach = ctx.reach ?? { client: { host: target.host, port: target.port }, where: `${target.host}:${target.port}`, text: '' };
  const at = `${reach.where}${reach.text ? ` ${reach.text}` : ''}`;
  const answer = await waitForApi(
    () => probe({ host: reach.client.host, port: reach.client.port, fingerprint, apiKey: secrets.apiKey, apiSecret: secrets.apiSecret, timeoutMs, ...(reach.client.connectVia ? { connectVia: reach.client.connectVia } : {}) }),
    opts.apiWaitMs ?? 3 * 60_000,
  );
  if (answer !== 'ok') {
    throw new BootstrapError(
      answer === 'unauthorized'
        ? `OPNsense at ${at} refuses the API key the seed carried.`
        : `OPNsense's REST API at ${at} did not answer within ${Math.round((opts.apiWaitMs ?? 180_000) / 1000)} s after the console showed the login prompt.`,
      answer === 'unauthorized'
        ? 'Run dualwan apply again: a new seed with a new key is made and imported from the shell.'
        : reach.text
          ? `Check that the Proxmox host has ${state.proxmox?.cutover?.hostAddress ?? 'its cutover address'} on ${state.proxmox?.cutover?.bridge ?? 'the cutover bridge'} (the Proxmox stage gives it) and reaches ${reach.where}, the router's interface on that bridge (the seed puts it there).`
          : `Check that ${target.host} is the router's LAN address and that this machine can reach it (the seed puts the LAN at ${state.lan.routerAddress}).`,
    );
  }
  ui.notify({ code: 'BOOTSTRAP_API_OK', level: 'success', text: `OPNsense answers its REST API at ${at} with the new key; the factory password is refused on the console.` });

  // 5. Eject the seed CD (live on a running VM; otherwise at the next restart).
  await client.updateVmConfig(vmid, { ide2: 'none,media=cdrom' }, { what: `eject the seed CD of VM ${vmid}` });
  const after = await client.vmConfig(vmid);
  const seedCd: BootstrapReport['seedCd'] = String(after.ide2 ?? '').startsWith('none') ? 'ejected' : 'ejected-at-next-restart';
  step(seedCd === 'ejected' ? 'Ejected the seed CD.' : 'The seed CD is ejected at the next restart of the VM.');
  const seedImage = await removeSeedImage(client, ui, vm.imageStorage, volid, seedCd);

  return {
    vmid,
    seedVolume: volid,
    importedBy: dialogue.importedBy,
    device: dialogue.device,
    httpsFingerprint: fingerprint,
    sshHostKeys: dialogue.sshHostKeys,
    apiKey: secrets.apiKey,
    seedCd,
    seedImage,
    durationMs: Date.now() - started,
  };
}
