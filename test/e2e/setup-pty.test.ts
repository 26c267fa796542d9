import { execFile, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FAST_BOOT } from '../doubles/proxmox/opnsense-guest';
import { startBootstrapSite, type BootstrapSite } from '../doubles/proxmox/bootstrap-rig';
import { stagesFor } from '../../src/flows/stages';
import { cutoverSupported } from '../../src/setup/wizard';
import { loadPlaybookState, startSimulatedRouter, type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import type { ProxmoxDouble } from '../doubles/proxmox/server';
import { startSimulatedHost, type SimulatedHost } from '../doubles/proxmox/simulated-host';
import { netGuardEnv } from '../helpers/net-guard-env';

/**
 * `dualwan setup` driven as a person would: the BUILT binary in a real pseudo-terminal (util-linux
 * `script` allocates it), answers typed as keystrokes (text, arrow keys, Enter, Ctrl-C), the screen
 * read back. Against the doubles only: a simulated Proxmox host with a bootstrappable OPNsense guest
 * on the router VM's serial console, and the OPNsense REST double on loopback.
 */
const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'dist/src/cli/main.js');
const KEY = { enter: '\r', down: '\x1b[B', up: '\x1b[A', ctrlC: '\x03' };
// CSI/OSC sequences and the single-character escapes inquirer and listr2 use to redraw.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]|\x1b[=>78c]/g;

