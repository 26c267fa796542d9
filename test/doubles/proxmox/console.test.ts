// The double's upload, termproxy and vncwebsocket: behaviour a client other than dualwan's could
// see (raw HTTPS and a raw websocket), checked against CONSOLE.md.
import { createHash, randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { startProxmoxDouble, type ProxmoxDouble } from './server';
import { wsFrame } from './console';
import { RawClient, type RawResponse } from './test-client';
import { useRawDouble } from '../../helpers/raw-double';
import { until } from '../../helpers/until';

jest.setTimeout(30_000);


function multipart(fields: Record<string, string>, file?: { name: string; data: Buffer }): { body: Buffer; type: string } {
  const b = `b${randomBytes(6).toString('hex')}`;
  const parts: Buffer[] = Object.entries(fields).map(([k, v]) => Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  if (file) parts.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="filename"; filename="${file.name}"\r\nContent-Type: application/octet-stream\r\n\r\n`), file.data, Buffer.from('\r\n'));
  parts.push(Buffer.from(`--${b}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${b}` };
}

/** A raw HTTPS request (the test client only sends forms). */
function raw(d: ProxmoxDouble, method: string, path: string, body: Buffer, type: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: d.host, port: d.port, rejectUnauthorized: false }, () => {
      s.write(`${method} /api2/json${path} HTTP/1.1\r\nHost: x\r\nAuthorization: PVEAPIToken=${d.tokenId}=${d.tokenSecret}\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      s.write(body);
    });
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1]);
      resolve({ status, text: got.slice(got.indexOf('\r\n\r\n') + 4) });
    });
    s.on('error', reject);
  });
}

/** A raw websocket: handshake, then masked frames out; returns everything received. */
function rawWebSocket(d: ProxmoxDouble, path: string): Promise<{ status: string; socket: tls.TLSSocket; frames: () => Buffer }> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const s = tls.connect({ host: d.host, port: d.port, rejectUnauthorized: false }, () => {
      s.write(`GET /api2/json${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\nAuthorization: PVEAPIToken=${d.tokenId}=${d.tokenSecret}\r\n\r\n`);
    });
    let buf = Buffer.alloc(0);
    let headDone = false;
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!headDone) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        headDone = true;
        const head = buf.subarray(0, i).toString();
        buf = buf.subarray(i + 4);
        const expected = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        if (head.startsWith('HTTP/1.1 101') && !head.includes(`Sec-WebSocket-Accept: ${expected}`)) reject(new Error('bad accept'));
        resolve({ status: head.split('\r\n')[0]!, socket: s, frames: () => buf });
      }
    });
    s.on('error', reject);
  });
}

function masked(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = randomBytes(4);
  const p = Buffer.from(payload);
  for (let i = 0; i < p.length; i++) p[i] = p[i]! ^ mask[i % 4]!;
  const f = wsFrame(opcode, Buffer.alloc(p.length));
  f[0] = (fin ? 0x80 : 0) | opcode;
  f[1] = f[1]! | 0x80;
  const headLen = f.length - p.length;
  return Buffer.concat([f.subarray(0, headLen), mask, p]);
}

/** Server frames → their payloads (unmasked, as a server sends). */
function payloads(b: Buffer): { op: number; data: Buffer }[] {
  const out: { op: number; data: Buffer }[] = [];
  let i = 0;
  while (i + 2 <= b.length) {
    let len = b[i + 1]! & 0x7f;
    let at = i + 2;
    if (len === 126) {
      len = b.readUInt16BE(i + 2);
      at = i + 4;
    }
    if (at + len > b.length) break;
    out.push({ op: b[i]! & 0x0f, data: b.subarray(at, at + len) });
    i = at + len;
  }
  return out;
}

