/**
 * The access-point checks for real, in network namespaces (root only; skipped with the reason
 * otherwise). Namespaces with the prefix dwap<id>-:
 *
 *   client eth0 ── toC ┐ ap: bridge br0 192.168.10.2 ┌ toR ── lan0 192.168.10.1  router ── wan0 ── up0  inet (198.51.100.1)
 *
 * The product's checks run inside the client namespace (its DHCP DISCOVER, its TTL-limited pings),
 * started as a child process with the repository's TypeScript loader. DHCP servers are tiny
 * responders (a few lines of node) started in the namespace that plays each device.
 * - Bridged AP, router alone serving DHCP: every check passes.
 * - The AP's own DHCP server still on: the single-DHCP check fails and names 192.168.10.2.
 * - The AP still a router (client on its LAN side, NAT to the router): the double-NAT check fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { CheckResult } from '../../src/accesspoint/checks';
import { describeIfRoot } from '../lab/jest-lab';

jest.setTimeout(90_000);

const ID = `dwap${randomBytes(3).toString('hex')}`;
const NS = { client: `${ID}-client`, ap: `${ID}-ap`, router: `${ID}-router`, inet: `${ID}-inet` } as const;
const ROOT = path.resolve(__dirname, '../..');
const started = new Set<ChildProcess>();

const STATE = {
  lan: { uplink: { type: 'bridge', bridge: 'vmbr0' }, subnet: '192.168.10.0/24', routerAddress: '192.168.10.1', dhcp: { enabled: true, rangeStart: '192.168.10.100', rangeEnd: '192.168.10.249' } },
  accessPoint: { vendor: 'tp-link', model: 'Archer C6', address: '192.168.10.2' },
};

function run(argv: string[], ok = true): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  if (ok && r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr || r.stdout}`);
  return `${r.stdout}${r.stderr}`;
}
const ipn = (ns: string, ...args: string[]) => run(['ip', '-n', ns, ...args]);

// A DHCP server that answers every DISCOVER with one OFFER (no leases kept): argv server, offer,
// router, the broadcast address to answer to. Lives at most two minutes.
const RESPONDER = `
const dgram = require('node:dgram');
const [server, offer, router, bcast] = process.argv.slice(1);
const ip = (a) => Buffer.from(a.split('.').map(Number));
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (m) => {
  if (m.length < 240 || m[0] !== 1) return;
  const r = Buffer.alloc(240);
  r[0] = 2; r[1] = 1; r[2] = 6;
  m.copy(r, 4, 4, 8);
  r.writeUInt16BE(0x8000, 10);
  ip(offer).copy(r, 16);
  ip(server).copy(r, 20);
  m.copy(r, 28, 28, 34);
  Buffer.from([99, 130, 83, 99]).copy(r, 236);
  const o = Buffer.concat([Buffer.from([53, 1, 2, 54, 4]), ip(server), Buffer.from([1, 4, 255, 255, 255, 0, 3, 4]), ip(router), Buffer.from([51, 4, 0, 0, 14, 16, 255])]);
  s.send(Buffer.concat([r, o]), 68, bcast);
});
s.bind(67, () => { s.setBroadcast(true); process.stdout.write('ready\\n'); });
setTimeout(() => process.exit(0), 120000);
`;

async function startResponder(ns: string, server: string, offer: string, router: string, bcast: string): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', RESPONDER, server, offer, router, bcast], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(child);
  child.on('exit', () => started.delete(child));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('DHCP responder did not start')), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`DHCP responder exited ${String(code)}`)));
  });
  return child;
}

function stop(child: ChildProcess): void {
  if (child.exitCode === null) child.kill('SIGTERM');
  started.delete(child);
}

/** The product's checks, run inside the client namespace. */
function checksFromClient(): CheckResult[] {
  const script = `
require(${JSON.stringify(path.join(ROOT, 'test/lab/register-ts.js'))});
const { runAccessPointChecks, shellLanProbe } = require(${JSON.stringify(path.join(ROOT, 'src/accesspoint/checks.ts'))});
const { discoverDhcpServers } = require(${JSON.stringify(path.join(ROOT, 'src/accesspoint/dhcp.ts'))});
const { LocalShell } = require(${JSON.stringify(path.join(ROOT, 'src/providers/linux/local.ts'))});
const state = JSON.parse(process.argv[1]);
runAccessPointChecks(state, shellLanProbe(new LocalShell(), 'linux', () => discoverDhcpServers({ listenMs: 1500 })), { outTarget: '198.51.100.1', maxHops: 4 })
  .then((r) => process.stdout.write(JSON.stringify(r)), (e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;
  const out = run(['ip', 'netns', 'exec', NS.client, process.execPath, '-e', script, JSON.stringify(STATE)]);
  return JSON.parse(out.slice(out.indexOf('['))) as CheckResult[];
}

function teardown(): void {
  for (const c of [...started]) stop(c);
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
}

function build(): void {
  for (const ns of Object.values(NS)) {
    run(['ip', 'netns', 'add', ns]);
    ipn(ns, 'link', 'set', 'lo', 'up');
  }
  ipn(NS.client, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'toC', 'netns', NS.ap);
  ipn(NS.ap, 'link', 'add', 'toR', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', NS.router);
  ipn(NS.router, 'link', 'add', 'wan0', 'type', 'veth', 'peer', 'name', 'up0', 'netns', NS.inet);
  ipn(NS.ap, 'link', 'add', 'br0', 'type', 'bridge');
  for (const dev of ['toC', 'toR']) {
    ipn(NS.ap, 'link', 'set', dev, 'master', 'br0');
    ipn(NS.ap, 'link', 'set', dev, 'up');
  }
  ipn(NS.ap, 'addr', 'add', '192.168.10.2/24', 'dev', 'br0');
  ipn(NS.ap, 'link', 'set', 'br0', 'up');
  ipn(NS.client, 'addr', 'add', '192.168.10.50/24', 'dev', 'eth0');
  ipn(NS.client, 'link', 'set', 'eth0', 'up');
  ipn(NS.client, 'route', 'add', 'default', 'via', '192.168.10.1');
  ipn(NS.router, 'addr', 'add', '192.168.10.1/24', 'dev', 'lan0');
  ipn(NS.router, 'link', 'set', 'lan0', 'up');
  ipn(NS.router, 'addr', 'add', '100.64.10.2/24', 'dev', 'wan0');
  ipn(NS.router, 'link', 'set', 'wan0', 'up');
  ipn(NS.router, 'route', 'add', 'default', 'via', '100.64.10.1');
  run(['ip', 'netns', 'exec', NS.router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  ipn(NS.inet, 'addr', 'add', '100.64.10.1/24', 'dev', 'up0');
  ipn(NS.inet, 'link', 'set', 'up0', 'up');
  ipn(NS.inet, 'addr', 'add', '198.51.100.1/32', 'dev', 'lo');
  ipn(NS.inet, 'route', 'add', '192.168.10.0/24', 'via', '100.64.10.2');
}

/** The TP-Link still a router: the client on its LAN side (192.168.0.0/24), NAT towards our LAN. */
function apAsRouter(): void {
  ipn(NS.ap, 'link', 'set', 'toC', 'nomaster');
  ipn(NS.ap, 'addr', 'add', '192.168.0.1/24', 'dev', 'toC');
  ipn(NS.ap, 'route', 'add', 'default', 'via', '192.168.10.1');
  run(['ip', 'netns', 'exec', NS.ap, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  run(['ip', 'netns', 'exec', NS.ap, 'nft', 'add table ip nat; add chain ip nat post { type nat hook postrouting priority 100; policy accept; }; add rule ip nat post oifname "br0" masquerade']);
  ipn(NS.client, 'addr', 'flush', 'dev', 'eth0');
  ipn(NS.client, 'addr', 'add', '192.168.0.50/24', 'dev', 'eth0');
  ipn(NS.client, 'route', 'add', 'default', 'via', '192.168.0.1');
}

const byId = (r: CheckResult[]) => Object.fromEntries(r.map((x) => [x.id, x]));

describeIfRoot('access-point checks in network namespaces', () => {
  let routerDhcp: ChildProcess;
  beforeAll(async () => {
    process.once('exit', teardown);
    build();
    routerDhcp = await startResponder(NS.router, '192.168.10.1', '192.168.10.100', '192.168.10.1', '192.168.10.255');
  });
  afterAll(() => teardown());

  it('pass with the AP bridged and the router alone serving DHCP', () => {
    const r = byId(checksFromClient());
    expect(r['ap-address']).toMatchObject({ status: 'pass', message: 'The Archer C6 answers at 192.168.10.2.' });
    expect(r['single-dhcp']).toMatchObject({ status: 'pass', message: 'Exactly one DHCP server answers on the LAN: the router (192.168.10.1).' });
    expect(r['no-double-nat']).toMatchObject({ status: 'pass' });
  });

  it('fail for a second DHCP server, naming the device and what to switch off', async () => {
    const apDhcp = await startResponder(NS.ap, '192.168.10.2', '192.168.0.100', '192.168.0.1', '192.168.10.255');
    try {
      const r = byId(checksFromClient());
      expect(r['single-dhcp']!.status).toBe('fail');
      expect(r['single-dhcp']!.message).toMatch(/^2 DHCP servers answer on the LAN: .*192\.168\.10\.2 \(offers 192\.168\.0\.100 with gateway 192\.168\.0\.1, outside the LAN 192\.168\.10\.0\/24\)/);
      expect(r['single-dhcp']!.change).toMatch(/^Switch off the DHCP server of the device at 192\.168\.10\.2 — that is the Archer C6/);
      expect(r['ap-address']!.status).toBe('pass');
    } finally {
      stop(apDhcp);
    }
  });

  it('fail for double NAT when the TP-Link still routes, saying to switch it to Access Point mode', async () => {
    stop(routerDhcp);
    apAsRouter();
    const apDhcp = await startResponder(NS.ap, '192.168.0.1', '192.168.0.100', '192.168.0.1', '192.168.0.255');
    routerDhcp = await startResponder(NS.router, '192.168.10.1', '192.168.10.100', '192.168.10.1', '192.168.10.255');
    try {
      const r = byId(checksFromClient());
      expect(r['no-double-nat']!.status).toBe('fail');
      expect(r['no-double-nat']!.message).toBe('Traffic to 198.51.100.1 passes 192.168.0.1 before the router 192.168.10.1: a second router translates addresses on the way out (double NAT).');
      expect(r['no-double-nat']!.change).toMatch(/The device at 192\.168\.0\.1 still routes .* Switch it to Access Point mode/);
      expect(r['single-dhcp']).toMatchObject({ status: 'fail', message: 'The DHCP server answering here is 192.168.0.1 (offers 192.168.0.100 with gateway 192.168.0.1), not the router (192.168.10.1).' });
    } finally {
      stop(apDhcp);
    }
  });
});