/** A pseudo-terminal session: what was written to the screen so far, and keystrokes to send. */
class PtySession {
  raw = '';
  /** Where the next wait starts looking: each prompt is waited for after the previous one. */
  private mark = 0;
  readonly exited: Promise<number>;
  private waiters: (() => void)[] = [];

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    const onData = (b: Buffer) => {
      this.raw += b.toString('utf8');
      for (const w of this.waiters.splice(0)) w();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    this.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
    void this.exited.then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** The screen's text without escape sequences. */
  get text(): string {
    return this.raw.replace(ANSI, '').replace(/\r/g, '');
  }

  /** Waits until `pattern` appears after the previous match; fails with the screen when the deadline passes or the program ends. */
  async waitFor(pattern: RegExp | string, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.exited.then(() => (ended = true));
    for (;;) {
      const rest = this.text.slice(this.mark);
      const m = typeof pattern === 'string' ? (rest.includes(pattern) ? { index: rest.indexOf(pattern), 0: pattern } : null) : pattern.exec(rest);
      if (m) {
        this.mark += m.index + m[0].length;
        return m[0];
      }
      if (ended || Date.now() > deadline) {
        throw new Error(`${ended ? 'the program ended' : 'timed out'} waiting for ${String(pattern)}; the screen after the last match:\n${rest.slice(-3000)}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(10, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the question, then types the answer. */
  async answer(prompt: RegExp | string, keys: string): Promise<void> {
    await this.waitFor(prompt);
    this.type(keys);
  }

  type(keys: string): void {
    this.child.stdin.write(keys);
  }

  close(): void {
    this.child.stdin.end();
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Starts the binary in a pseudo-terminal of 120×40 with a clean environment. */
function startInPty(args: string[], env: NodeJS.ProcessEnv): PtySession {
  const cmd = `stty cols 120 rows 40 2>/dev/null; exec ${shellQuote(process.execPath)} ${[BIN, ...args].map(shellQuote).join(' ')}`;
  const child = spawn('script', ['-qefc', cmd, '/dev/null'], {
    env: { PATH: process.env.PATH, TERM: 'xterm', COLUMNS: '120', LINES: '40', LANG: 'C.UTF-8', ...netGuardEnv(), ...env },
    stdio: 'pipe',
  });
  return new PtySession(child);
}

function runPlain(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, ...netGuardEnv(), ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** util-linux `script` (Debian: bsdutils, always installed) gives the program a real pseudo-terminal. */
const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;
const describePty = hasScript ? describe : describe.skip;
if (!hasScript) console.warn('setup-pty: util-linux `script` (package bsdutils) is missing, so the pseudo-terminal tests are skipped');

jest.setTimeout(90_000);

/** Whether `apply` runs the serial-console bootstrap in this version (the site's guest is then needed and used). */
/** Whether this version can move the management NIC into the VM (then the wizard offers it). */
const CUTOVER = cutoverSupported();
const BOOTSTRAPS = stagesFor(loadPlaybookState()).some((s) => s.name === 'bootstrap');

interface Site {
  readonly host: ProxmoxDouble;
  readonly router: SimulatedRouter;
  readonly dir: string;
  readonly config: string;
  readonly credentials: string;
  /** Environment of a run: no Proxmox secret in it (the wizard asks, or the credentials file has it). */
  readonly env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/**
 * A fresh simulated site, and a dualwan.yaml holding only where OPNsense will answer (the REST
 * double on loopback, never the LAN address the router gets): setup keeps the keys it does not ask
 * about, so every question is still asked. With the bootstrap in apply: an empty host whose router
 * VM boots a simulated OPNsense that imports the seed; without it, the router double stands for an
 * OPNsense bootstrapped before, its key in the environment.
 */
async function freshSite(): Promise<Site> {
  let host: ProxmoxDouble;
  let router: SimulatedRouter;
  let stop: () => Promise<void>;
  if (BOOTSTRAPS) {
    const site: BootstrapSite = await startBootstrapSite({ timing: FAST_BOOT });
    ({ host, router } = site);
    stop = () => site.close();
  } else {
    router = await startSimulatedRouter();
    host = await startSimulatedHost({ image: loadPlaybookState().vm?.image, authFailDelayMs: 0 });
    stop = async () => {
      await host.close();
      await router.close();
    };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-setup-e2e-'));
  const config = path.join(dir, 'dualwan.yaml');
  // and where the image comes from: the host's loopback stand-in of the release mirror, never the real one
  const img = (host as SimulatedHost).localImage.image;
  fs.writeFileSync(
    config,
    `# where this machine reaches OPNsense once it runs\nopnsense:\n  host: ${router.host}\n  port: ${router.port}\n  sshPort: 1\n` +
      `vm:\n  image:\n    url: ${img.url}\n    filename: ${img.filename}\n    checksum: ${img.checksum}\n    checksumAlgorithm: ${img.checksumAlgorithm}\n    compression: ${img.compression}\n`,
  );
  return {
    host,
    router,
    dir,
    config,
    credentials: path.join(dir, 'credentials'),
    env: { HOME: dir, ...(BOOTSTRAPS ? {} : router.env) },
    async close() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The connection questions: the host, its port, the token id, the certificate (shown, then pinned), the secret. */
async function answerConnection(t: PtySession, host: ProxmoxDouble): Promise<void> {
  await t.answer('Proxmox VE host (name or IPv4 address):', `127.0.0.1${KEY.enter}`);
  await t.answer('Proxmox VE API port:', `${host.port}${KEY.enter}`);
  await t.answer('API token id', `${host.tokenId}${KEY.enter}`);
  await t.waitFor(`SHA-256:     ${host.fingerprint}`);
  await t.answer('pvenode cert info`? Pin this certificate', `y${KEY.enter}`);
  await t.answer(`Secret of the token ${host.tokenId}`, `${host.tokenSecret}${KEY.enter}`);
}

beforeAll(() => {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` (npm test does it first)`);
});

describePty('dualwan setup in a pseudo-terminal', () => {
  let s: Site;
  afterEach(async () => {
    await s?.close();
  });

  it('asks, writes a commented dualwan.yaml without the secret, shows the plan, applies, prints the TP-Link steps, runs a short drill', async () => {
    s = await freshSite();
    const { host } = s;
    const t = startInPty(['setup', '--config', s.config, '--credentials', s.credentials], s.env);
    try {
      await answerConnection(t, host);
      await t.answer('Node the router VM runs on:', KEY.enter);
      // The discovered hardware, then the choices offered from it.
      await t.waitFor(/0000:01:00\.0 +Ethernet Controller I226-V +enp1s0 +· +IOMMU group 13 \(alone\) +· +link up +\[management: /);
      await t.waitFor(/0000:02:00\.0 +Ethernet Controller I226-V +enp2s0 +· +IOMMU group 14 \(alone\) +· +link down/);
      await t.waitFor('Which NIC goes to the ISP modem (WAN 1)?');
      // The management NIC is shown; without the cutover in this version it cannot be chosen.
      await t.waitFor(CUTOVER ? /NIC 0000:01:00\.0 .*\[management: moves with\s+the guarded cutover\]/ : /carries the management address/);
      await t.waitFor(/❯ NIC 0000:02:00\.0/); // the default: the NIC without the management address
      t.type(KEY.enter);
      await t.answer('Which port goes to the TP-Link (the LAN)?', KEY.enter);
      await t.waitFor('The backup WAN (WAN 2)');
      await t.waitFor('Pixel 8');
      t.type(KEY.down); // the keyboard …
      await t.waitFor(/❯ USB Logitech USB Keyboard/);
      t.type(KEY.up); // … back to the phone
      await t.waitFor(/❯ USB Google Pixel 8/);
      t.type(KEY.enter);
      await t.answer('Storage for the VM disk:', KEY.enter);
      await t.answer('Storage for the OPNsense image', KEY.enter);
      await t.answer('VM id of the router:', KEY.enter);
      await t.answer('How are the two connections used?', KEY.enter);
      await t.answer('LAN subnet', KEY.enter);
      await t.answer("Router's address on the LAN:", KEY.enter);
      await t.answer('Fixed address for the TP-Link', KEY.enter);
      await t.answer('TP-Link model', `Archer C6${KEY.enter}`);
      await t.waitFor(`Wrote ${s.config}`);
      await t.waitFor(`The plan for ${s.config}:`);
      await t.waitFor('Proxmox VE host');
      await t.waitFor(/Plan: \d+ to create/);
      // Every confirmation (one per stage with changes) and a first-contact certificate, until the end.
      // Each answer is typed once, then its completed line (✔ … Yes) is awaited, so a redraw of the
      // same question is never taken for the next one.
      for (let i = 0; i < 8; i++) {
        const next = await t.waitFor(/\? (?:Apply these \d+ changes? to the [^?]+\?|Pin this certificate for [^?]+\?)|Turn the Archer C6 into an access point/, 60_000);
        if (next.startsWith('Turn the')) break;
        t.type(`y${KEY.enter}`);
        await t.waitFor(/✔ [^\n]*\? Yes/);
      }
      await t.waitFor('Static: 192.168.10.2, subnet mask 255.255.255.0, gateway 192.168.10.1');
      // The short failover drill against the router double: the ISP's probes blocked, failover, restore.
      await t.answer('Run a short failover drill now?', `y${KEY.enter}`);
      await t.waitFor(/failover +\d+\.\d s +expected/, 60_000);
      await t.waitFor('restored    yes');
      await t.waitFor('Failover behaved.');
      await t.waitFor(`dualwan verify --config ${s.config}`);
      expect(await t.exited).toBe(0);
    } finally {
      t.close();
    }
    // The screen never showed the secret (the password prompt does not echo it).
    expect(t.raw).not.toContain(host.tokenSecret);
    expect(t.text).toMatch(/Proxmox VE host: applied \d+ changes/);

    const yaml = fs.readFileSync(s.config, 'utf8');
    expect(yaml).toContain('# where this machine reaches OPNsense once it runs'); // the file's own lines stay
    expect(yaml).toMatch(/# Host name or IPv4 address of the Proxmox VE API/);
    expect(yaml).toMatch(/# PCI address of the NIC on the Proxmox host/);
    expect(yaml).toContain('pci: "0000:02:00.0"');
    expect(yaml).toContain('vendorId: "18d1"');
    expect(yaml).toContain(`fingerprint: ${host.fingerprint}`);
    expect(yaml).toContain('model: Archer C6');
    expect(yaml).not.toContain(host.tokenSecret);
    expect(fs.statSync(s.credentials).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(s.credentials, 'utf8')).toContain(`DUALWAN_PROXMOX_TOKEN_SECRET=${host.tokenSecret}`);
    // Applied on the doubles: the router VM with the ISP NIC and the phone mapped, running; OPNsense configured.
    const vm = host.state.vms.find((v) => v.vmid === 100);
    expect(vm?.status).toBe('running');
    expect(Object.values(vm?.conf ?? {}).join(' ')).toMatch(/mapping=dualwan-isp/);
    expect(host.state.mappings.map((m) => m.id).sort()).toEqual(expect.arrayContaining(['dualwan-isp', 'dualwan-hotspot']));
    expect(s.router.controls.writeCount).toBeGreaterThan(0);
    expect(s.router.controls.contractViolations).toEqual([]);
    expect(host.contractViolations).toEqual([]);
    // The drill left nothing behind on the router.
    expect(JSON.stringify(s.router.controls.requests.filter((r) => /firewall\/filter\/(add|del)_rule/.test(r.path)).map((r) => r.path))).toMatch(/add_rule.*del_rule/);
  });

  it('Ctrl-C at the first question: exit 130, nothing written', async () => {
    s = await freshSite();
    const before = fs.readFileSync(s.config, 'utf8');
    const t = startInPty(['setup', '--config', s.config, '--credentials', s.credentials], s.env);
    try {
      await t.answer('Proxmox VE host (name or IPv4 address):', KEY.ctrlC);
      await t.waitFor('Interrupted; nothing written.');
      expect(await t.exited).toBe(130);
    } finally {
      t.close();
    }
    expect(fs.readFileSync(s.config, 'utf8')).toBe(before);
    expect(fs.existsSync(`${s.config}.setup.json`)).toBe(false);
    expect(fs.existsSync(s.credentials)).toBe(false);
    expect(s.host.requests).toHaveLength(0);
  });

  it('Ctrl-C in the middle: exit 130, answers saved; a re-run offers them as defaults and goes on', async () => {
    s = await freshSite();
    const { host } = s;
    const first = startInPty(['setup', '--config', s.config, '--credentials', s.credentials], s.env);
    try {
      await answerConnection(first, host);
      await first.answer('Node the router VM runs on:', KEY.enter);
      await first.answer('Which NIC goes to the ISP modem', KEY.enter);
      await first.answer('Which port goes to the TP-Link', KEY.enter);
      await first.answer('The backup WAN (WAN 2)', KEY.enter);
      await first.answer('Storage for the VM disk:', KEY.enter);
      await first.answer('Storage for the OPNsense image', KEY.enter);
      await first.answer('VM id of the router:', `105${KEY.enter}`);
      await first.waitFor('How are the two connections used?');
      first.type(KEY.down);
      await first.waitFor(/❯ Load balance/);
      first.type(KEY.enter);
      await first.answer('Share of connections, ISP : backup', KEY.ctrlC);
      await first.waitFor(/Interrupted; your answers are saved in .*dualwan\.yaml\.setup\.json/);
      expect(await first.exited).toBe(130);
    } finally {
      first.close();
    }
    expect(fs.readFileSync(s.config, 'utf8')).not.toContain('proxmox:'); // not written yet
    const saved = fs.readFileSync(`${s.config}.setup.json`, 'utf8');
    expect(saved).not.toContain(host.tokenSecret);
    expect(JSON.parse(saved).answers).toMatchObject({ host: '127.0.0.1', port: host.port, vmid: 105, profile: 'loadbalance' });

    const again = startInPty(['setup', '--config', s.config, '--credentials', s.credentials], s.env);
    try {
      await again.waitFor('Resuming: the answers of the earlier run');
      await again.answer(/Proxmox VE host \(name or IPv4 address\): \(127\.0\.0\.1\)/, KEY.enter);
      await again.answer(`Proxmox VE API port: (${host.port})`, KEY.enter);
      await again.answer(`(${host.tokenId})`, KEY.enter);
      await again.waitFor('is the one you confirmed before');
      await again.answer(`Use the token secret from ${s.credentials}?`, KEY.enter);
      await again.answer('Node the router VM runs on:', KEY.enter);
      await again.answer('Which NIC goes to the ISP modem', KEY.enter);
      await again.answer('Which port goes to the TP-Link', KEY.enter);
      await again.answer('The backup WAN (WAN 2)', KEY.enter);
      await again.answer('Storage for the VM disk:', KEY.enter);
      await again.answer('Storage for the OPNsense image', KEY.enter);
      await again.answer('VM id of the router: (105)', KEY.enter);
      await again.waitFor('How are the two connections used?');
      await again.waitFor(/❯ Load balance/); // the earlier answer is the default
      again.type(KEY.enter);
      await again.answer('Share of connections, ISP : backup', KEY.enter);
      await again.answer('LAN subnet', KEY.enter);
      await again.answer("Router's address on the LAN:", KEY.enter);
      await again.answer('Fixed address for the TP-Link', KEY.enter);
      await again.answer('TP-Link model', KEY.enter);
      await again.waitFor(`Wrote ${s.config}`);
      // Stop at the first confirmation of the apply: nothing applied, the file stays written.
      await again.answer(/Apply these \d+ changes? to the Proxmox VE host\?/, KEY.ctrlC);
      await again.waitFor(/Interrupted; .*dualwan\.yaml is written and your answers are saved/);
      expect(await again.exited).toBe(130);
    } finally {
      again.close();
    }
    expect(host.writeCount).toBe(0);
    const yaml = fs.readFileSync(s.config, 'utf8');
    expect(yaml).toContain('mode: loadbalance');
    expect(yaml).toContain('vmid: 105');
    expect(yaml).not.toContain(host.tokenSecret);
  });
});

describe('dualwan setup without a terminal', () => {
  let s: Site;
  afterEach(async () => {
    await s?.close();
  });

  it('without --yes: refuses with the remedy, contacts nothing', async () => {
    s = await freshSite();
    const r = await runPlain(['setup', '--config', s.config, '--credentials', s.credentials], s.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('dualwan setup asks its questions in a terminal, and there is none.');
    expect(r.stderr).toContain(`dualwan setup --yes --config ${s.config}`);
    expect(s.host.requests).toHaveLength(0);
  });

  it('--yes --config FILE: takes the file and the obvious choices, applies every stage, never asks', async () => {
    s = await freshSite();
    const { host } = s;
    fs.appendFileSync(s.config, `proxmox:\n  host: 127.0.0.1\n  port: ${host.port}\n  tokenId: ${host.tokenId}\n`);
    const env = { ...s.env, DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret };
    const r = await runPlain(['setup', '--yes', '--trust-on-first-use', '--config', s.config, '--credentials', s.credentials], env);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(`${r.stdout}${r.stderr}`).not.toContain(host.tokenSecret);
    expect(r.stdout).toMatch(/Proxmox VE host: applied \d+ changes/);
    // nothing is offered without a terminal: it says what it takes instead
    expect(`${r.stdout}${r.stderr}`).toContain(`Using the values in ${s.config}`);
    expect(`${r.stdout}${r.stderr}`).not.toContain('offered as defaults');
    expect(r.stdout).toContain('Turn the TP-Link router into an access point at 192.168.10.2');
    const yaml = fs.readFileSync(s.config, 'utf8');
    expect(yaml).toContain('pci: "0000:02:00.0"');
    expect(yaml).toContain('productId: "4ee3"');
    expect(yaml).toMatch(/# Failover tier/);
    expect(host.state.vms.find((v) => v.vmid === 100)?.status).toBe('running');
    // A second run changes nothing on either side.
    const hostWrites = host.writeCount;
    const routerWrites = s.router.controls.writeCount;
    const again = await runPlain(['setup', '--yes', '--config', s.config, '--credentials', s.credentials], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/Proxmox VE host\nNo changes/);
    expect(host.writeCount).toBe(hostWrites);
    expect(s.router.controls.writeCount).toBe(routerWrites);
  });
});
