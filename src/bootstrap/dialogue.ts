import { DualwanError } from '../core/errors';
import { ExpectError, type Expect } from './expect';

/**
 * What dualwan answers on OPNsense's serial console during the first boot. Every prompt is one
 * that opnsense/core 26.7.2 prints (shared/upstream/opnsense/console.md, src/sbin/opnsense-importer,
 * src/etc/inc/console.inc, src/opnsense/scripts/shell/banner.php, FreeBSD getty/login):
 *
 * 1. `Press any key to start the configuration importer: .......` (one dot a second, seven) → a key;
 *    the device list and `Select device to import from (e.g. ada0) or leave blank to exit: ` → the
 *    CD device the list shows (`(cd0,pass1)`) → `Restoring config.xml...done.`.
 * 2. If the importer prompt went by before we were connected (the VM was started earlier, or a slow
 *    connection), the box boots with the factory config: log in with the factory password, choose
 *    `8) Shell`, run `opnsense-importer` (same questions), then `reboot`; the importer prompt does
 *    not come back because /conf/config.xml now exists.
 * 3. At `login:` the banner shows the web GUI's certificate fingerprint (`HTTPS: SHA256 …`) and the
 *    SSH host keys: read through the authenticated Proxmox console, they are pinned without trust
 *    on first use.
 * 4. The factory password must be refused (`Login incorrect`), the new one accepted (the menu's
 *    `Enter an option:`), then `0) Logout`.
 * Live/installer media are refused with a remedy: they need the installer, the nano image does not.
 */
export interface DialogueTimeouts {
  /** Power on → importer prompt or login prompt (a slow first boot grows the disk). */
  readonly bootMs: number;
  /** Key → device question (ZFS probe). */
  readonly deviceMs: number;
  /** Device → import result. */
  readonly importMs: number;
  /** Import or reboot → login prompt. */
  readonly loginMs: number;
  /** One answer at the login (Password:, Login incorrect, menu). */
  readonly replyMs: number;
}

export const DEFAULT_DIALOGUE_TIMEOUTS: DialogueTimeouts = { bootMs: 10 * 60_000, deviceMs: 2 * 60_000, importMs: 2 * 60_000, loginMs: 10 * 60_000, replyMs: 60_000 };

export interface BannerFacts {
  /** "AA:BB:…" (SHA-256 of the web GUI certificate). */
  readonly httpsFingerprint?: string;
  readonly sshHostKeys: readonly { readonly type: string; readonly fingerprint: string }[];
}

export interface DialogueResult extends BannerFacts {
  /** How the seed got in: the boot-time prompt, or the importer run from the shell after a missed prompt. */
  readonly importedBy: 'boot-prompt' | 'shell';
  readonly device: string;
  readonly factoryPasswordRefused: true;
  readonly newPasswordAccepted: true;
}

export interface DialogueOptions {
  readonly rootPassword: string;
  readonly factoryPassword: string;
  readonly timeouts?: Partial<DialogueTimeouts>;
  readonly progress?: (message: string) => void;
}

