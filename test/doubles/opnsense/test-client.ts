// A raw HTTPS client for the double's own tests: exact bytes, any method/header, trusting exactly
// the double's certificate.
import * as https from 'node:https';
import type { OpnsenseDouble } from './server';

export interface RawAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
  readonly json: unknown;
}

export interface RawOptions {
  readonly body?: unknown;
  /** raw body text (overrides body) */
  readonly rawBody?: string;
  readonly contentType?: string | null;
  readonly auth?: { key: string; secret: string } | null;
  readonly userAgent?: string;
  readonly timeoutMs?: number;
}

export function rawCall(d: Pick<OpnsenseDouble, 'port' | 'certPem' | 'apiKey' | 'apiSecret'>, method: string, path: string, o: RawOptions = {}): Promise<RawAnswer> {
  const text = o.rawBody ?? (o.body === undefined ? '' : JSON.stringify(o.body));
  const headers: Record<string, string> = { 'User-Agent': o.userAgent ?? 'double-test/1' };
  const ct = o.contentType === undefined ? (text ? 'application/json' : null) : o.contentType;
  if (ct) headers['Content-Type'] = ct;
  if (text) headers['Content-Length'] = String(Buffer.byteLength(text));
  const auth = o.auth === undefined ? { key: d.apiKey, secret: d.apiSecret } : o.auth;
  if (auth) headers.Authorization = `Basic ${Buffer.from(`${auth.key}:${auth.secret}`).toString('base64')}`;
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: d.port, method, path, headers, ca: d.certPem, agent: false, timeout: o.timeoutMs ?? 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const t = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(t);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: t, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(text);
  });
}
