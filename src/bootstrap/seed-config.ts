import { createHash, randomBytes } from 'node:crypto';
import type { DesiredState, WanSpec } from '../core/desired';
import { DualwanError } from '../core/errors';
import { layoutOf, gatewayPriority, type Layout } from '../providers/opnsense/layout';
import type { DeviceNamingOptions } from '../providers/opnsense/devices';
import { parseCidr, parseIpv4, rangeContains } from '../config/net';
import { sha512Crypt } from './crypt';
import { FACTORY_CONFIG_XML } from './factory-config';
import { child, childrenNamed, elem, ensurePath, findPath, insertAfter, parseXml, removeChildren, serializeXml, setText, type XmlElement } from './xml';
import { hostOutRuleDescription } from '../providers/opnsense/resources/filter-rules';

/**
 * OPNsense's first config.xml, generated from the DesiredState. It starts from the factory default
 * and sets only what no OPNsense API can set (opnsense-api.md §5–7):
 * - interfaces with the device names the VM shows (igc0/igc1 for passed-through I226, vtnetN for
 *   virtio, ue0 for a tethered phone), each locked so a missing device never stops the boot at the
 *   console's reassignment prompt (`console.inc is_interface_mismatch`);
 * - the first WAN as `wan`, further WANs as `opt1…` (`WAN2…`), DHCP or static; LAN address and
 *   its dnsmasq DHCP range;
 * - root's new password (a `$6$` hash), an API key whose secret is stored as a `$6$` hash only
 *   (`ApiKeyField`: `key|crypt(secret)`), SSH on for keys only (root's authorized keys);
 * - default gateway switching, one DNS server per WAN bound to that WAN's gateway, hostname, domain.
 * Pure: the same inputs give the same bytes (the golden tests rely on it).
 */
export interface SeedCredentials {
  /** `$6$` hash of the new root password. */
  readonly rootPasswordHash: string;
  /** The API key (public half), `base64(60 random bytes)` like OPNsense's own. */
  readonly apiKey: string;
  /** `$6$` hash of the API secret. */
  readonly apiSecretHash: string;
  /** OpenSSH public key lines allowed to log in as root. */
  readonly sshAuthorizedKeys: readonly string[];
}

export interface SeedOptions {
  /** Default: the VM's name, else `opnsense`. */
  readonly hostname?: string;
  /** Default: `internal`, as the factory config. */
  readonly domain?: string;
  readonly naming?: DeviceNamingOptions;
}

export interface SeedConfig {
  readonly xml: string;
  readonly layout: Layout;
  readonly hostname: string;
  readonly domain: string;
  /** What the seed sets, one line each, for the plan and the docs. */
  readonly summary: readonly string[];
}

/** The secrets of one bootstrap, in clear: shown once (password) or stored 0600 (API key), never in the seed. */
export interface BootstrapSecrets {
  readonly rootPassword: string;
  readonly apiKey: string;
  readonly apiSecret: string;
}

const PASSWORD_ALPHABET = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** A fresh root password (20 characters, ~117 bits, no look-alike characters) and API key pair. */
export function newBootstrapSecrets(random: (n: number) => Buffer = randomBytes): BootstrapSecrets {
  const bytes = random(64);
  let rootPassword = '';
  // Rejection sampling keeps every character equally likely.
  const limit = 256 - (256 % PASSWORD_ALPHABET.length);
  for (let i = 0; i < bytes.length && rootPassword.length < 20; i++) {
    if (bytes[i]! < limit) rootPassword += PASSWORD_ALPHABET[bytes[i]! % PASSWORD_ALPHABET.length];
  }
  if (rootPassword.length < 20) return newBootstrapSecrets(random);
  return { rootPassword, apiKey: random(60).toString('base64'), apiSecret: random(60).toString('base64') };
}

export function hashSecrets(s: BootstrapSecrets, sshAuthorizedKeys: readonly string[], salts: { root?: string; api?: string } = {}): SeedCredentials {
  return {
    rootPasswordHash: sha512Crypt(s.rootPassword, salts.root === undefined ? {} : { salt: salts.root }),
    apiKey: s.apiKey,
    apiSecretHash: sha512Crypt(s.apiSecret, salts.api === undefined ? {} : { salt: salts.api }),
    sshAuthorizedKeys,
  };
}

export class SeedConfigError extends DualwanError {
  constructor(message: string, remedy: string) {
    super('SEED_CONFIG_INVALID', `Unable to write OPNsense's first configuration: ${message}`, { source: 'user', remedy });
  }
}

