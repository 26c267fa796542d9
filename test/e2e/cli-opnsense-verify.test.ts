// `dualwan verify` on the opnsense-vm backend, the built binary against the simulated router in
// this process (dpinger over time, its clock sped up 20×): the drill reports and exits 0; a router
// that cannot fail over exits 3 with the reason; Ctrl-C mid-drill restores the router before the
// process ends; what a killed run leaves is removed by the next one.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isDrillRuleDescription } from '../../src/providers/opnsense/drill';
import type { OpnsenseVerifyReport } from '../../src/verify/opnsense';
import { openRouterRun, type RouterRun } from '../doubles/opnsense/harness';
import { startSimulatedRouter, writeRouterPlaybook, type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { netGuardEnv } from '../helpers/net-guard-env';

const BIN = path.resolve(__dirname, '../../dist/src/cli/main.js');
jest.setTimeout(120_000);

let router: SimulatedRouter;
let run: RouterRun;
let dir: string;
let file: string;
let env: NodeJS.ProcessEnv;
const s = () => router.controls.state;
const drillRules = (which: 'config' | 'applied' = 'config') => Object.values(which === 'config' ? s().config.rules : s().applied.firewall.rules).filter((r) => isDrillRuleDescription(r.description));
const forceDowns = () => Object.values(s().config.gateways).map((g) => `${g.name}=${g.force_down}`);

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 90_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a drill, waits until the WAN is broken, then sends `signal`; resolves with how it ended. */
async function interrupt(method: string, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  const child = spawn(process.execPath, [BIN, 'verify', '--config', file, '--yes', '--method', method, '--hold', '30'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, sig) => resolve({ code, signal: sig })));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const deadline = Date.now() + 45_000;
    while (!/ok {3}induce:/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the drill did not break the WAN (output so far: ${out})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill(signal);
    return { ...(await ended), out };
  } finally {
    clearTimeout(killer);
  }
}

beforeAll(async () => {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` (npm test does it first)`);
  router = await startSimulatedRouter({ dpinger: { timeScale: 20 } });
  run = await openRouterRun(router);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-verify-'));
  // verify opens the OPNsense stage only; the Proxmox API is pointed at loopback all the same
  file = writeRouterPlaybook(router, dir, undefined, (doc) => {
    doc.setIn(['proxmox', 'host'], '127.0.0.1');
    doc.setIn(['proxmox', 'port'], 1);
  });
  env = { PATH: process.env.PATH, HOME: dir, ...netGuardEnv(), ...router.env, DUALWAN_CREDENTIALS: path.join(dir, 'no-credentials') };
  if (process.env.DUALWAN_CONTRACT_LOG) env.DUALWAN_CONTRACT_LOG = process.env.DUALWAN_CONTRACT_LOG;
  // the first run pins the router's certificate (nothing to drill: the router is not applied yet)
  const first = await cli(['verify', '--config', file, '--yes', '--trust-on-first-use']);
  expect(first.stdout + first.stderr).toContain(router.fingerprint);
  expect(first.code).toBe(3);
  expect(fs.readFileSync(file, 'utf8')).toContain(`fingerprint: ${router.fingerprint}`);
});
afterAll(async () => {
  await run?.close();
  await router?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  router.controls.reset();
  await run.apply(await run.plan());
});
afterEach(() => {
  expect(router.controls.contractViolations).toEqual([]);
});

