import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCredentials } from '../../../src/secrets/credentials';
import { CredentialsError } from '../../../src/core/errors';
import { redact } from '../../../src/secrets/redact';

describe('credentials', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-cred-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses a credentials file readable by others, naming the file and the fix', () => {
    const f = path.join(dir, 'credentials');
    fs.writeFileSync(f, 'DUALWAN_PROXMOX_TOKEN_SECRET=abc-secret-1\n', { mode: 0o644 });
    fs.chmodSync(f, 0o644);
    expect(() => loadCredentials({ env: {}, file: f })).toThrow(CredentialsError);
    expect(() => loadCredentials({ env: {}, file: f })).toThrow(/mode 0644.*owner only \(0600\)/);
  });

  it('reads a 0600 file, lets the environment win, and redacts the values', () => {
    const f = path.join(dir, 'credentials');
    fs.writeFileSync(f, '# comment\nDUALWAN_PROXMOX_TOKEN_SECRET="from-file-7f3a"\nDUALWAN_OPNSENSE_API_KEY=key-from-file-99\n', { mode: 0o600 });
    const c = loadCredentials({ env: { DUALWAN_OPNSENSE_API_KEY: 'key-from-env-42' }, file: f });
    expect(c.get('DUALWAN_PROXMOX_TOKEN_SECRET')).toBe('from-file-7f3a');
    expect(c.get('DUALWAN_OPNSENSE_API_KEY')).toBe('key-from-env-42');
    expect(c.origin('DUALWAN_OPNSENSE_API_KEY')).toBe('environment variable DUALWAN_OPNSENSE_API_KEY');
    expect(redact('token from-file-7f3a and key-from-env-42')).toBe('token *** and ***');
  });

  it('names the missing secret and where to put it, without any value', () => {
    const c = loadCredentials({ env: {}, file: path.join(dir, 'absent') });
    expect(() => c.require('DUALWAN_PROXMOX_TOKEN_SECRET', 'The Proxmox token')).toThrow(/DUALWAN_PROXMOX_TOKEN_SECRET.*neither in the environment nor in/);
  });

  it('rejects unknown entries with file:line', () => {
    const f = path.join(dir, 'credentials');
    fs.writeFileSync(f, 'DUALWAN_PROXMOX_TOKEN_SECRET=x1234\nPASSWORD=hunter2\n', { mode: 0o600 });
    expect(() => loadCredentials({ env: {}, file: f })).toThrow(/credentials:2:1: unknown entry 'PASSWORD'/);
  });

  it('redacts token headers even when not registered', () => {
    expect(redact('Authorization: PVEAPIToken=a@pve!b=12345678-1234-1234-1234-1234567890ab')).toBe('Authorization: PVEAPIToken=a@pve!b=***');
  });
});
