// Serial consoles of the Proxmox double: `termproxy` + `vncwebsocket`, as qemu-server,
// pve-http-server and termproxy (pve-xtermjs) do it, with a simulated guest on the other end of
// the VM's serial socket. See CONSOLE.md next to this file.
//
// - POST …/termproxy (API2/Qemu.pm termproxy) loads the VM, assembles a ticket
//   `PVEVNC:<hex time>::<signature>` for the user and /vms/<vmid>, takes the next free port from
//   5900 and starts a `vncproxy` task that runs while termproxy waits for and serves one client.
// - GET …/vncwebsocket with `Upgrade: websocket` (pve-http-server websocket_proxy): the ticket must
//   match the user, the VM and the port; the protocol is `binary`. Then termproxy's protocol:
//   the first message is `<user>:<ticket>\n`, answered `OK`; the client then sends `0:LEN:DATA`
//   (input), `1:COLS:ROWS:` (resize) and `2` (ping), as one byte stream (pveproxy forwards the
//   websocket payloads to termproxy's TCP socket); the server sends the terminal's raw bytes.
// - `qm terminal <vmid> -iface serial0 -escape 0` runs behind termproxy: it refuses a VM that does
//   not run or has no such socket serial port, else prints one line and joins the VM's serial
//   socket. QEMU's socket chardev keeps no backlog: what the guest prints while nobody is
//   connected is lost, which is how a client can miss a prompt.
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { DoubleCore } from './core';
import { PerlDie } from './jsonschema';

/** The guest side of a VM's serial port. */
export interface GuestTerminal {
  write(data: string | Buffer): void;
}
export interface SerialConnection {
  input(data: Buffer): void;
  disconnect(): void;
}
export interface SerialGuest {
  /** A client joined the serial socket; output goes to `term` until `disconnect`. */
  connect(term: GuestTerminal): SerialConnection;
  /** The VM started (a cold boot) or stopped. */
  power(on: boolean): void;
}

export interface ConsoleOptions {
  /** termproxy waits this long for the websocket after the API call (real: 10 s). */
  connectTimeoutMs?: number;
  /** termproxy closes a session without any message for this long (real: 5 min). */
  idleTimeoutMs?: number;
}

interface Session {
  port: number;
  vmid: number;
  serial: string;
  user: string;
  ticket: string;
  upid: string;
  used: boolean;
  timer?: NodeJS.Timeout;
  end(status: string): void;
}

const hubs = new WeakMap<DoubleCore, ConsoleHub>();

export function consoleHubOf(core: DoubleCore): ConsoleHub | undefined {
  return hubs.get(core);
}

function hex8(n: number): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** RFC 6455 server side: unmasked frames out, masked frames in. */
export function wsFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126) {
    head[0] = 0x80 | opcode;
    if (len < 65536) {
      head[1] = 126;
      head.writeUInt16BE(len, 2);
    } else {
      head[1] = 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
  }
  return Buffer.concat([head, payload]);
}

export class WsServerConnection {
  private buf = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  closed = false;
  onMessage: (data: Buffer) => void = () => undefined;
  onClose: () => void = () => undefined;

  constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.feed(d));
    socket.on('close', () => this.finish());
    socket.on('error', () => this.finish());
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  feed(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (let guard = 0; guard < 10_000; guard++) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0]!;
      const b1 = this.buf[1]!;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (!masked) {
        // RFC 6455 5.1: a server must close on an unmasked client frame.
        this.close(1002);
        return;
      }
      if (this.buf.length < at + 4 + len) return;
      const mask = this.buf.subarray(at, at + 4);
      const payload = Buffer.from(this.buf.subarray(at + 4, at + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
      this.buf = this.buf.subarray(at + 4 + len);
      if (opcode === 0x8) {
        this.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000);
        return;
      }
      if (opcode === 0x9) {
        this.socket.write(wsFrame(0xa, payload));
        continue;
      }
      if (opcode === 0xa) continue;
      if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) {
        this.fragments.push(payload);
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = [];
          this.onMessage(whole);
        }
      }
    }
  }

  send(data: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(wsFrame(0x2, data));
  }

  close(code = 1000): void {
    if (this.closed) return;
    const p = Buffer.alloc(2);
    p.writeUInt16BE(code, 0);
    if (!this.socket.destroyed) this.socket.end(wsFrame(0x8, p));
    this.finish();
  }
}

