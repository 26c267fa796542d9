import * as https from 'node:https';
import { PinnedHttpsAgent, probeCertificate, normaliseFingerprint } from '../../../src/net/pinned-tls';
import { ProxmoxTransport } from '../../../src/providers/proxmox/transport';
import { TlsPinError } from '../../../src/core/errors';
import { startTinyHttpsServer, type TinyHttpsServer } from '../../helpers/tls-server';

const WRONG = 'AA:'.repeat(31) + 'AA';

describe('certificate pinning', () => {
  let srv: TinyHttpsServer;
  beforeAll(async () => {
    srv = await startTinyHttpsServer();
  });
  afterAll(() => srv.close());

  it('probes the fingerprint without sending a request', async () => {
    const before = srv.requests.length;
    const info = await probeCertificate('127.0.0.1', srv.port);
    expect(normaliseFingerprint(info.fingerprint256)).toBe(srv.fingerprint);
    expect(info.subject).toContain('tiny.test');
    expect(srv.requests.length).toBe(before);
  });

  it('talks to a server whose certificate matches the pin (self-signed, no CA)', async () => {
    const t = new ProxmoxTransport({ host: '127.0.0.1', port: srv.port, tokenId: 'a@pve!b', tokenSecret: 's3cret-value', fingerprint: srv.fingerprint });
    await expect(t.doRequest('GET', '/api2/json/version', '/api2/json/version')).resolves.toEqual({ version: '9.1.2', release: '9.1' });
    await t.close();
  });

  it('refuses a mismatch before sending anything, showing both fingerprints', async () => {
    const before = srv.requests.length;
    const t = new ProxmoxTransport({ host: '127.0.0.1', port: srv.port, tokenId: 'a@pve!b', tokenSecret: 's3cret-value', fingerprint: WRONG });
    const err = await t.doRequest('GET', '/api2/json/version', '/api2/json/version').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TlsPinError);
    expect((err as Error).message).toContain(WRONG);
    expect((err as Error).message).toContain(srv.fingerprint);
    expect((err as Error).message).not.toContain('s3cret-value');
    expect(srv.requests.length).toBe(before);
    await t.close();
  });

  it('pins for node:https / axios through PinnedHttpsAgent', async () => {
    const get = (fp: string) =>
      new Promise<number>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: srv.port, path: '/x', agent: new PinnedHttpsAgent({ fingerprint: fp, system: 'test' }) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
    await expect(get(srv.fingerprint)).resolves.toBe(200);
    await expect(get(WRONG)).rejects.toBeInstanceOf(TlsPinError);
  });

  it('does not trust the certificate without the pin (verification stays on elsewhere)', async () => {
    await expect(
      new Promise((resolve, reject) => https.get({ host: '127.0.0.1', port: srv.port, path: '/' }, resolve).on('error', reject)),
    ).rejects.toThrow(/self.signed|unable to verify/i);
  });
});
