/**
 * Proxmox property strings: `key=value,key=value`, where one "default key" may be written
 * without its name (`virtio=BC:24:…,bridge=vmbr0`, `mapping=wan0,pcie=1`, `local-lvm:16,discard=on`).
 */
export type PropMap = Record<string, string>;

const NET_MODELS = new Set([
  'e1000', 'e1000-82540em', 'e1000-82544gc', 'e1000-82545em', 'e1000e', 'i82551', 'i82557b', 'i82559er',
  'ne2k_isa', 'ne2k_pci', 'pcnet', 'rtl8139', 'virtio', 'vmxnet3',
]);

/** Default key of each property whose values we read back. */
const DEFAULT_KEYS: Record<string, string> = { hostpci: 'host', usb: 'host', net: 'model', scsi: 'file', virtio: 'file', sata: 'file', ide: 'file', startup: 'order', agent: 'enabled', vga: 'type', machine: 'type', cpu: 'cputype', memory: 'current', efidisk: 'file' };

export function defaultKeyFor(property: string): string | undefined {
  return DEFAULT_KEYS[property.replace(/\d+$/, '')];
}

export function parsePropertyString(property: string, value: string): PropMap {
  const out: PropMap = {};
  const base = property.replace(/\d+$/, '');
  for (const part of value.split(',')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq < 0) {
      const dk = defaultKeyFor(property);
      out[dk ?? part] = dk ? part : '1';
      continue;
    }
    const k = part.slice(0, eq);
    const v = part.slice(eq + 1);
    if (base === 'net' && NET_MODELS.has(k)) {
      out.model = k;
      out.macaddr = v;
    } else {
      out[k] = v;
    }
  }
  return out;
}

export function formatPropertyString(property: string, map: PropMap): string {
  const dk = defaultKeyFor(property);
  const parts: string[] = [];
  if (dk && map[dk] !== undefined) parts.push(map[dk]!);
  for (const [k, v] of Object.entries(map)) if (k !== dk) parts.push(`${k}=${v}`);
  return parts.join(',');
}

const TRUE = new Set(['1', 'on', 'yes', 'true']);
/** Compares only the sub-keys we set; booleans in any of Proxmox's spellings. */
export function subsetMatches(wanted: PropMap, actual: PropMap): boolean {
  return Object.entries(wanted).every(([k, v]) => {
    const a = actual[k];
    if (a === undefined) return false;
    if (/^(1|0|on|off|yes|no|true|false)$/.test(v) && /^(1|0|on|off|yes|no|true|false)$/.test(a)) return TRUE.has(v) === TRUE.has(a);
    return a === v;
  });
}

/** `enp1s0` → `0000:01:00.0`, `enp10s0f1` → `0000:0a:00.1`, `enP2p3s0` → `0002:03:00.0` (systemd.net-naming-scheme, decimal). */
export function pciFromPredictableName(name: string): string | undefined {
  const m = /^en(?:P(\d+))?p(\d+)s(\d+)(?:f(\d+))?(?:n\d+)?$/.exec(name);
  if (!m) return undefined;
  const hex = (s: string | undefined, w: number) => Number(s ?? 0).toString(16).padStart(w, '0');
  return `${hex(m[1], 4)}:${hex(m[2], 2)}:${hex(m[3], 2)}.${Number(m[4] ?? 0).toString(16)}`;
}
