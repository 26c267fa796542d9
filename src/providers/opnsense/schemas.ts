import { z } from 'zod';

/**
 * Zod schemas for the OPNsense responses dualwan reads. OPNsense mixes types on purpose (search
 * rows carry `true`/`false` for some flags and "0"/"1" for model fields, virtual gateway rows give
 * `priority` as a number), so model values are normalised to strings here and flags to booleans;
 * anything else unexpected fails at this boundary. Every recorded sample in
 * test/fixtures/upstream/opnsense/samples is parsed by these same schemas in the tests.
 */

/** A model field value as OPNsense stores it: always a string ("0"/"1", "255", "a,b"). */
export const modelValue = z.union([z.string(), z.number(), z.boolean(), z.null()]).transform((v) => (v === null ? '' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v)));
/** A flag that may arrive as a JSON boolean, 0/1 or "0"/"1". */
export const flag = z.union([z.boolean(), z.literal(0), z.literal(1), z.enum(['0', '1', ''])]).transform((v) => v === true || v === 1 || v === '1');

export const SavedSchema = z.object({ result: z.literal('saved'), uuid: z.string().optional() }).loose();
export type Saved = z.output<typeof SavedSchema>;
export const DeletedSchema = z.object({ result: z.enum(['deleted', 'not found']) }).loose();
export const ValidationFailedSchema = z
  .object({ result: z.literal('failed'), validations: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional() })
  .loose();
/** `reconfigure` → {"status":"ok"}; firewall `apply` → {"status":"OK\n\n"} (configd's raw output). */
export const ActionStatusSchema = z.object({ status: z.string() }).loose();
export const ErrorBodySchema = z.union([
  z.object({ errorMessage: z.string(), errorTitle: z.string().optional(), errorLevel: z.string().optional() }).loose(),
  z.object({ status: z.number().int(), message: z.string() }).loose(),
]);

export const FirmwareStatusSchema = z
  .object({
    product: z.object({ product_version: z.string(), product_name: z.string().optional(), product_nickname: z.string().optional(), CORE_VERSION: z.string().optional() }).loose(),
    status: z.string().optional(),
    status_msg: z.string().optional(),
  })
  .loose();
export type FirmwareStatus = z.output<typeof FirmwareStatusSchema>;

export const GatewayStatusItemSchema = z
  .object({
    name: z.string(),
    address: z.string(),
    status: z.string(),
    status_translated: z.string(),
    loss: z.string(),
    delay: z.string(),
    stddev: z.string(),
    /** since 24.7.1 */
    monitor: z.string().optional(),
  })
  .loose();
export const GatewayStatusSchema = z.object({ items: z.array(GatewayStatusItemSchema), status: z.string() }).loose();
export type GatewayStatus = z.output<typeof GatewayStatusSchema>;

/** The search-grid envelope. `total` is left out of some recorded excerpts. */
export function gridSchema<R extends z.ZodType>(row: R) {
  return z.object({ total: z.number().int().optional(), rowCount: z.number().int(), current: z.number().int(), rows: z.array(row) }).loose();
}
export interface Grid<R> {
  readonly total?: number;
  readonly rowCount: number;
  readonly current: number;
  readonly rows: R[];
}

export const SearchRequestSchema = z
  .object({ current: z.number().int(), rowCount: z.number().int(), searchPhrase: z.string(), sort: z.record(z.string(), z.string()).optional() })
  .loose();

