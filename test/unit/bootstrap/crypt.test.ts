import { spawnSync } from 'node:child_process';
import { randomSalt, sha512Crypt, verifySha512Crypt } from '../../../src/bootstrap/crypt';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

describe('sha512Crypt ($6$)', () => {
  it('matches the test vectors of the SHA-crypt specification', () => {
    expect(sha512Crypt('Hello world!', { salt: 'saltstring' })).toBe(
      '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
    );
    expect(sha512Crypt('Hello world!', { salt: 'saltstringsaltstring', rounds: 10000 })).toBe(
      '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.',
    );
  });

  (hasOpenssl ? it : it.skip)('agrees with `openssl passwd -6` for long, short and non-ASCII passwords', () => {
    for (const pw of ['opnsense', 'x', 'pässwörd ✓', 'a'.repeat(200), 'secret with spaces and | pipes']) {
      const salt = randomSalt();
      const ref = spawnSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: `${pw}\n`, encoding: 'utf8' }).stdout.trim();
      expect(sha512Crypt(pw, { salt })).toBe(ref);
    }
  });

  it('verifies its own hashes and refuses other passwords', () => {
    const h = sha512Crypt('correct horse');
    expect(h).toMatch(/^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    expect(verifySha512Crypt('correct horse', h)).toBe(true);
    expect(verifySha512Crypt('correct horsf', h)).toBe(false);
    expect(verifySha512Crypt('x', 'not a hash')).toBe(false);
  });

  it('never reuses a salt by chance', () => {
    const salts = new Set(Array.from({ length: 200 }, () => randomSalt()));
    expect(salts.size).toBe(200);
  });
});
