// The parameter checks of Proxmox VE's JSON schema engine (pve-common src/PVE/JSONSchema.pm:
// check_prop, check_type, check_object, check_format, parse_property_string) re-implemented for
// the test double, with the same order of checks and the same message texts. Named formats are
// registered below: simple validators transcribed from pve-common / pve-storage / qemu-server,
// property-string formats taken from qemu-property-formats.json.
import { loadPropertyFormats, type PropSchema } from './data';

export type ParamValue = string | string[] | boolean | undefined;
export type ErrorMap = Record<string, string>;

/** What a Perl `die "text"` carries; `text` is exactly what Perl would stringify. */
export class PerlDie extends Error {
  constructor(readonly text: string) {
    super(text.replace(/\n$/, ''));
    this.name = 'PerlDie';
  }
}

/** A die without a trailing newline gets " at FILE line N.\n" appended by Perl. */
export function perlDieAt(msg: string, file: string, line: number): PerlDie {
  return new PerlDie(`${msg} at ${file} line ${line}.\n`);
}

/** PVE::Exception raised with an errors hash (raise "format error\n", errors => ...). */
export class ExceptionWithErrors extends PerlDie {
  constructor(
    readonly msg: string,
    readonly errors: ErrorMap,
  ) {
    super(msg + Object.keys(errors).map((k) => `${k}: ${errors[k]}\n`).join(''));
  }
}

export const MSG = {
  missing: 'property is missing and it is not optional',
  unknown: 'property is not defined in schema and the schema does not allow additional properties',
  pattern: 'value does not match the regex pattern',
} as const;

/** add_error: several messages for one path are joined with a literal backslash-n (Perl '\n'). */
export function addError(errors: ErrorMap, path: string, msg: string): void {
  const p = path || '_root';
  errors[p] = errors[p] ? `${errors[p]}\\n${msg}` : msg;
}

export function isNumberText(v: string): boolean {
  return /^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$/.test(v);
}
export function isIntegerText(v: string): boolean {
  return /^[+-]?\d+$/.test(v);
}

/** parse_boolean: used inside property strings only. */
export function parseBoolean(v: string): 0 | 1 | undefined {
  if (/^(1|on|yes|true)$/i.test(v)) return 1;
  if (/^(0|off|no|false)$/i.test(v)) return 0;
  return undefined;
}

/** PVE::Tools::split_list */
export function splitList(text: string): string[] {
  if (text.includes('\0')) return text.split('\0');
  const t = text.replace(/[,;]/g, ' ').replace(/^\s+/, '');
  return t === '' ? [] : t.split(/\s+/).filter((x, i, a) => !(x === '' && i === a.length - 1));
}

// ---- Perl regex -> JavaScript ------------------------------------------------------------------

const regexCache = new Map<string, RegExp>();

/**
 * PVE checks `$value =~ m/^$pattern$/`. Perl's stringified qr// groups look like `(?^:...)` or
 * `(?^i:...)`; JavaScript (Node 20) has no inline modifiers, so a `(?^i:` anywhere makes the
 * whole expression case-insensitive. `{,n}` is a quantifier in Perl >= 5.34 (PVE 8/9 ship 5.36/5.40).
 */
