/**
 * `dualwan setup`: the questions, in order, with the host's discovered hardware as the choices, and
 * the resulting `dualwan.yaml`. The wizard talks to the person through a `Prompter` (inquirer in the
 * terminal, the obvious defaults with --yes) and the Ui port for notices; it never prints.
 *
 * Every answer is saved in the state file beside the config as soon as it is given, so a run
 * interrupted anywhere resumes with the same answers as defaults. The token secret is the one
 * answer that is never saved there: it goes to the credentials file (mode 0600) once the host
 * has accepted it.
 */
import * as fs from 'node:fs';
import type { DesiredState } from '../core/desired';
import { formatDiagnostic, type Diagnostic } from '../core/diagnostics';
import { ConfigError, CredentialsError, DualwanError, RemoteApiError, TlsPinError } from '../core/errors';
import type { Ui } from '../core/ui';
import { loadConfigText } from '../config/load';
import { buildJsonSchema } from '../config/json-schema';
import { CIDR_PATTERN, formatCidr, formatIpv4, IPV4_PATTERN, isHostAddressIn, isNetworkAddress, parseCidr, parseIpv4 } from '../config/net';
import { defaultRouterAddress } from '../config/normalize';
import { normaliseFingerprint, probeCertificate } from '../net/pinned-tls';
import { discover } from '../providers/proxmox/discovery';
import { ProxmoxClient } from '../providers/proxmox/client';
import { ProxmoxTransport } from '../providers/proxmox/transport';
import { defaultCredentialsPath, loadCredentials } from '../secrets/credentials';
import { answersFromConfig, answersToConfig, defaultAccessPointAddress, isComplete, missingAnswers, type SetupAnswers } from './answers';
import { storeCredential } from './credentials-file';
import { readExistingConfig, renderConfigDocument, writeFileAtomic } from './document';
import {
  describeNic,
  hostFacts,
  lanOverlapsHost,
  obviousBackup,
  obviousIsp,
  obviousLan,
  obviousStorage,
  selectable,
  storageChoices,
  suggestLan,
  suggestVmid,
  uplinkChoices,
  uplinkFromKey,
  uplinkKey,
  type Choice,
  type HostFacts,
} from './host-facts';
import { loadProgress, saveProgress, stateFileFor, type SetupProgress } from './state-file';

// ---------------------------------------------------------------------------------------------
// The prompter port

export type Validate = (value: string) => true | string;

export interface Prompter {
  /** False for --yes: every question takes its default, and a question without one is an error. */
  readonly interactive: boolean;
  input(q: { code: string; message: string; default?: string; validate?: Validate }): Promise<string>;
  password(q: { code: string; message: string; validate?: Validate }): Promise<string>;
  confirm(q: { code: string; message: string; default: boolean }): Promise<boolean>;
  select(q: { code: string; message: string; default?: string; choices: readonly Choice[] }): Promise<string>;
}

/** The person pressed Ctrl-C at a question. */
export class SetupInterruptedError extends DualwanError {
  constructor() {
    super('SETUP_INTERRUPTED', 'Interrupted.', { source: 'user', soft: true });
  }
}

/** --yes met a question that has no obvious answer. */
export class SetupChoiceRequiredError extends DualwanError {
  constructor(what: string, remedy: string) {
    super('SETUP_CHOICE_REQUIRED', `dualwan setup --yes cannot choose ${what} by itself.`, { source: 'user', remedy });
  }
}

/** No terminal and no --yes. */
export class SetupTtyRequiredError extends DualwanError {
  constructor(configFile: string) {
    super('TTY_REQUIRED', 'dualwan setup asks its questions in a terminal, and there is none.', {
      source: 'user',
      remedy: `Run it in a terminal, or run \`dualwan setup --yes --config ${configFile}\` to use that file (and the obvious choices for anything it leaves out) without questions; add --trust-on-first-use to pin a certificate seen for the first time.`,
    });
  }
}

