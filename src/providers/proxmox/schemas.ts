import { z } from 'zod';

/**
 * Zod schemas for the Proxmox responses the tool depends on. Proxmox sends booleans as 0/1 and
 * some numbers as strings (the returns schema is not enforced at runtime), so these coerce at the
 * boundary; anything else unexpected fails loudly here, not deep in a diff. The recorded samples
 * are parsed by the same schemas in the tests.
 */
export const pveBool = z.union([z.literal(0), z.literal(1), z.boolean(), z.enum(['0', '1'])]).transform((v) => v === 1 || v === true || v === '1');
export const pveInt = z.union([z.number().int(), z.string().regex(/^-?\d+$/)]).transform((v) => Number(v));
export const pveNum = z.union([z.number(), z.string().regex(/^-?\d+(\.\d+)?$/)]).transform((v) => Number(v));

export const VersionSchema = z.object({ version: z.string(), release: z.string(), repoid: z.string().optional() }).loose();

export const NodeListSchema = z.array(z.object({ node: z.string(), status: z.string().optional() }).loose());

export const PciDeviceSchema = z
  .object({
    id: z.string(),
    class: z.string(),
    vendor: z.string(),
    device: z.string(),
    iommugroup: pveInt,
    vendor_name: z.string().optional(),
    device_name: z.string().optional(),
    subsystem_vendor: z.string().optional(),
    subsystem_device: z.string().optional(),
    mdev: pveBool.optional(),
  })
  .loose();
export type PciDevice = z.output<typeof PciDeviceSchema>;

export const UsbDeviceSchema = z
  .object({
    busnum: pveInt,
    devnum: pveInt,
    port: pveInt,
    level: pveInt,
    class: pveInt,
    speed: z.string(),
    vendid: z.string(),
    prodid: z.string(),
    usbpath: z.string().optional(),
    product: z.string().optional(),
    manufacturer: z.string().optional(),
  })
  .loose();
export type UsbDevice = z.output<typeof UsbDeviceSchema>;

export const NetworkIfaceSchema = z
  .object({
    iface: z.string(),
    type: z.string(),
    method: z.string().optional(),
    address: z.string().optional(),
    netmask: z.string().optional(),
    cidr: z.string().optional(),
    gateway: z.string().optional(),
    bridge_ports: z.string().optional(),
    active: pveBool.optional(),
    exists: pveBool.optional(),
    altnames: z.array(z.string()).optional(),
  })
  .loose();
export type NetworkIface = z.output<typeof NetworkIfaceSchema>;
/** GET /nodes/{node}/network with its envelope: `changes` is the diff of a pending interfaces.new. */
export const NetworkEnvelopeSchema = z.object({ data: NetworkIfaceSchema.array(), changes: z.string().optional() }).loose();

export const StorageSchema = z
  .object({
    storage: z.string(),
    type: z.string(),
    content: z.string(),
    active: pveBool.optional(),
    enabled: pveBool.optional(),
    shared: pveBool.optional(),
    total: pveNum.optional(),
    used: pveNum.optional(),
    avail: pveNum.optional(),
  })
  .loose();
export type Storage = z.output<typeof StorageSchema>;

export const StorageContentSchema = z
  .object({ volid: z.string(), content: z.string(), format: z.string().optional(), size: pveNum.optional(), ctime: pveNum.optional() })
  .loose();
export type StorageContent = z.output<typeof StorageContentSchema>;

/** `{path: {privilege: 0|1 (propagate)}}` */
export const PermissionsSchema = z.record(z.string(), z.record(z.string(), pveInt));
export type Permissions = z.output<typeof PermissionsSchema>;

export const ClusterVmSchema = z
  .object({ id: z.string(), type: z.string(), vmid: pveInt, name: z.string().optional(), node: z.string(), status: z.string().optional(), template: pveBool.optional(), tags: z.string().optional() })
  .loose();
export type ClusterVm = z.output<typeof ClusterVmSchema>;

export const MappingSchema = z
  .object({
    id: z.string(),
    type: z.string().optional(),
    description: z.string().optional(),
    map: z.array(z.string()),
    digest: z.string().optional(),
    // With check-node, PCI mappings report problems under `checks`, USB mappings under `errors` (pve-manager).
    checks: z.array(z.object({ severity: z.string(), message: z.string() }).loose()).optional(),
    errors: z.array(z.object({ severity: z.string(), message: z.string() }).loose()).optional(),
  })
  .loose();
export type Mapping = z.output<typeof MappingSchema>;

/** VM config: every value is a string or a number; property strings stay strings. */
export const VmConfigSchema = z.record(z.string(), z.union([z.string(), z.number()]));
export type VmConfig = z.output<typeof VmConfigSchema>;

export const VmPendingSchema = z.array(
  z.object({ key: z.string(), value: z.union([z.string(), z.number()]).optional(), pending: z.union([z.string(), z.number()]).optional(), delete: pveInt.optional() }).loose(),
);
export type VmPending = z.output<typeof VmPendingSchema>;

export const VmStatusSchema = z
  .object({ vmid: pveInt, status: z.enum(['running', 'stopped']), qmpstatus: z.string().optional(), name: z.string().optional(), uptime: pveNum.optional(), lock: z.string().optional() })
  .loose();
export type VmStatus = z.output<typeof VmStatusSchema>;

export const TaskStatusSchema = z
  .object({ upid: z.string(), node: z.string(), status: z.enum(['running', 'stopped']), exitstatus: z.string().optional(), type: z.string(), id: z.string().optional(), user: z.string() })
  .loose();
export type TaskStatus = z.output<typeof TaskStatusSchema>;

export const TaskLogSchema = z.array(z.object({ n: pveInt, t: z.string() }));

export const CertificateInfoSchema = z.array(
  z.object({ filename: z.string(), fingerprint: z.string().optional(), subject: z.string().optional(), san: z.array(z.string()).optional(), notafter: pveNum.optional() }).loose(),
);

export const UpidSchema = z.string().regex(/^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:[^:]+:[^:]*:[^:]+:$/, 'not a Proxmox task id (UPID)');
export const NextIdSchema = pveInt;

/** `POST …/qemu/{vmid}/termproxy` (qemu-server API2/Qemu.pm termproxy): a one-time ticket for vncwebsocket. */
export const TermproxySchema = z.object({ user: z.string(), ticket: z.string().min(1), port: pveInt, upid: z.string() }).loose();
export type Termproxy = z.output<typeof TermproxySchema>;
