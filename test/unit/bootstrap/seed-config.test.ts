import * as fs from 'node:fs';
import * as path from 'node:path';
import { verifySha512Crypt } from '../../../src/bootstrap/crypt';
import { FACTORY_CONFIG_XML } from '../../../src/bootstrap/factory-config';
import { buildSeedConfig, hashSecrets, newBootstrapSecrets, SeedConfigError } from '../../../src/bootstrap/seed-config';
import { child, childrenNamed, elementPaths, findPath, parseXml, type XmlElement } from '../../../src/bootstrap/xml';
import type { DesiredState } from '../../../src/core/desired';
import { cutoverState, expectGolden, FIXED_SECRETS, fixedCredentials, playbookState, ROOT, TEST_SSH_KEY, twoNicState } from './seed-fixtures';

const UPSTREAM = path.join(ROOT, 'test', 'fixtures', 'upstream', 'opnsense');

/**
 * Elements of config.xml that no model describes (legacy pages write them), each checked in the
 * opnsense/core 26.7.2 source named next to it. `*` stands for any interface (wan, lan, optN).
 */
const LEGACY_ELEMENTS: Record<string, string> = {
  'opnsense/system/dnsserver': 'src/www/system_general.php ($config[system][dnsserver][])',
  'opnsense/system/dnsNgw': 'src/www/system_general.php (dns1gw … dns8gw)',
  'opnsense/system/gw_switch_default': 'src/www/system_general.php (isset = on)',
  'opnsense/system/ssh/enabled': 'src/etc/inc/plugins.inc.d/openssh.inc (isset = on)',
  'opnsense/system/ssh/permitrootlogin': 'src/etc/inc/plugins.inc.d/openssh.inc (PermitRootLogin)',
  'opnsense/interfaces/*/descr': 'src/www/interfaces.php',
  'opnsense/interfaces/*/lock': 'src/www/interfaces.php; src/etc/inc/console.inc is_interface_mismatch',
};

/** Paths a model defines: its mount plus every field below `items`. */
function modelPaths(file: string): string[] {
  const model = parseXml(fs.readFileSync(file, 'utf8'));
  const mount = (child(model, 'mount')?.text ?? '').trim();
  // "/system/user+" mounts the array field `user` at /system/user.
  const base = `opnsense${mount.replace(/^\/+/, '/').replace(/\/[^/]*\+$/, '')}`.replace(/\/$/, '');
  const items = child(model, 'items');
  const out: string[] = [];
  const walk = (el: XmlElement, prefix: string) => {
    for (const c of el.children) {
      const p = `${prefix}/${c.name}`;
      out.push(p);
      // A field whose children are fields (typed) is a container or an array of items.
      if (c.children.some((x) => x.attrs.type !== undefined)) walk(c, p);
    }
  };
  const at = mount.endsWith('+') ? base : `opnsense${mount.replace(/^\/+/, '/')}`;
  // The mount point and the elements above it exist too.
  at.split('/').forEach((_, i, parts) => out.push(parts.slice(0, i + 1).join('/')));
  if (items) walk(items, at);
  return out;
}

const normalise = (p: string) => p.replace(/^opnsense\/interfaces\/[^/]+/, 'opnsense/interfaces/*').replace(/^opnsense\/system\/dns[1-8]gw$/, 'opnsense/system/dnsNgw');

function knownPaths(): Set<string> {
  const known = new Set(elementPaths(parseXml(fs.readFileSync(path.join(UPSTREAM, 'config.xml.sample'), 'utf8'))).map(normalise));
  for (const f of fs.readdirSync(path.join(UPSTREAM, 'models'))) for (const p of modelPaths(path.join(UPSTREAM, 'models', f))) known.add(normalise(p));
  for (const p of Object.keys(LEGACY_ELEMENTS)) known.add(p);
  return known;
}

const seedOf = (state: DesiredState) => buildSeedConfig(state, fixedCredentials());