/** Answers every question with its default; a question without one stops the run, naming it. */
export class DefaultsPrompter implements Prompter {
  readonly interactive = false;
  constructor(private readonly configFile: string) {}
  private need(code: string, message: string, dflt: string | undefined, choices?: readonly Choice[]): string {
    if (dflt !== undefined) return dflt;
    const key = CHOICE_KEYS[code];
    const options = choices ? selectable(choices).map((c) => `    ${c.value}  — ${c.name}`).join('\n') : '';
    throw new SetupChoiceRequiredError(
      `${message.replace(/[?:]\s*$/, '')} (${code})`,
      `Write it in ${this.configFile}${key ? ` as ${key}` : ''}, or run \`dualwan setup\` in a terminal to choose.${options ? `\n  The choices:\n${options}` : ''}`,
    );
  }
  async input(q: { code: string; message: string; default?: string; validate?: Validate }): Promise<string> {
    const v = this.need(q.code, q.message, q.default);
    const ok = q.validate?.(v) ?? true;
    if (ok !== true) throw new SetupChoiceRequiredError(`${q.message.replace(/[?:]\s*$/, '')}: ${v} is not usable (${ok})`, `Correct it in ${this.configFile}${CHOICE_KEYS[q.code] ? ` (${CHOICE_KEYS[q.code]})` : ''}.`);
    return v;
  }
  async password(q: { code: string; message: string }): Promise<string> {
    return this.need(q.code, q.message, undefined);
  }
  async confirm(q: { default: boolean }): Promise<boolean> {
    return q.default;
  }
  async select(q: { code: string; message: string; default?: string; choices: readonly Choice[] }): Promise<string> {
    return this.need(q.code, q.message, q.default, q.choices);
  }
}

/** Where each question's answer lives in dualwan.yaml, for --yes errors. */
const CHOICE_KEYS: Readonly<Record<string, string>> = {
  SETUP_HOST: 'proxmox.host',
  SETUP_PORT: 'proxmox.port',
  SETUP_TOKEN_ID: 'proxmox.tokenId',
  SETUP_NODE: 'proxmox.node',
  SETUP_ISP: 'wans[0].uplink',
  SETUP_LAN: 'lan.uplink',
  SETUP_BACKUP: 'wans[1].uplink',
  SETUP_DISK_STORAGE: 'vm.diskStorage',
  SETUP_IMAGE_STORAGE: 'vm.imageStorage',
  SETUP_VMID: 'vm.vmid',
  SETUP_PROFILE: 'policy.mode',
  SETUP_LAN_SUBNET: 'lan.subnet',
  SETUP_ROUTER_ADDRESS: 'lan.routerAddress',
  SETUP_AP_ADDRESS: 'accessPoint.address',
};

// ---------------------------------------------------------------------------------------------

export interface WizardOptions {
  readonly configFile: string;
  readonly prompter: Prompter;
  readonly ui: Ui;
  readonly env: NodeJS.ProcessEnv;
  /** --credentials; default $DUALWAN_CREDENTIALS or ~/.config/dualwan/credentials. */
  readonly credentialsFile?: string;
  readonly trustOnFirstUse: boolean;
  /** Values given on the command line; they win over saved answers. */
  readonly given?: Pick<SetupAnswers, 'host' | 'port' | 'tokenId'>;
  /**
   * The guarded cutover exists: the management NIC may then be offered for passthrough. Default:
   * whether this version's schema has proxmox.cutover.
   */
  readonly cutover?: boolean;
}

