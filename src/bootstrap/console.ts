import { StringDecoder } from 'node:string_decoder';
import type { WebSocket } from 'undici';
import { DualwanError, RemoteApiError } from '../core/errors';
import type { ProxmoxClient } from '../providers/proxmox/client';

/**
 * A VM's serial console through the Proxmox API: `termproxy` gives a one-time ticket and port,
 * `vncwebsocket` carries the session over the same pinned TLS and token as every REST call
 * (ProxmoxTransport.openWebSocket: undici's RFC 6455 client). On the websocket, termproxy's
 * protocol (proxmox/pve-xtermjs: README, xterm.js main.js, termproxy main.rs):
 * - first message `<user>:<ticket>\n`, answered `OK`;
 * - then input as `0:<byte length>:<data>`, size as `1:<cols>:<rows>:`, keep-alive `2`
 *   (termproxy drops a session silent for 5 minutes);
 * - the server sends the terminal's raw bytes.
 */
export interface SerialConsole {
  /** Text from the console, decoded as UTF-8 across frame boundaries. */
  onData(listener: (text: string) => void): void;
  /** Called once when the session ends, with the reason. */
  onClose(listener: (reason: string) => void): void;
  /** Types text (a key, a line: send `\r` for Enter as a terminal does). */
  send(text: string): void;
  resize(cols: number, rows: number): void;
  close(): void;
  readonly closed: boolean;
}

export interface OpenConsoleOptions {
  readonly serial?: 'serial0' | 'serial1' | 'serial2' | 'serial3';
  /** Websocket open + `OK`, ms (default 15 s). */
  readonly connectTimeoutMs?: number;
  /** Keep-alive period, ms (default 30 s; termproxy's idle limit is 5 min). */
  readonly pingEveryMs?: number;
  readonly cols?: number;
  readonly rows?: number;
}

export class ConsoleError extends DualwanError {
  constructor(message: string, remedy?: string, cause?: unknown) {
    super('CONSOLE_FAILED', message, { source: 'remote', remedy, cause });
  }
}

/** `0:LEN:DATA` with LEN the UTF-8 byte length of DATA. */
export function encodeInput(text: string): string {
  return `0:${Buffer.byteLength(text, 'utf8')}:${text}`;
}

export function encodeResize(cols: number, rows: number): string {
  return `1:${Math.max(1, Math.floor(cols))}:${Math.max(1, Math.floor(rows))}:`;
}

function toBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(String(data), 'utf8');
}

/** Opens the serial console of a running VM. The VM needs `serialN: socket`; the token VM.Console. */
export async function openSerialConsole(client: ProxmoxClient, vmid: number, opts: OpenConsoleOptions = {}): Promise<SerialConsole> {
  const serial = opts.serial ?? 'serial0';
  const proxy = await client.termproxy(vmid, serial);
  let ws: WebSocket;
  try {
    ws = client.openVncWebSocket(vmid, proxy.port, proxy.ticket);
  } catch (e) {
    throw new ConsoleError(`Unable to open the serial console of VM ${vmid}: ${e instanceof Error ? e.message : String(e)}`, undefined, e);
  }
  ws.binaryType = 'arraybuffer';
  const decoder = new StringDecoder('utf8');
  const dataListeners: ((t: string) => void)[] = [];
  const closeListeners: ((r: string) => void)[] = [];
  let closed = false;
  let closeReason = '';
  const keepAlive: { timer?: NodeJS.Timeout } = {};
  let early = '';

  const finish = (reason: string) => {
    if (closed) return;
    closed = true;
    closeReason = reason;
    if (keepAlive.timer) clearInterval(keepAlive.timer);
    for (const l of closeListeners) l(reason);
  };

  await new Promise<void>((resolve, reject) => {
    let authed = false;
    const timer = setTimeout(() => {
      try {
        ws.close();
      } catch {
        // already closing
      }
      reject(new ConsoleError(`The serial console of VM ${vmid} did not answer within ${opts.connectTimeoutMs ?? 15_000} ms (termproxy port ${proxy.port}).`, 'Check that the VM runs and has serial0: socket, and that the token has VM.Console on /vms/' + vmid + '.'));
    }, opts.connectTimeoutMs ?? 15_000);
    ws.addEventListener('open', () => {
      ws.send(`${proxy.user}:${proxy.ticket}\n`);
    });
    ws.addEventListener('message', (ev) => {
      const text = decoder.write(toBuffer(ev.data));
      if (!authed) {
        early += text;
        // termproxy writes "OK" before the terminal's first byte; both may share one frame.
        if (early.length < 2) return;
        if (!early.startsWith('OK')) {
          clearTimeout(timer);
          ws.close();
          reject(new ConsoleError(`termproxy refused the console ticket of VM ${vmid}: ${JSON.stringify(early.slice(0, 80))}`));
          return;
        }
        authed = true;
        clearTimeout(timer);
        early = early.slice(2);
        resolve();
        return;
      }
      for (const l of dataListeners) l(text);
    });
    ws.addEventListener('close', (ev) => {
      clearTimeout(timer);
      finish(`closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`);
      if (!authed) reject(new ConsoleError(`The serial console of VM ${vmid} closed before it was ready (code ${ev.code}).`, 'Check that the token has VM.Console and that the VM runs.'));
    });
    ws.addEventListener('error', (ev) => {
      const err = (ev as unknown as { error?: unknown }).error;
      if (!authed) {
        clearTimeout(timer);
        reject(
          err instanceof DualwanError
            ? err
            : new RemoteApiError({ system: 'proxmox', method: 'GET', path: `qemu/${vmid}/vncwebsocket`, message: `websocket failed: ${err instanceof Error ? err.message : 'connection error'}`, transient: true, cause: err }),
        );
      }
    });
  });

  const send = (s: string) => {
    if (!closed) ws.send(s);
  };
  send(encodeResize(opts.cols ?? 80, opts.rows ?? 24));
  keepAlive.timer = setInterval(() => send('2'), opts.pingEveryMs ?? 30_000);
  keepAlive.timer.unref?.();

  const console_: SerialConsole = {
    onData(l) {
      dataListeners.push(l);
      if (early) {
        const t = early;
        early = '';
        l(t);
      }
    },
    onClose(l) {
      if (closed) l(closeReason);
      else closeListeners.push(l);
    },
    send: (text) => send(encodeInput(text)),
    resize: (c, r) => send(encodeResize(c, r)),
    close() {
      if (keepAlive.timer) clearInterval(keepAlive.timer);
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
      finish('closed by dualwan');
    },
    get closed() {
      return closed;
    },
  };
  return console_;
}
