// jest fixture for the Proxmox double's own tests (kept out of the build: it uses jest's globals).
import { startProxmoxDouble, type ProxmoxDouble, type ProxmoxDoubleOptions } from '../doubles/proxmox/server';
import { RawClient } from '../doubles/proxmox/test-client';

/**
 * A Proxmox double and a raw client for one describe block (or file): started before its tests,
 * closed after them, reset before each test unless `reset: false`. `use` receives both once started.
 */
export function useRawDouble(opts: ProxmoxDoubleOptions, use: (d: ProxmoxDouble, c: RawClient) => unknown, o: { reset?: boolean } = {}): void {
  let d: ProxmoxDouble | undefined;
  let c: RawClient | undefined;
  beforeAll(async () => {
    d = await startProxmoxDouble(opts);
    c = new RawClient(d);
    use(d, c);
  });
  afterAll(async () => {
    await c?.close();
    await d?.close();
  });
  if (o.reset !== false) beforeEach(() => d?.reset());
}
