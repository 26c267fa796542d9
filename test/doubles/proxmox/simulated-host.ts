import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import type { VmImage } from '../../../src/core/desired';
import { startProxmoxDouble, type ProxmoxDouble, type ProxmoxDoubleOptions } from './server';

/**
 * The simulated host used by `dualwan demo` and the component tests: the Proxmox double as a
 * user would have prepared it by following docs/proxmox-token.md (the token may create
 * mappings), serving the OPNsense image the playbook names with the checksum the playbook pins —
 * as the real download mirror would.
 */
export async function startSimulatedHost(opts: { image?: VmImage } & ProxmoxDoubleOptions = {}): Promise<ProxmoxDouble> {
  const { image, ...rest } = opts;
  const remoteFiles = { ...(rest.inventory?.remoteFiles ?? {}) };
  if (image && !remoteFiles[image.url]) {
    // nano image: ~0.5 GB compressed, ~3.3 GB unpacked
    remoteFiles[image.url] = { size: 520_000_000, decompressedSize: 3_300_000_000, [image.checksumAlgorithm]: image.checksum };
  }
  const d = await startProxmoxDouble({ taskDurationMs: 20, ...rest, inventory: { ...rest.inventory, remoteFiles } });
  d.grant(d.tokenId, '/mapping/pci', ['Mapping.Modify', 'Mapping.Use']);
  d.grant(d.tokenId, '/mapping/usb', ['Mapping.Modify', 'Mapping.Use']);
  return d;
}

export function packageRoot(start = __dirname): string {
  let dir = start;
  for (let i = 0; i < 12; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'playbooks'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`no package root above ${start}`);
}

/** Copies a playbook into `dir` as dualwan.yaml, pointed at the double; the comments stay. */
export function writePlaybookFor(double: Pick<ProxmoxDouble, 'port'>, dir: string, playbook = 'hotspot-failover.yaml', edit?: (doc: ReturnType<typeof parseDocument>) => void): string {
  const doc = parseDocument(fs.readFileSync(path.join(packageRoot(), 'playbooks', playbook), 'utf8'));
  doc.setIn(['proxmox', 'host'], '127.0.0.1');
  doc.setIn(['proxmox', 'port'], double.port);
  // Never let a test or the demo reach for the playbook's LAN address: OPNsense is on loopback
  // (a closed port unless `edit` points it at a simulated router).
  doc.setIn(['opnsense', 'host'], '127.0.0.1');
  doc.setIn(['opnsense', 'port'], 1);
  edit?.(doc);
  const file = path.join(dir, 'dualwan.yaml');
  fs.writeFileSync(file, doc.toString());
  return file;
}
