import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfigFile } from '../../../src/config/load';
import type { Choice } from '../../../src/setup/host-facts';
import { loadProgress, stateFileFor } from '../../../src/setup/state-file';
import { DefaultsPrompter, runSetupWizard, SetupInterruptedError, type Prompter } from '../../../src/setup/wizard';
import { startSimulatedHost } from '../../doubles/proxmox/simulated-host';
import type { ProxmoxDouble } from '../../doubles/proxmox/server';
import { TestUi } from '../../helpers/test-ui';

/** Answers by question code; records every question with its default and choices. Throws SetupInterruptedError at `stopAt`. */
class ScriptedPrompter implements Prompter {
  readonly interactive = true;
  readonly asked: { code: string; default?: string | boolean; choices?: readonly Choice[] }[] = [];
  constructor(
    private readonly answers: Record<string, string | boolean>,
    private readonly stopAt?: string,
  ) {}
  private take(code: string, dflt: string | boolean | undefined, choices?: readonly Choice[]): string | boolean {
    this.asked.push({ code, default: dflt, choices });
    if (code === this.stopAt) throw new SetupInterruptedError();
    if (code in this.answers) return this.answers[code]!;
    if (dflt === undefined) throw new Error(`no answer and no default for ${code}`);
    return dflt;
  }
  async input(q: { code: string; default?: string; validate?: (v: string) => true | string }) {
    const v = String(this.take(q.code, q.default));
    const ok = q.validate?.(v) ?? true;
    if (ok !== true) throw new Error(`${q.code}: ${v} refused: ${ok}`);
    return v;
  }
  async password(q: { code: string }) {
    return String(this.take(q.code, undefined));
  }
  async confirm(q: { code: string; default: boolean }) {
    return this.take(q.code, q.default) === true;
  }
  async select(q: { code: string; default?: string; choices: readonly Choice[] }) {
    const v = String(this.take(q.code, q.default, q.choices));
    const c = q.choices.find((x) => x.value === v);
    if (!c || c.disabled) throw new Error(`${q.code}: ${v} is not a selectable choice`);
    return v;
  }
  question(code: string) {
    return this.asked.find((a) => a.code === code);
  }
}

