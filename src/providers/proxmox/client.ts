import { createHash } from 'node:crypto';
import proxmoxApi from 'proxmox-api';
import type { z } from 'zod';
import { RemoteApiError } from '../../core/errors';
import * as S from './schemas';
import { dispatchWithRetry, waitForTask, type DispatchOptions } from './tasks';
import type { ApiRequestable } from 'proxmox-api';

/** What a write needs beyond its parameters. */
export interface TaskRunOptions {
  readonly what: string;
  readonly timeoutMs?: number;
  readonly alreadyDone?: DispatchOptions['alreadyDone'];
}

type ProxyFn = (params?: Record<string, unknown>) => Promise<unknown>;

/** What the transport offers beyond form requests (ProxmoxTransport implements it; doubles may). */
export interface ProxmoxRawTransport extends ApiRequestable {
  postMultipart(path: string, fields: Record<string, string>, file: { field: string; name: string; data: Buffer; contentType?: string }): Promise<unknown>;
  openWebSocket(path: string, query: Record<string, string>, protocols?: string[]): import('undici').WebSocket;
}

function isRawTransport(t: ApiRequestable): t is ProxmoxRawTransport {
  return typeof (t as Partial<ProxmoxRawTransport>).postMultipart === 'function' && typeof (t as Partial<ProxmoxRawTransport>).openWebSocket === 'function';
}
type ProxyNode = { [k: string]: ProxyNode } & { $(id: string | number): ProxyNode; $get: ProxyFn; $post: ProxyFn; $put: ProxyFn; $delete: ProxyFn };

/**
 * The one Proxmox client of the tool: a facade over `proxmox-api`'s path proxy, with every response
 * parsed by a zod schema at the boundary. Handlers and discovery use this, never the proxy.
 */
export class ProxmoxClient {
  private readonly api: ProxyNode;

  constructor(
    private readonly transport: ApiRequestable,
    readonly node: string,
    private readonly timing: { sleep?: (ms: number) => Promise<void>; backoffMs?: number } = {},
  ) {
    this.api = proxmoxApi(transport) as unknown as ProxyNode;
  }

  private get n(): ProxyNode {
    return this.api.nodes!.$(this.node);
  }

