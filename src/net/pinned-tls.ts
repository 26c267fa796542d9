import * as tls from 'node:tls';
import * as https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { TlsPinError } from '../core/errors';

/**
 * Certificate pinning by SHA-256 fingerprint.
 *
 * Proxmox and OPNsense ship self-signed certificates. Instead of turning verification off (which
 * would accept any certificate), each connection accepts exactly one certificate: the one whose
 * SHA-256 fingerprint is pinned in dualwan.yaml. The CA chain is not consulted for these
 * connections because the pin is stricter than any CA; nothing is written to the socket before
 * the fingerprint matched. See docs/adr/0003-tls-pinning.md.
 */

const FINGERPRINT_RE = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

export function normaliseFingerprint(fp: string): string {
  const hex = fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
  const pairs = hex.match(/.{2}/g) ?? [];
  return pairs.join(':');
}

export function isFingerprint(fp: string): boolean {
  return FINGERPRINT_RE.test(normaliseFingerprint(fp));
}

export interface PeerCertificateInfo {
  readonly fingerprint256: string;
  readonly subject: string;
  readonly issuer: string;
  readonly validFrom: string;
  readonly validTo: string;
  readonly subjectAltName: string;
}

function describe(cert: tls.PeerCertificate): PeerCertificateInfo {
  const dn = (o: Record<string, unknown> | undefined) =>
    o ? Object.entries(o).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`).join(', ') : '';
  return {
    fingerprint256: cert.fingerprint256,
    subject: dn(cert.subject as unknown as Record<string, unknown>),
    issuer: dn(cert.issuer as unknown as Record<string, unknown>),
    validFrom: cert.valid_from,
    validTo: cert.valid_to,
    subjectAltName: cert.subjectaltname ?? '',
  };
}

function mismatch(host: string, port: number, expected: string, got: string, system: string): TlsPinError {
  return new TlsPinError(
    `The certificate of ${system} at ${host}:${port} does not match the pinned fingerprint.\n  pinned:    ${expected}\n  presented: ${got}\nNothing was sent to the server.`,
    `If the certificate was renewed on purpose, compare the presented fingerprint with the one the server shows locally ` +
      `(Proxmox: \`pvenode cert info\`; OPNsense: System > Trust > Certificates), then put it in dualwan.yaml. ` +
      `If you did not renew it, someone may be intercepting the connection: do not continue.`,
  );
}

/**
 * Opens the byte stream TLS runs over when the server is not reached by TCP from this machine
 * (e.g. an SSH channel through a host that reaches it). The pin is checked the same way: nothing
 * is written into the TLS session before the server's certificate matched.
 */
export type ConnectVia = () => Promise<Duplex>;

export interface PinnedConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly fingerprint: string;
  readonly system: string;
  readonly timeoutMs?: number;
  readonly alpn?: string[];
  /** The stream to run TLS over instead of TCP to host:port; host and port then only name the server. */
  readonly via?: ConnectVia;
}

/** Opens a TLS socket and hands it over only once the server's certificate matched the pin. */
export function connectPinned(opts: PinnedConnectOptions, done: (err: Error | null, socket: tls.TLSSocket | null) => void): tls.TLSSocket | undefined {
  if (opts.via) {
    // the stream first (bounded by the same timeout), then TLS over it
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      done(new Error(`Opening the path to ${opts.host}:${opts.port} timed out`), null);
    }, opts.timeoutMs ?? 10_000);
    opts.via().then(
      (stream) => {
        clearTimeout(timer);
        if (timedOut) {
          stream.destroy();
          return;
        }
        pinnedOver(opts, stream, done);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!timedOut) done(err instanceof Error ? err : new Error(String(err)), null);
      },
    );
    return undefined;
  }
  return pinnedOver(opts, undefined, done);
}

function pinnedOver(opts: PinnedConnectOptions, stream: Duplex | undefined, done: (err: Error | null, socket: tls.TLSSocket | null) => void): tls.TLSSocket {
  const expected = normaliseFingerprint(opts.fingerprint);
  let settled = false;
  const finish = (err: Error | null, s: tls.TLSSocket | null) => {
    if (settled) return;
    settled = true;
    socket.setTimeout(0);
    done(err, s);
  };
  const socket = tls.connect({
    ...(stream ? { socket: stream } : { host: opts.host, port: opts.port }),
    servername: isIP(opts.host) ? undefined : opts.host,
    // The pin below replaces CA validation for this one socket (self-signed certificates).
    rejectUnauthorized: false,
    ALPNProtocols: opts.alpn ?? ['http/1.1'],
  });
  socket.setTimeout(opts.timeoutMs ?? 10_000, () => {
    socket.destroy();
    stream?.destroy();
    finish(new Error(`TLS connection to ${opts.host}:${opts.port} timed out`), null);
  });
  socket.once('secureConnect', () => {
    const got = socket.getPeerCertificate().fingerprint256 ?? '';
    if (normaliseFingerprint(got) !== expected) {
      socket.destroy();
      stream?.destroy();
      finish(mismatch(opts.host, opts.port, expected, got, opts.system), null);
      return;
    }
    finish(null, socket);
  });
  socket.once('error', (e) => {
    stream?.destroy();
    finish(e, null);
  });
  // the stream under TLS goes with it
  if (stream) socket.once('close', () => stream.destroy());
  return socket;
}

/** An https.Agent for axios and node:https that accepts only the pinned certificate. */
export class PinnedHttpsAgent extends https.Agent {
  constructor(
    private readonly pin: { fingerprint: string; system: string; timeoutMs?: number; via?: ConnectVia },
    options?: https.AgentOptions,
  ) {
    super({ keepAlive: true, ...options });
  }

  override createConnection(options: https.RequestOptions, cb?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const host = options.hostname ?? options.host ?? 'localhost';
    connectPinned(
      { host, port: Number(options.port ?? 443), fingerprint: this.pin.fingerprint, system: this.pin.system, timeoutMs: this.pin.timeoutMs, ...(this.pin.via ? { via: this.pin.via } : {}) },
      (err, socket) => cb?.(err, socket as Duplex),
    );
    return undefined;
  }
}

/**
 * Reads the server's certificate without sending anything, for trust on first use: the user is
 * shown this fingerprint and decides whether to pin it.
 */
export async function probeCertificate(host: string, port: number, timeoutMs = 10_000, via?: ConnectVia): Promise<PeerCertificateInfo> {
  const stream = via ? await via() : undefined;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ ...(stream ? { socket: stream } : { host, port }), servername: isIP(host) ? undefined : host, rejectUnauthorized: false });
    if (stream) socket.once('close', () => stream.destroy());
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`No TLS answer from ${host}:${port} within ${timeoutMs} ms`));
    });
    socket.once('secureConnect', () => {
      const info = describe(socket.getPeerCertificate());
      socket.end();
      socket.destroy();
      resolve(info);
    });
    socket.once('error', reject);
  });
}
