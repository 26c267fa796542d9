import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfigFile } from '../../config/load';
import { connectProxmox } from '../../providers/proxmox/provider';
import { startSimulatedHost, writePlaybookFor, packageRoot } from '../../../test/doubles/proxmox/simulated-host';
import { pointAtRouter, startSimulatedRouter } from '../../../test/doubles/opnsense/simulated-router';
import type { GlobalOptions } from '../options';
import { loadState } from '../session';
import { applyCommand, planCommand } from './plan-apply';

const say = (s = '') => process.stdout.write(`${s}\n`);
const heading = (s: string) => say(`\n━━ ${s} ${'━'.repeat(Math.max(0, 72 - s.length))}`);

/**
 * The main job on an embedded default, no hardware: a simulated Proxmox VE host (the test double,
 * in this process, on loopback), the hotspot-failover playbook pointed at it, then the same
 * `plan` and `apply` commands a user runs, and `apply` once more to show that nothing changes.
 */
export async function demoCommand(o: GlobalOptions & { keep?: boolean }): Promise<number> {
  const root = packageRoot(__dirname);
  const playbook = loadConfigFile(path.join(root, 'playbooks', 'hotspot-failover.yaml'));
  const host = await startSimulatedHost({ image: playbook.state?.vm?.image });
  const router = await startSimulatedRouter({ state: playbook.state });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-demo-'));
  // The demo's secrets live in this process only: never in a file, never exported.
  const env = { ...process.env, DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret, ...router.env };
  const common = { ...o, credentials: path.join(dir, 'no-credentials-file') };
  try {
    heading('1. A simulated Proxmox VE host and OPNsense router');
    say(`Proxmox VE ${host.schemaVersion} API double on https://127.0.0.1:${host.port}: an Intel N100 with two I226-V NICs,`);
    say('a phone tethering over USB, storages local and local-lvm, an API token with the dualwan role (docs/proxmox-token.md).');
    say(`OPNsense 26.7 API double on https://127.0.0.1:${router.port}, standing in for the router VM once booted and`);
    say('bootstrapped (interfaces assigned, API key in place); the bootstrap itself is not in this version yet.');
    const file = writePlaybookFor(host, dir, 'hotspot-failover.yaml', (d) => pointAtRouter(d, router));
    say(`Wrote ${file} from playbooks/hotspot-failover.yaml, pointed at both.`);

    heading('2. dualwan plan --trust-on-first-use (read-only)');
    let code = await planCommand({ ...common, config: file, trustOnFirstUse: true }, env);
    if (code !== 0) return code;

    heading('3. dualwan apply --yes --trust-on-first-use');
    const before = host.writeCount;
    code = await applyCommand({ ...common, config: file, yes: true, trustOnFirstUse: true }, env);
    if (code !== 0) return code;
    say(`The host counted ${host.writeCount - before} write requests, the router ${router.controls.writeCount}.`);
    const state = loadState(file);
    const conn = connectProxmox(state, host.tokenSecret, state.proxmox!.fingerprint!);
    try {
      const vm = await conn.client.vmConfig(state.vm!.vmid);
      const status = await conn.client.vmStatus(state.vm!.vmid);
      say(`VM ${state.vm!.vmid} (${status.status}) as Proxmox reports it:`);
      for (const k of ['machine', 'cpu', 'memory', 'balloon', 'hostpci0', 'usb0', 'net0', 'serial0', 'scsi0', 'onboot', 'tags']) say(`  ${k}: ${String(vm[k])}`);
    } finally {
      await conn.close();
    }

    heading('4. dualwan apply --yes, again: nothing to do');
    const before2 = host.writeCount;
    const routerBefore2 = router.controls.writeCount;
    code = await applyCommand({ ...common, config: file, yes: true }, env);
    say(`The host counted ${host.writeCount - before2} write requests, the router ${router.controls.writeCount - routerBefore2}.`);
    if (host.writeCount !== before2 || router.controls.writeCount !== routerBefore2) return 1;
    if (host.contractViolations.length) throw new Error(`the demo sent ${host.contractViolations.length} request(s) the Proxmox schemas reject`);
    if (router.controls.contractViolations.length) throw new Error(`the demo sent ${router.controls.contractViolations.length} request(s) the OPNsense catalogue rejects`);

    heading('5. The plain-Linux backend, for real, in network namespaces');
    const lab = require('../../../test/lab/demo') as typeof import('../../../test/lab/demo');
    say(await lab.runLinuxLabDemo(say));

    heading('Next');
    say('The router VM runs and OPNsense has both WAN gateways monitored, the failover group, outbound NAT and');
    say('the LAN rules. Still to come in dualwan: the serial-console bootstrap run by apply (built and tested,');
    say('docs/bootstrap.md), `dualwan verify` on OPNsense, and `dualwan setup` (the wizard).');
    if (o.keep) say(`\nThe demo files are in ${dir}.`);
    return code;
  } finally {
    await host.close();
    await router.close();
    if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}
