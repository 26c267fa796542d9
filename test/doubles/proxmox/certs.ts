// TLS material of the double, generated once per process (RSA generation is slow) and shared by
// every double started in it. Layout of a PVE node with a custom proxy certificate:
//   pve-root-ca.pem   cluster CA            (/CN=Proxmox Virtual Environment/OU=<uuid>/O=PVE Cluster Manager CA)
//   pve-ssl.pem       node cert, CA-signed  (/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=pve.lan)
//   pveproxy-ssl.pem  what pveproxy serves when present - here a self-signed cert, so that a client
//                     can trust exactly this one certificate (connect: { ca: certPem }).
// (pve-cluster src/PVE/Cluster/Setup.pm gen_pveca_cert / gen_pve_ssl_cert, pve-manager
// PVE/API2/Certificates.pm info, pve-common src/PVE/Certificate.pm get_certificate_info)
import { X509Certificate, createHash } from 'node:crypto';

export interface CertInfo {
  filename: string;
  fingerprint: string;
  subject: string;
  issuer: string;
  notbefore: number;
  notafter: number;
  'public-key-type': string;
  'public-key-bits': number;
  san: string[];
  pem: string;
}

export interface TlsMaterial {
  key: string;
  cert: string;
  fingerprint: string;
  infos: CertInfo[];
}

const CLUSTER_UUID = '2b8c1f0e-7a4d-4e3b-9c61-5d2f8a9e0b13';
let cached: Promise<TlsMaterial> | undefined;

export function tlsMaterial(): Promise<TlsMaterial> {
  cached ??= generate();
  return cached;
}

interface Generated {
  private: string;
  cert: string;
}

async function generate(): Promise<TlsMaterial> {
  const selfsigned = require('selfsigned') as { generate(attrs: unknown[], opts: unknown): Promise<Generated> };
  const now = new Date(Math.floor(Date.now() / 1000) * 1000 - 3600_000);
  const days = (n: number) => new Date(now.getTime() + n * 86400_000);
  const nodeSan = {
    name: 'subjectAltName',
    altNames: [
      { type: 7, ip: '127.0.0.1' },
      { type: 7, ip: '::1' },
      { type: 2, value: 'localhost' },
      { type: 7, ip: '192.168.1.10' },
      { type: 2, value: 'pve' },
      { type: 2, value: 'pve.lan' },
    ],
  };
  const ca = await selfsigned.generate(
    [
      { name: 'commonName', value: 'Proxmox Virtual Environment' },
      { shortName: 'OU', value: CLUSTER_UUID },
      { name: 'organizationName', value: 'PVE Cluster Manager CA' },
    ],
    { keySize: 2048, algorithm: 'sha256', notBeforeDate: now, notAfterDate: days(3650), extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }] },
  );
  const nodeAttrs = [
    { shortName: 'OU', value: 'PVE Cluster Node' },
    { name: 'organizationName', value: 'Proxmox Virtual Environment' },
    { name: 'commonName', value: 'pve.lan' },
  ];
  const leafExt = [{ name: 'basicConstraints', cA: false }, { name: 'keyUsage', digitalSignature: true, keyEncipherment: true }, { name: 'extKeyUsage', serverAuth: true }, nodeSan];
  const pveSsl = await selfsigned.generate(nodeAttrs, { keySize: 2048, algorithm: 'sha256', notBeforeDate: now, notAfterDate: days(730), ca: { key: ca.private, cert: ca.cert }, extensions: leafExt });
  const proxy = await selfsigned.generate(nodeAttrs, { keySize: 2048, algorithm: 'sha256', notBeforeDate: now, notAfterDate: days(730), extensions: leafExt });
  const served = pemFix(proxy.cert);
  const infos = [info('pve-root-ca.pem', pemFix(ca.cert)), info('pve-ssl.pem', pemFix(pveSsl.cert)), info('pveproxy-ssl.pem', served)];
  return { key: proxy.private, cert: served, fingerprint: infos[2]!.fingerprint, infos };
}

function pemFix(pem: string): string {
  return pem.trim().replace(/\r\n/g, '\n') + '\n';
}

/** "CN=a\nO=b" (Node) -> "/CN=a/O=b" (OpenSSL X509_NAME_oneline, as PVE reports it) */
function oneline(dn: string): string {
  return dn
    .split('\n')
    .filter(Boolean)
    .map((p) => `/${p}`)
    .join('');
}

/** IPv6 SAN entries as 8 groups of 4 hex digits (pve-common Certificate.pm parse_san) */
function expandIpv6(ip: string): string {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const mid = tail !== undefined ? Array(8 - h.length - t.length).fill('0') : [];
  return [...h, ...mid, ...t].map((g) => g.padStart(4, '0')).join(':');
}

function info(filename: string, pem: string): CertInfo {
  const x = new X509Certificate(pem);
  const fingerprint = createHash('sha256').update(x.raw).digest('hex').toUpperCase().match(/../g)!.join(':');
  const san = (x.subjectAltName ?? '')
    .split(', ')
    .filter(Boolean)
    .map((e) => {
      const [kind, ...rest] = e.split(':');
      const v = rest.join(':');
      return kind === 'IP Address' && v.includes(':') ? expandIpv6(v) : v;
    });
  const pk = x.publicKey;
  return {
    filename,
    fingerprint,
    subject: oneline(x.subject),
    issuer: oneline(x.issuer),
    notbefore: Math.floor(new Date(x.validFrom).getTime() / 1000),
    notafter: Math.floor(new Date(x.validTo).getTime() / 1000),
    'public-key-type': pk.asymmetricKeyType === 'rsa' ? 'rsaEncryption' : String(pk.asymmetricKeyType),
    'public-key-bits': pk.asymmetricKeyDetails?.modulusLength ?? 0,
    san,
    pem,
  };
}
