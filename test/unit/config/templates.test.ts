import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultTemplatesDir, findPackageRoot, listVmTemplates, loadVmTemplate, parseVmTemplate } from '../../../src/config/templates';

describe('findPackageRoot', () => {
  it('finds the root from the sources (as under jest)', () => {
    const root = findPackageRoot(path.join(__dirname, '../../../src/config'));
    expect(fs.existsSync(path.join(root, 'package.json'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).name).toBe('dualwan');
  });

  it('finds the same root from the compiled location, even past a package.json copied into dist/', () => {
    const root = findPackageRoot();
    const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-root-'));
    try {
      fs.writeFileSync(path.join(fake, 'package.json'), '{"name":"dualwan"}');
      fs.mkdirSync(path.join(fake, 'vm-templates'));
      fs.mkdirSync(path.join(fake, 'dist', 'src', 'config'), { recursive: true });
      fs.writeFileSync(path.join(fake, 'dist', 'package.json'), '{"name":"dualwan"}');
      expect(findPackageRoot(path.join(fake, 'dist', 'src', 'config'))).toBe(fake);
    } finally {
      fs.rmSync(fake, { recursive: true, force: true });
    }
    expect(defaultTemplatesDir()).toBe(path.join(root, 'vm-templates'));
  });

  it('says where it looked when there is no root', () => {
    expect(() => findPackageRoot(os.tmpdir())).toThrow(/No package root/);
  });
});

describe('shipped VM templates', () => {
  it('are listed by name', () => {
    expect(listVmTemplates()).toEqual(['debian-router', 'opnsense']);
  });

  it('opnsense boots the 26.7 nano image with a serial console on q35 and SeaBIOS', () => {
    const t = loadVmTemplate('opnsense');
    if (t.status !== 'found') throw new Error(JSON.stringify(t));
    expect(t.template).toMatchObject({
      ostype: 'other',
      machine: 'q35',
      bios: 'seabios',
      cpu: 'host',
      balloon: 0,
      serialConsole: true,
      onboot: true,
      startupOrder: 1,
    });
    expect(t.template.image).toEqual({
      url: 'https://pkg.opnsense.org/releases/26.7/OPNsense-26.7-nano-amd64.img.bz2',
      filename: 'OPNsense-26.7-nano-amd64.raw',
      checksum: expect.stringMatching(/^[0-9a-f]{64}$/),
      checksumAlgorithm: 'sha256',
      compression: 'bz2',
    });
    expect(t.template.cores).toBeGreaterThanOrEqual(2);
    expect(t.template.memoryMiB).toBeGreaterThanOrEqual(2048);
  });

  it('debian-router pins a dated cloud image by sha512', () => {
    const t = loadVmTemplate('debian-router');
    if (t.status !== 'found') throw new Error(JSON.stringify(t));
    expect(t.template.ostype).toBe('l26');
    expect(t.template.image.checksumAlgorithm).toBe('sha512');
    expect(t.template.image.checksum).toMatch(/^[0-9a-f]{128}$/);
    expect(t.template.image.url).toMatch(/\/\d{8}-\d{4}\/debian-13-genericcloud-amd64-\d{8}-\d{4}\.qcow2$/);
  });
});

describe('loadVmTemplate', () => {
  it('reports a missing template with the ones available', () => {
    const t = loadVmTemplate('nope');
    expect(t).toMatchObject({ status: 'missing', available: ['debian-router', 'opnsense'] });
  });

  it('refuses names that would leave the templates directory', () => {
    expect(loadVmTemplate('../package').status).toBe('missing');
  });

  it('reports unknown keys and wrong values in a template at their line', () => {
    const text = 'ostype: other\nmachine: pc\nbios: seabios\ncores: 2\nmemoryMiB: 2048\ndiskGiB: 16\nballoon: 1024\nimage:\n  url: ftp://x/y\n  filename: y.raw\n  checksum: 00\n  checksumAlgorithm: sha256\ncolour: blue\n';
    const r = parseVmTemplate(text, '/t/opnsense.yaml', 'opnsense');
    expect(r.template).toBeUndefined();
    expect(r.diagnostics.every((d) => d.code === 'CONFIG_TEMPLATE_INVALID')).toBe(true);
    expect(r.diagnostics.map((d) => `${d.path}@${d.location?.line}:${d.location?.column}`).sort()).toEqual(
      ['colour@13:1', 'balloon@7:10', 'image.checksum@11:13', 'image.url@9:8', 'machine@2:10'].sort(),
    );
    expect(r.diagnostics[0]?.message).toMatch(/^VM template "opnsense": /);
  });
});
