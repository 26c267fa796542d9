// A minimal raw HTTP client for the double's own tests: trusts exactly the double's certificate,
// sends form-encoded bodies like PVE clients do, and returns status line, headers and body.
import { Agent, fetch } from 'undici';
import type { ProxmoxDouble } from './server';

export interface RawResponse {
  status: number;
  reason: string;
  contentType: string | null;
  text: string;
  body: { data?: unknown; message?: string; errors?: Record<string, string>; total?: number } | undefined;
}

export class RawClient {
  readonly agent: Agent;
  constructor(
    private readonly d: ProxmoxDouble,
    private readonly opts: { auth?: string | null; userAgent?: string } = {},
  ) {
    this.agent = new Agent({ connect: { ca: d.certPem } });
  }

  async call(method: string, path: string, params: Record<string, string | string[] | number> = {}, extraHeaders: Record<string, string> = {}): Promise<RawResponse> {
    const form = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) form.append(k, String(x));
    const hasBody = method === 'POST' || method === 'PUT';
    const qs = form.toString();
    const url = `${this.d.url}/api2/json${path}${!hasBody && qs ? `?${qs}` : ''}`;
    const auth = this.opts.auth === undefined ? `PVEAPIToken=${this.d.tokenId}=${this.d.tokenSecret}` : this.opts.auth;
    const headers: Record<string, string> = { ...extraHeaders };
    if (auth) headers.Authorization = auth;
    if (this.opts.userAgent) headers['User-Agent'] = this.opts.userAgent;
    if (hasBody) headers['Content-Type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, dispatcher: this.agent, headers, body: hasBody ? qs : undefined });
    const text = await res.text();
    let body: RawResponse['body'];
    try {
      body = text ? (JSON.parse(text) as RawResponse['body']) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, reason: res.statusText, contentType: res.headers.get('content-type'), text, body };
  }

  async data<T = unknown>(method: string, path: string, params: Record<string, string | string[] | number> = {}): Promise<T> {
    const r = await this.call(method, path, params);
    if (r.status !== 200) throw new Error(`${method} ${path} -> ${r.status} ${r.reason}: ${r.text}`);
    return r.body!.data as T;
  }

  /** waits for a task and returns its final status */
  async task(upid: string): Promise<{ status: string; exitstatus?: string; [k: string]: unknown }> {
    await this.d.settle();
    return this.data('GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
