// docs/verify.md stays true to the code: its links, notice codes, steps and expected figures.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MONITOR_PROFILES } from '../../../src/config/monitor-profiles';
import { dpingerSettings } from '../../../src/providers/opnsense/layout';
import { DEFAULT_TOLERANCE, expectedFigures } from '../../../src/verify/expectations';
import { opnsenseScenario } from '../../../src/verify/scenario';

const root = path.resolve(__dirname, '../../..');
const doc = fs.readFileSync(path.join(root, 'docs/verify.md'), 'utf8');
const sources = ['src/verify/opnsense.ts', 'src/providers/opnsense/drill.ts', 'src/cli/commands/verify-opnsense.ts'].map((f) => fs.readFileSync(path.join(root, f), 'utf8')).join('\n');

it('every relative link points at a file that exists', () => {
  const links = [...doc.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
  expect(links.length).toBeGreaterThan(1);
  expect(links.filter((l) => !fs.existsSync(path.join(root, 'docs', l)))).toEqual([]);
});

it('names only notice codes the code emits', () => {
  const codes = [...new Set([...doc.matchAll(/`((?:VERIFY|OPNSENSE)_[A-Z_]+)`/g)].map((m) => m[1]!))];
  expect(codes.length).toBeGreaterThanOrEqual(3);
  expect(codes.filter((c) => !sources.includes(`'${c}'`))).toEqual([]);
});

it('lists the OPNsense steps in the scenario’s order, and the tolerance in use', () => {
  const scenario = opnsenseScenario({ method: 'block', wan: 'isp', gateway: 'G', backups: [], expected: expectedFigures('force-down', dpingerSettings(MONITOR_PROFILES.fast, { metered: false, probeBudgetMBPerMonth: 0 }), 'down'), tolerance: DEFAULT_TOLERANCE, holdMs: 0 });
  const table = doc.slice(doc.indexOf('### The steps'), doc.indexOf('### The report'));
  const listed = [...table.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
  expect(listed).toEqual(scenario.map((s) => s.id));
  for (const s of scenario.filter((x) => x.stopOnFailure)) expect(table).toMatch(new RegExp(`^\\| \`${s.id}\` \\|.*\\| stops`, 'm'));
  expect(doc).toContain(`${DEFAULT_TOLERANCE.factor} × and ${DEFAULT_TOLERANCE.slackS} s`);
});

it('gives the expected figures the code works out for each profile', () => {
  for (const p of Object.values(MONITOR_PROFILES)) {
    const e = expectedFigures('block', dpingerSettings(p, { metered: false, probeBudgetMBPerMonth: 0 }), 'down');
    expect(doc).toMatch(new RegExp(`^\\| \`${p.name}\` \\([^)]*\\) \\| ${e.detectionS} s \\| ${e.failoverS} s \\| ${e.failbackS} s \\|$`, 'm'));
  }
});
