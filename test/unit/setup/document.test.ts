import { parseDocument } from 'yaml';
import { loadConfigText } from '../../../src/config/load';
import { answersFromConfig, answersToConfig, defaultAccessPointAddress, missingAnswers, type CompleteAnswers } from '../../../src/setup/answers';
import { renderConfigDocument, schemaAt, wrapComment } from '../../../src/setup/document';

const N100: CompleteAnswers = {
  host: '192.168.1.10',
  port: 8006,
  tokenId: 'dualwan@pve!setup',
  fingerprint: `${'AB:'.repeat(31)}CD`,
  node: 'pve',
  isp: { type: 'pci-nic', pci: '0000:02:00.0' },
  lan: { type: 'bridge', bridge: 'vmbr0' },
  backup: { type: 'usb-tether', vendorId: '18d1', productId: '4ee3' },
  backupLabel: 'Google Pixel 8',
  diskStorage: 'local-lvm',
  imageStorage: 'local',
  vmid: 100,
  profile: 'failover',
  lanSubnet: '192.168.10.0/24',
  routerAddress: '192.168.10.1',
  accessPointAddress: '192.168.10.2',
  accessPointModel: 'Archer C6',
};

const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('answers → dualwan.yaml', () => {
  it('a new file: every key commented from the schema, valid under the same rules as apply, no secret', () => {
    const text = renderConfigDocument(answersToConfig(N100));
    const r = loadConfigText(text, 'dualwan.yaml');
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(r.state?.wans.map((w) => [w.name, w.uplink.type, w.tier, w.metered])).toEqual([
      ['isp', 'pci-nic', 1, false],
      ['hotspot', 'usb-tether', 2, true],
    ]);
    expect(r.state?.lan.uplink).toEqual({ type: 'bridge', bridge: 'vmbr0' });
    // Comments come from the schema descriptions, above their keys.
    const hostLine = lineOf(text, '  host: 192.168.1.10');
    expect(text.split('\n')[hostLine - 2]).toMatch(/^ {2}# .*Proxmox VE API/);
    const comments = text.replace(/\n\s*#/g, '');
    expect(comments).toContain('the token secret comes from DUALWAN_PROXMOX_TOKEN_SECRET');
    expect(text).not.toMatch(/- #/); // a list item's first comment sits above its dash
    expect(text).toMatch(/#[^\n]*PCI address of the NIC on the Proxmox host/);
    expect(text).toMatch(/#[^\n]*Failover tier/);
    expect(text.split('\n')[0]).toMatch(/^# dualwan\.yaml, written by `dualwan setup`/);
    // Hex ids and PCI addresses are quoted, so YAML cannot misread them.
    expect(text).toContain('pci: "0000:02:00.0"');
    expect(text).toContain('vendorId: "18d1"');
    // No secret-looking key anywhere (the loader would refuse it), and comment lines stay short.
    expect(text).not.toMatch(/^\s*[\w-]*(secret|password)[\w-]*\s*:/im);
    expect(Math.max(...text.split('\n').map((l) => l.length))).toBeLessThanOrEqual(110);
  });

  it('load balance: both WANs in tier 1, the ISP weighted', () => {
    const r = loadConfigText(renderConfigDocument(answersToConfig({ ...N100, profile: 'loadbalance', ispWeight: 3 })), 'd.yaml');
    expect(r.state?.policy.mode).toBe('loadbalance');
    expect(r.state?.wans.map((w) => [w.tier, w.weight])).toEqual([
      [1, 3],
      [1, 1],
    ]);
  });

  it('an overlap is reported at its place in the generated file', () => {
    const text = renderConfigDocument(answersToConfig({ ...N100, lanSubnet: '192.168.1.0/24', routerAddress: '192.168.1.1', accessPointAddress: '192.168.1.2' }));
    const r = loadConfigText(text, 'dualwan.yaml');
    const d = r.diagnostics.find((x) => x.code === 'RULE_LAN_COMMON_RANGE');
    expect(d?.location?.line).toBe(lineOf(text, 'subnet: 192.168.1.0/24'));
    expect(d?.remedy).toMatch(/Change lan\.subnet to e\.g\./);
  });

  it('an existing file is updated in place: its comments and the keys setup does not ask about stay', () => {
    const before = [
      '# my notes',
      'version: 1',
      'backend: opnsense-vm',
      'proxmox:',
      '  host: 10.0.0.5 # old host',
      '  tokenId: dualwan@pve!setup',
      'opnsense:',
      '  host: 127.0.0.1',
      '  port: 4443',
      'wans:',
      '  - name: isp',
      '    uplink: { type: pci-nic, pci: "0000:03:00.0" }',
      '    monitorIps: [1.1.1.1]',
      '  - name: hotspot',
      '    uplink: { type: usb-tether, vendorId: "18d1", productId: "4ee3" }',
      '',
    ].join('\n');
    const text = renderConfigDocument(answersToConfig({ ...N100, isp: { type: 'bridge', bridge: 'vmbr2' } }), before);
    expect(text).toContain('# my notes');
    expect(text).toContain('host: 192.168.1.10 # old host');
    const doc = parseDocument(text).toJSON() as { opnsense: unknown; wans: { uplink: unknown; monitorIps?: string[] }[] };
    expect(doc.opnsense).toEqual({ host: '127.0.0.1', port: 4443 });
    // The uplink is replaced as a whole (no stray pci key under a bridge), the WAN's other keys stay.
    expect(doc.wans[0]!.uplink).toEqual({ type: 'bridge', bridge: 'vmbr2' });
    expect(doc.wans[0]!.monitorIps).toEqual(['1.1.1.1']);
    expect(loadConfigText(text, 'd.yaml').diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    // Read back, the same answers come out (a re-run offers them as defaults).
    const back = answersFromConfig(parseDocument(text).toJSON());
    expect(back).toMatchObject({ host: '192.168.1.10', isp: { type: 'bridge', bridge: 'vmbr2' }, backup: N100.backup, lanSubnet: '192.168.10.0/24', vmid: 100 });
    expect(missingAnswers(back)).toEqual([]);
  });

  it('a cutover answer writes proxmox.cutover and the VM NIC on its bridge; dropping it removes the section', () => {
    const cut = { ...N100, isp: { type: 'pci-nic' as const, pci: '0000:01:00.0' }, cutover: { bridge: 'vmbr1', hostAddress: '10.10.99.2/24', gateway: '10.10.99.1' } };
    const withCut = renderConfigDocument(answersToConfig(cut));
    const js = parseDocument(withCut).toJSON() as { proxmox: { cutover?: unknown }; vm: { bridgeNic?: unknown } };
    expect(js.proxmox.cutover).toEqual(cut.cutover);
    expect(js.vm.bridgeNic).toEqual({ bridge: 'vmbr1' });
    const without = renderConfigDocument(answersToConfig(N100), withCut);
    expect((parseDocument(without).toJSON() as { proxmox: Record<string, unknown> }).proxmox).not.toHaveProperty('cutover');
  });

  it('answers read leniently from a partial or odd file', () => {
    expect(answersFromConfig({ proxmox: { host: 'pve.lan', port: 'x' }, wans: 'no', lan: { uplink: { type: 'pci-nic' } } })).toEqual({ host: 'pve.lan' });
    expect(answersFromConfig(null)).toEqual({});
  });

  it('helpers: schema lookup through union variants, comment wrapping, the access point address', () => {
    const value = { wans: [{ uplink: { type: 'usb-tether' } }] };
    expect((schemaAt(['wans', 0, 'uplink', 'productId'], value) as { description?: string })?.description).toMatch(/Phones change it/);
    expect(wrapComment('a b c', 3)).toBe(' a b\n c');
    expect(defaultAccessPointAddress('192.168.10.0/24', '192.168.10.1')).toBe('192.168.10.2');
    expect(defaultAccessPointAddress('10.0.0.0/30', '10.0.0.2')).toBe('10.0.0.1');
  });
});
