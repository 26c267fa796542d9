import * as fs from 'node:fs';
import * as path from 'node:path';
import { CredentialsError } from '../core/errors';
import { parseCredentialsFile } from '../secrets/credentials';
import { registerSecret } from '../secrets/redact';

/**
 * Keeps the API key the bootstrap created in the credentials file (mode 0600, the one
 * `loadCredentials` reads), replacing earlier DUALWAN_OPNSENSE_API_KEY/SECRET lines and keeping
 * every other line and comment. Written atomically (temporary file, then rename) so a crash never
 * leaves half a file. The secret exists nowhere else: OPNsense stores only its hash.
 */
export function storeOpnsenseApiKey(file: string, apiKey: string, apiSecret: string): void {
  registerSecret(apiKey);
  registerSecret(apiSecret);
  let lines: string[] = [];
  if (fs.existsSync(file)) {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new CredentialsError(`${file} is not a regular file.`, 'Point DUALWAN_CREDENTIALS at a file of NAME=value lines.');
    if ((st.mode & 0o077) !== 0) throw new CredentialsError(`${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; refusing to add a secret to it.`, `Run: chmod 600 ${file}`);
    const text = fs.readFileSync(file, 'utf8');
    parseCredentialsFile(text, file); // refuse a file we would not be able to read back
    lines = text.split(/\r?\n/).filter((l) => !/^\s*DUALWAN_OPNSENSE_API_(KEY|SECRET)\s*=/.test(l));
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    lines = ['# dualwan credentials (mode 0600). Written by dualwan; edit with care.'];
  }
  lines.push(`DUALWAN_OPNSENSE_API_KEY=${apiKey}`, `DUALWAN_OPNSENSE_API_SECRET=${apiSecret}`, '');
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, lines.join('\n'), { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}
