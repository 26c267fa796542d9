import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';

export interface TinyHttpsServer {
  readonly port: number;
  readonly fingerprint: string;
  /** Requests that reached the HTTP layer (i.e. bytes were sent over TLS). */
  readonly requests: string[];
  close(): Promise<void>;
}

/** A loopback HTTPS server with a fresh self-signed certificate, answering like the Proxmox API. */
export async function startTinyHttpsServer(body: unknown = { data: { version: '9.1.2', release: '9.1' } }): Promise<TinyHttpsServer> {
  const pems = await generate([{ name: 'commonName', value: 'tiny.test' }], { keySize: 2048, days: 2, extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }] } as never);
  const requests: string[] = [];
  const server = https.createServer({ key: pems.private, cert: pems.cert }, (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'Content-Type': 'application/json;charset=UTF-8' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const fingerprint = new X509Certificate(pems.cert).fingerprint256;
  return {
    port: (server.address() as AddressInfo).port,
    fingerprint,
    requests,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
