// Checks a secret against a `$6$` (SHA-512 crypt) hash with `openssl passwd -6`, not with the
// product's own crypt code, so a bug there cannot hide behind the same bug here. Results are kept
// per (secret, hash), so a client presenting the same secret on every request costs one process.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';

const CRYPT6 = /^\$6\$([./0-9A-Za-z]{0,16})\$[./0-9A-Za-z]{86}$/;
const cache = new Map<string, boolean>();

export function cryptMatches(secret: string, hash: string): boolean {
  // openssl passwd knows no `rounds=` prefix; the product never writes one and neither does OPNsense.
  const salt = CRYPT6.exec(hash)?.[1];
  if (salt === undefined) return false;
  const id = createHash('sha256').update(secret).update('\0').update(hash).digest('hex');
  const hit = cache.get(id);
  if (hit !== undefined) return hit;
  const r = spawnSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: `${secret}\n`, encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) throw new Error(`openssl passwd -6 failed: ${r.error?.message ?? r.stderr}`);
  const ok = r.stdout.trim() === hash;
  if (cache.size > 1_000) cache.clear();
  cache.set(id, ok);
  return ok;
}

/** The API keys of a config.xml, as OPNsense's ApiKeyField stores them: `key|crypt(secret)` lines. */
export function apiKeysOf(configXml: string): { key: string; secretHash: string }[] {
  const out: { key: string; secretHash: string }[] = [];
  for (const m of configXml.matchAll(/<apikeys>([^<]*)<\/apikeys>/g)) {
    for (const line of m[1]!.split(/\r?\n/)) {
      const [key, secretHash] = line.trim().split('|');
      if (key && secretHash) out.push({ key, secretHash });
    }
  }
  return out;
}
