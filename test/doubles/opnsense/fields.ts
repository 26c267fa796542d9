// Field validation of the OPNsense double, from the model field tables of the 26.7.2 catalogue
// (type, required, options, min/max, mask, constraints). Texts: the model's own ValidationMessage
// where the catalogue has one; otherwise the double's wording of the field type's default message
// (marked "inferred" in BEHAVIOR.md).
import { isIP } from 'node:net';
import type { FieldSpec, ModelSpec } from './data';

export const MSG = {
  required: 'A value is required.',
  boolean: 'Value should be a boolean (0,1).',
  option: 'option not in list',
  description: 'Description should be a string between 1 and 255 characters.',
  text: 'This value does not match the expected format.',
  hostname: 'Please specify a valid hostname or IP address.',
  network: 'Please specify a valid network segment or IP address.',
} as const;

/** What the state-dependent checks need to know about the router. */
export interface FieldEnv {
  /** Assigned interface identifiers passing an InterfaceField's filters. */
  interfaces(filters?: Record<string, string>): string[];
  /** Options of a configd-populated field ("interface gateways list -l", …). */
  configdOptions(action: string): string[];
  /** Devices OPNsense offers for assignment. */
  devices(): string[];
  /** Alias names (NetworkAliasField). */
  aliases(): string[];
}

const PROTOCOLS = ['TCP', 'UDP', 'ICMP', 'IGMP', 'GGP', 'IPENCAP', 'ST2', 'EGP', 'IGP', 'PUP', 'HMP', 'XNS-IDP', 'RDP', 'ISO-TP4', 'DCCP', 'XTP', 'DDP', 'IDPR-CMTP', 'IPV6', 'IPV6-ROUTE', 'IPV6-FRAG', 'IDRP', 'RSVP', 'GRE', 'ESP', 'AH', 'SKIP', 'IPV6-ICMP', 'IPV6-NONXT', 'IPV6-OPTS', 'RSPF', 'VMTP', 'EIGRP', 'OSPF', 'AX.25', 'IPIP', 'ETHERIP', 'ENCAP', 'PIM', 'IPCOMP', 'VRRP', 'CARP', 'L2TP', 'ISIS', 'SCTP', 'FC', 'MOBILITY-HEADER', 'UDPLITE', 'MPLS-IN-IP', 'MANET', 'HIP', 'SHIM6', 'WESP', 'ROHC', 'PFSYNC', 'DIVERT'];
const WELL_KNOWN_PORTS = ['http', 'https', 'domain', 'ssh', 'ntp', 'smtp', 'imap', 'imaps', 'pop3', 'pop3s', 'ftp', 'telnet', 'snmp', 'ldap', 'ldaps', 'bootps', 'bootpc', 'submission', 'irc', 'ircs-u', 'openvpn', 'isakmp', 'ipsec-nat-t', 'rdp', 'sip', 'kerberos'];

const ipv4Cidr = (v: string) => {
  const [a, p, extra] = v.split('/');
  return extra === undefined && isIP(a ?? '') === 4 && (p === undefined || (/^\d+$/.test(p) && Number(p) <= 32));
};
const ipv6Cidr = (v: string) => {
  const [a, p, extra] = v.split('/');
  return extra === undefined && isIP(a ?? '') === 6 && (p === undefined || (/^\d+$/.test(p) && Number(p) <= 128));
};

function maskRegex(mask: string): RegExp {
  const m = /^\/(.*)\/([a-z]*)$/s.exec(mask);
  if (!m) return new RegExp(mask);
  return new RegExp(m[1]!, m[2]!.replace(/[^imsu]/g, ''));
}

function listOf(v: string, multiple: boolean | undefined): string[] {
  return multiple ? v.split(',').map((s) => s.trim()).filter(Boolean) : [v];
}

function integerError(spec: FieldSpec, v: string): string | undefined {
  const bounds = spec.min !== undefined && spec.max !== undefined ? `Value should be between ${spec.min} and ${spec.max}.` : spec.min !== undefined ? `Value should be at least ${spec.min}.` : 'Value should be an integer.';
  if (!/^-?\d+$/.test(v)) return spec.validation_message ?? bounds;
  const n = Number(v);
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) return spec.validation_message ?? bounds;
  return undefined;
}

function portError(spec: FieldSpec, v: string, env: FieldEnv | undefined): string | undefined {
  const ok = (p: string) => /^\d+$/.test(p) && Number(p) >= 1 && Number(p) <= 65535;
  const parts = v.split(/[:-]/);
  if (parts.length === 2 && ok(parts[0]!) && ok(parts[1]!)) return undefined;
  if (ok(v) || WELL_KNOWN_PORTS.includes(v.toLowerCase())) return undefined;
  if (/^[A-Za-z0-9_]{1,32}$/.test(v) && (!env || env.aliases().includes(v))) return undefined;
  return spec.validation_message ?? 'Please specify a valid portnumber, name, alias or range.';
}