/** `routing/settings/search_gateway` row (hand-built grid: mixed types, virtual rows). */
export const GatewayRowSchema = z
  .object({
    /** the config uuid, or the gateway name for a virtual (not yet stored) gateway */
    uuid: z.string().optional(),
    name: z.string(),
    descr: z.string().optional(),
    interface: z.string(),
    if: z.string().optional(),
    ipprotocol: z.string(),
    gateway: modelValue.optional(),
    priority: modelValue.optional(),
    weight: modelValue.optional(),
    disabled: flag.optional(),
    virtual: flag.optional(),
    dynamic: flag.optional(),
    /** the configured "upstream gateway" flag (model field defaultgw) */
    upstream: flag.optional(),
    /** true for the gateway that is the active default now (not the model field) */
    defaultgw: flag.optional(),
    monitor_disable: modelValue.optional(),
    monitor_noroute: modelValue.optional(),
    monitor: modelValue.optional(),
    monitor_killstates: modelValue.optional(),
    monitor_killstates_priority: modelValue.optional(),
    fargw: modelValue.optional(),
    force_down: modelValue.optional(),
    latencylow: modelValue.optional(),
    latencyhigh: modelValue.optional(),
    losslow: modelValue.optional(),
    losshigh: modelValue.optional(),
    interval: modelValue.optional(),
    time_period: modelValue.optional(),
    loss_interval: modelValue.optional(),
    data_length: modelValue.optional(),
    status: z.string().optional(),
  })
  .loose();
export type GatewayRow = z.output<typeof GatewayRowSchema>;

export const GroupMemberStatusSchema = z
  .object({ name: z.string(), label: z.string().optional(), status_translated: z.string().optional(), address: z.string().optional(), status: z.string().optional() })
  .loose();
export const GroupRowSchema = z
  .object({
    uuid: z.string(),
    name: z.string(),
    item: modelValue.optional(),
    item2: modelValue.optional(),
    item3: modelValue.optional(),
    item4: modelValue.optional(),
    item5: modelValue.optional(),
    trigger: modelValue.optional(),
    poolopts: modelValue.optional(),
    descr: modelValue.optional(),
    gateways: z.record(z.string(), z.array(GroupMemberStatusSchema)).optional(),
  })
  .loose();
export type GroupRow = z.output<typeof GroupRowSchema>;

const ruleFields = {
  uuid: z.string(),
  enabled: modelValue.optional(),
  sequence: modelValue.optional(),
  interface: modelValue.optional(),
  ipprotocol: modelValue.optional(),
  protocol: modelValue.optional(),
  source_net: modelValue.optional(),
  source_not: modelValue.optional(),
  source_port: modelValue.optional(),
  destination_net: modelValue.optional(),
  destination_not: modelValue.optional(),
  destination_port: modelValue.optional(),
  log: modelValue.optional(),
  description: modelValue.optional(),
};
export const FilterRuleRowSchema = z
  .object({ ...ruleFields, action: modelValue.optional(), quick: modelValue.optional(), direction: modelValue.optional(), gateway: modelValue.optional() })
  .loose();
export type FilterRuleRow = z.output<typeof FilterRuleRowSchema>;

export const SnatRuleRowSchema = z
  .object({ ...ruleFields, nonat: modelValue.optional(), target: modelValue.optional(), target_port: modelValue.optional(), is_automatic: flag.optional() })
  .loose();
export type SnatRuleRow = z.output<typeof SnatRuleRowSchema>;

/** `interfaces/assignment/search_item` row; `uuid` is the identifier (wan, lan, optN). */
export const AssignmentRowSchema = z
  .object({ uuid: z.string(), identifier: z.string(), descr: modelValue.optional(), if: modelValue.optional(), lock: modelValue.optional(), icon: z.string().optional(), optgroup: z.string().optional() })
  .loose();
export type AssignmentRow = z.output<typeof AssignmentRowSchema>;

/** `interfaces/overview/interfaces_info` row. */
export const InterfaceInfoRowSchema = z
  .object({
    identifier: z.string(),
    device: z.string(),
    description: z.string().optional(),
    enabled: flag.optional(),
    status: z.string().optional(),
    link_type: z.string().optional(),
    addr4: z.string().optional(),
    gateways: z.array(z.string()).optional(),
  })
  .loose();
export type InterfaceInfoRow = z.output<typeof InterfaceInfoRowSchema>;

