import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pendingChanges } from '../../core/plan';
import { applyRouterVm, planRouterVm } from '../../flows/router-vm';
import { loadConfigFile } from '../../config/load';
import { startSimulatedHost, writePlaybookFor, packageRoot } from '../../../test/doubles/proxmox/simulated-host';
import type { GlobalOptions } from '../options';
import { renderPlan } from '../render';
import { loadState, openProxmox, terminalUi } from '../session';

const say = (s = '') => process.stdout.write(`${s}\n`);
const heading = (s: string) => say(`\n━━ ${s} ${'━'.repeat(Math.max(0, 72 - s.length))}`);

/**
 * The main job on an embedded default, no hardware: a simulated Proxmox VE host (the test double,
 * in this process, on loopback), the hotspot-failover playbook pointed at it, then plan, apply and
 * apply again through the same code a real run uses.
 */
export async function demoCommand(o: GlobalOptions & { keep?: boolean }): Promise<number> {
  const root = packageRoot(__dirname);
  const playbook = loadConfigFile(path.join(root, 'playbooks', 'hotspot-failover.yaml'));
  const image = playbook.state?.vm?.image;
  const host = await startSimulatedHost({ image });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-demo-'));
  // The demo's secret lives in this process only: never in the file, never in the environment.
  const env = { ...process.env, DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret };
  const g = { ...o, credentials: path.join(dir, 'no-credentials-file') };
  try {
    heading('1. A simulated Proxmox VE host');
    say(`Proxmox VE ${host.schemaVersion} API double on https://127.0.0.1:${host.port} — an Intel N100 with two I226-V NICs,`);
    say('a phone tethering over USB, storages local and local-lvm, and an API token with the dualwan role.');
    const file = writePlaybookFor(host, dir);
    say(`Wrote ${file} from playbooks/hotspot-failover.yaml (pointed at the simulated host).`);

    heading('2. Plan: discovery, preflight, diff (read-only)');
    const ui = terminalUi({ ...g, yes: true });
    let state = loadState(file);
    const conn = await openProxmox(state, { ...g, trustOnFirstUse: true }, ui, env);
    state = loadState(file); // now with the pinned fingerprint
    try {
      const first = await planRouterVm(state, conn.client, ui);
      say(renderPlan(first.plan));

      heading('3. Apply');
      const writesBefore = host.writeCount;
      const report = await applyRouterVm(first.plan, state, first.ctx, ui, () => conn.transport.writeCalls);
      say(`Applied ${report.applied.length} changes with ${report.writeCalls} write calls in ${(report.durationMs / 1000).toFixed(1)} s (the host counted ${host.writeCount - writesBefore}).`);
      const vm = await conn.client.vmConfig(state.vm!.vmid);
      say(`VM ${state.vm!.vmid} as Proxmox reports it: machine=${vm.machine} cpu=${vm.cpu} balloon=${vm.balloon} hostpci0=${vm.hostpci0} usb0=${vm.usb0} net0=${vm.net0} serial0=${vm.serial0}`);

      heading('4. Apply again: nothing to do');
      const second = await planRouterVm(state, conn.client, ui);
      say(renderPlan(second.plan));
      const writes2 = host.writeCount;
      const again = await applyRouterVm(second.plan, state, second.ctx, ui, () => conn.transport.writeCalls);
      say(`Second apply: ${pendingChanges(second.plan).length} changes, ${again.writeCalls} write calls (the host counted ${host.writeCount - writes2}).`);
      if (host.contractViolations.length) throw new Error(`the demo sent ${host.contractViolations.length} request(s) the Proxmox schemas reject`);

      heading('Next');
      say('The router VM exists and runs. Still to come in dualwan: the unattended OPNsense bootstrap');
      say('(seed config through the serial console), the dual-WAN configuration over the OPNsense REST API,');
      say('`dualwan verify` (a measured failover drill) and the plain-Linux backend in a network-namespace lab.');
      say(o.keep ? `\nThe demo files are in ${dir}.` : '');
      return again.writeCalls === 0 && pendingChanges(second.plan).length === 0 ? 0 : 1;
    } finally {
      await conn.close();
    }
  } finally {
    await host.close();
    if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}
