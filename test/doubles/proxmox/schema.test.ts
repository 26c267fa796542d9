import { loadSample, type SampleFile } from './data';
import { parsePropertyString, perlRegex } from './jsonschema';
import { validateRequest, type ValidationResult } from './schema';

const POST_QEMU = '/nodes/pve/qemu';

function errorsOf(r: ValidationResult): Record<string, string> {
  if (r.ok) throw new Error(`expected a failure, got ok for ${r.template}`);
  return r.errors ?? {};
}

describe('validateRequest: routing', () => {
  it('matches templates and returns the path parameters', () => {
    const r = validateRequest('9.1', 'GET', '/api2/json/nodes/pve/qemu/100/status/current');
    expect(r).toMatchObject({ ok: true, template: '/nodes/{node}/qemu/{vmid}/status/current', pathParams: { node: 'pve', vmid: '100' } });
  });

  it('answers 501 for unknown paths and methods, like rest_handler', () => {
    expect(validateRequest('9.1', 'GET', '/x')).toEqual({ ok: false, status: 501, message: "Method 'GET /x' not implemented" });
    expect(validateRequest('9.1', 'DELETE', '/version')).toMatchObject({ status: 501, message: "Method 'DELETE /version' not implemented" });
  });

  it('validates path parameters with their schema', () => {
    const r = validateRequest('9.1', 'GET', '/nodes/pve/qemu/abc/config');
    expect(errorsOf(r)).toEqual({ vmid: 'type check (\'integer\') failed - got \'abc\'' });
    expect(errorsOf(validateRequest('9.1', 'GET', '/nodes/pve/qemu/99/config'))).toEqual({ vmid: 'invalid format - value does not look like a valid VM ID\n' });
    expect(errorsOf(validateRequest('9.1', 'GET', '/nodes/-bad-/version'))).toEqual({ node: 'invalid format - value does not look like a valid node name\n' });
  });

  it('keeps UPIDs (with ":" and "!") as one path parameter', () => {
    const upid = 'UPID:pve:00003A2F:001B2C3D:6915A3C4:qmcreate:100:automation@pve!router:';
    expect(validateRequest('9.1', 'GET', `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`)).toMatchObject({ ok: true, pathParams: { upid } });
  });
});

