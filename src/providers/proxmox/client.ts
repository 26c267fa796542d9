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
  /** The same with the file streamed, its exact size known beforehand (see ProxmoxTransport). */
  postMultipartStream?(path: string, fields: Record<string, string>, file: { field: string; name: string; size: number; open(): AsyncIterable<Uint8Array> }, timeoutMs?: number): Promise<unknown>;
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
  // ---- host network: writes are staged in /etc/network/interfaces.new until applied --------

  /**
   * The network config and whether changes are pending: while interfaces.new exists, GET lists the
   * pending file and adds a `changes` diff to the envelope (pve-manager API2/Network.pm index).
   */
  async networkWithChanges(): Promise<{ ifaces: S.NetworkIface[]; pending?: string }> {
    const t = this.transport as Partial<{ getEnvelope(path: string): Promise<unknown> }>;
    if (typeof t.getEnvelope !== 'function') throw new RemoteApiError({ system: 'proxmox', method: 'GET', path: 'network', message: 'this Proxmox transport cannot read response envelopes' });
    const path = `/api2/json/nodes/${encodeURIComponent(this.node)}/network`;
    const raw = await this.dispatch(() => t.getEnvelope!(path));
    const r = S.NetworkEnvelopeSchema.safeParse(raw);
    if (!r.success) throw new RemoteApiError({ system: 'proxmox', method: 'GET', path: 'network', status: 200, message: `unexpected response shape: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` });
    return { ifaces: r.data.data, ...(r.data.changes ? { pending: r.data.changes } : {}) };
  }
  /** POST /nodes/{node}/network: a new interface, staged. */
  async createNetworkIface(params: Record<string, string | number>): Promise<void> {
    await this.dispatch(() => this.n.network!.$post(params), {
      alreadyDone: async (e) => /interface already exists/.test(e.message) && (await this.network()).some((i) => i.iface === params.iface),
    });
  }
  /** PUT /nodes/{node}/network/{iface}: the keys sent replace; `method` follows whether an address is sent. Staged. */
  async updateNetworkIface(iface: string, params: Record<string, string | number>): Promise<void> {
    await this.dispatch(() => this.n.network!.$(iface).$put(params));
  }
  /** DELETE /nodes/{node}/network: drops interfaces.new. */
  async revertNetwork(): Promise<void> {
    await this.dispatch(() => this.n.network!.$delete());
  }
  /** PUT /nodes/{node}/network: renames interfaces.new over interfaces and runs ifreload -a (task srvreload). */
  async applyNetwork(opts: TaskRunOptions): Promise<void> {
    await this.runTask(() => this.n.network!.$put(), { ...opts, timeoutMs: opts.timeoutMs ?? 2 * 60_000 });
  }
  /** Sends a VM start and returns its task id without waiting (the start may cut the path this client uses). */
  async startVmDetached(vmid: number): Promise<string> {
    const upid = await this.dispatch(() => this.n.qemu!.$(vmid).status!.start!.$post());
    const parsed = S.UpidSchema.safeParse(upid);
    if (!parsed.success) throw new RemoteApiError({ system: 'proxmox', method: 'POST', path: `qemu/${vmid}/status/start`, status: 200, message: `expected a task id, got ${JSON.stringify(upid)}` });
    return parsed.data;
  }
  /** Waits for a task started earlier (possibly through another client of the same host). */
  async waitTask(upid: string, what: string, timeoutMs = 5 * 60_000): Promise<void> {
    await this.runTask(async () => upid, { what, timeoutMs });
  }

  /**
   * Grows a VM disk (`PUT …/qemu/{vmid}/resize`, VM.Config.Disk; a task since PVE 8). `size` is
   * absolute, e.g. `16G`; Proxmox refuses to shrink.
   */
  async resizeDisk(vmid: number, disk: string, size: string, opts: TaskRunOptions): Promise<void> {
    await this.runTask(() => this.n.qemu!.$(vmid).resize!.$put({ disk, size }), { ...opts, timeoutMs: opts.timeoutMs ?? 5 * 60_000 });
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

  /**
   * Streams a file of known size and SHA-256 to a storage (`POST …/storage/{storage}/upload`,
   * multipart with a Content-Length) and waits for the `imgcopy` task, in which Proxmox checks the
   * SHA-256 before it keeps the file. `open` is called once per attempt and must yield exactly
   * `size` bytes.
   */
  async uploadStream(
    storage: string,
    content: 'iso' | 'import' | 'vztmpl',
    filename: string,
    file: { size: number; sha256: string; open(): AsyncIterable<Uint8Array> },
    opts: TaskRunOptions,
  ): Promise<void> {
    const raw = this.rawTransport('upload a file');
    if (typeof raw.postMultipartStream !== 'function') throw new RemoteApiError({ system: 'proxmox', method: 'POST', path: 'upload', message: 'this Proxmox transport cannot stream files' });
    const path = `/api2/json/nodes/${encodeURIComponent(this.node)}/storage/${encodeURIComponent(storage)}/upload`;
    const upid = await raw.postMultipartStream(path, { content, 'checksum-algorithm': 'sha256', checksum: file.sha256 }, { field: 'filename', name: filename, size: file.size, open: file.open });
    // the task re-reads the whole file for its checksum and copies it: minutes for gigabytes
    await this.runTask(async () => upid, { ...opts, timeoutMs: opts.timeoutMs ?? 60 * 60_000 });
  }

  /**
   * Deletes a volume (`DELETE /nodes/{node}/storage/{storage}/content/{volume}`, needs
   * Datastore.Allocate on the storage) and waits for the `imgdel` task; a volume already gone is a
   * warning of that task, so a retry is safe.
   */
  async deleteVolume(storage: string, volid: string, opts: TaskRunOptions): Promise<void> {
    await this.runTask(() => this.n.storage!.$(storage).content!.$(volid).$delete(), opts);
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
