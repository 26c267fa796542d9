import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfigFile } from '../../config/load';
import { connectProxmox } from '../../providers/proxmox/provider';
import { utils } from 'ssh2';
import { startBootstrapSite } from '../../../test/doubles/proxmox/bootstrap-rig';
import { writePlaybookFor, packageRoot } from '../../../test/doubles/proxmox/simulated-host';
import type { GlobalOptions } from '../options';
import { loadState } from '../session';
import { doctorCommand } from './doctor';
import { applyCommand } from './plan-apply';
import { setupCommand } from './setup';
import { verifyCommand } from './verify';

/** How much faster than real time the simulated router's gateway monitor runs in the demo. */
const DEMO_TIME_SCALE = 20;

const say = (s = '') => process.stdout.write(`${s}\n`);
const heading = (s: string) => say(`\n━━ ${s} ${'━'.repeat(Math.max(0, 72 - s.length))}`);

/**
 * The main job on an embedded default, no hardware: a simulated, empty Proxmox VE host (the test
 * double, in this process, on loopback) with a simulated OPNsense on the router VM's serial console
 * and its REST API double, the hotspot-failover playbook pointed at them, then the commands a user
 * runs: `setup --yes` (plan, VM, bootstrap over the serial console, REST configuration, TP-Link
 * steps), `apply` once more to show that nothing changes, the `verify` drill with its figures and
 * `doctor`; then, as root, the Linux backend in network namespaces with real packets.
 */
export async function demoCommand(o: GlobalOptions & { keep?: boolean }): Promise<number> {
  const root = packageRoot(__dirname);
  const playbook = loadConfigFile(path.join(root, 'playbooks', 'hotspot-failover.yaml'));
  const site = await startBootstrapSite({ ...(playbook.state ? { state: playbook.state } : {}), router: { dpinger: { timeScale: DEMO_TIME_SCALE } } });
  const { host, router } = site;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-demo-'));
  // The demo's secrets stay in this process and in the demo directory: the Proxmox token is passed
  // in, the OPNsense key is made by the bootstrap and kept in <dir>/credentials (0600). No
  // DUALWAN_* variable of the caller's shell takes part.
  const keyFile = path.join(dir, 'id_ed25519');
  fs.writeFileSync(keyFile, utils.generateKeyPairSync('ed25519').private, { mode: 0o600 });
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DUALWAN_')));
  Object.assign(env, { DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret, DUALWAN_SSH_PRIVATE_KEY_FILE: keyFile });
  const credentials = path.join(dir, 'credentials');
  const common = { ...o, credentials };
  try {
    heading('1. A simulated Proxmox VE host and OPNsense router');
    say(`Proxmox VE ${host.schemaVersion} API double on https://127.0.0.1:${host.port}: an Intel N100 with two I226-V NICs,`);
    say('a phone tethering over USB, storages local and local-lvm, an API token with the dualwan role (docs/proxmox-token.md);');
    say('no VM yet. Once created, the router VM runs a simulated OPNsense 26.7 nano image on its serial console (the');
    say('importer, the banner, login, the console menu), reached through the host\'s termproxy, as on a real host.');
    say(`The OPNsense REST API double on https://127.0.0.1:${router.port} stands in for that VM's web GUI: silent until the`);
    say('VM has booted with an imported configuration, then accepting only the API key that configuration holds.');
    say('It speaks no SSH, so the revert timer dualwan arms on a real OPNsense around each apply is reported as not armed.');
    const file = writePlaybookFor(host, dir, 'hotspot-failover.yaml', (d) => site.pointAt(d));
    say(`Wrote ${file} from playbooks/hotspot-failover.yaml, pointed at both.`);

    heading('2. dualwan setup --yes --trust-on-first-use --config dualwan.yaml');
    say('The wizard without questions: it takes the file as it is, pins the certificates, shows the plan, applies every');
    say('stage (the router VM, the bootstrap over the serial console, the OPNsense configuration) and prints the TP-Link steps.');
    const before = host.writeCount;
    let code = await setupCommand({ ...common, config: file, yes: true, trustOnFirstUse: true }, env);
    if (code !== 0) return code;
    say(`\nThe host counted ${host.writeCount - before} write requests, the router ${router.controls.writeCount}.`);
    say('The bootstrap stopped the VM, attached the seed CD, started it again and answered OPNsense\'s importer on the');
    say('serial console, pinned the web GUI certificate the console showed, and deleted the seed image afterwards.');
    say(`The new API key is in ${credentials} (0600); OPNsense holds only a hash of its secret.`);
    say('The root password was shown once, above, and is stored nowhere.');
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

    heading('3. dualwan apply --yes, again: nothing to do (OPNsense answers with the stored key, so no bootstrap)');
    const before2 = host.writeCount;
    const routerBefore2 = router.controls.writeCount;
    code = await applyCommand({ ...common, config: file, yes: true }, env);
    say(`The host counted ${host.writeCount - before2} write requests, the router ${router.controls.writeCount - routerBefore2}.`);
    if (host.writeCount !== before2 || router.controls.writeCount !== routerBefore2) return 1;

    heading('4. dualwan verify --yes --method block: the failover drill, measured');
    say(`The simulated OPNsense runs its gateway monitor (dpinger's windows, loss interval and alarms) on a clock ${DEMO_TIME_SCALE}× faster`);
    say(`than real time, so the measured times below are about 1/${DEMO_TIME_SCALE} of what a real router shows; the expected figures and`);
    say('limits beside them are a real router\'s. The drill itself is the one a real router gets.');
    code = await verifyCommand({ ...common, config: file, yes: true, method: 'block', hold: 5 }, env);
    if (code !== 0) return code;

    heading('5. dualwan doctor --no-lan-checks: configuration, host and router, read-only');
    const before3 = host.writeCount;
    const routerBefore3 = router.controls.writeCount;
    code = await doctorCommand({ ...common, config: file, lanChecks: false }, env);
    if (code !== 0) return code;
    if (host.writeCount !== before3 || router.controls.writeCount !== routerBefore3) throw new Error('doctor wrote to a system');
    if (host.contractViolations.length) throw new Error(`the demo sent ${host.contractViolations.length} request(s) the Proxmox schemas reject`);
    if (router.controls.contractViolations.length) throw new Error(`the demo sent ${router.controls.contractViolations.length} request(s) the OPNsense catalogue rejects`);

    heading('6. The plain-Linux backend, for real, in network namespaces');
    const lab = require('../../../test/lab/demo') as typeof import('../../../test/lab/demo');
    say(await lab.runLinuxLabDemo(say));

    heading('Next');
    say('On real hardware: docs/getting-started.md. The wizard is `dualwan setup`; the drill `dualwan verify`; the checks');
    say('`dualwan doctor`; the picture of a dualwan.yaml `dualwan topology`.');
    if (o.keep) say(`\nThe demo files are in ${dir}.`);
    return code;
  } finally {
    await site.close();
    if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}