describe('the seeded config.xml', () => {
  it('starts from the factory default of 26.7.2, kept byte for byte', () => {
    expect(FACTORY_CONFIG_XML).toBe(fs.readFileSync(path.join(UPSTREAM, 'config.xml.sample'), 'utf8'));
  });

  it('matches the golden file for the hotspot-failover playbook (I226 + phone + LAN on vmbr0)', () => {
    expectGolden('seed-config.hotspot-failover.xml', seedOf(playbookState()).xml);
  });

  it('matches the golden file for two passed-through I226 NICs, a static WAN and a bridged WAN2', () => {
    expectGolden('seed-config.two-nic-static.xml', seedOf(twoNicState()).xml);
  });

  it('matches the golden file for the guarded cutover (two NICs, WAN2 on vmbr1, the host moving to vmbr9)', () => {
    expectGolden('seed-config.cutover.xml', seedOf(cutoverState()).xml);
  });

  it.each([
    ['hotspot-failover', () => playbookState()],
    ['two-nic-static', () => twoNicState()],
    ['cutover', () => cutoverState()],
  ])('%s: every element is one OPNsense knows (factory config, models, or a cited legacy page)', (_, state) => {
    const known = knownPaths();
    const unknown = [...new Set(elementPaths(parseXml(seedOf(state()).xml)).map(normalise))].filter((p) => !known.has(p));
    expect(unknown).toEqual([]);
  });

  it('names the devices the VM will show and locks every interface', () => {
    const hot = parseXml(seedOf(playbookState()).xml);
    expect(findPath(hot, 'interfaces/wan/if')?.text).toBe('igc0');
    expect(findPath(hot, 'interfaces/opt1/if')?.text).toBe('ue0');
    expect(findPath(hot, 'interfaces/opt1/descr')?.text).toBe('WAN2');
    expect(findPath(hot, 'interfaces/lan/if')?.text).toBe('vtnet0');
    const two = parseXml(seedOf(twoNicState()).xml);
    expect(findPath(two, 'interfaces/wan/if')?.text).toBe('igc0');
    expect(findPath(two, 'interfaces/lan/if')?.text).toBe('igc1');
    expect(findPath(two, 'interfaces/opt1/if')?.text).toBe('vtnet0');
    for (const doc of [hot, two]) for (const i of findPath(doc, 'interfaces')!.children) expect(child(i, 'lock')?.text).toBe('1');
  });

  it('with proxmox.cutover: the next optN on the VM\'s NIC on the cutover bridge, static at the gateway, locked', () => {
    const seed = seedOf(cutoverState());
    const x = parseXml(seed.xml);
    const opt2 = findPath(x, 'interfaces/opt2')!;
    expect(opt2.children.map((c) => [c.name, c.text])).toEqual([
      ['enable', '1'],
      ['if', 'vtnet1'],
      ['descr', 'PVEHOST'],
      ['ipaddr', '10.10.99.1'],
      ['subnet', '24'],
      ['lock', '1'],
    ]);
    // WAN2 keeps vtnet0 (its bridge comes first), the LAN keeps igc1: the names after the cutover
    expect(findPath(x, 'interfaces/opt1/if')?.text).toBe('vtnet0');
    expect(findPath(x, 'interfaces/lan/if')?.text).toBe('igc1');
    // no gateway, no DHCP and no IPv6 there: the host has its own static address
    expect(child(opt2, 'gateway')).toBeUndefined();
    expect(childrenNamed(findPath(x, 'dnsmasq')!, 'dhcp_ranges').some((r) => child(r, 'interface')?.text === 'opt2')).toBe(false);
    expect(seed.layout.hostLink).toMatchObject({ identifier: 'opt2', device: 'vtnet1', address: '10.10.99.1', prefix: 24 });
    expect(seed.summary.join('\n')).toMatch(/opt2 \(PVEHOST\) on vtnet1, the VM's NIC on vmbr9: 10\.10\.99\.1\/24/);
    // one pass rule on it, the OPNsense stage's host-out rule (OPNsense passes nothing there without one)
    const rules = childrenNamed(findPath(x, 'OPNsense/Firewall/Filter/rules')!, 'rule');
    const onLink = rules.filter((r) => child(r, 'interface')?.text === 'opt2');
    expect(onLink.map((r) => ['action', 'source_net', 'destination_net', 'ipprotocol', 'description'].map((k) => child(r, k)?.text))).toEqual([
      ['pass', 'opt2', 'any', 'inet', 'dualwan: Proxmox host network (PVEHOST) out, no gateway'],
    ]);
    expect(child(onLink[0]!, 'gateway')).toBeUndefined();
    // without the opt-in there is no such interface and no such rule
    const plain = parseXml(seedOf(twoNicState()).xml);
    expect(findPath(plain, 'interfaces/opt2')).toBeUndefined();
    expect(childrenNamed(findPath(plain, 'OPNsense/Firewall/Filter/rules')!, 'rule').some((r) => child(r, 'interface')?.text === 'opt2')).toBe(false);
  });

  it('sets WAN and WAN2 to DHCP, the LAN address and its DHCP range', () => {
    const x = parseXml(seedOf(playbookState()).xml);
    expect(findPath(x, 'interfaces/wan/ipaddr')?.text).toBe('dhcp');
    expect(findPath(x, 'interfaces/opt1/ipaddr')?.text).toBe('dhcp');
    expect(findPath(x, 'interfaces/opt1/enable')?.text).toBe('1');
    expect(findPath(x, 'interfaces/lan/ipaddr')?.text).toBe('192.168.10.1');
    expect(findPath(x, 'interfaces/lan/subnet')?.text).toBe('24');
    const v4 = childrenNamed(findPath(x, 'dnsmasq')!, 'dhcp_ranges').filter((r) => !child(r, 'constructor'));
    expect(v4.map((r) => [child(r, 'start_addr')?.text, child(r, 'end_addr')?.text])).toEqual([['192.168.10.100', '192.168.10.249']]);
  });

  it('turns LAN DHCP off when asked, and gives a static WAN its address and a stored gateway', () => {
    const x = parseXml(seedOf(twoNicState()).xml);
    const v4 = childrenNamed(findPath(x, 'dnsmasq')!, 'dhcp_ranges').filter((r) => !child(r, 'constructor'));
    expect(v4).toEqual([]);
    expect(findPath(x, 'interfaces/wan/ipaddr')?.text).toBe('203.0.113.10');
    expect(findPath(x, 'interfaces/wan/subnet')?.text).toBe('29');
    expect(findPath(x, 'interfaces/wan/gateway')?.text).toBe('WAN_GW');
    const gw = findPath(x, 'OPNsense/Gateways/gateway_item')!;
    expect(child(gw, 'name')?.text).toBe('WAN_GW');
    expect(child(gw, 'gateway')?.text).toBe('203.0.113.9');
    expect(child(gw, 'interface')?.text).toBe('wan');
  });

  it('binds each DNS server to its WAN gateway and switches the default gateway', () => {
    const x = parseXml(seedOf(twoNicState()).xml);
    const sys = findPath(x, 'system')!;
    expect(childrenNamed(sys, 'dnsserver').map((e) => e.text)).toEqual(['1.0.0.1', '8.8.4.4', '149.112.112.112']);
    expect([1, 2, 3].map((n) => child(sys, `dns${n}gw`)?.text)).toEqual(['WAN_GW', 'WAN_GW', 'WAN2_DHCP']);
    expect(child(sys, 'gw_switch_default')?.text).toBe('1');
    const hot = findPath(parseXml(seedOf(playbookState()).xml), 'system')!;
    expect([1, 2].map((n) => child(hot, `dns${n}gw`)?.text)).toEqual(['WAN_DHCP', 'WAN2_DHCP']);
  });

  it('turns shared forwarding off for load balancing and keeps the factory value for failover', () => {
    const lb = findPath(parseXml(seedOf(playbookState('opnsense-loadbalance.yaml')).xml), 'system')!;
    expect(child(lb, 'pf_share_forward')).toBeUndefined();
    const fo = findPath(parseXml(seedOf(playbookState()).xml), 'system')!;
    expect(child(fo, 'pf_share_forward')?.text).toBe('1');
  });

  it('holds no clear secret: root password and API secret only as $6$ hashes, SSH keys only', () => {
    const { xml } = seedOf(playbookState());
    expect(xml).not.toContain(FIXED_SECRETS.rootPassword);
    expect(xml).not.toContain(FIXED_SECRETS.apiSecret);
    expect(xml).not.toContain('$2y$10$YRVoF4Sgsk'); // the factory root hash (password "opnsense") is gone
    const x = parseXml(xml);
    const root = childrenNamed(findPath(x, 'system')!, 'user').find((u) => child(u, 'name')?.text === 'root')!;
    expect(verifySha512Crypt(FIXED_SECRETS.rootPassword, child(root, 'password')!.text)).toBe(true);
    const [key, hash] = child(root, 'apikeys')!.text.split('|');
    expect(key).toBe(FIXED_SECRETS.apiKey);
    expect(verifySha512Crypt(FIXED_SECRETS.apiSecret, hash!)).toBe(true);
    expect(Buffer.from(child(root, 'authorizedkeys')!.text, 'base64').toString('utf8')).toBe(TEST_SSH_KEY);
    expect(findPath(x, 'system/ssh/enabled')?.text).toBe('enabled');
    expect(findPath(x, 'system/ssh/passwordauth')).toBeUndefined();
    expect(findPath(x, 'trigger_initial_wizard')).toBeUndefined();
    expect(findPath(x, 'system/hostname')?.text).toBe('opnsense');
  });

  it('is the same for the same inputs and differs for fresh secrets', () => {
    expect(seedOf(playbookState()).xml).toBe(seedOf(playbookState()).xml);
    const a = newBootstrapSecrets();
    const b = newBootstrapSecrets();
    expect(a.rootPassword).toMatch(/^[a-km-zA-HJ-NP-Z2-9]{20}$/);
    expect(a.apiKey).not.toBe(b.apiKey);
    expect(Buffer.from(a.apiKey, 'base64')).toHaveLength(60);
    expect(buildSeedConfig(playbookState(), hashSecrets(a, [])).xml).not.toBe(buildSeedConfig(playbookState(), hashSecrets(b, [])).xml);
  });

  it('refuses clear secrets, bad names, too many DNS servers and a DNS server on a direct network', () => {
    const creds = fixedCredentials();
    const state = playbookState();
    expect(() => buildSeedConfig(state, { ...creds, rootPasswordHash: 'opnsense' })).toThrow(SeedConfigError);
    expect(() => buildSeedConfig(state, creds, { hostname: 'bad_name' })).toThrow(/not a host name/);
    expect(() => buildSeedConfig(state, { ...creds, sshAuthorizedKeys: ['not a key'] })).toThrow(/OpenSSH public key/);
    const many = { ...state, wans: state.wans.map((w) => ({ ...w, dnsServers: ['1.1.1.1', '1.0.0.1', '8.8.8.8', '8.8.4.4', '9.9.9.9'] })) };
    expect(() => buildSeedConfig(many, creds)).toThrow(/OPNsense takes 8/);
    const direct = { ...state, wans: state.wans.map((w, i) => (i === 1 ? { ...w, dnsServers: ['192.168.43.1'] } : w)) };
    expect(() => buildSeedConfig(direct, creds)).toThrow(/directly connected/);
  });
});