const IMPORTER = /Press any key to start the configuration importer:/;
const DEVICE_PROMPT = /Select device to import from \(e\.g\. [^)]*\) or leave blank to exit: ?/;
const LOGIN = /(?:^|\n)login: ?/;
const LIVE = /running in live mode from install media/;
/** SeaBIOS when no drive holds boot code (inferred: SeaBIOS boot.c, printed on the serial line with vga: serial0). */
const NO_BOOT = /No bootable device/;
const MENU = /Enter an option: ?/;
const SHELL = /(?:^|\n)[^\n]*@[^\n]*[#%$] ?$/;
const PASSWORD = /Password: ?/;
const INCORRECT = /Login incorrect/;

export class BootstrapConsoleError extends DualwanError {
  readonly screen: readonly string[];
  constructor(message: string, screen: readonly string[], remedy: string) {
    const shown = screen.length ? screen.map((l) => `    | ${l}`).join('\n') : '    (nothing on the screen)';
    super('BOOTSTRAP_CONSOLE', `${message}\n  last lines on the console:\n${shown}`, { source: 'remote', remedy });
    this.screen = screen;
  }
}

/** Reads the banner printed above `login:` and the console menu. */
export function parseBanner(text: string): BannerFacts {
  const https = /HTTPS:\s+sha256\s+((?:[0-9a-f]{2}\s+){31}[0-9a-f]{2})(?![0-9a-f])/i.exec(text);
  const ssh = [...text.matchAll(/SSH:\s+SHA256\s+([A-Za-z0-9+/]{43})=?\s+\(([A-Z0-9-]+)\)/g)].map((m) => ({ type: m[2]!, fingerprint: `SHA256:${m[1]}` }));
  return {
    ...(https ? { httpsFingerprint: https[1]!.trim().split(/\s+/).map((p) => p.toUpperCase()).join(':') } : {}),
    sshHostKeys: ssh,
  };
}

/** The CD devices in `camcontrol devlist` output, in order: `(cd0,pass1)` → cd0. */
export function cdDevices(devlist: string): string[] {
  return [...devlist.matchAll(/\((?:[a-z]+\d+,)*(cd\d+)(?:,[a-z]+\d+)*\)/g)].map((m) => m[1]!);
}

export async function runImporterDialogue(x: Expect, o: DialogueOptions): Promise<DialogueResult> {
  const t = { ...DEFAULT_DIALOGUE_TIMEOUTS, ...o.timeouts };
  const say = o.progress ?? (() => undefined);

  const first = await x.expect(
    'first boot: wait for the config importer',
    [
      { name: 'importer', re: IMPORTER },
      { name: 'device', re: DEVICE_PROMPT },
      { name: 'login', re: LOGIN },
      { name: 'live', re: LIVE },
      { name: 'no-boot', re: NO_BOOT },
    ],
    t.bootMs,
    'The VM did not reach the importer or a login prompt. Check in the Proxmox console that it boots from the OPNsense nano image (vm-templates/opnsense.yaml) with serial0: socket.',
  );
  if (first.name === 'live') throw liveMedia(x);
  if (first.name === 'no-boot') {
    throw new BootstrapConsoleError(
      'The VM has nothing to boot: its disk holds no OPNsense (the firmware found no bootable device).',
      x.lastLines(),
      'dualwan imports the VM disk from the nano image only when it creates the VM, so this VM was made another way (by hand, or by an earlier dualwan that left its disk empty). Remove the VM in Proxmox (it holds nothing yet) and run dualwan apply again: it uploads the image and creates the VM with its disk imported (docs/bootstrap.md, "The boot disk").',
    );
  }

  let importedBy: DialogueResult['importedBy'] = 'boot-prompt';
  let device: string;
  let loginText = '';
  if (first.name === 'importer' || first.name === 'device') {
    say('the configuration importer is asking; answering');
    if (first.name === 'importer') x.send(' ');
    device = await importFromPrompt(x, t, first.name === 'device' ? first.before : undefined);
    say(`config.xml restored from ${device}; waiting for the boot to finish`);
    const login = await x.expect('boot with the imported configuration', [{ name: 'login', re: LOGIN }, { name: 'live', re: LIVE }], t.loginMs);
    if (login.name === 'live') throw liveMedia(x);
    loginText = login.before;
  } else {
    importedBy = 'shell';
    say('the importer prompt went by before the console was connected; importing from the shell instead');
    device = await importFromShell(x, t, o.factoryPassword);
    say(`config.xml restored from ${device}; rebooting into it`);
    const login = await x.expect('reboot into the imported configuration', [{ name: 'login', re: LOGIN }], t.loginMs);
    loginText = login.before;
  }

  const banner = parseBanner(loginText);
  say('checking that the factory password is refused');
  const factory = await tryLogin(x, t, o.factoryPassword, 'log in with the factory password (must be refused)');
  if (factory !== 'refused') {
    if (factory === 'menu') x.send('0\r');
    throw new BootstrapConsoleError(
      'OPNsense still accepts the factory root password after the import: the seeded configuration did not take.',
      x.lastLines(),
      'Look at the importer messages in the Proxmox console; run dualwan apply again to repeat the bootstrap (a new seed image is made).',
    );
  }
  await x.expect('login prompt after the refused password', [{ name: 'login', re: LOGIN }], t.replyMs);
  say('checking that the new root password works');
  const fresh = await tryLogin(x, t, o.rootPassword, 'log in with the new root password');
  if (fresh !== 'menu') {
    throw new BootstrapConsoleError('OPNsense refuses the new root password that the seeded configuration sets.', x.lastLines(), 'Check the importer messages in the Proxmox console; run dualwan apply again to repeat the bootstrap.');
  }
  x.send('0\r');
  await x.expect('log out of the console', [{ name: 'login', re: LOGIN }], t.replyMs);
  return { importedBy, device, factoryPasswordRefused: true, newPasswordAccepted: true, ...banner };
}

function liveMedia(x: Expect): BootstrapConsoleError {
  return new BootstrapConsoleError(
    'The VM runs OPNsense from installer (live) media; dualwan seeds the nano image, which needs no installer.',
    x.lastLines(),
    'Use the nano image (vm-templates/opnsense.yaml: OPNsense-<version>-nano-amd64.img.bz2), or install from the DVD image by hand and import the seed from its console.',
  );
}

/** At the device question: answer the CD device the list shows, and read the outcome. */
async function importFromPrompt(x: Expect, t: DialogueTimeouts, devlistSoFar?: string): Promise<string> {
  let devlist = devlistSoFar;
  if (devlist === undefined) {
    const q = await x.expect('importer: wait for the device question', [{ name: 'device', re: DEVICE_PROMPT }], t.deviceMs);
    devlist = q.before;
  }
  const cds = cdDevices(devlist);
  const device = cds[0];
  if (!device) {
    x.send('\r'); // leave the importer; the box boots on with its factory config
    throw new BootstrapConsoleError(
      'The importer lists no CD device: the seed image is not attached to the VM.',
      x.lastLines(),
      'Check the VM\'s ide2 (media=cdrom) in the Proxmox GUI, then run dualwan apply again.',
    );
  }
  x.send(`${device}\r`);
  const r = await x.expect(
    `importer: import from ${device}`,
    [
      { name: 'restored', re: /Restoring config\.xml\.\.\.done\./ },
      { name: 'no-layout', re: /No known partition layout was found for '[^']*'\./ },
      { name: 'not-mounted', re: /The device could not be mounted\./ },
      { name: 'not-found', re: /The file \/conf\/config\.xml could not be found\./ },
      { name: 'not-decrypted', re: /The file \/conf\/config\.xml could not be decrypted\./ },
    ],
    t.importMs,
  );
  if (r.name === 'restored') return device;
  // Leave the importer so the VM is not left waiting at the question, then report.
  try {
    await x.expect('importer: leave after a failure', [{ name: 'device', re: DEVICE_PROMPT }], t.deviceMs);
    x.send('\r');
  } catch (e) {
    if (!(e instanceof ExpectError)) throw e;
  }
  throw new BootstrapConsoleError(
    `The importer could not read the seed from ${device} (${r.name.replace('-', ' ')}).`,
    x.lastLines(),
    'The seed image may be damaged or not an ISO 9660 volume; run dualwan apply again to upload a fresh one.',
  );
}

type LoginOutcome = 'refused' | 'menu' | 'shell';

async function tryLogin(x: Expect, t: DialogueTimeouts, password: string, step: string): Promise<LoginOutcome> {
  x.send('root\r');
  await x.expect(`${step}: password prompt`, [{ name: 'password', re: PASSWORD }], t.replyMs);
  x.send(`${password}\r`);
  const r = await x.expect(
    step,
    [
      { name: 'refused', re: INCORRECT },
      { name: 'menu', re: MENU },
      { name: 'shell', re: SHELL },
    ],
    t.replyMs,
  );
  return r.name;
}

async function importFromShell(x: Expect, t: DialogueTimeouts, factoryPassword: string): Promise<string> {
  const outcome = await tryLogin(x, t, factoryPassword, 'log in with the factory password to import from the shell');
  if (outcome === 'refused') {
    throw new BootstrapConsoleError(
      'The importer prompt was missed and the VM does not accept the factory password: it already has a configuration dualwan did not just seed.',
      x.lastLines(),
      'If this VM was bootstrapped before, put its API key in the credentials file (DUALWAN_OPNSENSE_API_KEY/SECRET). To start afresh, destroy the VM and run dualwan apply again.',
    );
  }
  if (outcome === 'menu') x.send('8\r');
  await x.expect('open a shell from the console menu', [{ name: 'shell', re: SHELL }], t.replyMs);
  x.send('opnsense-importer\r');
  const device = await importFromPrompt(x, t);
  await x.expect('importer finished in the shell', [{ name: 'shell', re: SHELL }], t.importMs);
  x.send('reboot\r');
  return device;
}
