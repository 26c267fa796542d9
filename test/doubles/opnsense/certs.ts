// The web GUI certificate of the double: self-signed, like the one OPNsense generates at install
// ("OPNsense self-signed web certificate" for <hostname>.<domain>). Generated once per process.
import { X509Certificate, createHash } from 'node:crypto';

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  /** SHA-256, "AA:BB:…" */
  readonly fingerprint: string;
}

let cached: Promise<TlsMaterial> | undefined;

export function tlsMaterial(): Promise<TlsMaterial> {
  cached ??= generate();
  return cached;
}

async function generate(): Promise<TlsMaterial> {
  const selfsigned = require('selfsigned') as { generate(attrs: unknown[], opts: unknown): Promise<{ private: string; cert: string }> };
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
  const pems = await selfsigned.generate(
    [
      { name: 'organizationName', value: 'OPNsense self-signed web certificate' },
      { name: 'commonName', value: 'OPNsense.internal' },
    ],
    {
      keySize: 2048,
      algorithm: 'sha256',
      notBeforeDate: notBefore,
      notAfterDate: new Date(notBefore.getTime() + 397 * 86400_000),
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 2, value: 'OPNsense.internal' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '192.168.10.1' }] },
      ],
    },
  );
  const cert = `${pems.cert.trim().replace(/\r\n/g, '\n')}\n`;
  const raw = new X509Certificate(cert).raw;
  const fingerprint = createHash('sha256').update(raw).digest('hex').toUpperCase().match(/../g)!.join(':');
  return { key: pems.private, cert, fingerprint };
}
