/**
 * The LAN client's view during `dualwan verify`, from the machine running dualwan (on the LAN):
 * a DNS query every `intervalMs`, each from a new UDP socket — a new connection-tracking entry and
 * a new multipath choice on the router, exactly what a new connection of any device meets.
 */
import * as dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { ClientProbe, ClientProbeRun, ClientProber } from './linux';

/** A minimal DNS query for `name`, type A, recursion desired. */
export function dnsQuery(id: number, name: string): Buffer {
  const labels = name.split('.').filter(Boolean);
  const parts: Buffer[] = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'ascii'));
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  return Buffer.concat(parts);
}

export class UdpDnsClientProber implements ClientProber {
  readonly describe: string;
  constructor(
    private readonly server: string,
    private readonly name = 'example.com',
    private readonly intervalMs = 50,
    private readonly waitMs = 1_000,
  ) {
    this.describe = `a DNS query to ${server} every ${intervalMs} ms from this machine, each on a new UDP socket`;
  }

  start(): ClientProbeRun {
    const probes: { at: number; ok: boolean }[] = [];
    const open = new Set<dgram.Socket>();
    const fire = () => {
      const entry = { at: Date.now(), ok: false };
      probes.push(entry);
      const id = randomInt(0, 65536);
      const sock = dgram.createSocket('udp4');
      open.add(sock);
      const close = () => {
        if (open.delete(sock)) sock.close();
      };
      const timer = setTimeout(close, this.waitMs);
      sock.on('error', () => {
        clearTimeout(timer);
        close();
      });
      sock.on('message', (msg) => {
        if (msg.length >= 2 && msg.readUInt16BE(0) === id) entry.ok = true;
        clearTimeout(timer);
        close();
      });
      sock.send(dnsQuery(id, this.name), 53, this.server);
    };
    const interval = setInterval(fire, this.intervalMs);
    return {
      stop: async (): Promise<readonly ClientProbe[]> => {
        clearInterval(interval);
        await new Promise((r) => setTimeout(r, this.waitMs + 50));
        for (const s of open) s.close();
        open.clear();
        return probes;
      },
    };
  }
}
