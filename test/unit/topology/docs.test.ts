import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../../src/cli/main';
import { findPackageRoot } from '../../../src/config/templates';
import { playbookFiles, renderTopologyDocs, TOPOLOGY_DOCS_FILE } from '../../../src/topology/generate-docs';
import { renderTopology, renderTopologyMermaid } from '../../../src/topology/render';
import { loadConfigFile } from '../../../src/config/load';

const root = findPackageRoot();

describe('docs/topology.md', () => {
  it('is the current output of the generator (run `npm run build && npm run schema`)', () => {
    const committed = fs.readFileSync(path.join(root, TOPOLOGY_DOCS_FILE), 'utf8');
    expect(committed).toBe(renderTopologyDocs());
  });

  it('has a section with both pictures for every shipped playbook', () => {
    const docs = renderTopologyDocs();
    const files = playbookFiles();
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const f of files) {
      const name = path.basename(f);
      expect(docs).toContain(`## ${name}\n`);
      const state = loadConfigFile(f).state!;
      expect(docs).toContain(renderTopology(state).trimEnd());
      expect(docs).toContain(renderTopologyMermaid(state).trimEnd());
    }
    // what the file says about itself, taken from its header comment
    expect(docs).toContain('Story 2: a Linux box with three NICs routes a home office over two lines');
  });

  it('holds no path of the machine that generated it', () => {
    const docs = renderTopologyDocs();
    expect(docs).not.toContain(root);
    expect(docs).not.toMatch(/\/(home|tmp|root|Users)\//);
  });

  it('is written by the generate-docs step that `npm run schema` runs', () => {
    const source = fs.readFileSync(path.join(root, 'src/config/generate-docs.ts'), 'utf8');
    expect(source).toMatch(/require\('\.\.\/topology\/generate-docs'\).*writeTopologyDocs\(\)/s);
  });
});

describe('dualwan topology', () => {
  let out: string[];
  let err: string[];
  beforeEach(() => {
    out = [];
    err = [];
    jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  });
  afterEach(() => jest.restoreAllMocks());

  const file = path.join(root, 'playbooks/hotspot-failover.yaml');

  it('prints the picture of the file and exits 0', async () => {
    expect(await main(['topology', '-c', file])).toBe(0);
    expect(out.join('')).toBe(renderTopology(loadConfigFile(file).state!));
    expect(err.join('')).toBe('');
  });

  it('--mermaid prints the flowchart', async () => {
    expect(await main(['topology', '--config', file, '--mermaid'])).toBe(0);
    expect(out.join('')).toBe(renderTopologyMermaid(loadConfigFile(file).state!));
  });

  it('a broken file: exit 1, the place and the remedy on stderr, nothing on stdout', async () => {
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'dualwan-topology-'));
    try {
      const bad = path.join(dir, 'dualwan.yaml');
      fs.writeFileSync(bad, fs.readFileSync(file, 'utf8').replace('subnet: 192.168.10.0/24', 'subnet: 192.168.43.0/24'));
      expect(await main(['topology', '-c', bad])).toBe(1);
      expect(out.join('')).toBe('');
      expect(err.join('')).toMatch(/dualwan\.yaml:\d+:\d+: error: lan\.subnet 192\.168\.43\.0\/24 overlaps/);
      expect(err.join('')).toContain('remedy: Change lan.subnet');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