describe('the setup wizard against the simulated host', () => {
  let host: ProxmoxDouble;
  let dir: string;
  let config: string;
  let creds: string;
  beforeAll(async () => {
    host = await startSimulatedHost({ authFailDelayMs: 0 });
  });
  afterAll(() => host.close());
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-setup-'));
    config = path.join(dir, 'dualwan.yaml');
    creds = path.join(dir, 'credentials');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const base = () => ({ SETUP_HOST: '127.0.0.1', SETUP_PORT: String(host.port), SETUP_TOKEN_ID: host.tokenId, SETUP_TOKEN_SECRET: host.tokenSecret, SETUP_CERT: true });
  const wizard = (prompter: Prompter, ui = new TestUi()) => runSetupWizard({ configFile: config, prompter, ui, env: {}, credentialsFile: creds, trustOnFirstUse: false, cutover: false });

  it('offers what discovery found, keeps the secret out of the file and the state, stores it 0600', async () => {
    const p = new ScriptedPrompter({ ...base(), SETUP_AP_MODEL: 'Archer C6' });
    const ui = new TestUi();
    const r = await wizard(p, ui);
    // NICs with IOMMU group and link state; the management NIC shown but not selectable.
    const isp = p.question('SETUP_ISP')!;
    const mgmt = isp.choices!.find((c) => c.value === 'pci:0000:01:00.0')!;
    expect(mgmt.disabled).toMatch(/management/);
    expect(mgmt.name).toMatch(/IOMMU group 13 \(alone\).*link up/);
    expect(isp.choices!.find((c) => c.value === 'pci:0000:02:00.0')!.name).toMatch(/IOMMU group 14 \(alone\).*link down/);
    expect(isp.default).toBe('pci:0000:02:00.0');
    expect(p.question('SETUP_LAN')!.default).toBe('bridge:vmbr0');
    const backup = p.question('SETUP_BACKUP')!;
    expect(backup.default).toBe('usb:18d1:4ee3');
    expect(backup.choices!.map((c) => c.value)).toContain('usb:046d:c31c'); // the keyboard is offered, not chosen
    expect(p.question('SETUP_VMID')!.default).toBe('100');
    expect(p.question('SETUP_LAN_SUBNET')!.default).toBe('192.168.10.0/24');
    expect(ui.notices.find((n) => n.code === 'SETUP_DISCOVERY')?.text).toMatch(/0000:01:00\.0.*\[management: not offered for passthrough\]/); // cutover: false

    expect(r.state.wans[0]!.uplink).toEqual({ type: 'pci-nic', pci: '0000:02:00.0' });
    expect(r.state.proxmox?.fingerprint).toBe(host.fingerprint);
    const text = fs.readFileSync(config, 'utf8');
    expect(text).not.toContain(host.tokenSecret);
    expect(fs.readFileSync(stateFileFor(config), 'utf8')).not.toContain(host.tokenSecret);
    expect(fs.statSync(creds).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(creds, 'utf8')).toContain(`DUALWAN_PROXMOX_TOKEN_SECRET=${host.tokenSecret}`);
    expect(loadConfigFile(config).state?.accessPoint).toEqual({ vendor: 'tp-link', model: 'Archer C6', address: '192.168.10.2' });
    expect(host.writeCount).toBe(0); // the wizard only reads the host
  });

  it('interrupted, then run again: the saved answers are the defaults, and the stored secret is offered', async () => {
    const first = new ScriptedPrompter({ ...base(), SETUP_ISP: 'bridge:vmbr0', SETUP_LAN: 'pci:0000:02:00.0', SETUP_PROFILE: 'loadbalance' }, 'SETUP_WEIGHT');
    await expect(wizard(first)).rejects.toBeInstanceOf(SetupInterruptedError);
    expect(fs.existsSync(config)).toBe(false);
    expect(loadProgress(stateFileFor(config))?.answers).toMatchObject({ isp: { type: 'bridge', bridge: 'vmbr0' }, profile: 'loadbalance' });

    const again = new ScriptedPrompter({ SETUP_CERT: true });
    const r = await wizard(again);
    expect(again.question('SETUP_HOST')!.default).toBe('127.0.0.1');
    expect(again.question('SETUP_ISP')!.default).toBe('bridge:vmbr0');
    expect(again.question('SETUP_LAN')!.default).toBe('pci:0000:02:00.0');
    expect(again.question('SETUP_PROFILE')!.default).toBe('loadbalance');
    expect(again.question('SETUP_SECRET_REUSE')!.default).toBe(true);
    expect(again.question('SETUP_TOKEN_SECRET')).toBeUndefined();
    expect(again.question('SETUP_CERT')).toBeUndefined(); // the certificate confirmed before is recognised
    expect(r.state.policy.mode).toBe('loadbalance');
    expect(r.state.wans[0]!.weight).toBe(2);
  });

  it('an overlapping LAN is shown at its place and asked again; the file is written only once it is valid', async () => {
    const answers: Record<string, string | boolean> = { ...base(), SETUP_LAN_SUBNET: '192.168.43.0/24' };
    let asks = 0;
    const p = new ScriptedPrompter(answers);
    const ui = new TestUi();
    const orig = p.input.bind(p);
    p.input = async (q) => {
      if (q.code === 'SETUP_LAN_SUBNET' && ++asks === 2) answers.SETUP_LAN_SUBNET = '192.168.20.0/24';
      return orig(q);
    };
    const r = await wizard(p, ui);
    expect(asks).toBe(2);
    const overlap = ui.notices.find((n) => n.code === 'RULE_LAN_COMMON_RANGE');
    expect(overlap?.text).toMatch(/dualwan\.yaml:\d+:\d+: error: lan\.subnet 192\.168\.43\.0\/24 overlaps 192\.168\.43\.0\/24/);
    expect(r.state.lan.subnet).toBe('192.168.20.0/24');
    expect(r.state.lan.routerAddress).toBe('192.168.20.1');
  });

  it('with the cutover available, the management NIC can be chosen: the cutover questions follow and the file is valid', async () => {
    const p = new ScriptedPrompter({ ...base(), SETUP_ISP: 'pci:0000:01:00.0', SETUP_LAN: 'pci:0000:02:00.0', SETUP_BACKUP: 'usb:18d1:4ee3' });
    const ui = new TestUi();
    const r = await runSetupWizard({ configFile: config, prompter: p, ui, env: {}, credentialsFile: creds, trustOnFirstUse: false, cutover: true });
    const mgmt = p.question('SETUP_ISP')!.choices!.find((c) => c.value === 'pci:0000:01:00.0')!;
    expect(mgmt.disabled).toBeUndefined();
    expect(mgmt.name).toMatch(/moves with the guarded cutover/);
    expect(p.question('SETUP_ISP')!.default).toBe('pci:0000:02:00.0'); // never the default
    expect(ui.codes()).toContain('SETUP_CUTOVER');
    expect(p.question('SETUP_CUTOVER_ADDRESS')!.default).toBe('10.10.99.2/24');
    expect(r.state.proxmox?.cutover).toMatchObject({ bridge: 'vmbr1', hostAddress: '10.10.99.2/24', gateway: '10.10.99.1' });
    expect(r.state.vm?.bridgeNic?.bridge).toBe('vmbr1');
  });

  it('a host with no storage for the image: a clear refusal naming the content type, nothing written', async () => {
    const bare = await startSimulatedHost({
      authFailDelayMs: 0,
      inventory: { storages: [{ storage: 'local-lvm', type: 'lvmthin', content: ['rootdir', 'images'], shared: 0, total: 1e11, used: 1e10, avail: 9e10, enabled: 1 }] },
    });
    try {
      const p = new ScriptedPrompter({ SETUP_HOST: '127.0.0.1', SETUP_PORT: String(bare.port), SETUP_TOKEN_ID: bare.tokenId, SETUP_TOKEN_SECRET: bare.tokenSecret, SETUP_CERT: true });
      await expect(wizard(p)).rejects.toMatchObject({ code: 'SETUP_NOTHING_TO_CHOOSE', message: expect.stringMatching(/holds ISO images/), remedy: expect.stringMatching(/Datacenter → Storage/) });
      expect(p.question('SETUP_IMAGE_STORAGE')).toBeUndefined();
      expect(fs.existsSync(config)).toBe(false);
    } finally {
      await bare.close();
    }
  });

  it('a refused secret is asked again and only the accepted one is stored', async () => {
    const secrets = ['wrong-secret-123', host.tokenSecret];
    const p = new ScriptedPrompter(base());
    p.password = async () => secrets.shift()!;
    const ui = new TestUi();
    await wizard(p, ui);
    expect(ui.codes()).toContain('SETUP_TOKEN_REFUSED');
    expect(fs.readFileSync(creds, 'utf8')).not.toContain('wrong-secret-123');
  });

  it('--yes: the obvious choices with a pinned-by-flag certificate; with an unknown host it names what to give', async () => {
    await expect(runSetupWizard({ configFile: config, prompter: new DefaultsPrompter(config), ui: new TestUi(), env: {}, credentialsFile: creds, trustOnFirstUse: true })).rejects.toThrow(
      /cannot choose the Proxmox host and the API token id/,
    );
    const env = { DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret };
    const noPin = runSetupWizard({ configFile: config, prompter: new DefaultsPrompter(config), ui: new TestUi(), env, credentialsFile: creds, trustOnFirstUse: false, given: { host: '127.0.0.1', port: host.port, tokenId: host.tokenId } });
    await expect(noPin).rejects.toThrow(/is not pinned yet; nothing was sent to it/);
    const r = await runSetupWizard({ configFile: config, prompter: new DefaultsPrompter(config), ui: new TestUi(), env, credentialsFile: creds, trustOnFirstUse: true, given: { host: '127.0.0.1', port: host.port, tokenId: host.tokenId } });
    expect(r.state.wans.map((w) => w.uplink)).toEqual([
      { type: 'pci-nic', pci: '0000:02:00.0' },
      { type: 'usb-tether', vendorId: '18d1', productId: '4ee3' },
    ]);
    expect(fs.existsSync(creds)).toBe(false); // the secret came from the environment: nothing stored
  });

  it('--yes on a host with two phones attached: an error naming the choice, the key and the candidates', async () => {
    const two = await startSimulatedHost({
      authFailDelayMs: 0,
      inventory: {
        usb: [
          { busnum: 1, devnum: 5, port: 1, level: 1, class: 0, speed: '480', vendid: '18d1', prodid: '4ee3', product: 'Pixel 8', manufacturer: 'Google' },
          { busnum: 1, devnum: 6, port: 2, level: 1, class: 0, speed: '480', vendid: '05ac', prodid: '12a8', product: 'iPhone', manufacturer: 'Apple Inc.' },
        ],
      },
    });
    try {
      const run = runSetupWizard({
        configFile: config,
        prompter: new DefaultsPrompter(config),
        ui: new TestUi(),
        env: { DUALWAN_PROXMOX_TOKEN_SECRET: two.tokenSecret },
        credentialsFile: creds,
        trustOnFirstUse: true,
        given: { host: '127.0.0.1', port: two.port, tokenId: two.tokenId },
      });
      await expect(run).rejects.toMatchObject({
        code: 'SETUP_CHOICE_REQUIRED',
        message: expect.stringMatching(/backup WAN.*SETUP_BACKUP/),
        remedy: expect.stringMatching(/wans\[1\]\.uplink[\s\S]*usb:18d1:4ee3[\s\S]*usb:05ac:12a8/),
      });
      expect(fs.existsSync(config)).toBe(false);
    } finally {
      await two.close();
    }
  });
});
