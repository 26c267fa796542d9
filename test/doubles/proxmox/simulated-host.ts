import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import type { VmImage } from '../../../src/core/desired';
import { pointAtImage, startImageServer, type LocalImage } from './image-server';
import { startProxmoxDouble, type ProxmoxDouble, type ProxmoxDoubleOptions } from './server';

/** The simulated host plus the loopback stand-in of the image mirror that its playbooks point at. */
export type SimulatedHost = ProxmoxDouble & { readonly localImage: LocalImage };

/**
 * The simulated host used by `dualwan demo`, the bench and the component tests: the Proxmox double
 * as a user would have prepared it by following docs/proxmox-token.md (the token may create
 * mappings), and a loopback HTTP server in place of the release mirror, serving a small fake nano
 * image (image-server.ts) named like `image` (default: the OPNsense template's). `writePlaybookFor`
 * points vm.image at it, so dualwan downloads, checks, unpacks and uploads that file, and the
 * simulated guest boots from the VM disk imported from it. `close()` stops both.
 */
export async function startSimulatedHost(opts: { image?: VmImage } & ProxmoxDoubleOptions = {}): Promise<SimulatedHost> {
  const { image, ...rest } = opts;
  const localImage = await startImageServer(image ? { like: image } : {});
  let d: ProxmoxDouble;
  try {
    d = await startProxmoxDouble({ taskDurationMs: 20, ...rest });
  } catch (e) {
    await localImage.close();
    throw e;
  }
  d.grant(d.tokenId, '/mapping/pci', ['Mapping.Modify', 'Mapping.Use']);
  d.grant(d.tokenId, '/mapping/usb', ['Mapping.Modify', 'Mapping.Use']);
  const closeDouble = d.close.bind(d);
  return Object.assign(d, {
    localImage,
    async close() {
      await closeDouble();
      await localImage.close();
    },
  });
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
export function writePlaybookFor(double: Pick<ProxmoxDouble, 'port'> & { readonly localImage?: Pick<LocalImage, 'image'> }, dir: string, playbook = 'hotspot-failover.yaml', edit?: (doc: ReturnType<typeof parseDocument>) => void): string {
  const doc = parseDocument(fs.readFileSync(path.join(packageRoot(), 'playbooks', playbook), 'utf8'));
  doc.setIn(['proxmox', 'host'], '127.0.0.1');
  doc.setIn(['proxmox', 'port'], double.port);
  // Never let a test or the demo reach for the playbook's LAN address: OPNsense is on loopback
  // (a closed port unless `edit` points it at a simulated router).
  doc.setIn(['opnsense', 'host'], '127.0.0.1');
  doc.setIn(['opnsense', 'port'], 1);
  doc.setIn(['opnsense', 'sshPort'], 1);
  // ... nor for the release mirror: the image comes from the host's loopback stand-in
  if (double.localImage) pointAtImage(doc, double.localImage);
  edit?.(doc);
  const file = path.join(dir, 'dualwan.yaml');
  fs.writeFileSync(file, doc.toString());
  return file;
}
