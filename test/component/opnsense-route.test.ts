/**
 * Reaching OPNsense before the cutover (proxmox.cutover): its LAN NIC is still the Proxmox host's
 * management NIC, so dualwan goes through the host: SSH (a real sshd, the cutover's settings, host
 * key pinned) and a forwarded channel to proxmox.cutover.gateway, with TLS and OPNsense's pinned
 * certificate over it. Root only (sshd), skipped with the reason otherwise.
 *
 * Everything is on loopback, as the tests' network rule asks: the sshd listens on 127.0.0.1, the
 * router double on 127.0.0.1, so the cutover gateway is 127.0.0.1 here (the host's address on the
 * cutover bridge 127.0.0.2/24), and opnsense.host (the LAN address, reached directly after the
 * cutover) is 127.0.0.2, where nothing listens: only the route through the host can reach the
 * router before the cutover. The Proxmox double answers whether the cutover is done (the gateway on
 * the cutover bridge in the host's running network config).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { probeOpnsenseApi } from '../../src/bootstrap/flow';
import { loadConfigFile } from '../../src/config/load';
import type { DesiredState } from '../../src/core/desired';
import { TlsPinError } from '../../src/core/errors';
import { pendingChanges } from '../../src/core/plan';
import { doctorOpnsense } from '../../src/doctor/router';
import { applyWithBackup, opnsenseStage } from '../../src/flows/opnsense';
import { openOpnsenseReach } from '../../src/flows/opnsense-route';
import { desiredHash } from '../../src/flows/router-vm';
import type { StageEnv, StageSession } from '../../src/flows/stage';
import { isUnreachable } from '../../src/flows/stages';
import { makePlan, observe } from '../../src/plan/engine';
import { HostKeyMismatchError } from '../../src/providers/linux/ssh';
import { connectProxmox } from '../../src/providers/proxmox/provider';
import { startSimulatedRouter, type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { startSimulatedHost, writePlaybookFor, type SimulatedHost } from '../doubles/proxmox/simulated-host';
import { TestUi } from '../helpers/test-ui';
import { labSkipReason } from '../lab/jest-lab';
import { opensshFingerprint, writeLabSshdConfig } from '../lab/lab';

jest.setTimeout(60_000);

const SSHD = '/usr/sbin/sshd';
const skip = labSkipReason() ?? (fs.existsSync(SSHD) ? undefined : `needs OpenSSH's server at ${SSHD}`);
const HOST_ADDRESS = '127.0.0.2/24';
const GATEWAY = '127.0.0.1';
const LAN_ADDRESS = '127.0.0.2';

let dir = '';
let sshdPid: number | undefined;
let sshPort = 0;
let host: SimulatedHost;
let router: SimulatedRouter;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function run(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

async function startSshd(): Promise<void> {
  run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key')]);
  fs.copyFileSync(path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys'));
  sshPort = await freePort();
  const config = path.join(dir, 'sshd_config');
  writeLabSshdConfig(config, { comment: 'Proxmox host sshd for the route-to-OPNsense test', listen: `127.0.0.1:${sshPort}`, hostKey: path.join(dir, 'host_key'), pidFile: path.join(dir, 'sshd.pid'), authorizedKeys: path.join(dir, 'authorized_keys'), extra: ['AllowTcpForwarding yes'] });
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const child = spawn('timeout', ['-k', '5', '300', SSHD, '-D', '-f', config, '-E', path.join(dir, 'sshd.log')], { detached: true, stdio: 'ignore' });
  child.unref();
  sshdPid = child.pid;
  const end = Date.now() + 15_000;
  while (!fs.existsSync(path.join(dir, 'sshd.pid'))) {
    if (Date.now() > end) throw new Error(`sshd did not start: ${fs.existsSync(path.join(dir, 'sshd.log')) ? fs.readFileSync(path.join(dir, 'sshd.log'), 'utf8') : ''}`);
    await new Promise<void>((r) => setTimeout(r, 50));
  }
}

/** dualwan.yaml: the Proxmox double, the cutover opted in with its SSH on the test sshd. */
function writeConfig(name: string, edit?: (doc: ReturnType<typeof parseDocument>) => void, port = router.port): { file: string; state: DesiredState } {
  const sub = fs.mkdtempSync(path.join(dir, `${name}-`));
  const file = writePlaybookFor(host, sub, 'hotspot-failover.yaml', (doc) => {
    doc.setIn(['lan', 'uplink'], doc.createNode({ type: 'pci-nic', pci: '0000:01:00.0' }));
    doc.setIn(['vm', 'bridgeNic'], doc.createNode({ bridge: 'vmbr1' }));
    doc.setIn(['proxmox', 'cutover'], doc.createNode({ hostAddress: HOST_ADDRESS, gateway: GATEWAY, ssh: { user: 'root', port: sshPort } }));
    doc.setIn(['opnsense', 'host'], LAN_ADDRESS);
    doc.setIn(['opnsense', 'port'], port);
    edit?.(doc);
  });
  const loaded = loadConfigFile(file);
  if (!loaded.state) throw new Error(loaded.diagnostics.map((d) => d.message).join('\n'));
  return { file, state: loaded.state };
}