describe('validateRequest: parameter checks (pve-common JSONSchema.pm)', () => {
  it('reproduces the recorded 400 body of error-400-parameter-verification.json', () => {
    const sample = loadSample<SampleFile>('error-400-parameter-verification');
    const ex = sample.examples![0]!;
    const r = validateRequest('9.1', ex.request.method, ex.request.path, ex.request.form);
    expect(r.ok).toBe(false);
    const body = ex.response.body as { message: string; errors: Record<string, string> };
    expect(r).toMatchObject({ status: 400, message: body.message, errors: body.errors });
    const ex2 = sample.examples![1]!;
    expect(errorsOf(validateRequest('9.1', ex2.request.method, ex2.request.path, {}))).toEqual((ex2.response.body as { errors: object }).errors);
  });

  it('rejects unknown parameters and missing required ones', () => {
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', bogus: '1' }))).toEqual({ bogus: 'property is not defined in schema and the schema does not allow additional properties' });
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { name: 'x' }))).toEqual({ vmid: 'property is missing and it is not optional' });
    expect(errorsOf(validateRequest('9.1', 'POST', '/nodes/pve/storage/local/download-url', { content: 'iso', url: 'https://x/a.iso' }))).toEqual({ filename: 'property is missing and it is not optional' });
  });

  it('checks types: booleans only 1/0 at the top level, integers, numbers', () => {
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', onboot: 'yes' }))).toEqual({ onboot: "type check ('boolean') failed - got 'yes'" });
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', cores: '2.5' }))).toEqual({ cores: "type check ('integer') failed - got '2.5'" });
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', cpulimit: 'lots' }))).toEqual({ cpulimit: "type check ('number') failed - got 'lots'" });
    expect(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', onboot: '1', cores: '2', cpulimit: '1.5' }).ok).toBe(true);
  });

  it('checks minimum/maximum, maxLength, enum and patterns', () => {
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', cores: '0' }))).toEqual({ cores: 'value must have a minimum value of 1' });
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', ostype: 'freebsd' })).ostype).toMatch(/^value 'freebsd' does not have a value in the enumeration 'other, wxp, /);
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', serial0: 'tcp:1' }))).toEqual({ serial0: 'value does not match the regex pattern' });
    expect(errorsOf(validateRequest('9.1', 'PUT', '/nodes/pve/qemu/100/config', { digest: 'x'.repeat(41) }))).toEqual({ digest: 'value may only be 40 characters long' });
    expect(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', machine: 'pc-q35-10.1+pve1', serial0: 'socket' }).ok).toBe(true);
  });

  it('validates property strings: sub-key types, unknown and duplicate keys, aliases, default keys', () => {
    const e = (v: string, key = 'hostpci0') => errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', [key]: v }))[key];
    expect(e('0000:01:00.0,pcie=maybe')).toBe("invalid format - format error\nhostpci0.pcie: type check ('boolean') failed - got 'maybe'\n");
    expect(e('mapping=wan0,foo=1')).toBe('invalid format - invalid key in comma-separated list property: foo\n');
    expect(e('mapping=wan0,pcie=1,pcie=0')).toBe('invalid format - duplicate key in comma-separated list property: pcie\n');
    expect(e('01:00.0,02:00.0')).toBe('invalid format - duplicate key in comma-separated list property: host\n');
    expect(e('0000:01:00.0,vendor-id=8086')).toBe('invalid format - format error\nhostpci0.vendor-id: value does not match the regex pattern\n');
    expect(e('virtio,bridge=vmbr0,tag=5000', 'net0')).toBe('invalid format - format error\nnet0.tag: value must have a maximum value of 4094\n');
    expect(e('virtio=01:00:00:00:00:01', 'net0')).toBe('invalid format - format error\nnet0.macaddr: invalid format - value does not look like a valid unicast MAC address\n\n');
    expect(e('host=18d1:4ee3,usb3=maybe', 'usb0')).toBe("invalid format - format error\nusb0.usb3: type check ('boolean') failed - got 'maybe'\n");
    // property strings take 1|on|yes|true for booleans (parse_boolean), the API's top level does not
    const ok = validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', hostpci0: 'mapping=wan0,pcie=yes', net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr1,firewall=on', usb0: 'mapping=phone-wan', agent: '1', memory: '2048', startup: 'order=1,up=30', cpu: 'host', ipconfig0: 'ip=dhcp' });
    expect(ok.ok).toBe(true);
  });

  it('expands numbered keys with the ranges of qemu-property-formats.json', () => {
    expect(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', hostpci15: 'mapping=a1', usb13: 'mapping=p1', net31: 'virtio', scsi30: 'local-lvm:1' }).ok).toBe(true);
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', hostpci16: 'mapping=a1', usb14: 'mapping=p1' }))).toEqual({
      hostpci16: 'property is not defined in schema and the schema does not allow additional properties',
      usb14: 'property is not defined in schema and the schema does not allow additional properties',
    });
  });

  it('checks named formats (startup, ipconfig, cpu, configid lists, requires)', () => {
    const e = (k: string, v: string) => errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', [k]: v }))[k];
    expect(e('startup', 'order=first')).toBe('invalid format - unable to parse startup options\n');
    expect(e('ipconfig0', 'ip=10.0.0.1')).toBe('invalid format - format error\nipconfig0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n');
    expect(e('cpu', 'host,bogus=1')).toBe('invalid format - invalid key in comma-separated list property: bogus\n');
    expect(errorsOf(validateRequest('9.1', 'PUT', '/nodes/pve/qemu/100/config', { delete: 'net0,1bad' }))).toEqual({ delete: "invalid format - invalid configuration ID '1bad'\n" });
    expect(errorsOf(validateRequest('9.1', 'POST', '/nodes/pve/storage/local/download-url', { content: 'iso', filename: 'a.iso', url: 'https://x/a.iso', checksum: 'ab' }))).toEqual({ 'checksum-algorithm': "missing property required by 'checksum'" });
  });

  it('treats repeated form keys as arrays (map of /cluster/mapping/pci) and validates each item', () => {
    const ok = validateRequest('9.1', 'POST', '/cluster/mapping/pci', { id: 'wan0', map: 'node=pve,path=0000:01:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=13' });
    expect(ok).toMatchObject({ ok: true, params: { map: ['node=pve,path=0000:01:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=13'] } });
    const bad = validateRequest('9.1', 'POST', '/cluster/mapping/pci', { id: 'wan0', map: ['node=pve,path=0000:01:00.0,id=8086:125c', 'node=pve,path=01:00.0,id=8086:125c'] });
    expect(errorsOf(bad)).toEqual({ 'map[1]': 'invalid format - format error\nmap[1].path: value does not match the regex pattern\n' });
    // a repeated key for a '-list' string becomes a comma list; for a plain string it is an error
    expect(validateRequest('9.1', 'PUT', '/nodes/pve/qemu/100/config', { delete: ['usb0', 'hostpci1'] })).toMatchObject({ ok: true, params: { delete: 'usb0,hostpci1' } });
    expect(errorsOf(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', name: ['a', 'b'] }))).toEqual({ name: "type check ('string') failed - got ARRAY" });
  });

  it('knows the differences between 8.4 and 9.1', () => {
    expect(validateRequest('9.1', 'POST', POST_QEMU, { vmid: '100', 'allow-ksm': '0' }).ok).toBe(true);
    expect(errorsOf(validateRequest('8.4', 'POST', POST_QEMU, { vmid: '100', 'allow-ksm': '0' }))).toEqual({ 'allow-ksm': 'property is not defined in schema and the schema does not allow additional properties' });
    expect(validateRequest('9.1', 'POST', '/nodes/pve/qemu/100/status/start', { 'with-conntrack-state': '1' }).ok).toBe(true);
    expect(validateRequest('8.4', 'POST', '/nodes/pve/qemu/100/status/start', { 'with-conntrack-state': '1' }).ok).toBe(false);
  });

  it('rejects a URI parameter repeated with another value', () => {
    expect(errorsOf(validateRequest('9.1', 'GET', '/nodes/pve/qemu/100/config', { vmid: '101' }))).toEqual({ vmid: 'duplicate parameter (already defined in URI) with conflicting values!' });
  });
});

describe('property-string and regex helpers', () => {
  it('maps aliases with keyAlias (virtio=<mac> sets model and macaddr)', () => {
    const net = parsePropertyString({ keys: { model: { type: 'string', default_key: 1 }, macaddr: { type: 'string', optional: 1 }, virtio: { alias: 'macaddr', keyAlias: 'model' }, bridge: { type: 'string', optional: 1 } } }, 'virtio=BC:24:11:00:00:01,bridge=vmbr1', 'net0');
    expect(net).toEqual({ model: 'virtio', macaddr: 'BC:24:11:00:00:01', bridge: 'vmbr1' });
  });

  it("translates Perl's (?^:...) groups and anchors like m/^$pattern$/", () => {
    expect(perlRegex('(?^:^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$)').test('8086:125c')).toBe(true);
    expect(perlRegex('(?^i:[a-z]+)').test('ABC')).toBe(true);
    expect(perlRegex('[A-Za-z0-9\\-_\\s]{,8}').test('abc')).toBe(true);
    expect(perlRegex('[1-9][0-9]{2,8}').test('99')).toBe(false);
  });
});
