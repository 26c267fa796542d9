import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { storeOpnsenseApiKey } from '../../../src/bootstrap/credentials-store';
import { loadCredentials } from '../../../src/secrets/credentials';
import { redact } from '../../../src/secrets/redact';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-creds-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('storeOpnsenseApiKey', () => {
  it('creates the file 0600 (and its folder 0700) so loadCredentials reads the key back', () => {
    const file = path.join(dir, 'sub', 'credentials');
    storeOpnsenseApiKey(file, 'key+/=1', 'secret-value-123');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const c = loadCredentials({ env: {}, file });
    expect([c.get('DUALWAN_OPNSENSE_API_KEY'), c.get('DUALWAN_OPNSENSE_API_SECRET')]).toEqual(['key+/=1', 'secret-value-123']);
    expect(redact('the secret is secret-value-123')).toBe('the secret is ***');
  });

  it('replaces an earlier key and keeps every other line and comment', () => {
    const file = path.join(dir, 'credentials');
    fs.writeFileSync(file, '# mine\nDUALWAN_PROXMOX_TOKEN_SECRET=abc\nDUALWAN_OPNSENSE_API_KEY=old\nDUALWAN_OPNSENSE_API_SECRET=old\n', { mode: 0o600 });
    storeOpnsenseApiKey(file, 'new-key', 'new-secret');
    expect(fs.readFileSync(file, 'utf8')).toBe('# mine\nDUALWAN_PROXMOX_TOKEN_SECRET=abc\nDUALWAN_OPNSENSE_API_KEY=new-key\nDUALWAN_OPNSENSE_API_SECRET=new-secret\n');
  });

  it('refuses to add a secret to a file others can read', () => {
    const file = path.join(dir, 'credentials');
    fs.writeFileSync(file, '# open\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(() => storeOpnsenseApiKey(file, 'k', 's')).toThrow(/mode 0644; refusing/);
  });
});
