// The guard that keeps tests on loopback: refused destinations fail fast with ECONNREFUSED and are
// logged; loopback still works. Each case logs to its own file so the run's log stays clean.
import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { netGuardEnv } from '../../helpers/net-guard-env';

// 192.0.2.0/24 is TEST-NET-1 (documentation only); nothing is sent there anyway: the guard refuses first.
const FAR = '192.0.2.1';

describe('the tests network guard', () => {
  let dir: string;
  let runLog: string | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-guard-'));
    runLog = process.env.DUALWAN_NET_GUARD_LOG;
    process.env.DUALWAN_NET_GUARD_LOG = path.join(dir, 'log.jsonl');
  });
  afterEach(() => {
    process.env.DUALWAN_NET_GUARD_LOG = runLog;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const logged = () => (fs.existsSync(path.join(dir, 'log.jsonl')) ? fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind: string; host: string; port: number }) : []);

  it('refuses a TCP connection beyond loopback and logs it', async () => {
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect({ host: FAR, port: 9 }).on('error', resolve));
    expect(err.code).toBe('ECONNREFUSED');
    expect(err.message).toContain(`${FAR}:9`);
    expect(logged()).toEqual([expect.objectContaining({ kind: 'tcp', host: FAR, port: 9 })]);
  });

  it('lets loopback through', async () => {
    const server = net.createServer((s) => s.end('hi'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const text = await new Promise<string>((resolve, reject) => {
      let got = '';
      net.connect(port, '127.0.0.1').on('data', (d) => (got += String(d))).on('end', () => resolve(got)).on('error', reject);
    });
    server.close();
    expect(text).toBe('hi');
    expect(logged()).toEqual([]);
  });

  it('refuses a UDP datagram beyond loopback', async () => {
    const sock = dgram.createSocket('udp4');
    const err = await new Promise<Error | null>((resolve) => sock.send(Buffer.from('x'), 53, FAR, resolve));
    sock.close();
    expect((err as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(logged()).toEqual([expect.objectContaining({ kind: 'udp', host: FAR, port: 53 })]);
  });

  it('is loaded into a child node process through NODE_OPTIONS', () => {
    const env = { ...process.env, ...netGuardEnv() };
    const out = execFileSync(process.execPath, ['-e', `require('net').connect(9, '${FAR}').on('error', (e) => console.log(e.code))`], { env, encoding: 'utf8', timeout: 10_000 });
    expect(out.trim()).toBe('ECONNREFUSED');
    expect(logged()).toEqual([expect.objectContaining({ kind: 'tcp', host: FAR, port: 9 })]);
  });
});