export interface WizardResult {
  readonly state: DesiredState;
  readonly progress: SetupProgress;
  readonly progressFile: string;
  /** The existing file was complete and used as it is. */
  readonly reused: boolean;
  /** Warnings the config rules found in the written file. */
  readonly warnings: readonly Diagnostic[];
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const TOKEN_ID = /^[^\s:@!/=]+@[A-Za-z][A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]+$/;
const SECRET_NAME = 'DUALWAN_PROXMOX_TOKEN_SECRET';
/** Attempts at a question whose answer the host or the rules refuse, before giving up. */
const MAX_ATTEMPTS = 4;

const validateHost: Validate = (v) => (HOST_NAME.test(v.trim()) ? true : 'a host name or IPv4 address, without https:// or a port');
const validatePort: Validate = (v) => (/^\d+$/.test(v.trim()) && Number(v) >= 1 && Number(v) <= 65535 ? true : 'a port number, 1–65535 (Proxmox uses 8006)');
const validateTokenId: Validate = (v) => (TOKEN_ID.test(v.trim()) ? true : 'user@realm!name, e.g. dualwan@pve!setup (the id only, not the secret)');
const validateSubnet: Validate = (v) => {
  const t = v.trim();
  if (!CIDR_PATTERN.test(t)) return 'an IPv4 subnet such as 192.168.10.0/24';
  const prefix = parseCidr(t)!.prefix;
  if (prefix < 8 || prefix > 30) return 'a prefix length between /8 and /30';
  return isNetworkAddress(t) ? true : `the network address, e.g. ${t.split('/')[0]!.replace(/\.\d+$/, '.0')}/${prefix}`;
};
const addressIn = (subnet: string, taken: readonly string[] = []): Validate => (v) => {
  const t = v.trim();
  const ip = parseIpv4(t);
  const r = parseCidr(subnet);
  if (ip === undefined || !IPV4_PATTERN.test(t)) return 'an IPv4 address such as 192.168.10.1';
  if (r && !isHostAddressIn(r, ip)) return `an address inside ${subnet}, not its network or broadcast address`;
  if (taken.includes(t)) return `${t} is already the router's address`;
  return true;
};

/** A question whose choices come from the host: refused with a remedy when the host offers nothing to choose. */
async function choose(p: Prompter, q: { code: string; message: string; default?: string; choices: readonly Choice[] }, none: { what: string; remedy: string }): Promise<string> {
  if (!selectable(q.choices).length) throw new DualwanError('SETUP_NOTHING_TO_CHOOSE', `${none.what}.`, { source: 'user', remedy: none.remedy });
  return p.select(q);
}

/** A default that is one of the selectable choices, else the fallback. */
function pick(choices: readonly Choice[], ...candidates: (string | undefined)[]): string | undefined {
  const ok = new Set(selectable(choices).map((c) => c.value));
  return candidates.find((c) => c !== undefined && ok.has(c));
}

function mtimeMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

export async function runSetupWizard(o: WizardOptions): Promise<WizardResult> {
  const { prompter: p, ui } = o;
  const progressFile = stateFileFor(o.configFile);
  const saved = loadProgress(progressFile);
  const existing = readExistingConfig(o.configFile);
  const fromFile = existing ? answersFromConfig(existing.value) : {};
  // The newer of the two wins: answers saved after the file was written, or the file edited later.
  const savedIsNewer = saved?.updatedAt !== undefined && Date.parse(saved.updatedAt) > mtimeMs(o.configFile);
  const defaults: SetupAnswers = savedIsNewer ? { ...fromFile, ...saved!.answers } : { ...saved?.answers, ...fromFile };
  Object.assign(defaults, Object.fromEntries(Object.entries(o.given ?? {}).filter(([, v]) => v !== undefined)));
  const progress: SetupProgress = { formatVersion: 1, answers: { ...defaults }, written: saved?.written, applied: saved?.applied };

  if (saved || existing) {
    ui.notify({
      code: 'SETUP_RESUME',
      level: 'info',
      text: o.prompter.interactive
        ? `Resuming: the answers of the earlier run${existing ? ` and the values in ${o.configFile}` : ''} are offered as defaults.`
        : `Using ${existing ? `the values in ${o.configFile}` : 'the answers of the earlier run'}${saved && existing ? ' and the answers of the earlier run' : ''}; what is missing is taken from discovery where the choice is unambiguous.`,
    });
  }

  // A complete, valid file: use it as it is, or go through the questions with its values.
  if (existing) {
    const r = loadConfigText(existing.text, o.configFile);
    if (r.state) {
      const reuse = await p.select({
        code: 'SETUP_REUSE',
        message: `${o.configFile} is complete. What now?`,
        default: 'reuse',
        choices: [
          { value: 'reuse', name: 'Use it as it is and go on to the plan' },
          { value: 'again', name: 'Go through the questions, with its values as defaults' },
        ],
      });
      if (reuse === 'reuse') {
        const credFile = o.credentialsFile ?? defaultCredentialsPath(o.env);
        const secret = await ensureSecret(o, r.state.proxmox?.tokenId ?? '', credFile);
        // Checked by the apply that follows (a refused token stops it with the remedy).
        if (secret.typed) storeCredential(credFile, SECRET_NAME, secret.value);
        progress.written = true;
        saveProgress(progressFile, progress);
        return { state: r.state, progress, progressFile, reused: true, warnings: r.diagnostics.filter((d) => d.severity === 'warning') };
      }
    } else if (!p.interactive && !existing.value) {
      throw new ConfigError(o.configFile, r.diagnostics);
    }
  }

  const a = progress.answers;
  const remember = <K extends keyof SetupAnswers>(key: K, value: SetupAnswers[K]): void => {
    a[key] = value;
    saveProgress(progressFile, progress);
  };

  // --- Connection, token, certificate ---------------------------------------------------------
  if (!p.interactive) {
    const missing = (['host', 'tokenId'] as const).filter((k) => !defaults[k]);
    if (missing.length) {
      throw new SetupChoiceRequiredError(
        `the Proxmox ${missing.map((k) => (k === 'host' ? 'host' : 'API token id')).join(' and the ')}`,
        `Write them in ${o.configFile} (proxmox: {host: 192.168.1.10, tokenId: dualwan@pve!setup}) or pass --host and --token-id; the token secret goes in the environment (${SECRET_NAME}) or the credentials file.`,
      );
    }
  }
  let conn: { transport: ProxmoxTransport; client: ProxmoxClient } | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      const host = (await p.input({ code: 'SETUP_HOST', message: 'Proxmox VE host (name or IPv4 address):', default: a.host, validate: validateHost })).trim();
      remember('host', host);
      const port = Number(await p.input({ code: 'SETUP_PORT', message: 'Proxmox VE API port:', default: String(a.port ?? 8006), validate: validatePort }));
      remember('port', port);
      const tokenId = (await p.input({ code: 'SETUP_TOKEN_ID', message: 'API token id (user@realm!name; docs/proxmox-token.md makes one):', default: a.tokenId, validate: validateTokenId })).trim();
      remember('tokenId', tokenId);
      try {
        const fingerprint = await confirmCertificate(o, host, port, a.fingerprint);
        remember('fingerprint', fingerprint);
        conn = await connectWithSecret(o, host, port, tokenId, fingerprint);
        break;
      } catch (e) {
        if (!p.interactive || attempt >= MAX_ATTEMPTS || !(e instanceof DualwanError) || e.code !== 'SETUP_UNREACHABLE') throw e;
        ui.notify({ code: e.code, level: 'error', text: `${e.message}\n  remedy: ${e.remedy ?? ''}` });
      }
    }

