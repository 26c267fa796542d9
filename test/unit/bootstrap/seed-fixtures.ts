// Shared inputs of the seed-config tests: desired states from the shipped playbooks, fixed
// secrets and salts (so the output is reproducible), and the golden file helper.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfigFile, loadConfigText } from '../../../src/config/load';
import type { DesiredState } from '../../../src/core/desired';
import { hashSecrets, type BootstrapSecrets, type SeedCredentials } from '../../../src/bootstrap/seed-config';

export const ROOT = path.resolve(__dirname, '../../..');
export const GOLDEN_DIR = path.join(ROOT, 'test', 'fixtures', 'golden');

export function playbookState(name = 'hotspot-failover.yaml'): DesiredState {
  const r = loadConfigFile(path.join(ROOT, 'playbooks', name));
  if (!r.state) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.state;
}

/** Two I226 NICs passed through (ISP static on igc0, LAN on igc1) and a second line on a bridge. */
export const TWO_NIC_YAML = `version: 1
backend: opnsense-vm
proxmox:
  host: 192.168.1.10
  tokenId: dualwan@pve!setup
vm:
  vmid: 101
  name: edge
wans:
  - name: fibre
    uplink: { type: pci-nic, pci: "0000:02:00.0" }
    addressing: { mode: static, address: 203.0.113.10/29, gateway: 203.0.113.9 }
    monitorIps: [1.1.1.1]
    dnsServers: [1.0.0.1, 8.8.4.4]
  - name: dsl
    uplink: { type: bridge, bridge: vmbr1 }
    monitorIps: [9.9.9.9]
    dnsServers: [149.112.112.112]
    tier: 2
lan:
  uplink: { type: pci-nic, pci: "0000:01:00.0" }
  subnet: 10.20.30.0/24
  dhcp: { enabled: false }
policy:
  mode: failover
`;

export function twoNicState(): DesiredState {
  const r = loadConfigText(TWO_NIC_YAML, 'two-nic.yaml');
  if (!r.state) throw new Error(r.diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
  return r.state;
}

/**
 * TWO_NIC_YAML with the guarded cutover: the LAN NIC carries the management bridge today, the host
 * moves to vmbr9, which the VM joins as its second virtio NIC (vtnet1, after the WAN2 bridge's vtnet0).
 */
export const CUTOVER_YAML = TWO_NIC_YAML.replace('  tokenId: dualwan@pve!setup\n', '  tokenId: dualwan@pve!setup\n  cutover: { bridge: vmbr9, hostAddress: 10.10.99.2/24, gateway: 10.10.99.1 }\n').replace(
  '  name: edge\n',
  '  name: edge\n  bridgeNic: { bridge: vmbr9 }\n',
);

export function cutoverState(): DesiredState {
  const r = loadConfigText(CUTOVER_YAML, 'cutover.yaml');
  if (!r.state) throw new Error(r.diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
  if (!r.state.proxmox?.cutover) throw new Error('CUTOVER_YAML lost its cutover');
  return r.state;
}

export const FIXED_SECRETS: BootstrapSecrets = {
  rootPassword: 'Tq7mW2xKp9RvB4nZc8Hd',
  apiKey: Buffer.alloc(60, 7).toString('base64'),
  apiSecret: Buffer.alloc(60, 9).toString('base64'),
};
export const TEST_SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvbb3hJ0r9oXWq3zJk0C4tQm0wq3x3J8yq6f1p2bX9Y dualwan@laptop';

export function fixedCredentials(): SeedCredentials {
  return hashSecrets(FIXED_SECRETS, [TEST_SSH_KEY], { root: 'rootsaltrootsalt', api: 'apisaltapisaltap' });
}

/** Compares with a golden file; UPDATE_GOLDEN=1 rewrites it instead. */
export function expectGolden(name: string, actual: string): void {
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1' || !fs.existsSync(file)) {
    fs.mkdirSync(GOLDEN_DIR, { recursive: true });
    fs.writeFileSync(file, actual);
  }
  expect(actual).toBe(fs.readFileSync(file, 'utf8'));
}