function networkAliasError(field: string, v: string, multiple: boolean | undefined, env: FieldEnv | undefined): string | undefined {
  const label = field.startsWith('source') ? 'source' : field.startsWith('destination') ? 'destination' : field;
  for (const item of listOf(v, multiple)) {
    if (item === 'any' || item === '(self)' || ipv4Cidr(item) || ipv6Cidr(item)) continue;
    if (!/^[A-Za-z0-9_]{1,64}$/.test(item)) return `${item} is not a valid ${label} IP address or alias.`;
    if (!env) continue;
    const ifs = env.interfaces();
    const base = item.endsWith('ip') ? item.slice(0, -2) : item;
    if (ifs.includes(item) || ifs.includes(base) || env.aliases().includes(item)) continue;
    return `${item} is not a valid ${label} IP address or alias.`;
  }
  return undefined;
}

/**
 * The errors of one field value. `env` undefined = static checks only (what the contract check
 * can judge without the router's state).
 */
export function fieldError(name: string, spec: FieldSpec, value: string, env?: FieldEnv): string | undefined {
  if (value === '') return spec.required ? MSG.required : undefined;
  switch (spec.type) {
    case 'BooleanField':
      return /^[01]$/.test(value) ? undefined : (spec.validation_message ?? MSG.boolean);
    case 'IntegerField':
    case 'FilterSequenceField':
      return integerError(spec, value);
    case 'OptionField':
    case 'SNatModeField': {
      const opts = Object.keys({ ...(spec.options ?? {}), ...(spec.additional_options ?? {}) });
      return listOf(value, spec.multiple).every((x) => opts.includes(x)) ? undefined : (spec.validation_message ?? MSG.option);
    }
    case 'ProtocolField': {
      const v = value.toUpperCase();
      return v === 'ANY' || v === 'TCP/UDP' || PROTOCOLS.includes(v) ? undefined : (spec.validation_message ?? MSG.option);
    }
    case 'TextField':
    case 'StrictTextField':
    case 'IfDescField':
      return spec.mask && !maskRegex(spec.mask).test(value) ? (spec.validation_message ?? MSG.text) : undefined;
    case 'DescriptionField':
      return value.length > 255 ? MSG.description : undefined;
    case 'PortField':
      return portError(spec, value, env);
    case 'NetworkAliasField':
      return networkAliasError(name, value, spec.multiple, env);
    case 'HostnameField':
      return /^[A-Za-z0-9.:_-]{1,253}$/.test(value) ? undefined : (spec.validation_message ?? MSG.hostname);
    case 'NetworkField':
      return listOf(value, true).every((x) => ipv4Cidr(x) || ipv6Cidr(x)) ? undefined : (spec.validation_message ?? MSG.network);
    case 'ModelRelationField':
      // the double has no categories, aliases, pipes or queues to relate to
      return env ? (spec.validation_message ?? MSG.option) : undefined;
    case 'InterfaceField':
      if (!env) return undefined;
      return listOf(value, spec.multiple).every((x) => env.interfaces(spec.interface_filters).includes(x)) ? undefined : (spec.validation_message ?? MSG.option);
    case 'JsonKeyValueStoreField':
    case 'GatewayGroupItemField':
      if (!env || !spec.options_from_configd) return undefined;
      return listOf(value, spec.multiple).every((x) => env.configdOptions(spec.options_from_configd!).includes(x)) ? undefined : (spec.validation_message ?? MSG.option);
    case 'DeviceField':
      if (!env) return undefined;
      return env.devices().includes(value) ? undefined : (spec.validation_message ?? MSG.option);
    default:
      // ScheduleField, TosField, MacAddressField, GatewayField, DUIDField…: not checked
      return undefined;
  }
}

/** Type-level errors of posted values (no state): what the contract check reports. */
export function staticFieldErrors(model: ModelSpec, values: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    const spec = model.fields[k];
    if (!spec || spec.container) continue;
    const e = fieldError(k, spec, v);
    if (e) out[k] = e;
  }
  return out;
}

/**
 * Validation of a whole item after the posted values were merged over its stored (or default)
 * values, as OPNsense validates the full node: types, required fields, options, ranges, masks and
 * the ComparedToField constraints. Uniqueness and model-class rules are the handlers' job.
 */
export function itemErrors(model: ModelSpec, item: Readonly<Record<string, string>>, env: FieldEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, spec] of Object.entries(model.fields)) {
    if (spec.container || spec.volatile) continue;
    const e = fieldError(k, spec, item[k] ?? '', env);
    if (e) {
      out[k] = e;
      continue;
    }
    for (const c of spec.constraints ?? []) {
      if (c.type !== 'ComparedToFieldConstraint' || !c.field) continue;
      const a = item[k] ?? '';
      const b = item[c.field] ?? '';
      if (a === '' || b === '' || !/^-?\d+$/.test(a) || !/^-?\d+$/.test(b)) continue;
      const ok = c.operator === 'lt' ? Number(a) < Number(b) : c.operator === 'gt' ? Number(a) > Number(b) : true;
      if (!ok) out[k] = c.ValidationMessage ?? MSG.text;
    }
  }
  return out;
}

/** Defaults of a model's fields (BooleanField without a Default is "0"). */
export function defaultsOf(model: ModelSpec): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, spec] of Object.entries(model.fields)) {
    if (spec.container || spec.volatile) continue;
    out[k] = spec.default ?? (spec.type === 'BooleanField' ? '0' : '');
  }
  return out;
}
