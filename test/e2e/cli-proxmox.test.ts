import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
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

describe('dualwan plan/apply, the built binary', () => {
  let h: Harness;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    h = await proxmoxHarness();
    env = { ...h.env, DUALWAN_CREDENTIALS: path.join(h.dir, 'none') };
  });
  afterAll(() => h.close());

  it('--help is quick to answer and lists the commands', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan .*\n.*apply .*\n.*demo/s);
  });

  it('first contact without a terminal and without --trust-on-first-use: refuses, sends nothing', async () => {
    const r = await run(['plan', '--config', h.file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no terminal: pin the certificate of Proxmox VE');
    expect(r.stderr).toContain('--trust-on-first-use');
    expect(h.host.requests).toHaveLength(0);
    expect(fs.readFileSync(h.file, 'utf8')).not.toContain('fingerprint:');
  });

  it('plan --trust-on-first-use --detailed-exitcode: pins, plans, exits 2', async () => {
    const r = await run(['plan', '--config', h.file, '--trust-on-first-use', '--detailed-exitcode'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`SHA-256:     ${h.host.fingerprint}`);
    expect(r.stdout).toContain('Plan: 4 to create, 1 to change');
    expect(fs.readFileSync(h.file, 'utf8')).toContain(`fingerprint: ${h.host.fingerprint}`);
    expect(fs.readFileSync(h.file, 'utf8')).toContain('# only the id: the token secret lives'); // comments kept
    expect(h.host.writeCount).toBe(0);
  });

  it('apply without --yes and without a terminal refuses before writing', async () => {
    const r = await run(['apply', '--config', h.file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no terminal: Apply these 5 changes/);
    expect(h.host.writeCount).toBe(0);
  });

  it('a saved plan made stale by a change to the file is refused', async () => {
    const out = path.join(h.dir, 'plan.json');
    expect((await run(['plan', '--config', h.file, '--out', out], env)).code).toBe(0);
    const original = fs.readFileSync(h.file, 'utf8');
    fs.writeFileSync(h.file, original.replace('name: opnsense\n', 'name: router\n'));
    try {
      const r = await run(['apply', '--config', h.file, '--plan', out, '--yes'], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('The plan is stale');
      expect(h.host.writeCount).toBe(0);
    } finally {
      fs.writeFileSync(h.file, original);
    }
  });

  it('apply --yes converges (a new certificate needs --trust-on-first-use); again with --detailed-exitcode: exit 0 and zero writes', async () => {
    // --yes does not trust a new certificate (the OPNsense router's, first seen now): that needs its own flag.
    const refused = await run(['apply', '--config', h.file, '--yes'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('The certificate of OPNsense at 127.0.0.1');
    expect(refused.stdout).toMatch(/Proxmox VE host: applied 5 changes with 5 write calls/); // the stage before stays applied
    expect(h.router.controls.writeCount).toBe(0);
    const first = await run(['apply', '--config', h.file, '--yes', '--trust-on-first-use'], env);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/Proxmox VE host\nNo changes/);
    expect(first.stdout).toMatch(/OPNsense router: applied \d+ changes/);
    const writes = h.host.writeCount;
    const second = await run(['apply', '--config', h.file, '--yes', '--detailed-exitcode', '--json'], env);
    expect(second.code).toBe(0);
    const json = JSON.parse(second.stdout) as { stages: { stage: string; report: { writeCalls: number } }[] };
    expect(json.stages.map((s) => [s.stage, s.report.writeCalls])).toEqual([
      ['proxmox', 0],
      ['opnsense', 0],
    ]);
    expect(h.router.controls.contractViolations).toEqual([]);
    expect(h.host.writeCount).toBe(writes);
  });

  it('an OPNsense validation failure: "Unable to <verb> <resource> <name>: <field>: <message>", exit 1', async () => {
    const original = fs.readFileSync(h.file, 'utf8');
    fs.writeFileSync(h.file, original.replace('description: Fibre (ISP modem)', 'description: Fibre (new modem)'));
    h.router.controls.failNextWrite({ field: 'gateway_item.descr', message: 'Enter a valid description.' });
    try {
      const r = await run(['apply', '--config', h.file, '--yes'], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^Error: Unable to update gateway WAN_DHCP: gateway_item\.descr: Enter a valid description\.$/m);
    } finally {
      fs.writeFileSync(h.file, original);
    }
    const again = await run(['apply', '--config', h.file, '--yes', '--json'], env);
    expect(again.code).toBe(0);
  });

  it('never prints the token secret, and never writes it to dualwan.yaml', async () => {
    const r = await run(['plan', '--config', h.file, '--json', '--debug'], env);
    expect(r.code).toBe(0);
    expect(`${r.stdout}${r.stderr}`).not.toContain(h.host.tokenSecret);
    expect(fs.readFileSync(h.file, 'utf8')).not.toContain(h.host.tokenSecret);
  });

  it('a wrong token: the error names the token and the remedy, not the secret', async () => {
    const r = await run(['plan', '--config', h.file], { ...env, DUALWAN_PROXMOX_TOKEN_SECRET: '00000000-0000-0000-0000-000000000000' });
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
