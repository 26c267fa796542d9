import { createHash, randomBytes } from 'node:crypto';

/**
 * SHA-512 crypt (`$6$`), the format OPNsense itself uses for API key secrets
 * (`crypt($secret, '$6$')` in `Auth/FieldTypes/ApiKeyField.php`) and that PHP's `password_verify`
 * and FreeBSD's `crypt(3)` both accept. Written from Ulrich Drepper's public specification
 * ("Unix crypt using SHA-256 and SHA-512"); checked against `openssl passwd -6` in the tests.
 * Only the hash leaves this process: the seeded config.xml never holds a password or a secret.
 */
const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ROUNDS_DEFAULT = 5000;

/** The spec's byte order for the 64-byte digest: 21 groups of three, then the last byte alone. */
const BYTE_GROUPS: readonly (readonly [number, number, number])[] = Array.from({ length: 21 }, (_, i) => {
  const x = (i * 22) % 63;
  return [x, (x + 21) % 63, (x + 42) % 63] as const;
});

function b64From24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let s = '';
  for (let i = 0; i < n; i++) {
    s += ITOA64[w & 0x3f];
    w >>>= 6;
  }
  return s;
}

function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

export interface Sha512CryptOptions {
  /** Up to 16 characters of `[./0-9A-Za-z]`; random when omitted. */
  readonly salt?: string;
  readonly rounds?: number;
}

export function randomSalt(length = 16, random: (n: number) => Buffer = randomBytes): string {
  const bytes = random(length);
  let s = '';
  for (let i = 0; i < length; i++) s += ITOA64[bytes[i]! & 0x3f];
  return s;
}

export function sha512Crypt(password: string, opts: Sha512CryptOptions = {}): string {
  const salt = (opts.salt ?? randomSalt()).slice(0, 16);
  if (!/^[./0-9A-Za-z]*$/.test(salt)) throw new Error('sha512Crypt: the salt may only hold [./0-9A-Za-z]');
  const custom = opts.rounds !== undefined;
  const rounds = Math.min(999_999_999, Math.max(1000, opts.rounds ?? ROUNDS_DEFAULT));
  const P = Buffer.from(password, 'utf8');
  const S = Buffer.from(salt, 'latin1');
  const sha = () => createHash('sha512');

  const B = sha().update(P).update(S).update(P).digest();
  const a = sha().update(P).update(S);
  a.update(repeatTo(B, P.length));
  for (let n = P.length; n > 0; n >>>= 1) a.update(n & 1 ? B : P);
  const A = a.digest();

  const dp = sha();
  for (let i = 0; i < P.length; i++) dp.update(P);
  const Pseq = repeatTo(dp.digest(), P.length);
  const ds = sha();
  for (let i = 0; i < 16 + A[0]!; i++) ds.update(S);
  const Sseq = repeatTo(ds.digest(), S.length);

  let C = A;
  for (let i = 0; i < rounds; i++) {
    const c = sha();
    c.update(i & 1 ? Pseq : C);
    if (i % 3) c.update(Sseq);
    if (i % 7) c.update(Pseq);
    c.update(i & 1 ? C : Pseq);
    C = c.digest();
  }

  let out = '';
  for (const [x, y, z] of BYTE_GROUPS) out += b64From24(C[x]!, C[y]!, C[z]!, 4);
  out += b64From24(0, 0, C[63]!, 2);
  return `$6$${custom ? `rounds=${rounds}$` : ''}${salt}$${out}`;
}

/** Checks a password against a `$6$` hash (for tests and doubles; the product only creates hashes). */
export function verifySha512Crypt(password: string, hash: string): boolean {
  const m = /^\$6\$(?:rounds=(\d+)\$)?([^$]{0,16})\$[./0-9A-Za-z]{86}$/.exec(hash);
  if (!m) return false;
  const again = sha512Crypt(password, { salt: m[2]!, ...(m[1] ? { rounds: Number(m[1]) } : {}) });
  return again === hash;
}

/** A fingerprint-sized look at a hash, e.g. for logs: never the hash itself. */
export function hashTag(hash: string): string {
  return createHash('sha256').update(hash).digest('hex').slice(0, 8);
}
