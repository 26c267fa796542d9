import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CredentialsError } from '../core/errors';
import { registerSecret } from './redact';

/**
 * Secrets come from the environment or from a credentials file readable by its owner only.
 * They are never read from dualwan.yaml (the config schema rejects secret-looking keys).
 */
export const CREDENTIAL_NAMES = [
  'DUALWAN_PROXMOX_TOKEN_SECRET',
  'DUALWAN_OPNSENSE_API_KEY',
  'DUALWAN_OPNSENSE_API_SECRET',
  'DUALWAN_SSH_PRIVATE_KEY_FILE',
] as const;
export type CredentialName = (typeof CREDENTIAL_NAMES)[number];

export interface Credentials {
  get(name: CredentialName): string | undefined;
  require(name: CredentialName, purpose: string): string;
  /** Where each value came from, for messages (never the value). */
  origin(name: CredentialName): string | undefined;
}

export function defaultCredentialsPath(env: NodeJS.ProcessEnv): string {
  if (env.DUALWAN_CREDENTIALS) return env.DUALWAN_CREDENTIALS;
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'dualwan', 'credentials');
}

/** Parses `NAME=value` lines; `#` comments and blank lines are ignored. */
export function parseCredentialsFile(text: string, file: string): Map<string, string> {
  const out = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const name = eq > 0 ? line.slice(0, eq).trim() : '';
    if (!(CREDENTIAL_NAMES as readonly string[]).includes(name)) {
      throw new CredentialsError(
        `${file}:${i + 1}:1: unknown entry ${name ? `'${name}'` : '(no NAME=value)'}`,
        `Use one of ${CREDENTIAL_NAMES.join(', ')}, one per line as NAME=value.`,
      );
    }
    let value = line.slice(eq + 1).trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    out.set(name, value);
  });
  return out;
}

export function loadCredentials(opts: { env?: NodeJS.ProcessEnv; file?: string } = {}): Credentials {
  const env = opts.env ?? process.env;
  const file = opts.file ?? defaultCredentialsPath(env);
  const values = new Map<string, { value: string; origin: string }>();

  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(file);
  } catch {
    stat = undefined;
  }
  if (stat) {
    if (!stat.isFile()) throw new CredentialsError(`${file} is not a regular file.`, 'Point DUALWAN_CREDENTIALS at a file of NAME=value lines.');
    if ((stat.mode & 0o077) !== 0) {
      throw new CredentialsError(
        `${file} has mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')}; a credentials file must be readable by its owner only (0600).`,
        `Run: chmod 600 ${file}`,
      );
    }
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
      throw new CredentialsError(`${file} belongs to another user (uid ${stat.uid}).`, `Own the file yourself: chown $(id -u) ${file}`);
    }
    for (const [k, v] of parseCredentialsFile(fs.readFileSync(file, 'utf8'), file)) values.set(k, { value: v, origin: file });
  }
  for (const name of CREDENTIAL_NAMES) {
    const v = env[name];
    if (v) values.set(name, { value: v, origin: `environment variable ${name}` });
  }
  for (const { value } of values.values()) registerSecret(value);

  return {
    get: (name) => values.get(name)?.value,
    origin: (name) => values.get(name)?.origin,
    require(name, purpose) {
      const v = values.get(name)?.value;
      if (!v) {
        throw new CredentialsError(
          `${purpose} needs ${name}, which is set neither in the environment nor in ${file}.`,
          `Export ${name}=… in your shell, or add the line ${name}=… to ${file} and run chmod 600 ${file}.`,
        );
      }
      return v;
    },
  };
}