describe('storage upload (multipart)', () => {
  let d: ProxmoxDouble;
  let c: RawClient;
  useRawDouble({ authFailDelayMs: 0, taskDurationMs: 10 }, (double, client) => ((d = double), (c = client)), { reset: false });

  it('spools the file, runs an imgcopy task, verifies the checksum and lists the volume', async () => {
    const data = Buffer.from('seed bytes');
    const sha = createHash('sha256').update(data).digest('hex');
    const m = multipart({ content: 'iso', 'checksum-algorithm': 'sha256', checksum: sha }, { name: 'seed.iso', data });
    const r = await raw(d, 'POST', '/nodes/pve/storage/local/upload', m.body, m.type);
    expect(r.status).toBe(200);
    const upid = (JSON.parse(r.text) as { data: string }).data;
    expect(upid).toMatch(/^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:imgcopy::dualwan@pve!setup:$/);
    await d.settle();
    const log = (await c.data<{ t: string }[]>('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/log`)).map((l) => l.t);
    expect(log).toEqual(expect.arrayContaining(['calculating checksum...OK, checksum verified', 'target file: /var/lib/vz/template/iso/seed.iso', 'file size is: 10', 'TASK OK']));
    expect(log[0]).toMatch(/^starting file import from: \/var\/tmp\/pveupload-[0-9a-f]+$/);
    const vol = d.state.volumes.find((v) => v.volid === 'local:iso/seed.iso')!;
    expect(vol.bytes?.toString()).toBe('seed bytes');
    expect(d.requests.find((q) => q.template === '/nodes/{node}/storage/{storage}/upload')?.params).toMatchObject({ content: 'iso', filename: 'seed.iso', tmpfilename: expect.stringMatching(/^\/var\/tmp\/pveupload-/) });
    // the same name again overwrites
    const again = multipart({ content: 'iso' }, { name: 'seed.iso', data: Buffer.from('v2') });
    expect((await raw(d, 'POST', '/nodes/pve/storage/local/upload', again.body, again.type)).status).toBe(200);
    await d.settle();
    expect(d.state.volumes.filter((v) => v.volid === 'local:iso/seed.iso').map((v) => v.bytes?.toString())).toEqual(['v2']);
  });

  it('fails the task on a checksum mismatch, refuses a wrong extension (400) and a storage without the content (500)', async () => {
    const m = multipart({ content: 'iso', 'checksum-algorithm': 'sha256', checksum: '00' }, { name: 'x.iso', data: Buffer.from('y') });
    const upid = (JSON.parse((await raw(d, 'POST', '/nodes/pve/storage/local/upload', m.body, m.type)).text) as { data: string }).data;
    await d.settle();
    const st = await c.data<{ exitstatus: string }>('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`);
    expect(st.exitstatus).toMatch(/^checksum mismatch: got '[0-9a-f]{64}' != expect '00'$/);
    const ext = multipart({ content: 'iso' }, { name: 'x.txt', data: Buffer.from('y') });
    const e = await raw(d, 'POST', '/nodes/pve/storage/local/upload', ext.body, ext.type);
    expect([e.status, JSON.parse(e.text)]).toEqual([400, { data: null, message: 'Parameter verification failed.\n', errors: { filename: 'wrong file extension' } }]);
    const lvm = multipart({ content: 'iso' }, { name: 'x.iso', data: Buffer.from('y') });
    const l = await raw(d, 'POST', '/nodes/pve/storage/local-lvm/upload', lvm.body, lvm.type);
    expect([l.status, (JSON.parse(l.text) as { message: string }).message]).toEqual([500, "can't upload to storage type 'lvmthin'\n"]);
    const none = await raw(d, 'POST', '/nodes/pve/storage/local/upload', Buffer.from('content=iso&filename=a.iso'), 'application/x-www-form-urlencoded');
    expect([none.status, (JSON.parse(none.text) as { message: string }).message]).toEqual([500, 'missing temporary file name\n']);
  });
});

describe('termproxy and vncwebsocket', () => {
  let d: ProxmoxDouble;
  let c: RawClient;
  beforeAll(async () => {
    d = await startProxmoxDouble({ authFailDelayMs: 0, taskDurationMs: 10, consoles: { connectTimeoutMs: 300, idleTimeoutMs: 400 } });
    c = new RawClient(d);
    await c.data('POST', '/nodes/pve/qemu', { vmid: '100', serial0: 'socket', name: 'r' });
    await d.settle();
  });
  afterAll(async () => {
    await c.close();
    await d.close();
  });

  const proxy = async () => c.data<{ user: string; ticket: string; port: number; upid: string }>('POST', '/nodes/pve/qemu/100/termproxy', { serial: 'serial0' });
  const wsPath = (p: { port: number; ticket: string }) => `/nodes/pve/qemu/100/vncwebsocket?port=${p.port}&vncticket=${encodeURIComponent(p.ticket)}`;

  it('answers termproxy with user, ticket, port and a running vncproxy task that ends when nobody connects', async () => {
    const p = await proxy();
    expect(p).toMatchObject({ user: 'dualwan@pve!setup', port: 5900, upid: expect.stringMatching(/:vncproxy:100:dualwan@pve!setup:$/) });
    expect(p.ticket).toMatch(/^PVEVNC:[0-9A-F]{8}::/);
    const status = () => c.data<{ status: string; exitstatus?: string }>('GET', `/nodes/pve/tasks/${encodeURIComponent(p.upid)}/status`);
    expect((await status()).status).toBe('running');
    await until(() => d.consoles!.ended.some((e) => e.port === p.port));
    expect(await status()).toMatchObject({ status: 'stopped', exitstatus: 'connection timed out' });
  });

  it('upgrades with the binary protocol, wants the ticket line first, answers OK, parses a byte stream', async () => {
    const p = await proxy();
    const ws = await rawWebSocket(d, wsPath(p));
    expect(ws.status).toBe('HTTP/1.1 101 Switching Protocols');
    // ticket and two messages split across frames, one of them fragmented
    ws.socket.write(masked(0x2, Buffer.from(`${p.user}:${p.ticket}\n1:10`)));
    ws.socket.write(masked(0x2, Buffer.from('0:24:0:3:a'), false));
    ws.socket.write(masked(0x0, Buffer.from('bc2')));
    await until(() => d.consoles!.received.filter((r) => r.kind !== 'ticket').length >= 3 || payloads(ws.frames()).length >= 2);
    await until(() => d.consoles!.received.some((r) => r.kind === 'ping'));
    const got = d.consoles!.received.slice(-3).map((r) => `${r.kind}:${r.data}`);
    expect(got).toEqual(['resize:100x24', 'input:abc', 'ping:']);
    const frames = payloads(ws.frames());
    expect(frames[0]!.data.toString()).toBe('OK');
    // VM 100 is stopped: qm terminal says so and the session closes
    expect(frames[1]!.data.toString()).toBe('VM 100 not running\r\n');
    ws.socket.destroy();
  });

  it('refuses a used ticket, another VM\'s port and a missing token before upgrading', async () => {
    const p = await proxy();
    const first = await rawWebSocket(d, wsPath(p));
    expect(first.status).toMatch(/101/);
    const second = await rawWebSocket(d, wsPath(p));
    expect(second.status).toBe('HTTP/1.1 401 permission denied - invalid vnc ticket');
    first.socket.destroy();
    const bad = await rawWebSocket(d, `/nodes/pve/qemu/100/vncwebsocket?port=6000&vncticket=x`);
    expect(bad.status).toBe('HTTP/1.1 400 Parameter verification failed.');
  });

  it('closes a session that sends a message termproxy cannot parse, or nothing for the idle time', async () => {
    const p = await proxy();
    const ws = await rawWebSocket(d, wsPath(p));
    ws.socket.write(masked(0x2, Buffer.from(`${p.user}:${p.ticket}\nX`)));
    await until(() => payloads(ws.frames()).some((f) => f.op === 0x8));
    const q = await proxy();
    const idle = await rawWebSocket(d, wsPath(q));
    idle.socket.write(masked(0x2, Buffer.from(`${q.user}:${q.ticket}\n`)));
    await until(() => payloads(idle.frames()).some((f) => f.op === 0x8), 3_000);
    ws.socket.destroy();
    idle.socket.destroy();
  });

  it('answers 501 as before when consoles are not simulated', async () => {
    const plain = await startProxmoxDouble({ authFailDelayMs: 0 });
    try {
      const pc = new RawClient(plain);
      const r: RawResponse = await pc.call('POST', '/nodes/pve/qemu/100/termproxy', { serial: 'serial0' });
      expect(r).toMatchObject({ status: 501, reason: "Method 'POST /nodes/pve/qemu/100/termproxy' not implemented by the proxmox test double" });
      await pc.close();
    } finally {
      await plain.close();
    }
  });
});
