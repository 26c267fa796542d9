import type { Diagnostic } from '../../../src/core/diagnostics';
import { loadConfigText, type LoadResult } from '../../../src/config/load';

export const FILE = 'dualwan.yaml';

/** A minimal valid opnsense-vm config; tests replace lines in it to seed one fault. */
export const VM_BASE = `version: 1
backend: opnsense-vm
proxmox:
  host: 192.168.1.10
  tokenId: dualwan@pve!setup
vm:
  vmid: 100
wans:
  - name: isp
    uplink: { type: pci-nic, pci: "0000:02:00.0" }
  - name: hotspot
    uplink: { type: usb-tether, vendorId: "18d1", productId: "4ee3" }
    tier: 2
    metered: true
lan:
  uplink: { type: bridge, bridge: vmbr0 }
policy:
  mode: failover
`;

/** A minimal valid linux config. */
export const LINUX_BASE = `version: 1
backend: linux
linux:
  host: 192.168.10.1
wans:
  - name: line1
    uplink: { type: interface, interface: eth1 }
    monitorIps: [1.1.1.1, 8.8.4.4]
    weight: 2
  - name: line2
    uplink: { type: interface, interface: eth2 }
    monitorIps: [9.9.9.9, 208.67.222.222]
lan:
  uplink: { type: interface, interface: eth0 }
policy:
  mode: loadbalance
`;

export function load(text: string): LoadResult {
  return loadConfigText(text, FILE);
}

/** Replace exactly one occurrence of `from`; fails loudly when the fixture drifted. */
export function edit(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`fixture edit: "${from}" must occur exactly once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/**
 * The 1-based line and column where `needle` starts in `text` (its `occurrence`-th appearance).
 * Used to state the expected position of a diagnostic without counting by hand.
 */
export function pos(text: string, needle: string, occurrence = 1): { file: string; line: number; column: number } {
  let at = -1;
  for (let i = 0; i < occurrence; i += 1) {
    at = text.indexOf(needle, at + 1);
    if (at < 0) throw new Error(`"${needle}" (occurrence ${occurrence}) not in fixture`);
  }
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  const column = at - before.lastIndexOf('\n');
  return { file: FILE, line, column };
}

export function errors(result: LoadResult): Diagnostic[] {
  return result.diagnostics.filter((d) => d.severity === 'error');
}

/** The single diagnostic with this code; fails when there is none or more than one. */
export function only(result: LoadResult, code: string): Diagnostic {
  const found = result.diagnostics.filter((d) => d.code === code);
  if (found.length !== 1) {
    throw new Error(`expected one ${code}, got ${found.length}: ${JSON.stringify(result.diagnostics, null, 2)}`);
  }
  return found[0] as Diagnostic;
}
