import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { utils } from 'ssh2';
import { startBootstrapSite, type BootstrapSite } from '../doubles/proxmox/bootstrap-rig';
import { writePlaybookFor } from '../doubles/proxmox/simulated-host';
import { proxmoxHarness, type Harness } from '../helpers/proxmox-harness';

/** Drives the built binary, as a user would, against the simulated Proxmox host in this process. */
const BIN = path.resolve(__dirname, '../../dist/src/cli/main.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

jest.setTimeout(90_000);

beforeAll(() => {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` (npm test does it first)`);
});

describe('dualwan plan/apply, the built binary: from an empty Proxmox host through the bootstrap to a configured OPNsense', () => {
  let site: BootstrapSite;
  let dir: string;
  let file: string;
  let cred: string;
  let env: NodeJS.ProcessEnv;
  let rootPassword = '';
  beforeAll(async () => {
    site = await startBootstrapSite({ proxmox: { authFailDelayMs: 0 } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-cli-'));
    file = writePlaybookFor(site.host, dir, 'hotspot-failover.yaml', (d) => {
      site.pointAt(d);
      d.setIn(['opnsense', 'hostname'], 'edge-fw');
      d.setIn(['opnsense', 'domain'], 'lab.home.arpa');
    });
    cred = path.join(dir, 'credentials'); // written by the bootstrap; absent before
    const keyFile = path.join(dir, 'id_ed25519');
    fs.writeFileSync(keyFile, utils.generateKeyPairSync('ed25519').private, { mode: 0o600 });
    // Only the Proxmox token: the OPNsense key is made by the bootstrap and read from the file.
    env = { DUALWAN_PROXMOX_TOKEN_SECRET: site.host.tokenSecret, DUALWAN_CREDENTIALS: cred, DUALWAN_SSH_PRIVATE_KEY_FILE: keyFile };
  });
  afterAll(async () => {
    await site.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--help is quick to answer and lists the commands', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan .*\n.*apply .*\n.*demo/s);
  });

  it('first contact without a terminal and without --trust-on-first-use: refuses, sends nothing', async () => {
    const r = await run(['plan', '--config', file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no terminal: pin the certificate of Proxmox VE');
    expect(r.stderr).toContain('--trust-on-first-use');
    expect(site.host.requests).toHaveLength(0);
    expect(fs.readFileSync(file, 'utf8')).not.toContain('fingerprint:');
  });

  it('plan --trust-on-first-use --detailed-exitcode: pins, plans the host, shows the bootstrap and OPNsense as following, exits 2', async () => {
    const r = await run(['plan', '--config', file, '--trust-on-first-use', '--detailed-exitcode'], env);
    // one warning only: the LAN shares vmbr0 with the host, whose address is outside the new LAN
    expect(r.stderr.match(/^⚠/gm)).toHaveLength(1);
    expect(r.stderr).toContain('The LAN 192.168.10.0/24 goes on vmbr0');
    expect(r.stderr).toContain('192.168.10.3/24, gateway 192.168.10.1');
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`SHA-256:     ${site.host.fingerprint}`);
    expect(r.stdout).toContain('Plan: 4 to create, 1 to change');
    expect(r.stdout).toContain('OPNsense first configuration (serial console): planned when it can be reached — the router VM is created by this apply');
    expect(r.stdout).toContain('OPNsense router: planned when it can be reached — the router VM is created by this apply');
    expect(r.stdout).not.toContain('First contact with OPNsense'); // never trusted on first use: the bootstrap pins it
    expect(fs.readFileSync(file, 'utf8')).toContain(`fingerprint: ${site.host.fingerprint}`);
    expect(fs.readFileSync(file, 'utf8')).toContain('# only the id: the token secret lives'); // comments kept
    expect(site.host.writeCount).toBe(0);
    expect(fs.existsSync(cred)).toBe(false);
  });

  it('apply without --yes and without a terminal refuses before writing', async () => {
    const r = await run(['apply', '--config', file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no terminal: Apply these 5 changes/);
    expect(site.host.writeCount).toBe(0);
  });

  it('a saved plan made stale by a change to the file is refused', async () => {
    const out = path.join(dir, 'plan.json');
    expect((await run(['plan', '--config', file, '--out', out], env)).code).toBe(0);
    const original = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, original.replace('name: opnsense\n', 'name: router\n'));
    try {
      const r = await run(['apply', '--config', file, '--plan', out, '--yes'], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('The plan is stale');
      expect(site.host.writeCount).toBe(0);
    } finally {
      fs.writeFileSync(file, original);
    }
  });

  it('apply --yes: empty host → VM → bootstrap over the serial console (new key, pinned certificate) → OPNsense configured', async () => {
    const r = await run(['apply', '--config', file, '--yes'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Proxmox VE host: applied 5 changes with 6 write calls/);
    expect(r.stdout).toMatch(/OPNsense first configuration \(serial console\): applied 1 change/);
    expect(r.stdout).toMatch(/OPNsense router: applied \d+ changes/);
    expect(r.stdout).not.toContain('First contact with OPNsense'); // pinned from its own console, not trusted on first use
    // The root password: shown once (a warning, on stderr), stored nowhere.
    const shown = [...r.stderr.matchAll(/New OPNsense root password[^\n]*\n\n\s+(\S+)\n/g)].map((m) => m[1]!);
    expect(shown).toHaveLength(1);
    rootPassword = shown[0]!;
    expect(rootPassword).toMatch(/^\S{20}$/);
    expect(`${r.stdout}${r.stderr}`.split(rootPassword)).toHaveLength(2);
    expect(fs.readFileSync(file, 'utf8')).not.toContain(rootPassword);
    expect(fs.readFileSync(cred, 'utf8')).not.toContain(rootPassword);
    expect(site.guest.transcript).not.toContain(rootPassword);
    // The new key: in the 0600 credentials file only; OPNsense's config holds its secret's hash.
    expect(fs.statSync(cred).mode & 0o777).toBe(0o600);
    const creds = Object.fromEntries(fs.readFileSync(cred, 'utf8').split('\n').filter((l) => l.includes('=')).map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]));
    const secret = creds.DUALWAN_OPNSENSE_API_SECRET!;
    expect(creds.DUALWAN_OPNSENSE_API_KEY).toMatch(/^[A-Za-z0-9+/=]{40,}$/);
    expect(`${r.stdout}${r.stderr}`).not.toContain(secret);
    expect(site.guest.config).toContain(`<apikeys>${creds.DUALWAN_OPNSENSE_API_KEY}|$6$`);
    expect(site.guest.config).not.toContain(secret);
    // hostname and domain from dualwan.yaml reached the seed config.xml the guest imported
    expect(site.guest.config).toMatch(/<hostname>edge-fw<\/hostname>/);
    expect(site.guest.config).toMatch(/<domain>lab\.home\.arpa<\/domain>/);
    // OPNsense's certificate was pinned from its console, through Proxmox
    expect(fs.readFileSync(file, 'utf8')).toContain(`fingerprint: ${site.router.fingerprint}`);
    // the seed image was deleted once the CD was out (the site grants Datastore.Allocate on local)
    expect(r.stdout).toContain('Deleted the seed image local:iso/dualwan-seed-100.iso from storage local.');
    expect(site.host.state.volumes.map((v) => v.volid)).not.toContain('local:iso/dualwan-seed-100.iso');
    // the image came from the loopback mirror, unpacked, as .raw in import content; the VM disk holds it
    expect(site.host.state.volumes.map((v) => v.volid)).toContain('local:import/OPNsense-26.7-nano-amd64.raw');
    expect(site.host.state.volumes.find((v) => v.vmid === 100 && v.content === 'images')?.bytes?.equals(site.image.raw)).toBe(true);
    const del = site.host.requests.find((q) => q.method === 'DELETE');
    expect(del).toMatchObject({ template: '/nodes/{node}/storage/{storage}/content/{volume}', status: 200 });
    // the REST configuration went through with that key
    expect(site.router.controls.writeCount).toBeGreaterThan(0);
    expect(site.router.controls.unapplied()).toEqual([]);
    expect(site.host.contractViolations).toEqual([]);
    expect(site.router.controls.contractViolations).toEqual([]);
  });

  it('apply again with --detailed-exitcode: exit 0, the bootstrap is observed as done, zero writes on host and router', async () => {
    const hostWrites = site.host.writeCount;
    const routerWrites = site.router.controls.writeCount;
    const boots = site.guest.boots;
    const r = await run(['apply', '--config', file, '--yes', '--detailed-exitcode', '--json'], env);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { stages: { stage: string; report: { writeCalls: number } }[]; deferred: unknown[] };
    expect(json.stages.map((s) => [s.stage, s.report.writeCalls])).toEqual([
      ['proxmox', 0],
      ['bootstrap', 0],
      ['opnsense', 0],
    ]);
    expect(json.deferred).toEqual([]);
    expect(site.host.writeCount).toBe(hostWrites);
    expect(site.router.controls.writeCount).toBe(routerWrites);
    expect(site.guest.boots).toBe(boots);
  });

  it('an OPNsense validation failure: "Unable to <verb> <resource> <name>: <field>: <message>", exit 1', async () => {
    const original = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, original.replace('description: Fibre (ISP modem)', 'description: Fibre (new modem)'));
    site.router.controls.failNextWrite({ field: 'gateway_item.descr', message: 'Enter a valid description.' });
    try {
      const r = await run(['apply', '--config', file, '--yes'], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^Error: Unable to update gateway WAN_DHCP: gateway_item\.descr: Enter a valid description\.$/m);
    } finally {
      fs.writeFileSync(file, original);
    }
    const again = await run(['apply', '--config', file, '--yes', '--json'], env);
    expect(again.code).toBe(0);
  });

  it('never prints the token secret or the API secret, and never writes them to dualwan.yaml', async () => {
    const r = await run(['plan', '--config', file, '--json', '--debug'], env);
    expect(r.code).toBe(0);
    const apiSecret = /DUALWAN_OPNSENSE_API_SECRET=(.*)/.exec(fs.readFileSync(cred, 'utf8'))![1]!;
    for (const s of [site.host.tokenSecret, apiSecret]) {
      expect(`${r.stdout}${r.stderr}`).not.toContain(s);
      expect(fs.readFileSync(file, 'utf8')).not.toContain(s);
    }
  });

  it('a wrong token: the error names the token and the remedy, not the secret', async () => {
    const r = await run(['plan', '--config', file], { ...env, DUALWAN_PROXMOX_TOKEN_SECRET: '00000000-0000-0000-0000-000000000000' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HTTP 401');
    expect(r.stderr).toContain('DUALWAN_PROXMOX_TOKEN_SECRET');
    expect(r.stderr).not.toContain('00000000-0000-0000-0000-000000000000');
  });
});

describe('refusals that contact nothing', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await proxmoxHarness();
  });
  afterAll(() => h.close());

  it('a certificate that does not match the pin', async () => {
    fs.writeFileSync(h.file, fs.readFileSync(h.file, 'utf8').replace('tokenId: dualwan@pve!setup', `tokenId: dualwan@pve!setup\n  fingerprint: ${'AB:'.repeat(31)}AB`));
    const r = await run(['apply', '--yes', '--config', h.file], { ...h.env, DUALWAN_CREDENTIALS: path.join(h.dir, 'none') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('does not match the pinned fingerprint');
    expect(r.stderr).toContain(h.host.fingerprint);
    expect(h.host.requests).toHaveLength(0);
  });

  it('a credentials file others can read', async () => {
    const cred = path.join(h.dir, 'credentials');
    fs.writeFileSync(cred, `DUALWAN_PROXMOX_TOKEN_SECRET=${h.host.tokenSecret}\n`);
    fs.chmodSync(cred, 0o640);
    const r = await run(['plan', '--config', h.file, '--credentials', cred], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('mode 0640');
    expect(r.stderr).toContain(`chmod 600 ${cred}`);
    expect(r.stderr).not.toContain(h.host.tokenSecret);
    expect(h.host.requests).toHaveLength(0);
  });

  const env = () => ({ ...h.env, DUALWAN_CREDENTIALS: path.join(h.dir, 'none') });
  const lineOf = (text: string, needle: string, after = 0) => text.split('\n').findIndex((l, i) => i >= after && l.includes(needle)) + 1;

  it('wrong types and unknown keys: each at file:line:column, exit 1, nothing contacted', async () => {
    const bad = path.join(h.dir, 'bad-shape.yaml');
    const text = fs.readFileSync(h.file, 'utf8').replace('vmid: 100', 'vmid: "a hundred"').replace('  name: opnsense\n', '  name: opnsense\n  colour: blue\n');
    fs.writeFileSync(bad, text);
    const r = await run(['apply', '--yes', '--config', bad], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`bad-shape.yaml:${lineOf(text, 'vmid: "a hundred"')}:9: error: vm.vmid must be a number`);
    expect(r.stderr).toContain(`bad-shape.yaml:${lineOf(text, 'colour: blue')}:3: error: Unknown key "colour"`);
    expect(r.stderr).toContain('remedy:');
    expect(h.host.requests).toHaveLength(0);
  });

  it('a host name or domain OPNsense cannot take: each at file:line:column, exit 1, nothing contacted', async () => {
    const bad = path.join(h.dir, 'bad-names.yaml');
    const text = `${fs.readFileSync(h.file, 'utf8').replace(/\n*$/, '\n')}`.replace(/^opnsense:\n/m, 'opnsense:\n  hostname: edge_fw.lab\n  domain: -lab..home\n');
    expect(text).toContain('  hostname: edge_fw.lab\n');
    fs.writeFileSync(bad, text);
    const r = await run(['apply', '--yes', '--config', bad], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`bad-names.yaml:${lineOf(text, 'hostname: edge_fw.lab')}:13: error: opnsense.hostname "edge_fw.lab" must be a host name: one DNS label`);
    expect(r.stderr).toContain(`bad-names.yaml:${lineOf(text, 'domain: -lab..home')}:11: error: opnsense.domain "-lab..home" must be a domain name`);
    expect(h.host.requests).toHaveLength(0);
  });

  it('overlapping subnets and a duplicate monitor IP: each at file:line:column, exit 1, nothing contacted', async () => {
    const bad = path.join(h.dir, 'bad-rules.yaml');
    const text = fs
      .readFileSync(h.file, 'utf8')
      .replace(/monitorIps: \[ ?9\.9\.9\.9 ?\]/, 'monitorIps: [1.1.1.1]')
      .replace(/subnet: 192\.168\.10\.0\/24/, 'subnet: 192.168.43.0/24')
      .replace(/rangeStart: .*/, 'rangeStart: 192.168.43.100')
      .replace(/rangeEnd: .*/, 'rangeEnd: 192.168.43.200')
      .replace(/routerAddress: .*/, 'routerAddress: 192.168.43.1')
      .replace(/address: 192\.168\.10\.2 /, 'address: 192.168.43.2 ');
    fs.writeFileSync(bad, text);
    const r = await run(['plan', '--config', bad], env());
    expect(r.code).toBe(1);
    const hotspotMonitor = lineOf(text, 'monitorIps: [1.1.1.1]', lineOf(text, 'name: hotspot'));
    expect(r.stderr).toMatch(new RegExp(`bad-rules\\.yaml:${hotspotMonitor}:\\d+: error: [^\\n]*1\\.1\\.1\\.1`));
    expect(r.stderr).toMatch(new RegExp(`bad-rules\\.yaml:${lineOf(text, 'subnet: 192.168.43.0/24')}:\\d+: error: [^\\n]*192\\.168\\.43\\.0/24`));
    expect(h.host.requests).toHaveLength(0);
  });
});