    // --- Node and discovery -------------------------------------------------------------------
    const nodes = (await conn.client.nodes()).map((n) => n.node).sort();
    const nodeChoices = nodes.map((n) => ({ value: n, name: n }));
    const node = await choose(
      p,
      { code: 'SETUP_NODE', message: 'Node the router VM runs on:', default: pick(nodeChoices, a.node, nodes.length === 1 ? nodes[0] : undefined), choices: nodeChoices },
      { what: `The token ${a.tokenId} sees no node`, remedy: 'Grant the token Sys.Audit on /nodes (docs/proxmox-token.md has the role).' },
    );
    remember('node', node);
    const facts = hostFacts(await discover(new ProxmoxClient(conn.transport, node), a.host!));
    ui.notify({ code: 'SETUP_DISCOVERY', level: 'info', text: renderFacts(facts, o.cutover ?? cutoverSupported()) });

    await askUplinks(o, facts, a, remember);
    await askCutover(o, facts, a, remember);
    await askVm(o, facts, a, remember);
    await askProfile(p, a, remember);

    // --- LAN addressing, checked by the config rules -------------------------------------------
    for (let attempt = 1; ; attempt++) {
      await askLan(o, facts, a, remember);
      if (!isComplete(a)) throw new SetupChoiceRequiredError(missingAnswers(a).join(', '), `Answer them in a terminal, or write them in ${o.configFile}.`);
      const text = renderConfigDocument(answersToConfig(a), existing?.text);
      const r = loadConfigText(text, o.configFile);
      for (const d of r.diagnostics) ui.notify({ code: d.code, level: d.severity === 'error' ? 'error' : 'warn', text: formatDiagnostic(d), data: d });
      if (r.state) {
        writeFileAtomic(o.configFile, text);
        progress.written = true;
        progress.applied = false;
        saveProgress(progressFile, progress);
        ui.notify({ code: 'SETUP_WRITTEN', level: 'success', text: `Wrote ${o.configFile} (commented; no secret in it).` });
        return { state: r.state, progress, progressFile, reused: false, warnings: r.diagnostics.filter((d) => d.severity === 'warning') };
      }
      const lanProblem = r.diagnostics.some((d) => d.severity === 'error' && /^(lan|accessPoint|wans\.\d+\.upstreamSubnet)/.test(d.path ?? ''));
      if (!p.interactive || !lanProblem || attempt >= MAX_ATTEMPTS) throw new ConfigError(`${o.configFile} (not written)`, r.diagnostics);
      ui.notify({ code: 'SETUP_LAN_AGAIN', level: 'info', text: 'Choose the LAN addresses again (the file was not written).' });
    }
  } finally {
    await conn?.transport.close();
  }
}