function envFor(state: DesiredState, ui: TestUi, extra: Record<string, string> = {}): StageEnv {
  return {
    state,
    ui,
    trustOnFirstUse: true,
    credentialsFile: path.join(dir, 'no-credentials'),
    env: { ...router.env, DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret, DUALWAN_SSH_PRIVATE_KEY_FILE: path.join(dir, 'client_key'), ...extra },
    earlier: [],
  };
}

/** The host's cutover bridge as the Proxmox stage leaves it (address, no gateway), or as the cutover does (with the gateway). */
async function setBridge(gateway: boolean): Promise<void> {
  const { state } = writeConfig('bridge');
  const conn = connectProxmox(state, host.tokenSecret, host.fingerprint);
  try {
    const net = await conn.client.network();
    const vmbr0 = net.find((i) => i.iface === 'vmbr0')!;
    const params = { type: 'bridge', cidr: HOST_ADDRESS, autostart: 1 };
    if (!net.some((i) => i.iface === 'vmbr1')) await conn.client.createNetworkIface({ iface: 'vmbr1', ...params });
    // one default gateway per host (the API refuses a second): it moves between the bridges
    if (gateway) {
      await conn.client.updateNetworkIface('vmbr0', { type: 'bridge', cidr: vmbr0.cidr!, delete: 'gateway' });
      await conn.client.updateNetworkIface('vmbr1', { ...params, gateway: GATEWAY });
    } else {
      await conn.client.updateNetworkIface('vmbr1', { ...params, delete: 'gateway' });
      await conn.client.updateNetworkIface('vmbr0', { type: 'bridge', cidr: vmbr0.cidr!, gateway: '192.168.1.1' });
    }
    await conn.client.applyNetwork({ what: 'test: vmbr1' });
  } finally {
    await conn.close();
  }
}

const planOf = async (session: StageSession, state: DesiredState) => makePlan(session.handlers, await observe(session.ctx, session.handlers), desiredHash(state), new Date().toISOString());