export class ConsoleHub {
  readonly guests = new Map<number, SerialGuest>();
  private readonly sessions = new Map<number, Session>();
  /** Every message termproxy parsed, for tests: kind and payload. */
  readonly received: { vmid: number; kind: 'input' | 'resize' | 'ping' | 'ticket'; data: string }[] = [];
  /** Sessions that ended and why. */
  readonly ended: { vmid: number; port: number; status: string }[] = [];
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;

  constructor(
    private readonly core: DoubleCore,
    opts: ConsoleOptions = {},
  ) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 300_000;
    hubs.set(core, this);
  }

  attachGuest(vmid: number, guest: SerialGuest): void {
    this.guests.set(vmid, guest);
    const vm = this.core.findVm(vmid);
    if (vm?.status === 'running') guest.power(true);
  }

  /** Called by the VM start/stop handlers. */
  power(vmid: number, on: boolean): void {
    this.guests.get(vmid)?.power(on);
  }

  close(): void {
    for (const s of this.sessions.values()) s.end('OK');
  }

  /** API2/Qemu.pm termproxy */
  termproxy(user: string, vmid: number, serial: string | undefined): { user: string; ticket: string; port: number; upid: string } {
    const vm = this.core.loadVm(vmid);
    let iface = serial;
    if (iface === undefined) {
      const vga = vm.conf.vga ?? '';
      const m = /^(?:type=)?(serial\d)/.exec(vga);
      iface = m?.[1];
    }
    let port = 5900;
    while (this.sessions.has(port) && port < 5999) port++;
    if (this.sessions.has(port)) throw new PerlDie('unable to find free port\n');
    const now = Math.floor(Date.now() / 1000);
    const ticket = `PVEVNC:${hex8(now)}::${randomBytes(48).toString('base64')}`;
    const pid = this.core.nextPid();
    const upid = `UPID:${this.core.node}:${hex8(pid)}:${hex8(0x1b2c3d + pid)}:${hex8(now)}:vncproxy:${vmid}:${user}:`;
    const task = { upid, node: this.core.node, pid, pstart: 0x1b2c3d + pid, starttime: now, type: 'vncproxy', id: String(vmid), user, status: 'running' as 'running' | 'stopped', log: [] as string[], exitstatus: undefined as string | undefined };
    this.core.tasks.set(upid, { task, warnings: 0 } as unknown as Parameters<DoubleCore['tasks']['set']>[1]);
    const session: Session = {
      port,
      vmid,
      serial: iface ?? '',
      user,
      ticket,
      upid,
      used: false,
      end: (status) => {
        if (session.timer) clearTimeout(session.timer);
        if (!this.sessions.has(port)) return;
        this.sessions.delete(port);
        task.status = 'stopped';
        task.exitstatus = status;
        task.log.push(status === 'OK' ? 'TASK OK' : `TASK ERROR: ${status}`);
        this.ended.push({ vmid, port, status });
      },
    };
    // termproxy gives up when no client comes (pve-xtermjs termproxy: accept with a timeout).
    session.timer = setTimeout(() => session.end('connection timed out'), this.connectTimeoutMs);
    session.timer.unref?.();
    this.sessions.set(port, session);
    return { user, ticket, port, upid };
  }

  /** API2/Qemu.pm vncwebsocket: verify_vnc_ticket for this user and /vms/<vmid>. */
  verify(user: string, vmid: number, port: number, ticket: string): Session | undefined {
    const s = this.sessions.get(port);
    if (!s || s.vmid !== vmid || s.user !== user || s.ticket !== ticket || s.used) return undefined;
    return s;
  }

  /** The accepted websocket of a verified session: termproxy's protocol over it. */
  serve(session: Session, socket: Socket, key: string, head: Buffer): void {
    session.used = true;
    if (session.timer) clearTimeout(session.timer);
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`, 'Sec-WebSocket-Protocol: binary', '', ''].join('\r\n'));
    const ws = new WsServerConnection(socket);
    let stream = Buffer.alloc(0);
    let authed = false;
    let conn: SerialConnection | undefined;
    let idle: NodeJS.Timeout | undefined;
    const resetIdle = () => {
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => ws.close(1000), this.idleTimeoutMs);
      idle.unref?.();
    };
    const stop = () => {
      if (idle) clearTimeout(idle);
      conn?.disconnect();
      conn = undefined;
      session.end('OK');
    };
    ws.onClose = stop;
    const startTerminal = () => {
      const vm = this.core.findVm(session.vmid);
      const iface = session.serial;
      // qemu-server PVE/CLI/qm.pm terminal
      if (!vm) return this.failTerminal(ws, `Configuration file 'nodes/${this.core.node}/qemu-server/${session.vmid}.conf' does not exist`);
      if (iface && !vm.conf[iface]) return this.failTerminal(ws, `serial interface '${iface}' is not configured`);
      if (iface && vm.conf[iface] !== 'socket') return this.failTerminal(ws, `wrong serial type on interface '${iface}'`);
      if (vm.status !== 'running') return this.failTerminal(ws, `VM ${session.vmid} not running`);
      ws.send(Buffer.from(`starting serial terminal on interface ${iface || 'serial0'}\r\n`));
      const guest = this.guests.get(session.vmid);
      conn = guest?.connect({ write: (d) => ws.send(Buffer.isBuffer(d) ? d : Buffer.from(d, 'utf8')) });
      return undefined;
    };
    const consume = () => {
      for (let guard = 0; guard < 10_000 && stream.length; guard++) {
        if (!authed) {
          const nl = stream.indexOf(0x0a);
          if (nl < 0) {
            if (stream.length > 4096) ws.close(1008);
            return;
          }
          const line = stream.subarray(0, nl).toString('utf8');
          stream = stream.subarray(nl + 1);
          this.received.push({ vmid: session.vmid, kind: 'ticket', data: line });
          const i = line.indexOf(':');
          if (i < 0 || line.slice(0, i) !== session.user || line.slice(i + 1) !== session.ticket) {
            ws.close(1008);
            return;
          }
          authed = true;
          ws.send(Buffer.from('OK'));
          startTerminal();
          continue;
        }
        const t = stream[0];
        if (t === 0x32) {
          // '2' ping
          stream = stream.subarray(1);
          this.received.push({ vmid: session.vmid, kind: 'ping', data: '' });
          continue;
        }
        if (t === 0x30) {
          const m = /^0:(\d+):/.exec(stream.subarray(0, 24).toString('latin1'));
          if (!m) {
            if (stream.length > 24) ws.close(1008);
            return;
          }
          const len = Number(m[1]);
          if (stream.length < m[0].length + len) return;
          const data = stream.subarray(m[0].length, m[0].length + len);
          stream = stream.subarray(m[0].length + len);
          this.received.push({ vmid: session.vmid, kind: 'input', data: data.toString('utf8') });
          conn?.input(Buffer.from(data));
          continue;
        }
        if (t === 0x31) {
          const m = /^1:(\d+):(\d+):/.exec(stream.subarray(0, 32).toString('latin1'));
          if (!m) {
            if (stream.length > 32) ws.close(1008);
            return;
          }
          stream = stream.subarray(m[0].length);
          this.received.push({ vmid: session.vmid, kind: 'resize', data: `${m[1]}x${m[2]}` });
          continue;
        }
        // termproxy stops on a message it cannot parse.
        ws.close(1008);
        return;
      }
    };
    ws.onMessage = (data) => {
      resetIdle();
      stream = Buffer.concat([stream, data]);
      consume();
    };
    resetIdle();
    if (head.length) ws.feed(head);
  }

  private failTerminal(ws: WsServerConnection, text: string): undefined {
    ws.send(Buffer.from(`${text}\r\n`));
    ws.close(1000);
    return undefined;
  }
}