function renderFacts(f: HostFacts, cutover: boolean): string {
  const lines = [`Node ${f.node}: management on ${f.management.bridge ?? '?'} (${f.management.address ?? '?'}).`, 'NICs:'];
  const mark = cutover ? '  [management: passed through only with the guarded cutover]' : '  [management: not offered for passthrough]';
  for (const n of f.nics) lines.push(`  ${describeNic(n)}${n.management ? mark : ''}`);
  if (!f.nics.length) lines.push('  (none found)');
  const usb = f.usb.map((u) => `  ${u.label}${u.likelyTether ? '  [phone/modem]' : ''}`);
  lines.push('USB devices:', ...(usb.length ? usb : ['  (none)']));
  return lines.join('\n');
}

async function confirmCertificate(o: WizardOptions, host: string, port: number, known: string | undefined): Promise<string> {
  let cert;
  try {
    cert = await probeCertificate(host, port);
  } catch (e) {
    throw new DualwanError('SETUP_UNREACHABLE', `Cannot reach Proxmox VE at ${host}:${port}: ${(e as Error).message}.`, {
      source: 'user',
      remedy: 'Check the address and port (the web UI address without https://, port 8006), and that this machine can reach the host.',
    });
  }
  const fp = normaliseFingerprint(cert.fingerprint256);
  if (known && normaliseFingerprint(known) === fp) {
    o.ui.notify({ code: 'SETUP_CERT_KNOWN', level: 'success', text: `The certificate of ${host}:${port} is the one you confirmed before (SHA-256 ${fp}).` });
    return fp;
  }
  o.ui.notify({
    code: known ? 'SETUP_CERT_CHANGED' : 'TLS_FIRST_CONTACT',
    level: known ? 'warn' : 'info',
    text: `${known ? `The certificate of ${host}:${port} is NOT the one confirmed before (${known}).\n` : `First contact with Proxmox VE at ${host}:${port}.\n`}  certificate: ${cert.subject}\n  issued by:   ${cert.issuer}\n  valid until: ${cert.validTo}\n  SHA-256:     ${fp}\nCompare it with the output of \`pvenode cert info\` on the host (the fingerprint of pveproxy-ssl.pem, or pve-ssl.pem).`,
    data: { fingerprint: fp },
  });
  if (!o.prompter.interactive) {
    if (o.trustOnFirstUse && !known) return fp;
    throw new TlsPinError(
      known ? `The certificate of Proxmox VE at ${host}:${port} changed since it was confirmed; nothing was sent to it.` : `The certificate of Proxmox VE at ${host}:${port} (SHA-256 ${fp}) is not pinned yet; nothing was sent to it.`,
      known ? 'Compare the new fingerprint with `pvenode cert info`, then put it in proxmox.fingerprint or run `dualwan setup` in a terminal.' : 'Compare it with `pvenode cert info` on the host, then pass --trust-on-first-use (or write it in proxmox.fingerprint).',
    );
  }
  const ok = await o.prompter.confirm({ code: 'SETUP_CERT', message: `Does it match \`pvenode cert info\`? Pin this certificate for ${host}:${port}?`, default: false });
  if (!ok) throw new TlsPinError(`The certificate of Proxmox VE at ${host}:${port} was not trusted; nothing was sent to it.`, 'Check the fingerprint on the host with `pvenode cert info` and run `dualwan setup` again.');
  return fp;
}

