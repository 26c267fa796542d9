import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

describe('docs/doctor.md', () => {
  it('lists every check id the doctor can report', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs/doctor.md'), 'utf8');
    const src = fs
      .readdirSync(path.join(ROOT, 'src/doctor'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.readFileSync(path.join(ROOT, 'src/doctor', f), 'utf8'))
      .join('\n');
    const ids = new Set([...src.matchAll(/'((?:config|host|router|topology)\.[a-z0-9.-]+[a-z0-9])'/g)].map((m) => m[1]!));
    // built from the access-point checks' ids and the mapping ids
    for (const id of ['ap-address', 'single-dhcp', 'no-double-nat']) ids.add(`topology.${id}`);
    ids.add('host.mapping.<id>');
    expect(ids.size).toBeGreaterThan(40);
    const missing = [...ids].filter((id) => !doc.includes(`\`${id}\``));
    expect(missing).toEqual([]);
  });
});
