import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Finding } from '../../src/doctor/run';
import { presentFault } from '../doubles/opnsense/faults';
import { doctorRig, type DoctorRig } from '../helpers/doctor-rig';
import { netGuardEnv } from '../helpers/net-guard-env';

/**
 * `dualwan doctor --json`, the built binary, against the simulated Proxmox host and the simulated
 * OPNsense in this process (both on loopback). --no-lan-checks: nothing is sent on this machine's
 * networks.
 */
const BIN = path.resolve(__dirname, '../../dist/src/cli/main.js');

interface DoctorJson {
  findings: Finding[];
  summary: { ok: number; warn: number; fail: number; skipped: number };
  exitCode: number;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...netGuardEnv(), ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

jest.setTimeout(120_000);

describe('dualwan doctor --json, the built binary', () => {
  let rig: DoctorRig;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` (npm test does it first)`);
    rig = await doctorRig();
    await rig.applyRouter();
    env = { ...rig.h.env, DUALWAN_CREDENTIALS: path.join(rig.h.dir, 'none') };
  });
  afterAll(() => rig?.close());

  const doctor = async () => {
    const routerWrites = rig.h.router.controls.writeCount;
    const hostWrites = rig.h.host.writeCount;
    const r = await run(['doctor', '--json', '--no-lan-checks', '--config', rig.h.file], env);
    expect(rig.h.router.controls.writeCount).toBe(routerWrites);
    expect(rig.h.host.writeCount).toBe(hostWrites);
    expect(rig.h.router.controls.contractViolations).toEqual([]);
    expect(r.stderr).toBe('');
    return { code: r.code, json: JSON.parse(r.stdout) as DoctorJson, stdout: r.stdout };
  };

  it('a clean setup: exit 0, the JSON shape, every area reported, zero writes on both doubles', async () => {
    const { code, json } = await doctor();
    expect(code).toBe(0);
    expect(Object.keys(json).sort()).toEqual(['exitCode', 'findings', 'summary']);
    expect(json.exitCode).toBe(0);
    for (const f of json.findings) {
      expect(Object.keys(f).filter((k) => !['area', 'check', 'status', 'message', 'remedy'].includes(k))).toEqual([]);
      expect(['config', 'host', 'router', 'topology']).toContain(f.area);
      expect(f.check).toMatch(/^[a-z]+\.[a-z0-9.-]+$/);
      if (f.status !== 'ok') expect(f.remedy).toEqual(expect.any(String));
    }
    expect(json.summary).toEqual({
      ok: json.findings.filter((f) => f.status === 'ok').length,
      warn: 0,
      fail: 0,
      skipped: json.findings.filter((f) => f.status === 'skipped').length,
    });
    expect(new Set(json.findings.map((f) => f.area))).toEqual(new Set(['config', 'host', 'router', 'topology']));
    expect(json.findings.filter((f) => f.status === 'skipped').map((f) => f.check).sort()).toEqual(['topology.ap-address', 'topology.no-double-nat', 'topology.single-dhcp']);
  });

  it('a seeded fault (monitoring off): exit 1, the failed check with its remedy; the API secret is never printed', async () => {
    presentFault(rig.h.router.controls, 'monitoring-off');
    const { code, json, stdout } = await doctor();
    expect(code).toBe(1);
    expect(json.exitCode).toBe(1);
    expect(json.findings).toContainEqual(expect.objectContaining({ area: 'router', check: 'router.monitoring', status: 'fail', remedy: expect.stringMatching(/Disable Gateway Monitoring/) }));
    expect(json.summary.fail).toBeGreaterThanOrEqual(1);
    expect(stdout).not.toContain(rig.h.router.apiSecret);
    expect(stdout).not.toContain(rig.h.host.tokenSecret);
  });

  it('the text report: areas as headings, a remedy under each problem', async () => {
    const r = await run(['doctor', '--no-lan-checks', '--config', rig.h.file], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\nrouter\n[\s\S]*✖ router\.monitoring: Gateway WAN_DHCP[^\n]*\n {6}remedy: /);
    expect(r.stdout).toMatch(/\ntopology\n/);
    expect(r.stdout).toMatch(/\d+ ok, \d+ warnings, [1-9]\d* failed, 4 skipped\.\n$/); // the three LAN checks, and the status of the unmonitored gateway
  });
});