/** The token secret: from the environment or the credentials file, else asked (and stored once the host accepts it). */
async function connectWithSecret(o: WizardOptions, host: string, port: number, tokenId: string, fingerprint: string): Promise<{ transport: ProxmoxTransport; client: ProxmoxClient }> {
  const credFile = o.credentialsFile ?? defaultCredentialsPath(o.env);
  let secret = await ensureSecret(o, tokenId, credFile);
  for (let attempt = 1; ; attempt++) {
    const transport = new ProxmoxTransport({ host, port, tokenId, tokenSecret: secret.value, fingerprint });
    const client = new ProxmoxClient(transport, 'pve');
    try {
      await client.version();
      if (secret.typed) {
        storeCredential(credFile, SECRET_NAME, secret.value);
        o.ui.notify({ code: 'SETUP_SECRET_STORED', level: 'success', text: `Stored the token secret in ${credFile} (mode 0600); it is nowhere else.` });
      }
      return { transport, client };
    } catch (e) {
      await transport.close();
      const refused = e instanceof RemoteApiError && (e.status === 401 || e.status === 403);
      if (!refused) {
        if (e instanceof RemoteApiError && e.status === undefined) {
          throw new DualwanError('SETUP_UNREACHABLE', `Proxmox VE at ${host}:${port} did not answer: ${e.message}.`, { source: 'user', remedy: 'Check the address and port, then run again.', cause: e });
        }
        throw e;
      }
      const why = `Proxmox VE refused the token ${tokenId} (HTTP ${e.status}).`;
      if (!o.prompter.interactive || attempt >= MAX_ATTEMPTS) {
        throw new CredentialsError(why, `Check the token id and its secret (Datacenter → Permissions → API Tokens; docs/proxmox-token.md), then set ${SECRET_NAME} or run \`dualwan setup\` in a terminal.`);
      }
      o.ui.notify({ code: 'SETUP_TOKEN_REFUSED', level: 'error', text: `${why} Type the secret again.` });
      secret = { value: await askSecret(o, tokenId), typed: true };
    }
  }
}

async function askSecret(o: WizardOptions, tokenId: string): Promise<string> {
  return (
    await o.prompter.password({
      code: 'SETUP_TOKEN_SECRET',
      message: `Secret of the token ${tokenId} (not shown; stored only in the 0600 credentials file):`,
      validate: (v) => (v.trim().length >= 8 && !/\s/.test(v.trim()) ? true : 'the token secret Proxmox showed once when the token was made (a UUID)'),
    })
  ).trim();
}

async function ensureSecret(o: WizardOptions, tokenId: string, file: string): Promise<{ value: string; typed: boolean }> {
  const creds = loadCredentials({ env: o.env, file });
  const have = creds.get(SECRET_NAME);
  if (have) {
    const use = await o.prompter.confirm({ code: 'SETUP_SECRET_REUSE', message: `Use the token secret from ${creds.origin(SECRET_NAME) ?? file}?`, default: true });
    if (use) return { value: have, typed: false };
  } else if (!o.prompter.interactive) {
    creds.require(SECRET_NAME, `The Proxmox API token ${tokenId}`);
  }
  return { value: await askSecret(o, tokenId), typed: true };
}

type Remember = <K extends keyof SetupAnswers>(key: K, value: SetupAnswers[K]) => void;

/** Whether this version of dualwan can move the management NIC into the VM (proxmox.cutover in the schema). */
export function cutoverSupported(): boolean {
  const proxmox = (buildJsonSchema() as { properties?: Record<string, { properties?: Record<string, unknown> }> }).properties?.proxmox;
  return !!proxmox?.properties?.cutover;
}

async function askUplinks(o: WizardOptions, f: HostFacts, a: SetupAnswers, remember: Remember): Promise<void> {
  const p = o.prompter;
  const cutover = o.cutover ?? cutoverSupported();
  const ispChoices = uplinkChoices(f, { taken: [], usb: false, cutover });
  const noPort = (side: string) => ({
    what: `No NIC or bridge of node ${f.node} is left for ${side}`,
    remedy: 'Add a NIC (a USB NIC is fine for the backup), or create a Proxmox bridge for that side, then run dualwan setup again.',
  });
  const isp = await choose(p, {
    code: 'SETUP_ISP',
    message: 'Which NIC goes to the ISP modem (WAN 1)?',
    default: pick(ispChoices, a.isp && uplinkKey(a.isp), obviousIsp(f, cutover)),
    choices: ispChoices,
  }, noPort('the ISP modem'));
  remember('isp', uplinkFromKey(isp));
  const lanChoices = uplinkChoices(f, { taken: [isp], usb: false, cutover });
  const lan = await choose(p, {
    code: 'SETUP_LAN',
    message: 'Which port goes to the TP-Link (the LAN)?',
    default: pick(lanChoices, a.lan && uplinkKey(a.lan), obviousLan(f, [isp], cutover)),
    choices: lanChoices,
  }, noPort('the TP-Link'));
  remember('lan', uplinkFromKey(lan));
  const backupChoices = uplinkChoices(f, { taken: [isp, lan], usb: true, cutover });
  const backup = await choose(p, {
    code: 'SETUP_BACKUP',
    message: 'The backup WAN (WAN 2): a phone tethering over USB, a second NIC, or a bridge?',
    default: pick(backupChoices, a.backup && uplinkKey(a.backup), obviousBackup(f, [isp, lan], cutover)),
    choices: backupChoices,
  }, { what: `Nothing on node ${f.node} can be the backup WAN: no USB device, and no NIC or bridge left`, remedy: 'Plug the phone into the host and switch USB tethering on (or add a NIC), then run dualwan setup again.' });
  const up = uplinkFromKey(backup);
  remember('backup', up);
  if (up?.type === 'usb-tether') {
    const u = f.usb.find((x) => x.vendorId === up.vendorId && x.productId === up.productId);
    remember('backupLabel', u?.label.replace(/\s*\([0-9a-f]{4}:[0-9a-f]{4}\)$/i, ''));
  }
}