if (skip) {
  process.stderr.write(`[component] "reaching OPNsense through the Proxmox host" skipped: ${skip}\n`);
  describe('reaching OPNsense through the Proxmox host before the cutover', () => {
    it.skip(`skipped: ${skip}`, () => undefined);
  });
} else {
  describe('reaching OPNsense through the Proxmox host before the cutover', () => {
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-opnsense-route-'));
      process.once('exit', () => {
        if (sshdPid !== undefined) spawnSync('kill', ['-TERM', String(sshdPid)]);
      });
      await startSshd();
      host = await startSimulatedHost({ authFailDelayMs: 0 });
      // seeded as dualwan's bootstrap seeds it for this dualwan.yaml: its PVEHOST interface at the gateway
      router = await startSimulatedRouter({ state: writeConfig('router', undefined, 443).state });
    });
    afterAll(async () => {
      if (sshdPid !== undefined) {
        try {
          process.kill(sshdPid, 'SIGTERM');
        } catch {
          // already gone
        }
        sshdPid = undefined;
      }
      await router?.close();
      await host?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });
    beforeEach(() => router.controls.reset());

    it('the route is chosen from the host: before the cutover through it, after the cutover directly', async () => {
      await setBridge(false);
      const { state } = writeConfig('choose');
      const before = await openOpnsenseReach(envFor(state, new TestUi()));
      try {
        expect(before.route).toMatchObject({ kind: 'proxmox-host', host: GATEWAY, port: router.port, ssh: { host: '127.0.0.1', port: sshPort, user: 'root' } });
      } finally {
        await before.close();
      }
      await setBridge(true);
      const after = await openOpnsenseReach(envFor(state, new TestUi()));
      expect(after.route).toEqual({ kind: 'direct', host: LAN_ADDRESS, port: router.port });
      await after.close();
      await setBridge(false);
    });

    it('the OPNsense stage pins, plans and applies through the tunnel; the messages name the route', async () => {
      await setBridge(false);
      const { file, state } = writeConfig('stage');
      const ui = new TestUi();
      const env = envFor(state, ui);
      const session = await opnsenseStage({ sleep: async () => undefined, gatewayListWaitMs: 2_000, revertBackoffMs: 0, client: { requestTimeoutMs: 10_000 } }).open(env);
      try {
        // first contact with both: the host's SSH key and OPNsense's certificate (read through the tunnel) are pinned
        const written = loadConfigFile(file).state!;
        expect(written.proxmox!.cutover!.ssh.hostKey).toBe(opensshFingerprint(path.join(dir, 'host_key.pub')));
        expect(written.opnsense!.fingerprint).toBe(router.fingerprint);
        const version = ui.notices.find((n) => n.code === 'OPNSENSE_VERSION')!;
        expect(version.text).toBe(`OPNsense 26.7.2 at ${GATEWAY}:${router.port} through the Proxmox host root@127.0.0.1 (SSH) — the LAN port is the host's until the cutover.`);
        const plan = await planOf(session, written);
        expect(pendingChanges(plan).length).toBeGreaterThan(0);
        // the apply's re-reach opens fresh TLS sessions: through the tunnel too
        await applyWithBackup(session, plan, { state: written, ui });
        expect(ui.notices.map((n) => n.code)).toContain('OPNSENSE_REACHED_AFTER_APPLY');
        expect(router.controls.writeCount).toBeGreaterThan(0);
        expect(pendingChanges(await planOf(session, written))).toEqual([]);
      } finally {
        await session.close();
      }
    });

    it("OPNsense's pinned certificate is enforced through the tunnel: a wrong pin is refused before any request", async () => {
      await setBridge(false);
      const wrong = Array.from({ length: 32 }, () => 'AB').join(':');
      const { state } = writeConfig('wrong-pin', (doc) => doc.setIn(['opnsense', 'fingerprint'], wrong));
      const e = await opnsenseStage().open(envFor(state, new TestUi())).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(TlsPinError);
      expect((e as Error).message).toMatch(new RegExp(`pinned:\\s+${wrong}[\\s\\S]*presented: ${router.fingerprint}`));
      expect(router.controls.requests).toEqual([]);
      // the bootstrap's REST check refuses it the same way (not "not answering yet")
      const reach = await openOpnsenseReach(envFor(state, new TestUi()));
      try {
        const probe = probeOpnsenseApi({ host: reach.client.host, port: reach.client.port, connectVia: reach.client.connectVia!, fingerprint: wrong, apiKey: router.apiKey, apiSecret: router.apiSecret, timeoutMs: 5_000 });
        await expect(probe).rejects.toBeInstanceOf(TlsPinError);
      } finally {
        await reach.close();
      }
      expect(router.controls.requests).toEqual([]);
    });

    it("the bootstrap's REST check and doctor's router checks go through the tunnel too", async () => {
      await setBridge(false);
      const { state } = writeConfig('probe', (doc) => doc.setIn(['opnsense', 'fingerprint'], router.fingerprint));
      const reach = await openOpnsenseReach(envFor(state, new TestUi()));
      try {
        const t = { host: reach.client.host, port: reach.client.port, connectVia: reach.client.connectVia!, fingerprint: router.fingerprint, timeoutMs: 5_000 };
        await expect(probeOpnsenseApi({ ...t, apiKey: router.apiKey, apiSecret: router.apiSecret })).resolves.toBe('ok');
        await expect(probeOpnsenseApi({ ...t, apiKey: router.apiKey, apiSecret: 'not-the-secret' })).resolves.toBe('unauthorized');
        // without the tunnel, the LAN address does not answer before the cutover
        await expect(probeOpnsenseApi({ host: LAN_ADDRESS, port: router.port, fingerprint: router.fingerprint, apiKey: router.apiKey, apiSecret: router.apiSecret, timeoutMs: 2_000 })).resolves.toBe('unreachable');
      } finally {
        await reach.close();
      }
      const findings = await doctorOpnsense(state, { ui: new TestUi(), env: envFor(state, new TestUi()).env, credentialsFile: path.join(dir, 'no-credentials'), trustOnFirstUse: true });
      expect(findings.find((f) => f.check === 'router.reachable')).toMatchObject({ status: 'ok', message: expect.stringMatching(/^OPNsense 26\.7\.2 at 127\.0\.0\.1:\d+ through the Proxmox host root@127\.0\.0\.1 \(SSH\)/) });
    });

    it('after the cutover OPNsense is reached directly at its LAN address, not through the host', async () => {
      await setBridge(true);
      try {
        const { state } = writeConfig('after', (doc) => doc.setIn(['opnsense', 'fingerprint'], router.fingerprint));
        // nothing listens at 127.0.0.2: the direct route is the one taken, and it is "not reachable"
        const e = await opnsenseStage().open(envFor(state, new TestUi())).catch((x: unknown) => x);
        expect(isUnreachable(e)).toBe(true);
        expect((e as Error).message).toMatch(/ECONNREFUSED/);
        expect(router.controls.requests).toEqual([]);
        // pointed at the router's real address, the stage opens with no word of the host
        const moved = writeConfig('after-lan', (doc) => {
          doc.setIn(['opnsense', 'fingerprint'], router.fingerprint);
          doc.setIn(['opnsense', 'host'], GATEWAY);
        });
        const ui = new TestUi();
        const session = await opnsenseStage().open(envFor(moved.state, ui, { DUALWAN_SSH_PRIVATE_KEY_FILE: '/nonexistent/key' }));
        await session.close();
        expect(ui.notices.find((n) => n.code === 'OPNSENSE_VERSION')!.text).toBe(`OPNsense 26.7.2 at ${GATEWAY}:${router.port}.`);
      } finally {
        await setBridge(false);
      }
    });

    it("the host's SSH key is pinned: another key is refused before anything reaches OPNsense", async () => {
      await setBridge(false);
      const other = `SHA256:${'A'.repeat(43)}`;
      const { state } = writeConfig('host-key', (doc) => doc.setIn(['proxmox', 'cutover', 'ssh', 'hostKey'], other));
      const e = await opnsenseStage().open(envFor(state, new TestUi())).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HostKeyMismatchError);
      expect((e as HostKeyMismatchError).presented).toBe(opensshFingerprint(path.join(dir, 'host_key.pub')));
      expect(router.controls.requests).toEqual([]);
    });
  });
}