const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const DOMAIN_RE = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const SSH_KEY_RE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+=*( [^\r\n]*)?$/;
const CRYPT6_RE = /^\$6\$(rounds=\d+\$)?[./0-9A-Za-z]{0,16}\$[./0-9A-Za-z]{86}$/;
/** `system_general.php` offers eight DNS servers, each with its own `dnsNgw`. */
const MAX_DNS_SERVERS = 8;

function prefixOf(cidr: string): { address: string; prefix: string } {
  const [address, prefix] = cidr.split('/');
  return { address: address ?? '', prefix: prefix ?? '32' };
}

/** A stable UUID (v4 layout) derived from a name, so the seed is reproducible. */
function stableUuid(name: string): string {
  const h = createHash('sha256').update(`dualwan:${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function check(state: DesiredState, creds: SeedCredentials, hostname: string, domain: string): void {
  if (!HOSTNAME_RE.test(hostname)) throw new SeedConfigError(`the hostname '${hostname}' is not a host name`, 'Use letters, digits and hyphens only (OPNsense refuses anything else).');
  if (!DOMAIN_RE.test(domain)) throw new SeedConfigError(`the domain '${domain}' is not a domain name`, 'Use letters, digits, hyphens and dots only.');
  if (!CRYPT6_RE.test(creds.rootPasswordHash) || !CRYPT6_RE.test(creds.apiSecretHash)) {
    throw new SeedConfigError('a password or secret was given in clear, not as a $6$ hash', 'Pass hashes from hashSecrets(); the seed never holds a clear secret.');
  }
  if (!/^[A-Za-z0-9+/=]{20,}$/.test(creds.apiKey)) throw new SeedConfigError('the API key is malformed', 'Use newBootstrapSecrets() to make one.');
  for (const k of creds.sshAuthorizedKeys) {
    if (!SSH_KEY_RE.test(k.trim())) throw new SeedConfigError(`not an OpenSSH public key line: ${k.slice(0, 40)}…`, 'Give the .pub line of the key dualwan uses (DUALWAN_SSH_PRIVATE_KEY_FILE).');
  }
  if (!state.wans.length) throw new SeedConfigError('there is no WAN', 'Add at least one WAN to dualwan.yaml.');
  const lan = parseCidr(state.lan.subnet);
  if (!lan) throw new SeedConfigError(`the LAN subnet ${state.lan.subnet} is not a CIDR`, 'Write it as 192.168.10.0/24.');
  const dns = state.wans.flatMap((w) => w.dnsServers);
  if (dns.length > MAX_DNS_SERVERS) {
    throw new SeedConfigError(`${dns.length} DNS servers are listed, OPNsense takes ${MAX_DNS_SERVERS}`, 'Keep one or two DNS servers per WAN.');
  }
  for (const w of state.wans) {
    for (const d of w.dnsServers) {
      const ip = parseIpv4(d);
      if (ip === undefined) throw new SeedConfigError(`DNS server ${d} of WAN ${w.name} is not an IPv4 address`, 'Use IPv4 addresses for DNS servers.');
      // system_general.php refuses a gateway for a DNS server on a directly connected network.
      const direct = [lan, w.upstreamSubnet ? parseCidr(w.upstreamSubnet) : undefined, w.addressing.mode === 'static' ? parseCidr(w.addressing.address) : undefined];
      if (direct.some((r) => r && rangeContains(r, ip))) {
        throw new SeedConfigError(`DNS server ${d} of WAN ${w.name} is on a directly connected network, so it cannot be bound to a gateway`, 'Use a DNS server on the internet (e.g. 1.0.0.1, 9.9.9.9).');
      }
    }
  }
}

/** The interface element for one WAN, in the order OPNsense's interfaces.php writes its fields. */
function wanInterface(existing: XmlElement | undefined, name: string, device: string, descr: string | undefined, wan: WanSpec, gatewayName: string): XmlElement {
  const el = existing ?? elem(name);
  const set = (k: string, v: string) => setText(el, k, v);
  set('enable', '1');
  set('if', device);
  if (descr) set('descr', descr);
  if (wan.addressing.mode === 'dhcp') {
    set('ipaddr', 'dhcp');
    if (child(el, 'subnet')) set('subnet', '');
    if (child(el, 'gateway')) set('gateway', '');
  } else {
    const { address, prefix } = prefixOf(wan.addressing.address);
    set('ipaddr', address);
    set('subnet', prefix);
    set('gateway', gatewayName);
  }
  set('blockpriv', '1');
  set('blockbogons', '1');
  set('lock', '1');
  return el;
}

export function buildSeedConfig(state: DesiredState, creds: SeedCredentials, opts: SeedOptions = {}): SeedConfig {
  const hostname = opts.hostname ?? state.vm?.name ?? 'opnsense';
  const domain = opts.domain ?? 'internal';
  check(state, creds, hostname, domain);
  const layout = layoutOf(state, opts.naming);
  const root = parseXml(FACTORY_CONFIG_XML);
  const summary: string[] = [];

  // We configure everything the wizard would ask; leaving the trigger would greet the first GUI
  // login with the wizard, which rewrites WAN/LAN.
  removeChildren(root, 'trigger_initial_wizard');

  const system = ensurePath(root, 'system');
  setText(system, 'hostname', hostname);
  setText(system, 'domain', domain);
  summary.push(`hostname ${hostname}.${domain}`);

  // root: new password, API key, SSH keys. The user model's fields: Auth/User.xml.
  const rootUser = childrenNamed(system, 'user').find((u) => child(u, 'name')?.text === 'root');
  if (!rootUser) throw new Error('factory config without root user');
  setText(rootUser, 'password', creds.rootPasswordHash);
  if (creds.sshAuthorizedKeys.length) {
    setText(rootUser, 'authorizedkeys', Buffer.from(creds.sshAuthorizedKeys.map((k) => k.trim()).join('\n'), 'utf8').toString('base64'));
  }
  setText(rootUser, 'apikeys', `${creds.apiKey}|${creds.apiSecretHash}`);
  summary.push('root: new password (hash only), one API key (secret stored as a $6$ hash)');

  // SSH: on, root allowed, keys only (openssh.inc: PasswordAuthentication follows `passwordauth`).
  const ssh = ensurePath(system, 'ssh');
  setText(ssh, 'enabled', 'enabled');
  setText(ssh, 'permitrootlogin', '1');
  removeChildren(ssh, 'passwordauth');
  summary.push(`SSH on, keys only (${creds.sshAuthorizedKeys.length} authorized key${creds.sshAuthorizedKeys.length === 1 ? '' : 's'})`);

  // DNS servers, each bound to its WAN's gateway (system_general.php: dnsserver[] + dns<N>gw).
  removeChildren(system, 'dnsserver');
  for (let n = 1; n <= MAX_DNS_SERVERS; n++) removeChildren(system, `dns${n}gw`);
  let n = 0;
  const dnsNodes: XmlElement[] = [];
  const gwNodes: XmlElement[] = [];
  layout.wans.forEach((w) => {
    for (const d of w.wan.dnsServers) {
      n++;
      dnsNodes.push(elem('dnsserver', d));
      gwNodes.push(elem(`dns${n}gw`, w.gatewayName));
      summary.push(`DNS ${d} through ${w.gatewayName}`);
    }
  });
  const anchor = child(system, 'dnsallowoverride_exclude') ? 'dnsallowoverride_exclude' : 'domain';
  for (const node of [...gwNodes].reverse()) insertAfter(system, anchor, node);
  for (const node of [...dnsNodes].reverse()) insertAfter(system, anchor, node);

  // Allow default gateway switching (system_general.php: present = on).
  removeChildren(system, 'gw_switch_default');
  insertAfter(system, n ? `dns${n}gw` : anchor, elem('gw_switch_default', '1'));
  summary.push('default gateway switching on');

  // Shared forwarding (Firewall > Settings > Advanced; on in the factory config): OPNsense's
  // multi-WAN guide has it off when gateways share a tier, i.e. for load balancing. No API sets it.
  if (state.policy.mode === 'loadbalance') {
    removeChildren(system, 'pf_share_forward');
    summary.push('shared forwarding off (load balancing)');
  }

  // Interfaces.
  const ifaces = ensurePath(root, 'interfaces');
  const wanEls: XmlElement[] = [];
  layout.wans.forEach((w, i) => {
    const device = layout.interfaces.find((x) => x.identifier === w.identifier)?.device ?? '';
    const existing = child(ifaces, w.identifier);
    const el = wanInterface(existing, w.identifier, device, i === 0 ? undefined : w.descr, w.wan, w.gatewayName);
    if (!existing) {
      // A new optN carries no IPv6 (the factory's DHCPv6 stays on the first WAN only).
      wanEls.push(el);
    }
    summary.push(`${w.identifier} (${w.descr}) on ${device}: ${w.wan.addressing.mode === 'dhcp' ? 'DHCP' : `static ${w.wan.addressing.address} via ${w.wan.addressing.gateway}`}`);
  });
  const lanLayout = layout.interfaces.find((x) => x.role === 'lan')!;
  const lanEl = ensurePath(ifaces, 'lan');
  setText(lanEl, 'enable', '1');
  setText(lanEl, 'if', lanLayout.device);
  setText(lanEl, 'ipaddr', state.lan.routerAddress);
  setText(lanEl, 'subnet', prefixOf(state.lan.subnet).prefix);
  setText(lanEl, 'lock', '1');
  summary.push(`lan on ${lanLayout.device}: ${state.lan.routerAddress}/${prefixOf(state.lan.subnet).prefix}`);
  for (const el of wanEls) ifaces.children.push(el);

  // The router's side of the Proxmox host's cutover bridge (proxmox.cutover): the host's gateway
  // once its management NIC is the router's. Static, no gateway of its own, no IPv6, locked.
  const link = layout.hostLink;
  if (link) {
    if (child(ifaces, link.identifier)) throw new Error(`factory config already has ${link.identifier}`);
    ifaces.children.push(
      elem(link.identifier, '', [
        elem('enable', '1'),
        elem('if', link.device),
        elem('descr', link.descr),
        elem('ipaddr', link.address),
        elem('subnet', String(link.prefix)),
        elem('lock', '1'),
      ]),
    );
    summary.push(`${link.identifier} (${link.descr}) on ${link.device}, the VM's NIC on ${link.bridge}: ${link.address}/${link.prefix}, the Proxmox host's gateway after the cutover`);

    // A pass rule on that interface: OPNsense drops what no rule passes on a new interface, and
    // until the cutover dualwan reaches the REST API through the host over this link. The same
    // fields as the OPNsense stage's host-out rule (found there by its description and kept).
    const rules = findPath(root, 'OPNsense/Firewall/Filter/rules');
    const template = rules ? childrenNamed(rules, 'rule')[0] : undefined;
    if (!rules || !template) throw new Error('factory config has no MVC filter rules to model the host link rule on');
    const rule: XmlElement = structuredClone(template);
    const fields: Record<string, string> = {
      sequence: '12',
      interface: link.identifier,
      ipprotocol: 'inet',
      source_net: link.identifier,
      destination_net: 'any',
      description: hostOutRuleDescription(link.descr),
    };
    for (const [k, v] of Object.entries(fields)) {
      const el = child(rule, k);
      if (!el) throw new Error(`factory filter rule has no ${k}`);
      el.text = v;
    }
    rules.children.push(rule);
    summary.push(`firewall: ${link.identifier} may reach out (the host's traffic; dualwan's own path to the router until the cutover)`);
  }

  // LAN DHCP: dnsmasq's IPv4 range of the LAN (the factory's IPv6 range stays).
  const dnsmasq = ensurePath(root, 'dnsmasq');
  const v4Range = childrenNamed(dnsmasq, 'dhcp_ranges').find((r) => child(r, 'interface')?.text === 'lan' && !child(r, 'constructor') && !(child(r, 'start_addr')?.text ?? '').includes(':'));
  if (state.lan.dhcp.enabled) {
    const range = v4Range ?? elem('dhcp_ranges', '', [elem('interface', 'lan')]);
    setText(range, 'start_addr', state.lan.dhcp.rangeStart);
    setText(range, 'end_addr', state.lan.dhcp.rangeEnd);
    if (!v4Range) insertAfter(dnsmasq, 'dhcp', range);
    summary.push(`LAN DHCP ${state.lan.dhcp.rangeStart}–${state.lan.dhcp.rangeEnd}`);
  } else if (v4Range) {
    dnsmasq.children = dnsmasq.children.filter((c) => c !== v4Range);
    summary.push('LAN DHCP off');
  }

  // Static WANs need a stored gateway (a DHCP WAN's is derived: WAN_DHCP, WAN2_DHCP…). Monitoring
  // and the rest of the gateway are the REST stage's job; it finds this one by name.
  const statics = layout.wans.filter((w) => w.wan.addressing.mode === 'static');
  if (statics.length) {
    const gateways = ensurePath(root, 'OPNsense/Gateways');
    gateways.attrs.version = '1.0.0';
    for (const w of statics) {
      if (w.wan.addressing.mode !== 'static') continue;
      const item = elem('gateway_item');
      item.attrs.uuid = stableUuid(`gateway:${w.gatewayName}`);
      const index = state.wans.indexOf(w.wan);
      for (const [k, v] of [
        ['disabled', '0'],
        ['name', w.gatewayName],
        ['descr', w.wan.description],
        ['interface', w.identifier],
        ['ipprotocol', 'inet'],
        ['gateway', w.wan.addressing.gateway],
        ['defaultgw', '0'],
        ['monitor_disable', '1'],
        ['priority', String(gatewayPriority(state, index))],
        ['weight', String(w.wan.weight)],
      ] as const) {
        item.children.push(elem(k, v));
      }
      gateways.children.push(item);
    }
  }

  return { xml: serializeXml(root), layout, hostname, domain, summary };
}