/** When a chosen NIC carries the management address: where the host keeps an address afterwards. */
async function askCutover(o: WizardOptions, f: HostFacts, a: SetupAnswers, remember: Remember): Promise<void> {
  const chosen = [a.isp, a.lan, a.backup].filter((u) => u?.type === 'pci-nic').map((u) => (u as { pci: string }).pci);
  const mgmt = f.nics.find((n) => n.management && chosen.includes(n.pci));
  if (!mgmt) {
    if (a.cutover) remember('cutover', undefined);
    return;
  }
  const p = o.prompter;
  o.ui.notify({
    code: 'SETUP_CUTOVER',
    level: 'warn',
    text: `${mgmt.pci} carries the host's management address ${f.management.address ?? ''}. It goes to the router VM through the guarded cutover (docs/cutover.md): the host keeps an address on a bridge without ports that the VM joins, and a dead-man timer on the host undoes the change unless dualwan reaches the host through the router within minutes. It needs SSH to the host (DUALWAN_SSH_PRIVATE_KEY_FILE).`,
  });
  const bridge = (await p.input({ code: 'SETUP_CUTOVER_BRIDGE', message: 'Bridge without ports for the host and the router:', default: a.cutover?.bridge ?? 'vmbr1', validate: (v) => (/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/.test(v.trim()) ? true : 'a bridge name such as vmbr1') })).trim();
  const hostAddress = (
    await p.input({
      code: 'SETUP_CUTOVER_ADDRESS',
      message: "The host's address on it afterwards, with prefix:",
      default: a.cutover?.hostAddress ?? '10.10.99.2/24',
      validate: (v) => {
        const r = parseCidr(v.trim());
        const ip = parseIpv4(v.trim().split('/')[0] ?? '');
        return r && ip !== undefined && isHostAddressIn(r, ip) ? true : 'a host address with its prefix, e.g. 10.10.99.2/24';
      },
    })
  ).trim();
  const subnet = parseCidr(hostAddress)!;
  const gateway = (
    await p.input({
      code: 'SETUP_CUTOVER_GATEWAY',
      message: "The router's address on it (the host's new gateway):",
      default: a.cutover?.gateway ?? formatIpv4(subnet.first + 1),
      validate: (v) => {
        const ip = parseIpv4(v.trim());
        return ip !== undefined && isHostAddressIn(subnet, ip) && v.trim() !== hostAddress.split('/')[0] ? true : `an address inside ${formatCidr(subnet)}, not the host's`;
      },
    })
  ).trim();
  remember('cutover', { bridge, hostAddress, gateway });
}