const OptionEntrySchema = z.object({ value: z.string(), selected: flag }).loose();
/** `firewall/source_nat/get` (26.7+): the snat_mode option map. Read only: never post it back. */
export const SnatGeneralSchema = z
  .object({ filter: z.object({ general: z.object({ snat_mode: z.record(z.string(), OptionEntrySchema) }).loose() }).loose() })
  .loose();

export const BackupListSchema = z
  .object({
    items: z.array(
      z
        .object({ id: z.string(), time: modelValue, time_iso: z.string().optional(), description: z.string().optional(), username: z.string().optional(), filesize: z.number().optional() })
        .loose(),
    ),
  })
  .loose();
export type BackupList = z.output<typeof BackupListSchema>;

export const TrafficInterfaceSchema = z
  .object({
    interfaces: z.record(
      z.string(),
      z
        .object({
          device: z.string(),
          name: z.string(),
          'link state': z.string(),
          'bytes received': z.string(),
          'bytes transmitted': z.string(),
          flags: z.string().optional(),
          'line rate': z.string().optional(),
        })
        .loose(),
    ),
  })
  .loose();

export const PingSetSchema = z.object({ result: z.literal('ok'), uuid: z.string() }).loose();
export const PingJobRowSchema = z
  .object({
    id: z.string(),
    status: z.string(),
    hostname: z.string().optional(),
    source_address: z.string().optional(),
    send: z.number().nullable().optional(),
    received: z.number().nullable().optional(),
    loss: z.string().nullable().optional(),
    last_error: z.string().nullable().optional(),
  })
  .loose();

export const StateRowSchema = z
  .object({
    id: z.string(),
    iface: z.string().optional(),
    proto: z.string(),
    direction: z.string(),
    src_addr: z.string(),
    src_port: z.string().optional(),
    dst_addr: z.string(),
    dst_port: z.string().optional(),
    nat_addr: z.string().nullable().optional(),
    gateway: z.string().nullable().optional(),
    'route-to': z.string().optional(),
  })
  .loose();
export const KillStatesSchema = z.object({ result: z.string(), dropped_states: z.number().int().optional() }).loose();

/** Which schema parses which recorded sample (the samples test walks this map). */
export const SAMPLE_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  'auth-group-add.saved.docs.json': SavedSchema,
  'core-firmware-status.26.1.9.json': FirmwareStatusSchema,
  'core-service-search.request.docs.json': SearchRequestSchema,
  'core-service-search.response.docs-trimmed.json': gridSchema(z.object({}).loose()),
  'diagnostics-traffic-interface.26.1.9.json': TrafficInterfaceSchema,
  'error-400-invalid-json.from-code.json': ErrorBodySchema,
  'error-401-authentication-failed.from-code.json': ErrorBodySchema,
  'error-403-forbidden.from-code.json': ErrorBodySchema,
  'error-500-unexpected.from-code.json': ErrorBodySchema,
  'error-500-user-exception.from-code.json': ErrorBodySchema,
  'error-endpoint-not-found.json': ErrorBodySchema,
  'error-exception.20.1.json': ErrorBodySchema,
  'firewall-filter-add_rule.saved.json': SavedSchema,
  'firewall-filter-apply.json': ActionStatusSchema,
  'firewall-filter-del_rule.deleted.json': DeletedSchema,
  'routes-gateway-status.26.1.9.json': GatewayStatusSchema,
  'routes-gateway-status.pre-24.7.1.json': GatewayStatusSchema,
  'routing-settings-add_gateway.validation-failed.from-code.json': ValidationFailedSchema,
  'routing-settings-reconfigure.ok.json': ActionStatusSchema,
  'routing-settings-search_gateway.25.x.stored-row-excerpt.json': gridSchema(GatewayRowSchema),
  'routing-settings-search_gateway.25.x.virtual-row-excerpt.json': gridSchema(GatewayRowSchema),
  'routing-settings-set.saved.json': SavedSchema,
};
