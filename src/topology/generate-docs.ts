/**
 * Writes docs/topology.md: the topology picture of every shipped playbook, as text and as Mermaid,
 * drawn by src/topology/render.ts from the playbook itself. `npm run schema` runs it (through
 * src/config/generate-docs.ts); on its own:
 *   npm run build && node dist/src/topology/generate-docs.js
 * A test fails while the committed file differs from what this would write.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfigFile } from '../config/load';
import { findPackageRoot } from '../config/templates';
import { renderTopology, renderTopologyMermaid } from './render';

export const TOPOLOGY_DOCS_FILE = 'docs/topology.md';

/** The shipped playbooks, in name order. */
export function playbookFiles(root: string = findPackageRoot()): string[] {
  const dir = path.join(root, 'playbooks');
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => path.join(dir, f));
}

/** The first comment paragraph of a playbook (after the schema line): what it is for. */
function purpose(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  for (const l of lines.slice(1)) {
    if (!l.startsWith('#')) break;
    const body = l.replace(/^#\s?/, '');
    if (!body.trim()) {
      if (out.length) break;
      continue;
    }
    out.push(body.trim());
  }
  return out.join(' ');
}

export function renderTopologyDocs(root: string = findPackageRoot()): string {
  const out: string[] = [
    '# Topology pictures',
    '',
    '<!-- Generated from playbooks/*.yaml by src/topology/generate-docs.ts; do not edit by hand.',
    '     Regenerate with: npm run build && npm run schema -->',
    '',
    '`dualwan topology` draws what a `dualwan.yaml` describes, from the file alone (no network):',
    'what is at the other end of each WAN, the device each WAN gets on the router and how it is',
    'attached, its addressing, monitor IPs, probe interval, DNS servers, tier and weight; the router',
    '(the OPNsense VM on its Proxmox node, or the Linux router) with its gateway group or default',
    'route and the failover policy; the LAN with its DHCP range; and the access point.',
    '',
    '```sh',
    'dualwan topology -c dualwan.yaml            # the text picture below',
    'dualwan topology -c dualwan.yaml --mermaid  # the same as a Mermaid flowchart',
    '```',
    '',
    'Device names are the ones the router will show: passed-through Intel I225/I226 NICs are',
    '`igc0`, `igc1`… in passthrough order, virtio NICs `vtnetN`, a tethered phone `ue0`',
    '(see [opnsense.md](opnsense.md)); on the Linux backend, the interface names from the file.',
    'Probe intervals are the ones the monitors will use: on OPNsense whole seconds, a metered WAN',
    'probed as rarely as its monthly budget needs; on Linux the monitor of',
    '[ADR 0005](adr/0005-linux-health-monitor.md).',
    '',
    'The pictures of the shipped playbooks follow.',
    '',
  ];
  for (const file of playbookFiles(root)) {
    const name = path.basename(file);
    const text = fs.readFileSync(file, 'utf8');
    const { state, diagnostics } = loadConfigFile(file);
    if (!state) throw new Error(`${name} does not load: ${diagnostics.map((d) => d.message).join('; ')}`);
    out.push(`## ${name}`, '', purpose(text), '', '```text', renderTopology(state).trimEnd(), '```', '', '```mermaid', renderTopologyMermaid(state).trimEnd(), '```', '');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

export function writeTopologyDocs(root: string = findPackageRoot()): string {
  const file = path.join(root, TOPOLOGY_DOCS_FILE);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, renderTopologyDocs(root));
  return file;
}

if (require.main === module) writeTopologyDocs();
