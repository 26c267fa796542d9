/**
 * dualwan.yaml never holds a secret (PRODUCT.md, "Configuration and secrets"): it is meant to be
 * shown, diffed and committed. Anything that looks like one is refused with the place to put it.
 */
import type { Diagnostic } from '../core/diagnostics';
import type { CredentialName } from '../secrets/credentials';
import { pathToString, type Path, type YamlSource } from './source';

/** Key names that hold secrets. `tokenId` (the public half of a Proxmox token) is allowed. */
const SECRET_KEY = /(pass(?:word|wd|phrase)|secret|token|api[-_]?key|private[-_]?key|credential|^key$|^psk$)/i;
const ALLOWED_KEYS = new Set(['tokenId']);

/** Values that are secrets whatever their key: a Proxmox token with its secret, PEM key material. */
function secretValue(key: string, value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (key === 'tokenId' && value.includes('=')) return 'the token secret appended to the token id (after "=")';
  if (/^PVEAPIToken=/i.test(value)) return 'a Proxmox API token header';
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value)) return 'a private key';
  return undefined;
}

/** The credential a misplaced secret most likely is, from where it was written. */
function credentialFor(path: Path, key: string): CredentialName | undefined {
  const section = String(path[0] ?? '');
  if (section === 'proxmox') return 'DUALWAN_PROXMOX_TOKEN_SECRET';
  if (section === 'opnsense') return /secret/i.test(key) ? 'DUALWAN_OPNSENSE_API_SECRET' : 'DUALWAN_OPNSENSE_API_KEY';
  if (section === 'linux' && /key/i.test(key)) return 'DUALWAN_SSH_PRIVATE_KEY_FILE';
  return undefined;
}

function remedy(path: Path, key: string): string {
  const name = credentialFor(path, key);
  return (
    'Delete it from this file, which is meant to be shown and committed. Secrets come from the environment' +
    `${name ? ` (here ${name})` : ''} or from the credentials file, mode 0600 ` +
    '(~/.config/dualwan/credentials, or the file $DUALWAN_CREDENTIALS names); dualwan.yaml only names things, such as proxmox.tokenId.'
  );
}

export interface SecretFinding {
  readonly diagnostics: Diagnostic[];
  /** Paths ("proxmox.tokenSecret") reported here, so the schema does not report them again. */
  readonly paths: Set<string>;
}

export function findSecrets(source: YamlSource): SecretFinding {
  const diagnostics: Diagnostic[] = [];
  const paths = new Set<string>();
  const report = (path: Path, message: string, atKey: boolean): void => {
    paths.add(pathToString(path));
    diagnostics.push({
      severity: 'error',
      code: 'CONFIG_SECRET_IN_FILE',
      message,
      remedy: remedy(path, String(path[path.length - 1] ?? '')),
      location: source.locate(path, { key: atKey }),
      path: pathToString(path),
    });
  };
  for (const { path, key, value } of source.keys()) {
    if (!ALLOWED_KEYS.has(key) && SECRET_KEY.test(key)) {
      report(path, `"${key}" looks like a secret, and dualwan.yaml must not hold secrets.`, true);
      continue;
    }
    const what = secretValue(key, value);
    if (what) report(path, `${pathToString(path)} holds ${what}, and dualwan.yaml must not hold secrets.`, false);
  }
  return { diagnostics, paths };
}