export function perlRegex(pattern: string, extraFlags = ''): RegExp {
  const key = `${extraFlags}/${pattern}`;
  let re = regexCache.get(key);
  if (!re) {
    let flags = extraFlags;
    if (/\(\?\^[a-z]*i[a-z]*:/.test(pattern) && !flags.includes('i')) flags += 'i';
    const js = pattern.replace(/\(\?\^[a-z]*:/g, '(?:').replace(/\{,(\d+)\}/g, '{0,$1}');
    re = new RegExp(`^${js}$`, flags);
    regexCache.set(key, re);
  }
  return re;
}

// ---- IP regexes (pve-common ParseUtils) ---------------------------------------------------------

const IPV4OCTET = '(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])';
const IPV4RE = `(?:(?:${IPV4OCTET}\\.){3}${IPV4OCTET})`;
const H16 = '(?:[0-9a-fA-F]{1,4})';
const LS32 = `(?:(?:${IPV4RE}|${H16}:${H16}))`;
const IPV6RE =
  '(?:' +
  [
    `(?:(?:(?:${H16}:){6})${LS32})`,
    `(?:(?:::(?:${H16}:){5})${LS32})`,
    `(?:(?:(?:${H16})?::(?:${H16}:){4})${LS32})`,
    `(?:(?:(?:(?:${H16}:){0,1}${H16})?::(?:${H16}:){3})${LS32})`,
    `(?:(?:(?:(?:${H16}:){0,2}${H16})?::(?:${H16}:){2})${LS32})`,
    `(?:(?:(?:(?:${H16}:){0,3}${H16})?::(?:${H16}:){1})${LS32})`,
    `(?:(?:(?:(?:${H16}:){0,4}${H16})?::)${LS32})`,
    `(?:(?:(?:(?:${H16}:){0,5}${H16})?::)${H16})`,
    `(?:(?:(?:(?:${H16}:){0,6}${H16})?::))`,
  ].join('|') +
  ')';
const reIpv4 = new RegExp(`^(?:${IPV4RE})$`);
const reIpv6 = new RegExp(`^(?:${IPV6RE})$`);

function cidr(v: string, re: string, maxBits: number): boolean {
  const m = new RegExp(`^(?:${re})(?:/(\\d+))$`).exec(v);
  return !!m && Number(m[1]) > 7 && Number(m[1]) <= maxBits;
}

const IPV4_MASKS = new Set(
  Array.from({ length: 33 }, (_, bits) => {
    const n = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
  }),
);

// ---- the format registry -----------------------------------------------------------------------

type Validator = (value: string) => void; // throws PerlDie
export interface HashFormat {
  keys: Record<string, PropSchema>;
  validator?: (parsed: Record<string, string>) => void;
}
type Registered = { kind: 'fn'; fn: Validator } | { kind: 'hash'; fmt: HashFormat };

const registry = new Map<string, Registered>();
/** Formats the double met but does not check (no transcription available); see BEHAVIOR.md. */
export const uncheckedFormats = new Set<string>();

function fn(name: string, f: Validator): void {
  registry.set(name, { kind: 'fn', fn: f });
}
function die(text: string): never {
  throw new PerlDie(text);
}
function reTest(re: RegExp | string, v: string, msg: string): void {
  const r = typeof re === 'string' ? new RegExp(re) : re;
  if (!r.test(v)) die(msg);
}

const CONFIGID_RE = /^[a-z][a-z0-9_-]+$/i;
function parseId(v: string, type: string): void {
  if (v.length < 2) die(`${type} ID '${v}' cannot be shorter than 2 characters\n`);
  if (!/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i.test(v)) die(`${type} ID '${v}' contains illegal characters\n`);
}
function volumeId(v: string): void {
  if (!/^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/is.test(v)) die(`unable to parse volume ID '${v}'\n`);
}

// pve-common JSONSchema.pm
fn('string', () => undefined);
fn('urlencoded', (v) => reTest(/^[-%a-zA-Z0-9_.!~*'()]*$/, v, `invalid urlencoded string: ${v}\n`));
fn('pve-configid', (v) => reTest(CONFIGID_RE, v, `invalid configuration ID '${v}'\n`));
fn('pve-storage-id', (v) => parseId(v, 'storage'));
fn('pve-bridge-id', (v) => reTest(/^[-_.\w\d]+$/, v, `invalid bridge ID '${v}'\n`));
fn('pve-vmid', (v) => reTest(/^[1-9][0-9]{2,8}$/, v, 'value does not look like a valid VM ID\n'));
fn('pve-node', (v) => reTest(/^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$/, v, 'value does not look like a valid node name\n'));
fn('mac-addr', (v) => reTest(/^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$/i, v, 'value does not look like a valid unicast MAC address\n'));
fn('ipv4', (v) => reTest(reIpv4, v, 'value does not look like a valid IPv4 address\n'));
fn('ipv6', (v) => reTest(reIpv6, v, 'value does not look like a valid IPv6 address\n'));
fn('ip', (v) => {
  if (!reIpv4.test(v) && !reIpv6.test(v)) die('value does not look like a valid IP address\n');
});
fn('ipv4mask', (v) => {
  if (!IPV4_MASKS.has(v)) die('value does not look like a valid IP netmask\n');
});
fn('CIDRv6', (v) => {
  if (!cidr(v, IPV6RE, 128)) die('value does not look like a valid IPv6 CIDR network\n');
});
fn('CIDRv4', (v) => {
  if (!cidr(v, IPV4RE, 32)) die('value does not look like a valid IPv4 CIDR network\n');
});
fn('CIDR', (v) => {
  if (!cidr(v, IPV4RE, 32) && !cidr(v, IPV6RE, 128)) die('value does not look like a valid CIDR network\n');
});
fn('pve-ipv4-config', (v) => {
  if (!/^(?:dhcp|manual)$/.test(v) && !cidr(v, IPV4RE, 32)) die('value does not look like a valid ipv4 network configuration\n');
});
fn('pve-ipv6-config', (v) => {
  if (!/^(?:auto|dhcp|manual)$/.test(v) && !cidr(v, IPV6RE, 128)) die('value does not look like a valid ipv6 network configuration\n');
});
const DNS_NAME = /^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$/;
fn('dns-name', (v) => reTest(DNS_NAME, v, 'value does not look like a valid DNS name\n'));
fn('address', (v) => {
  if (!reIpv4.test(v) && !reIpv6.test(v) && !DNS_NAME.test(v)) die(`value does not look like a valid address: ${v}\n`);
});
fn('pve-iface', (v) => reTest(/^[a-z][a-z0-9_]{1,20}([:.]\d+)?$/i, v, `invalid network interface name '${v}'\n`));
fn('pve-vlan-id-or-range', (v) => {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  if (!m) die(`invalid VLAN configuration '${v}'\n`);
  const [s, e] = [Number(m[1]), m[2] ? Number(m[2]) : undefined];
  for (const t of [s, e]) if (t !== undefined && (t < 2 || t > 4094)) die(`invalid VLAN tag '${t}'\n`);
  if (e && s >= e) die(`VLAN range must go from lower to higher tag '${v}'\n`);
});
fn('disk-size', (v) => reTest(/^(\d+(\.\d+)?)([KMGT](?:iB)?)?$/, v, `value does not look like a valid disk size: ${v}\n`));
fn('pve-startup-order', (v) => {
  let ok = !!v;
  for (const p of v.split(',')) {
    if (/^\s*$/.test(p)) continue;
    if (!/^(order=)?(\d+)$/.test(p) && !/^up=(\d+)$/.test(p) && !/^down=(\d+)$/.test(p)) ok = false;
  }
  if (!ok) die('unable to parse startup options\n');
});
fn('pve-tag', (v) => reTest(/^[a-z0-9_][a-z0-9_\-+.]*$/i, v, 'invalid characters in tag\n'));
fn('pve-task-status-type', (v) => reTest(/^(ok|error|warning|unknown)$/i, v, `invalid status '${v}'\n`));

// pve-storage Plugin.pm / Storage.pm
const CONTENT_TYPES = new Set(['images', 'rootdir', 'vztmpl', 'iso', 'backup', 'snippets', 'import']);
fn('pve-storage-content', (v) => {
  if (!CONTENT_TYPES.has(v)) die(`invalid content type '${v}'\n`);
});
fn('pve-volume-id', volumeId);
fn('pve-storage-format', (v) => reTest(/^(raw|qcow2|vmdk|subvol)$/, v, `invalid format '${v}'\n`));

// qemu-server
const DRIVE_NAMES = new Set<string>([
  ...range('ide', 0, 3),
  ...range('scsi', 0, 30),
  ...range('virtio', 0, 15),
  ...range('sata', 0, 5),
  'efidisk0',
  'tpmstate0',
]);
function range(prefix: string, a: number, b: number): string[] {
  return Array.from({ length: b - a + 1 }, (_, i) => `${prefix}${a + i}`);
}
export function isValidDriveName(n: string): boolean {
  return DRIVE_NAMES.has(n);
}
fn('pve-volume-id-or-absolute-path', (v) => {
  if (!v.startsWith('/')) volumeId(v);
});
fn('pve-volume-id-or-qm-path', (v) => {
  if (v === 'none' || v === 'cdrom' || v.startsWith('/')) return;
  volumeId(v);
});
fn('pve-qm-bootdisk', (v) => {
  if (!DRIVE_NAMES.has(v)) die(`invalid boot disk '${v}'\n`);
});
fn('pve-qm-bootdev', (v) => {
  if (DRIVE_NAMES.has(v) && !/^(efidisk|tpmstate)/.test(v)) return;
  const m = /^(net|usb|hostpci)(\d+)$/.exec(v);
  if (m) {
    const idx = Number(m[2]);
    const max = { net: 31, usb: 13, hostpci: 15 }[m[1] as 'net' | 'usb' | 'hostpci'];
    if (idx <= max) return;
  }
  die(`invalid boot device '${v}'\n`);
});
fn('pve-hotplug-features', (v) => {
  if (v === '0' || v === '1') return;
  const feats = splitList(v);
  if (!v || !feats.every((f) => /^(network|disk|cpu|memory|usb|cloudinit)$/.test(f))) die('unable to parse hotplug option\n');
});

// property-string formats transcribed in qemu-property-formats.json
{
  const pf = loadPropertyFormats();
  for (const name of ['pve-qm-hostpci', 'pve-qm-usb', 'pve-qm-ipconfig', 'pve-qm-cicustom']) {
    const keys = pf.formats[name]?.keys;
    if (keys) registry.set(name, { kind: 'hash', fmt: { keys } });
  }
}
// pve-qm-boot (qemu-server QemuServer.pm $boot_fmt)
registry.set('pve-qm-boot', {
  kind: 'hash',
  fmt: {
    keys: {
      legacy: { optional: 1, default_key: 1, type: 'string', pattern: '[acdn]{1,4}', default: 'cdn' },
      order: { optional: 1, type: 'string', format: 'pve-qm-bootdev-list' },
    },
  },
});
// pve-vm-cpu-conf (qemu-server CPUConfig.pm $cpu_fmt); the model list check of the validator is not reproduced
registry.set('pve-vm-cpu-conf', {
  kind: 'hash',
  fmt: {
    keys: {
      cputype: { type: 'string', default: 'kvm64', default_key: 1, optional: 1 },
      'reported-model': { type: 'string', optional: 1 },
      hidden: { type: 'boolean', optional: 1, default: 0 },
      'hv-vendor-id': { type: 'string', pattern: '[a-zA-Z0-9]{1,12}', optional: 1 },
      flags: { type: 'string', pattern: '[+-]?[a-zA-Z0-9\\-_.]+(;[+-]?[a-zA-Z0-9\\-_.]+)*', optional: 1 },
      'guest-phys-bits': { type: 'integer', minimum: 32, maximum: 64, optional: 1 },
      'phys-bits': { type: 'string', pattern: '([1-9]\\d*|host)', optional: 1 },
      level: { type: 'integer', minimum: 0, maximum: 4294967295, optional: 1 },
    },
    validator: (p) => {
      if (p['reported-model'] !== undefined) die("Property 'reported-model' not allowed in VM-specific CPU config.\n");
    },
  },
});
for (const name of ['pve-qm-smbios1', 'pve-qm-watchdog', 'pve-qm-rng', 'pve-qemu-sev-fmt', 'pve-qemu-tdx-fmt', 'pve-cpuset', 'pve-qm-ide']) {
  fn(name, () => {
    uncheckedFormats.add(name);
  });
}

// ---- check_format ------------------------------------------------------------------------------

export type InlineFormat = Record<string, PropSchema>;

/** check_format: throws PerlDie (the text check_prop prefixes with "invalid format - "). */
export function checkFormat(format: string | InlineFormat, value: string, path: string): Record<string, string> | undefined {
  if (typeof format === 'object') return parsePropertyString({ keys: format }, value, path);
  if (format === 'regex') return undefined;
  const m = /^(.*?)(?:-(list|opt))?$/.exec(format)!;
  const name = m[1]!;
  const kind = m[2] ?? 'none';
  const reg = registry.get(name);
  if (!reg) {
    uncheckedFormats.add(format);
    return undefined;
  }
  if (kind !== 'none' && reg.kind !== 'fn') die(`'-${kind}' format must have code ref, not hash\n`);
  if (kind === 'list') {
    for (const v of splitList(value)) (reg as { fn: Validator }).fn(v);
    return undefined;
  }
  if (kind === 'opt') {
    if (value) (reg as { fn: Validator }).fn(value);
    return undefined;
  }
  if (reg.kind === 'hash') return parsePropertyString(reg.fmt, value, path);
  reg.fn(value);
  return undefined;
}

export function resolveHashFormat(format: string | InlineFormat): HashFormat | undefined {
  if (typeof format === 'object') return { keys: format };
  const reg = registry.get(format);
  return reg?.kind === 'hash' ? reg.fmt : undefined;
}

// ---- parse_property_string ---------------------------------------------------------------------

/**
 * Parses "key=value,..." with the default key, aliases (`virtio=<mac>` sets model and macaddr) and
 * boolean normalisation, then checks the result like check_object does. Throws PerlDie.
 */
export function parsePropertyString(fmt: HashFormat, data: string, path: string): Record<string, string> {
  const keys = fmt.keys;
  const res: Record<string, string> = {};
  let defaultKey: string | undefined;
  for (const part of data.split(',')) {
    if (/^\s*$/.test(part)) continue;
    const kv = /^([^=]+)=(.+)$/s.exec(part);
    if (kv) {
      let k = kv[1]!;
      let v = kv[2]!;
      if (res[k] !== undefined) die(`duplicate key in comma-separated list property: ${k}\n`);
      let schema = keys[k];
      if (schema?.alias) {
        const keyAlias = schema.keyAlias;
        if (keyAlias) {
          if (res[keyAlias] !== undefined) die(`key alias '${keyAlias}' is already defined\n`);
          res[keyAlias] = k;
        }
        k = schema.alias;
        schema = keys[k];
        if (res[k] !== undefined) die(`key '${k}' is already defined (via alias)\n`);
      }
      if (!schema) die(`invalid key in comma-separated list property: ${k}\n`);
      if (schema.type === 'boolean') {
        const b = parseBoolean(v);
        if (b !== undefined) v = String(b);
      }
      res[k] = v;
    } else if (!part.includes('=')) {
      if (defaultKey) die(`duplicate key in comma-separated list property: ${defaultKey}\n`);
      for (const [key, s] of Object.entries(keys)) {
        if (!s.default_key) continue;
        defaultKey = key;
        if (!res[key]) {
          let p = part;
          if (s.type === 'boolean') {
            const b = parseBoolean(p);
            if (b !== undefined) p = String(b);
          }
          res[key] = p;
          break;
        }
        die(`duplicate key in comma-separated list property: ${defaultKey}\n`);
      }
      if (!defaultKey) die('value without key, but schema does not define a default key\n');
    } else {
      die('missing key in comma-separated list property\n');
    }
  }
  const errors: ErrorMap = {};
  checkObject(path, keys, res, false, errors);
  if (Object.keys(errors).length) throw new ExceptionWithErrors('format error\n', sortedErrors(errors));
  fmt.validator?.(res);
  return res;
}

function sortedErrors(e: ErrorMap): ErrorMap {
  return Object.fromEntries(Object.keys(e).sort().map((k) => [k, e[k]!]));
}

/**
 * print_property_string: the default key first (bare; combined as `model=<mac>` when another key
 * names it through keyAlias), then the required keys sorted, then the rest sorted. Values of
 * 'disk-size' keys are byte counts and get printed with format_size.
 */
export function printPropertyString(data: Record<string, string | undefined>, format: InlineFormat, skip: string[] = []): string {
  let defaultKey: string | undefined;
  const keyAliasProps: Record<string, string> = {};
  for (const [k, s] of Object.entries(format)) {
    if (s.default_key) defaultKey = k;
    if (s.alias && s.keyAlias) keyAliasProps[s.keyAlias] = s.alias;
  }
  const done = new Set(skip);
  const parts: string[] = [];
  const fmtValue = (k: string, v: string) => {
    const s = format[k];
    return s?.format === 'disk-size' && /^\d+$/.test(v) ? formatSizeText(Number(v)) : v;
  };
  const add = (key: string, isDefault: boolean) => {
    if (done.has(key)) return;
    done.add(key);
    const v = data[key];
    if (v === undefined) return;
    const combine = keyAliasProps[key];
    if (combine && data[combine] !== undefined) {
      parts.push(`${fmtValue(key, v)}=${fmtValue(combine, data[combine]!)}`);
      done.add(combine);
      return;
    }
    parts.push(isDefault ? fmtValue(key, v) : `${key}=${fmtValue(key, v)}`);
  };
  if (defaultKey) add(defaultKey, true);
  const sorted = Object.keys(data).sort();
  for (const k of sorted) if (format[k] && !format[k]!.optional) add(k, false);
  for (const k of sorted) add(k, false);
  return parts.join(',');
}

/** PVE::JSONSchema::format_size */
export function formatSizeText(bytes: number): string {
  const size = Math.floor(bytes);
  const kb = Math.floor(size / 1024);
  if (kb * 1024 !== size) return String(size);
  const mb = Math.floor(kb / 1024);
  if (mb * 1024 !== kb) return `${kb}K`;
  const gb = Math.floor(mb / 1024);
  if (gb * 1024 !== mb) return `${mb}M`;
  const tb = Math.floor(gb / 1024);
  if (tb * 1024 !== gb) return `${gb}G`;
  return `${tb}T`;
}

// ---- check_object / check_prop -----------------------------------------------------------------

export function checkObject(path: string, schema: Record<string, PropSchema>, value: Record<string, ParamValue>, additionalProperties: boolean | number | undefined, errors: ErrorMap): void {
  // remap aliased keys so validation sees canonical names
  for (const k of Object.keys(value)) {
    const sub = schema[k];
    const alias = sub?.alias;
    if (!alias) continue;
    if (value[alias] !== undefined) addError(errors, path ? `${path}.${k}` : k, `cannot set both '${k}' and its alias target '${alias}'`);
    else {
      value[alias] = value[k];
      delete value[k];
    }
  }
  for (const k of Object.keys(schema)) {
    checkProp(value[k], schema[k]!, path ? `${path}.${k}` : k, errors);
  }
  for (const k of Object.keys(value)) {
    const newpath = path ? `${path}.${k}` : k;
    const sub = schema[k];
    if (sub) {
      const req = sub.requires;
      if (typeof req === 'string' && value[req] === undefined) addError(errors, path ? `${path}.${req}` : req, `missing property required by '${newpath}'`);
      continue;
    }
    if (additionalProperties !== undefined && !additionalProperties) {
      addError(errors, newpath, MSG.unknown);
    }
  }
}

export function checkProp(value: ParamValue, schema: PropSchema, path: string, errors: ErrorMap): void {
  if (schema.alias) return;
  if (value === undefined) {
    if (schema.type === 'null') return;
    if (!schema.optional) addError(errors, path, MSG.missing);
    return;
  }
  if (!checkType(path, schema.type, value, errors)) return;
  if (Array.isArray(value)) {
    if (schema.items) value.forEach((el, i) => checkProp(el, schema.items!, `${path}[${i}]`, errors));
    return;
  }
  if (typeof value === 'boolean') return; // a JSON boolean for a boolean parameter
  if (schema.format) {
    try {
      checkFormat(schema.format, value, path);
    } catch (e) {
      if (!(e instanceof PerlDie)) throw e;
      addError(errors, path, `invalid format - ${e.text}`);
      return;
    }
  }
  if (schema.pattern && !perlRegex(schema.pattern).test(value)) {
    addError(errors, path, MSG.pattern);
    return;
  }
  if (schema.maxLength !== undefined && [...value].length > schema.maxLength) {
    addError(errors, path, `value may only be ${schema.maxLength} characters long`);
    return;
  }
  if (schema.minLength !== undefined && [...value].length < schema.minLength) {
    addError(errors, path, `value must be at least ${schema.minLength} characters long`);
    return;
  }
  if (isNumberText(value)) {
    if (schema.maximum !== undefined && Number(value) > schema.maximum) {
      addError(errors, path, `value must have a maximum value of ${schema.maximum}`);
      return;
    }
    if (schema.minimum !== undefined && Number(value) < schema.minimum) {
      addError(errors, path, `value must have a minimum value of ${schema.minimum}`);
      return;
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) {
    addError(errors, path, `value '${value}' does not have a value in the enumeration '${schema.enum.join(', ')}'`);
  }
}

function checkType(path: string, type: string | undefined, value: ParamValue, errors: ErrorMap): boolean {
  if (!type || type === 'any') return true;
  if (Array.isArray(value)) {
    if (type === 'array') return true;
    addError(errors, path, `type check ('${type}') failed - got ARRAY`);
    return false;
  }
  if (type === 'array' || type === 'object') {
    addError(errors, path, `type check ('${type}') failed`);
    return false;
  }
  if (typeof value === 'boolean') {
    if (type === 'boolean') return true;
    addError(errors, path, `type check ('${type}') failed - got JSON::PP::Boolean`);
    return false;
  }
  const v = value as string;
  if (type === 'boolean' && v !== '1' && v !== '0') {
    addError(errors, path, `type check ('${type}') failed - got '${v}'`);
    return false;
  }
  if (type === 'integer' && !isIntegerText(v)) {
    addError(errors, path, `type check ('${type}') failed - got '${v}'`);
    return false;
  }
  if (type === 'number' && !isNumberText(v)) {
    addError(errors, path, `type check ('${type}') failed - got '${v}'`);
    return false;
  }
  return true;
}
