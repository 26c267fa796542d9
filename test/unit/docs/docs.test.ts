import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfigText } from '../../../src/config/load';
import { findPackageRoot } from '../../../src/config/templates';
import { RULES } from '../../../src/config/rules';
import { requiredPrivileges } from '../../../src/providers/proxmox/privileges';
import { VM_BASE } from '../config/helpers';

const root = findPackageRoot();
const read = (f: string) => fs.readFileSync(path.join(root, f), 'utf8');

/** A configuration that needs every privilege the code can ask for: NIC, phone, bridges, cutover. */
const EVERYTHING = VM_BASE.replace('  tokenId: dualwan@pve!setup\n', '  tokenId: dualwan@pve!setup\n  cutover: { hostAddress: 10.10.99.2/24, gateway: 10.10.99.1 }\n').replace(
  '  vmid: 100\n',
  '  vmid: 100\n  bridgeNic: { bridge: vmbr1 }\n',
);

describe('docs/proxmox-token.md', () => {
  const doc = read('docs/proxmox-token.md');
  const r = loadConfigText(EVERYTHING, 'dualwan.yaml');
  if (!r.state) throw new Error(r.diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
  const reqs = requiredPrivileges(r.state);
  const privileges = [...new Set(reqs.flatMap((q) => q.anyOf))];

  it('the configuration used here needs the privileges of every feature', () => {
    expect(privileges).toEqual(expect.arrayContaining(['Mapping.Use', 'SDN.Use', 'VM.Config.Network', 'VM.Console', 'Sys.Modify']));
  });

  it('the role created by its pveum command holds, for each requirement, one privilege that satisfies it', () => {
    const cmd = /pveum role add DualwanRouter -privs "([^"]+)"/.exec(doc.replace(/\\\n\s*/g, ' '));
    expect(cmd).not.toBeNull();
    const granted = new Set(cmd![1]!.split(/\s+/).filter(Boolean));
    const unmet = reqs.filter((q) => !q.anyOf.some((p) => granted.has(p))).map((q) => `${q.anyOf.join('|')} on ${q.path}`);
    expect(unmet).toEqual([]);
  });

  it('its table names every privilege the code can require', () => {
    const table = doc.slice(doc.indexOf('| privilege | on | for |'));
    const missing = privileges.filter((p) => !table.includes(p));
    expect(missing).toEqual([]);
  });
});

describe('docs written by hand', () => {
  const files = ['docs/getting-started.md', 'docs/troubleshooting.md', 'docs/proxmox-token.md'];

  it.each(files)('%s: every relative link points at a file that exists', (file) => {
    const text = read(file);
    const links = [...text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
    expect(links.length).toBeGreaterThan(0);
    const broken = links.filter((l) => !fs.existsSync(path.resolve(path.dirname(path.join(root, file)), l)));
    expect(broken).toEqual([]);
  });

  it('troubleshooting.md names only rule codes, rule names and doctor checks that exist', () => {
    const text = read('docs/troubleshooting.md');
    const codes = new Set(RULES.flatMap((r) => r.codes));
    const names = new Set(RULES.map((r) => r.name));
    const mentionedCodes = [...new Set([...text.matchAll(/`(RULE_[A-Z_]+)`/g)].map((m) => m[1]!))];
    expect(mentionedCodes.length).toBeGreaterThan(5);
    expect(mentionedCodes.filter((c) => !codes.has(c))).toEqual([]);
    const mentionedRules = [...new Set([...text.matchAll(/rule `([a-zA-Z]+)`/g)].map((m) => m[1]!))];
    expect(mentionedRules.length).toBeGreaterThan(5);
    expect(mentionedRules.filter((n) => !names.has(n))).toEqual([]);

    const sources = ['src/providers/proxmox/preflight.ts', ...fs.readdirSync(path.join(root, 'src/doctor')).map((f) => `src/doctor/${f}`)].map(read).join('\n');
    const preflight = [...new Set([...text.matchAll(/`(PREFLIGHT_[A-Z_]+)`/g)].map((m) => m[1]!))];
    expect(preflight.filter((c) => !sources.includes(`'${c}'`))).toEqual([]);
    const checks = [...new Set([...text.matchAll(/`((?:host|router|topology)\.[a-z0-9.-]+)`/g)].map((m) => m[1]!))].filter((c) => !c.includes('<'));
    expect(checks.length).toBeGreaterThan(10);
    // ids built from a template (topology.<access-point check>) are listed in their source by suffix
    const known = (c: string) => sources.includes(`'${c}'`) || (c.startsWith('topology.') && sources.includes(`'${c.slice('topology.'.length)}'`));
    expect(checks.filter((c) => !known(c))).toEqual([]);
  });
});
