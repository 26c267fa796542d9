/**
 * The seed image read back by independent readers: isoinfo (genisoimage) and xorriso when
 * installed, the Linux kernel's own iso9660 driver through a loop mount when root, and the
 * reader of the Proxmox double (which plays OPNsense's importer). Debian packages for the first
 * two: genisoimage, xorriso.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildIso9660, buildSeedImage, IsoWriteError } from '../../../src/bootstrap/image';
import { IsoVolume } from '../../doubles/proxmox/iso-reader';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const DATE = new Date(Date.UTC(2026, 10, 21, 12, 0, 0));
const CONFIG = `<?xml version="1.0"?>\n<opnsense>\n  <system>\n    <hostname>opnsense</hostname>\n  </system>\n</opnsense>\n`;

let dir: string;
let isoPath: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-iso-'));
  isoPath = path.join(dir, 'seed.iso');
  fs.writeFileSync(isoPath, buildSeedImage(CONFIG, { date: DATE }));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the seed image (ISO 9660 + Rock Ridge)', () => {
  it('is small, sector aligned and the same bytes for the same input', () => {
    const a = buildSeedImage(CONFIG, { date: DATE });
    expect(a.length % 2048).toBe(0);
    expect(a.length).toBeLessThan(64 * 1024);
    expect(a.equals(buildSeedImage(CONFIG, { date: DATE }))).toBe(true);
    expect(a.subarray(16 * 2048 + 1, 16 * 2048 + 6).toString()).toBe('CD001');
  });

  it('reads back with the double\'s reader: /conf/config.xml by its Rock Ridge name, modes, volume id', () => {
    const v = new IsoVolume(fs.readFileSync(isoPath));
    expect(v.rockRidge).toBe(true);
    expect(v.volumeId).toBe('DUALWAN_SEED');
    expect(v.list('').map((e) => [e.name, e.isDir])).toEqual([['conf', true]]);
    expect(v.list('conf')[0]).toMatchObject({ name: 'config.xml', isDir: false, mode: 0o100444 });
    expect(v.read('conf/config.xml')?.toString('utf8')).toBe(CONFIG);
  });

  (has('isoinfo') ? it : it.skip)('reads back with isoinfo: Rock Ridge names and the file content', () => {
    const list = spawnSync('isoinfo', ['-R', '-f', '-i', isoPath], { encoding: 'utf8' });
    expect(list.status).toBe(0);
    expect(list.stdout.split('\n').filter(Boolean)).toEqual(['/conf', '/conf/config.xml']);
    const plain = spawnSync('isoinfo', ['-f', '-i', isoPath], { encoding: 'utf8' });
    expect(plain.stdout.split('\n').filter(Boolean)).toEqual(['/CONF', '/CONF/CONFIG.XML;1']);
    const x = spawnSync('isoinfo', ['-R', '-x', '/conf/config.xml', '-i', isoPath], { encoding: 'utf8' });
    expect(x.stdout).toBe(CONFIG);
    const pvd = spawnSync('isoinfo', ['-d', '-i', isoPath], { encoding: 'utf8' }).stdout;
    expect(pvd).toMatch(/Volume id: DUALWAN_SEED/);
    expect(pvd).toMatch(/Rock Ridge signatures version 1 found/);
  });

  (has('xorriso') ? it : it.skip)('passes xorriso\'s checks and lists the same tree', () => {
    const r = spawnSync('xorriso', ['-abort_on', 'FAILURE', '-return_with', 'WARNING', '32', '-indev', isoPath, '-find', '/', '-exec', 'lsdl', '--'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/dr-xr-xr-x .* '\/conf'/);
    expect(r.stdout).toMatch(/-r--r--r-- .* \d+ .* '\/conf\/config.xml'/);
  });

  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const kernelIso = (() => {
    try {
      return /\tiso9660$/m.test(fs.readFileSync('/proc/filesystems', 'utf8'));
    } catch {
      return false;
    }
  })();
  // Root and a kernel with iso9660 loaded (not every sandbox has the module).
  (isRoot && kernelIso ? it : it.skip)('mounts with the Linux iso9660 driver (loop device) and shows conf/config.xml', () => {
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'iso9660', '-o', 'loop,ro', isoPath, mnt], { encoding: 'utf8' });
    expect(m.stderr).toBe('');
    try {
      expect(fs.readdirSync(mnt)).toEqual(['conf']);
      expect(fs.readFileSync(path.join(mnt, 'conf', 'config.xml'), 'utf8')).toBe(CONFIG);
      expect(fs.statSync(path.join(mnt, 'conf', 'config.xml')).mode & 0o777).toBe(0o444);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  it('holds several files and directories, and a file larger than one sector', () => {
    const big = Buffer.alloc(5000, 0x61);
    const img = buildIso9660(
      [
        { path: 'conf/config.xml', data: Buffer.from('x') },
        { path: 'conf/sshd/keys.txt', data: big },
        { path: 'readme.txt', data: Buffer.alloc(0) },
      ],
      { date: DATE },
    );
    const v = new IsoVolume(img);
    expect(v.list('').map((e) => e.name)).toEqual(['conf', 'readme.txt']);
    expect(v.read('conf/sshd/keys.txt')?.equals(big)).toBe(true);
    expect(v.read('readme.txt')?.length).toBe(0);
  });

  it('refuses names that do not fit ISO level 1 and duplicate names', () => {
    expect(() => buildIso9660([{ path: 'averyverylongname/x', data: Buffer.from('') }])).toThrow(IsoWriteError);
    expect(() => buildIso9660([{ path: 'a.b', data: Buffer.from('') }, { path: 'A.B', data: Buffer.from('') }])).toThrow(/ISO name/);
  });
});
