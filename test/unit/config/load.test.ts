import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../../../src/core/errors';
import { assertValidConfig, loadConfigFile, loadConfigText } from '../../../src/config/load';
import { FILE, VM_BASE, load } from './helpers';

describe('loadConfigFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-load-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a file and keeps its path in the state and the positions', () => {
    const file = path.join(dir, 'dualwan.yaml');
    fs.writeFileSync(file, VM_BASE.replace('tier: 2', 'tier: two'));
    const result = loadConfigFile(file);
    expect(result.diagnostics[0]?.location).toEqual({ file, line: 13, column: 11 });
    fs.writeFileSync(file, VM_BASE);
    expect(loadConfigFile(file).state?.file).toBe(file);
  });

  it('turns a missing file into a diagnostic naming `dualwan setup`', () => {
    const result = loadConfigFile(path.join(dir, 'nope.yaml'));
    expect(result.state).toBeUndefined();
    expect(result.diagnostics).toEqual([
      expect.objectContaining({ severity: 'error', code: 'CONFIG_FILE_NOT_FOUND', remedy: expect.stringContaining('dualwan setup') }),
    ]);
  });

  it('turns a directory into a diagnostic', () => {
    expect(loadConfigFile(dir).diagnostics[0]?.code).toBe('CONFIG_FILE_UNREADABLE');
  });

  it('reads templates from the directory it is given', () => {
    const templates = path.join(dir, 'templates');
    fs.mkdirSync(templates);
    const result = loadConfigText(VM_BASE, FILE, { templatesDir: templates });
    expect(result.diagnostics.map((d) => d.code)).toEqual(['RULE_VM_TEMPLATE_MISSING']);
    expect(result.diagnostics[0]?.remedy).toMatch(/missing or empty/);
  });
});

describe('assertValidConfig', () => {
  it('returns the state of a valid file', () => {
    expect(assertValidConfig(load(VM_BASE), FILE).backend).toBe('opnsense-vm');
  });

  it('throws a ConfigError carrying the diagnostics', () => {
    const result = load(VM_BASE.replace('mode: failover', 'mode: failsafe'));
    let thrown: unknown;
    try {
      assertValidConfig(result, FILE);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const err = thrown as ConfigError;
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.source).toBe('user');
    expect(err.diagnostics).toEqual(result.diagnostics);
    expect(err.message).toContain('dualwan.yaml:18:9: error: policy.mode');
  });

  it('does not throw for warnings alone', () => {
    const text = `${VM_BASE}linux: { host: 192.168.10.1 }\n`;
    const result = load(text);
    expect(result.diagnostics.map((d) => d.severity)).toEqual(['warning']);
    expect(() => assertValidConfig(result, FILE)).not.toThrow();
  });
});

describe('diagnostics', () => {
  it('come sorted by position and all carry code, message, remedy, path and location', () => {
    const text = VM_BASE.replace('mode: failover', 'mode: x').replace('tier: 2', 'tier: 9').replace('vmid: 100', 'vmid: 5');
    const ds = load(text).diagnostics;
    expect(ds.map((d) => d.location?.line)).toEqual([7, 13, 18]);
    for (const d of ds) {
      expect(d).toEqual(
        expect.objectContaining({ code: expect.stringMatching(/^CONFIG_/), message: expect.any(String), remedy: expect.any(String), path: expect.any(String) }),
      );
    }
  });
});
