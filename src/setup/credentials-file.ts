import * as fs from 'node:fs';
import * as path from 'node:path';
import { CredentialsError } from '../core/errors';
import { parseCredentialsFile, type CredentialName } from '../secrets/credentials';
import { registerSecret } from '../secrets/redact';

/**
 * Puts one NAME=value line in the credentials file (mode 0600, the file `loadCredentials` reads),
 * replacing an earlier line of that name and keeping every other line. Refuses a file others can
 * read. Written atomically, so a crash never leaves half a file.
 */
export function storeCredential(file: string, name: CredentialName, value: string): void {
  registerSecret(value);
  if (/[\r\n]/.test(value)) throw new CredentialsError(`The value for ${name} has a line break.`, 'Paste the secret on one line.');
  let lines: string[];
  if (fs.existsSync(file)) {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new CredentialsError(`${file} is not a regular file.`, 'Point DUALWAN_CREDENTIALS or --credentials at a file of NAME=value lines.');
    if ((st.mode & 0o077) !== 0) throw new CredentialsError(`${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; refusing to add a secret to it.`, `Run: chmod 600 ${file}`);
    const text = fs.readFileSync(file, 'utf8');
    parseCredentialsFile(text, file); // refuse a file that could not be read back
    const re = new RegExp(`^\\s*${name}\\s*=`);
    lines = text.split(/\r?\n/).filter((l) => !re.test(l));
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    lines = ['# dualwan credentials (mode 0600). Written by dualwan; edit with care.'];
  }
  lines.push(`${name}=${value}`, '');
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, lines.join('\n'), { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}