describe('dualwan verify --method block, the built binary', () => {
  it('reports the figures beside the expected ones and exits 0 when failover behaves (--json)', async () => {
    const r = await cli(['verify', '--config', file, '--yes', '--json', '--hold', '1']);
    expect(r.stderr).not.toContain('Error');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as OpnsenseVerifyReport;
    expect(report).toMatchObject({ backend: 'opnsense-vm', method: 'block', wan: 'isp', gateway: 'WAN_DHCP', backups: ['WAN2_DHCP'], profile: 'balanced', behaved: true, restored: true, problems: [] });
    for (const k of ['detectionS', 'failoverS', 'failbackS'] as const) expect(typeof report.figures[k]).toBe('number');
    expect(report.expected).toMatchObject({ detectionS: 8, limits: { detectionS: 17 } });
    expect(report.dns.every((d) => d.ok)).toBe(true);
    expect(report.meteredFlows?.count).toBe(0);
    expect(drillRules()).toEqual([]);
  });

  it('a router whose group lacks WAN2 exits 3 with the reason, without breaking anything', async () => {
    const [uuid, g] = Object.entries(s().config.groups)[0]!;
    s().config.groups[uuid] = { ...g, item2: '' };
    s().applyRouting();
    const r = await cli(['verify', '--config', file, '--yes']);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('Failover did not behave:');
    expect(r.stdout).toContain('nothing to fail over to');
    expect(drillRules()).toEqual([]);
  });

  it('an unknown --method, and --method with a Linux config, are refused before anything is contacted (exit 1)', async () => {
    const n = router.controls.requests.length;
    const r = await cli(['verify', '--config', file, '--yes', '--method', 'unplug']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/argument 'unplug' is invalid.*block, force-down, cable/s);
    const linux = path.join(dir, 'linux.yaml');
    fs.copyFileSync(path.resolve(__dirname, '../../playbooks/two-lines-loadbalance.yaml'), linux);
    const l = await cli(['verify', '--config', linux, '--yes', '--method', 'block']);
    expect(l.code).toBe(1);
    expect(l.stderr).toContain('--method applies to the opnsense-vm backend.');
    expect(router.controls.requests.length).toBe(n);
  });
});

describe('interrupted drills', () => {
  it('SIGINT mid-drill (block): the rule is removed and the filter reloaded before the process ends', async () => {
    const end = await interrupt('block', 'SIGINT');
    expect(end.signal ?? end.code).toBe('SIGINT');
    expect(end.out).toContain('SIGINT: stopping the drill; restoring isp first');
    expect(end.out).toContain('restored: removed the temporary rule and reloaded the filter');
    expect(drillRules('config')).toEqual([]);
    expect(drillRules('applied')).toEqual([]);
    expect(router.controls.unapplied()).toEqual([]);
    expect(forceDowns()).toEqual(['WAN_DHCP=0', 'WAN2_DHCP=0']);
  });

  it('SIGTERM mid-drill (force-down): force_down is cleared and routing reconfigured before the process ends', async () => {
    const end = await interrupt('force-down', 'SIGTERM');
    expect(end.signal ?? end.code).toBe('SIGTERM');
    expect(end.out).toContain('restored: cleared force_down on WAN_DHCP and reconfigured routing');
    expect(forceDowns()).toEqual(['WAN_DHCP=0', 'WAN2_DHCP=0']);
    expect(router.controls.unapplied()).toEqual([]);
    expect((s().statusMap().get('WAN_DHCP'))).not.toBe('force_down');
  });

  it('a killed drill leaves its rule (marked with its expiry); the next verify removes it first and drills', async () => {
    const end = await interrupt('block', 'SIGKILL');
    expect(end.signal).toBe('SIGKILL');
    const left = drillRules('applied');
    expect(left).toHaveLength(1);
    expect(left[0]!.description).toMatch(/^dualwan verify: temporary block of WAN_DHCP monitor probes to 1\.1\.1\.1, stale after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const r = await cli(['verify', '--config', file, '--yes', '--json', '--hold', '1']);
    expect(r.stderr).toContain('Removed 1 temporary rule(s) left by an earlier drill that could not clean up');
    expect(r.code).toBe(0);
    expect(drillRules('config')).toEqual([]);
  });

  it('a killed force-down drill leaves force_down on; the next verify clears it, saying so', async () => {
    const end = await interrupt('force-down', 'SIGKILL');
    expect(end.signal).toBe('SIGKILL');
    expect(forceDowns()).toContain('WAN_DHCP=1');
    const r = await cli(['verify', '--config', file, '--yes', '--json', '--hold', '1', '--method', 'force-down']);
    expect(r.stderr).toContain('Cleared force_down on WAN_DHCP');
    expect(r.code).toBe(0);
    expect(forceDowns()).toEqual(['WAN_DHCP=0', 'WAN2_DHCP=0']);
  });
});