  /** A read: retried on transient failures (reads are idempotent), then parsed at the boundary. */
  private async parse<T extends z.ZodType>(schema: T, what: string, read: () => Promise<unknown>): Promise<z.output<T>> {
    const raw = await this.dispatch(read);
    const r = schema.safeParse(raw);
    if (!r.success) {
      throw new RemoteApiError({
        system: 'proxmox',
        method: 'GET',
        path: what,
        status: 200,
        message: `unexpected response shape: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        remedy: 'This Proxmox version answers differently from the ones dualwan knows (8.4, 9.x). Please report it with `dualwan doctor --json`.',
      });
    }
    return r.data;
  }

  version() {
    return this.parse(S.VersionSchema, '/version', () => this.api.version!.$get());
  }
  nodes() {
    return this.parse(S.NodeListSchema, '/nodes', () => this.api.nodes!.$get());
  }
  /** All PCI devices, bridges included (an empty blacklist), so IOMMU groups are complete. */
  pciDevices() {
    return this.parse(S.PciDeviceSchema.array(), 'hardware/pci', () => this.n.hardware!.pci!.$get({ 'pci-class-blacklist': '', verbose: 1 }));
  }
  usbDevices() {
    return this.parse(S.UsbDeviceSchema.array(), 'hardware/usb', () => this.n.hardware!.usb!.$get());
  }
  network() {
    return this.parse(S.NetworkIfaceSchema.array(), 'network', () => this.n.network!.$get());
  }
  storages() {
    return this.parse(S.StorageSchema.array(), 'storage', () => this.n.storage!.$get());
  }
  storageContent(storage: string, content: string) {
    return this.parse(S.StorageContentSchema.array(), `storage/${storage}/content`, () => this.n.storage!.$(storage).content!.$get({ content }));
  }
  permissions() {
    return this.parse(S.PermissionsSchema, '/access/permissions', () => this.api.access!.permissions!.$get());
  }
  vmResources() {
    return this.parse(S.ClusterVmSchema.array(), '/cluster/resources', () => this.api.cluster!.resources!.$get({ type: 'vm' }));
  }
  certificates() {
    return this.parse(S.CertificateInfoSchema, 'certificates/info', () => this.n.certificates!.info!.$get());
  }
  pciMappings() {
    return this.parse(S.MappingSchema.array(), '/cluster/mapping/pci', () => this.api.cluster!.mapping!.pci!.$get({ 'check-node': this.node }));
  }
  usbMappings() {
    return this.parse(S.MappingSchema.array(), '/cluster/mapping/usb', () => this.api.cluster!.mapping!.usb!.$get({ 'check-node': this.node }));
  }
  vmConfig(vmid: number) {
    return this.parse(S.VmConfigSchema, `qemu/${vmid}/config`, () => this.n.qemu!.$(vmid).config!.$get());
  }
  vmPending(vmid: number) {
    return this.parse(S.VmPendingSchema, `qemu/${vmid}/pending`, () => this.n.qemu!.$(vmid).pending!.$get());
  }
  vmStatus(vmid: number) {
    return this.parse(S.VmStatusSchema, `qemu/${vmid}/status/current`, () => this.n.qemu!.$(vmid).status!.current!.$get());
  }

  // ---- writes -------------------------------------------------------------------------------

  async createMapping(type: 'pci' | 'usb', id: string, map: string[], description: string): Promise<void> {
    await this.dispatch(() => this.api.cluster!.mapping![type]!.$post({ id, map, description }), {
      alreadyDone: async (e) => /already exists|already defined/i.test(e.message) && (await this.mappingExists(type, id)),
    });
  }
  async updateMapping(type: 'pci' | 'usb', id: string, map: string[], description: string, digest?: string): Promise<void> {
    await this.dispatch(() => this.api.cluster!.mapping![type]!.$(id).$put({ map, description, digest }));
  }
  private async mappingExists(type: 'pci' | 'usb', id: string): Promise<boolean> {
    const list = type === 'pci' ? await this.pciMappings() : await this.usbMappings();
    return list.some((m) => m.id === id);
  }

  async createVm(params: Record<string, string | number>, opts: TaskRunOptions): Promise<void> {
    await this.runTask(() => this.n.qemu!.$post(params), { ...opts, timeoutMs: opts.timeoutMs ?? 10 * 60_000 });
  }
  async updateVmConfig(vmid: number, params: Record<string, string | number>, opts: TaskRunOptions): Promise<void> {
    await this.runTask(() => this.n.qemu!.$(vmid).config!.$post(params), { ...opts, timeoutMs: opts.timeoutMs ?? 5 * 60_000 });
  }
  async startVm(vmid: number, opts: TaskRunOptions): Promise<void> {
    await this.runTask(() => this.n.qemu!.$(vmid).status!.start!.$post(), {
      ...opts,
      timeoutMs: opts.timeoutMs ?? 5 * 60_000,
      alreadyDone: async () => (await this.vmStatus(vmid)).status === 'running',
    });
  }
  async shutdownVm(vmid: number, opts: TaskRunOptions & { forceStopAfterSeconds?: number }): Promise<void> {
    await this.runTask(() => this.n.qemu!.$(vmid).status!.shutdown!.$post({ timeout: opts.forceStopAfterSeconds ?? 120, forceStop: 1 }), {
      ...opts,
      timeoutMs: opts.timeoutMs ?? 5 * 60_000,
    });
  }
  async downloadUrl(storage: string, params: Record<string, string | number>, opts: TaskRunOptions): Promise<void> {
    await this.runTask(() => this.n.storage!.$(storage)['download-url']!.$post(params), { ...opts, timeoutMs: opts.timeoutMs ?? 60 * 60_000 });
  }

  /**
   * Uploads a file to a storage (`POST /nodes/{node}/storage/{storage}/upload`, multipart) and waits
   * for the `imgcopy` task. Proxmox verifies the checksum before it keeps the file and overwrites a
   * file of the same name, so a retried upload is safe.
   */
  async uploadFile(storage: string, content: 'iso' | 'import' | 'vztmpl', filename: string, data: Buffer, opts: TaskRunOptions): Promise<void> {
    const raw = this.rawTransport('upload a file');
    const sha256 = createHash('sha256').update(data).digest('hex');
    const path = `/api2/json/nodes/${encodeURIComponent(this.node)}/storage/${encodeURIComponent(storage)}/upload`;
    await this.runTask(() => raw.postMultipart(path, { content, 'checksum-algorithm': 'sha256', checksum: sha256 }, { field: 'filename', name: filename, data }), {
      ...opts,
      timeoutMs: opts.timeoutMs ?? 5 * 60_000,
    });
  }

  /** Starts a serial terminal proxy for a VM (`termproxy`, needs VM.Console); the ticket is single use. */
  async termproxy(vmid: number, serial: 'serial0' | 'serial1' | 'serial2' | 'serial3' = 'serial0'): Promise<S.Termproxy> {
    // A retry after a lost answer only starts a second, unused session that times out by itself.
    const raw = await this.dispatch(() => this.n.qemu!.$(vmid).termproxy!.$post({ serial }));
    const r = S.TermproxySchema.safeParse(raw);
    if (!r.success) {
      throw new RemoteApiError({ system: 'proxmox', method: 'POST', path: `qemu/${vmid}/termproxy`, status: 200, message: `unexpected response shape: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` });
    }
    return r.data;
  }

  /** The websocket of a termproxy session (`vncwebsocket`), over the pinned TLS and token of this client. */
  openVncWebSocket(vmid: number, port: number, ticket: string) {
    const raw = this.rawTransport('open a console');
    return raw.openWebSocket(`/api2/json/nodes/${encodeURIComponent(this.node)}/qemu/${vmid}/vncwebsocket`, { port: String(port), vncticket: ticket });
  }

  private rawTransport(what: string): ProxmoxRawTransport {
    if (!isRawTransport(this.transport)) throw new RemoteApiError({ system: 'proxmox', method: 'POST', path: what, message: 'this Proxmox transport cannot send files or open websockets' });
    return this.transport;
  }

  private async dispatch<T>(send: () => Promise<T>, opts: Pick<DispatchOptions, 'alreadyDone'> = {}): Promise<T | 'already-done'> {
    return dispatchWithRetry(send, { ...opts, sleep: this.timing.sleep, backoffMs: this.timing.backoffMs });
  }

  private async runTask(send: () => Promise<unknown>, opts: TaskRunOptions): Promise<void> {
    const upid = await this.dispatch(send, { alreadyDone: opts.alreadyDone });
    if (upid === 'already-done') return;
    const parsed = S.UpidSchema.safeParse(upid);
    if (!parsed.success) {
      throw new RemoteApiError({ system: 'proxmox', method: 'POST', path: opts.what, status: 200, message: `expected a task id, got ${JSON.stringify(upid)}` });
    }
    await waitForTask(
      {
        status: (u) => this.parse(S.TaskStatusSchema, 'tasks/status', () => this.n.tasks!.$(u).status!.$get()),
        log: async (u) => (await this.parse(S.TaskLogSchema, 'tasks/log', () => this.n.tasks!.$(u).log!.$get({ start: 0, limit: 50 }))).map((l) => l.t),
      },
      parsed.data,
      opts.what,
      { timeoutMs: opts.timeoutMs ?? 10 * 60_000, sleep: this.timing.sleep },
    );
  }
}
