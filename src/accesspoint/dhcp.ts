import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';

/**
 * Just enough DHCP (RFC 2131/2132) to ask "who hands out addresses on this LAN?": a DISCOVER
 * broadcast from a made-up client address, and the OFFERs that come back. Every server answering
 * is one DHCP server on the LAN; more than one is the classic mistake of an access point whose
 * own DHCP server is still on.
 */
export interface DhcpOffer {
  /** Option 54, else the packet's source address. */
  readonly server: string;
  readonly offered: string;
  readonly router?: string;
  readonly subnetMask?: string;
  readonly dns: readonly string[];
}

const MAGIC = Buffer.from([99, 130, 83, 99]);

function ip(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** A DHCPDISCOVER (broadcast flag set) from `mac` with transaction id `xid`. */
export function encodeDiscover(xid: number, mac: Buffer): Buffer {
  const p = Buffer.alloc(240);
  p[0] = 1; // BOOTREQUEST
  p[1] = 1; // Ethernet
  p[2] = 6;
  p.writeUInt32BE(xid >>> 0, 4);
  p.writeUInt16BE(0x8000, 10); // broadcast: answer to 255.255.255.255, we have no address yet
  mac.copy(p, 28, 0, 6);
  MAGIC.copy(p, 236);
  const opts = Buffer.from([53, 1, 1, 55, 4, 1, 3, 6, 54, 255]); // DISCOVER; ask for mask, router, DNS, server id
  return Buffer.concat([p, opts]);
}

/** An OFFER for our transaction, or undefined for anything else. */
export function parseOffer(b: Buffer, xid: number, source?: string): DhcpOffer | undefined {
  if (b.length < 240 || b[0] !== 2 || b.readUInt32BE(4) !== xid >>> 0 || !b.subarray(236, 240).equals(MAGIC)) return undefined;
  let type: number | undefined;
  let server: string | undefined;
  let router: string | undefined;
  let mask: string | undefined;
  const dns: string[] = [];
  for (let i = 240; i < b.length; ) {
    const code = b[i]!;
    if (code === 255) break;
    if (code === 0) {
      i++;
      continue;
    }
    const len = b[i + 1] ?? 0;
    const at = i + 2;
    if (at + len > b.length) break;
    if (code === 53 && len >= 1) type = b[at];
    if (code === 54 && len >= 4) server = ip(b, at);
    if (code === 3 && len >= 4) router = ip(b, at);
    if (code === 1 && len >= 4) mask = ip(b, at);
    if (code === 6) for (let j = 0; j + 4 <= len; j += 4) dns.push(ip(b, at + j));
    i = at + len;
  }
  if (type !== 2) return undefined;
  const s = server ?? source;
  if (!s) return undefined;
  return { server: s, offered: ip(b, 16), ...(router ? { router } : {}), ...(mask ? { subnetMask: mask } : {}), dns };
}

export interface DiscoverOptions {
  /** How long to collect offers (default 3 s; servers answer within milliseconds). */
  readonly listenMs?: number;
  /** How many DISCOVERs to send over the window (a lost broadcast is common on Wi-Fi). */
  readonly attempts?: number;
  /** Local address to send from (default all interfaces). */
  readonly bindAddress?: string;
}

export class DhcpProbeError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'DhcpProbeError';
  }
}

/**
 * Broadcasts DISCOVERs and collects OFFERs, one per server. Needs UDP port 68 (root, or
 * CAP_NET_BIND_SERVICE) and a route for the broadcast; a DhcpProbeError says which was missing.
 * Nothing is leased: no REQUEST follows an OFFER.
 */
export function discoverDhcpServers(opts: DiscoverOptions = {}): Promise<DhcpOffer[]> {
  const xid = randomBytes(4).readUInt32BE(0);
  // a locally administered unicast MAC, so no real client's lease is touched
  const mac = randomBytes(6);
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  const listenMs = opts.listenMs ?? 3_000;
  const attempts = Math.max(1, opts.attempts ?? 2);
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const offers = new Map<string, DhcpOffer>();
    const timers: NodeJS.Timeout[] = [];
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      try {
        sock.close();
      } catch {
        // closed already
      }
      if (err) reject(err);
      else resolve([...offers.values()]);
    };
    sock.on('error', (e: NodeJS.ErrnoException) => finish(new DhcpProbeError(e.code === 'EACCES' ? 'listening on UDP port 68 needs root (or CAP_NET_BIND_SERVICE)' : `DHCP probe failed: ${e.message}`, e.code)));
    sock.on('message', (msg, rinfo) => {
      const o = parseOffer(msg, xid, rinfo.address);
      if (o && !offers.has(o.server)) offers.set(o.server, o);
    });
    sock.bind({ port: 68, ...(opts.bindAddress ? { address: opts.bindAddress } : {}) }, () => {
      try {
        sock.setBroadcast(true);
      } catch (e) {
        finish(new DhcpProbeError(`cannot broadcast: ${(e as Error).message}`, undefined));
        return;
      }
      const packet = encodeDiscover(xid, mac);
      for (let i = 0; i < attempts; i++) {
        timers.push(
          setTimeout(() => {
            sock.send(packet, 67, '255.255.255.255', (e) => {
              if (e) finish(new DhcpProbeError(`cannot send a DHCP discover: ${e.message}`, (e as NodeJS.ErrnoException).code));
            });
          }, Math.floor((i * listenMs) / (attempts + 1))),
        );
      }
      timers.push(setTimeout(() => finish(), listenMs));
    });
  });
}