async function askVm(o: WizardOptions, f: HostFacts, a: SetupAnswers, remember: Remember): Promise<void> {
  const p = o.prompter;
  const disk = storageChoices(f, 'images');
  remember(
    'diskStorage',
    await choose(p, { code: 'SETUP_DISK_STORAGE', message: 'Storage for the VM disk:', default: pick(disk, a.diskStorage, obviousStorage(f, 'images')), choices: disk }, {
      what: `No active storage of node ${f.node} holds VM disks (content "images")`,
      remedy: 'Add "Disk image" to the content of a storage (Datacenter → Storage), or grant the token Datastore.Audit on /storage, then run dualwan setup again.',
    }),
  );
  const iso = storageChoices(f, 'iso');
  remember(
    'imageStorage',
    await choose(p, { code: 'SETUP_IMAGE_STORAGE', message: 'Storage for the OPNsense image (uploaded as content "import") and the seed CD (content "iso"):', default: pick(iso, a.imageStorage, obviousStorage(f, 'iso')), choices: iso }, {
      what: `No active storage of node ${f.node} holds ISO images (content "iso"), which the bootstrap's seed CD needs`,
      remedy: 'Add "ISO image" to the content of a storage such as local (Datacenter → Storage), or grant the token Datastore.Audit on /storage, then run dualwan setup again.',
    }),
  );
  const foreign = new Map(f.vms.filter((v) => !v.owned).map((v) => [v.vmid, v.name ?? '']));
  const dflt = a.vmid !== undefined && !foreign.has(a.vmid) ? a.vmid : suggestVmid(f);
  const vmid = await p.input({
    code: 'SETUP_VMID',
    message: 'VM id of the router:',
    default: String(dflt),
    validate: (v) => {
      if (!/^\d+$/.test(v.trim()) || Number(v) < 100 || Number(v) > 999_999_999) return 'a VM id, 100–999999999';
      return foreign.has(Number(v)) ? `VM ${v} (${foreign.get(Number(v))}) exists and dualwan did not create it; the first free id is ${suggestVmid(f)}` : true;
    },
  });
  remember('vmid', Number(vmid));
}

async function askProfile(p: Prompter, a: SetupAnswers, remember: Remember): Promise<void> {
  const profile = await p.select({
    code: 'SETUP_PROFILE',
    message: 'How are the two connections used?',
    default: a.profile ?? 'failover',
    choices: [
      { value: 'failover', name: 'Failover: the ISP while it is up, the backup only while it is down (tiers 1 and 2)' },
      { value: 'loadbalance', name: 'Load balance: connections spread over both by weight, each taking over when the other fails' },
    ],
  });
  remember('profile', profile === 'loadbalance' ? 'loadbalance' : 'failover');
  if (profile === 'loadbalance') {
    const w = await p.select({
      code: 'SETUP_WEIGHT',
      message: 'Share of connections, ISP : backup',
      default: String(a.ispWeight ?? 2),
      choices: [
        { value: '1', name: '1 : 1' },
        { value: '2', name: '2 : 1' },
        { value: '3', name: '3 : 1' },
      ],
    });
    remember('ispWeight', Number(w));
  }
}

async function askLan(o: WizardOptions, f: HostFacts, a: SetupAnswers, remember: Remember): Promise<void> {
  const p = o.prompter;
  const subnet = (await p.input({ code: 'SETUP_LAN_SUBNET', message: 'LAN subnet (the home network behind the router):', default: a.lanSubnet ?? suggestLan(f), validate: validateSubnet })).trim();
  remember('lanSubnet', subnet);
  const overlaps = lanOverlapsHost(f, subnet);
  if (overlaps.length) {
    o.ui.notify({
      code: 'SETUP_LAN_OVERLAPS_HOST',
      level: 'warn',
      text: `${subnet} overlaps the network the host is on today (${overlaps.join(', ')}), most likely the modem's or the TP-Link's: devices there and on the new LAN would collide. A subnet such as ${suggestLan(f)} avoids it.`,
    });
  }
  const inside = (v: string | undefined) => v !== undefined && addressIn(subnet)(v) === true;
  const router = (await p.input({ code: 'SETUP_ROUTER_ADDRESS', message: "Router's address on the LAN:", default: inside(a.routerAddress) ? a.routerAddress : defaultRouterAddress(subnet), validate: addressIn(subnet) })).trim();
  remember('routerAddress', router);
  const apDefault = inside(a.accessPointAddress) && a.accessPointAddress !== router ? a.accessPointAddress : defaultAccessPointAddress(subnet, router);
  const ap = (await p.input({ code: 'SETUP_AP_ADDRESS', message: 'Fixed address for the TP-Link as access point (outside the DHCP range):', default: apDefault, validate: addressIn(subnet, [router]) })).trim();
  remember('accessPointAddress', ap);
  const model = (await p.input({ code: 'SETUP_AP_MODEL', message: 'TP-Link model as on its label, e.g. Archer C6 (Enter to skip):', default: a.accessPointModel ?? '' })).trim();
  remember('accessPointModel', model || undefined);
}
