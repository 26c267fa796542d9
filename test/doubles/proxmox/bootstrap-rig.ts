// The doubles wired together for the bootstrap tests: a simulated Proxmox host with serial
// consoles, a simulated OPNsense guest on VM 100's serial socket that reads the seed CD the VM has
// attached, and the OPNsense REST double, which answers only once the guest has booted with an
// imported config.xml carrying the API key the double was started with (checked with openssl, not
// with the product's code).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { parseDocument } from 'yaml';
import type { BootstrapSecrets } from '../../../src/bootstrap/seed-config';
import { proxmoxHarness, type Harness } from '../../helpers/proxmox-harness';
import { pointAtRouter, startSimulatedRouter, type SimulatedRouter } from '../opnsense/simulated-router';
import { OpnsenseGuest, type GuestTiming } from './opnsense-guest';

export interface BootstrapRig {
  readonly pve: Harness;
  readonly router: SimulatedRouter;
  readonly guest: OpnsenseGuest;
  readonly secrets: BootstrapSecrets;
  readonly credentialsFile: string;
  /** Why the REST double stays silent, when it does (the import did not carry our key…). */
  readonly gate: { open: boolean; reason: string };
  close(): Promise<void>;
}

export interface RigOptions {
  readonly timing?: Partial<GuestTiming>;
  readonly noise?: boolean;
  /** Leave the VM stopped after the Proxmox stage (vm.start: false), so the bootstrap boots it first. */
  readonly vmStopped?: boolean;
  readonly edit?: (doc: ReturnType<typeof parseDocument>) => void;
  readonly sshFingerprints?: { type: string; fingerprint: string }[];
}

export const RIG_SECRETS: BootstrapSecrets = {
  rootPassword: 'Rk4mW9xTp2QvB7nZc3Hd',
  apiKey: Buffer.alloc(60, 0x5a).toString('base64'),
  apiSecret: Buffer.alloc(60, 0xa5).toString('base64'),
};

function opensslVerifies(secret: string, hash: string): boolean {
  const salt = /^\$6\$(?:rounds=\d+\$)?([^$]*)\$/.exec(hash)?.[1];
  if (salt === undefined) return false;
  const r = spawnSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: `${secret}\n`, encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === hash;
}

export async function startBootstrapRig(o: RigOptions = {}): Promise<BootstrapRig> {
  const secrets = RIG_SECRETS;
  const router = await startSimulatedRouter({ apiKey: secrets.apiKey, apiSecret: secrets.apiSecret });
  const gate = { open: false, reason: 'the VM has not booted' };
  router.controls.stopAnswering();
  let pve: Harness;
  try {
    pve = await proxmoxHarness({
      consoles: true,
      edit: (doc) => {
        pointAtRouter(doc, router);
        if (o.vmStopped) doc.setIn(['vm', 'start'], false);
        o.edit?.(doc);
      },
    });
  } catch (e) {
    await router.close();
    throw e;
  }
  const host = pve.host;
  const guest = new OpnsenseGuest({
    timing: o.timing,
    noise: o.noise,
    httpsFingerprint: router.fingerprint,
    sshFingerprints: o.sshFingerprints ?? [{ type: 'ED25519', fingerprint: 'SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8' }],
    media: () => {
      const vm = host.state.vms.find((v) => v.vmid === 100);
      const drive = vm?.conf.ide2;
      if (!drive) return [];
      const volid = drive.split(',')[0]!;
      return [{ device: 'cd0', bytes: host.state.volumes.find((v) => v.volid === volid)?.bytes }];
    },
    onBooted: (xml) => {
      const line = /<apikeys>([^<]*)<\/apikeys>/.exec(xml ?? '')?.[1] ?? '';
      const [key, hash] = line.split('|');
      if (key === secrets.apiKey && hash && opensslVerifies(secrets.apiSecret, hash)) {
        gate.open = true;
        gate.reason = '';
        router.controls.resumeAnswering();
      } else {
        gate.open = false;
        gate.reason = xml ? 'the imported config.xml does not carry the expected API key' : 'the VM booted with the factory config';
        router.controls.stopAnswering();
      }
    },
    onPowerOff: () => {
      gate.open = false;
      gate.reason = 'the VM is off';
      router.controls.stopAnswering();
    },
  });
  host.attachSerialGuest(100, guest);
  const credentialsFile = path.join(pve.dir, 'credentials');
  return {
    pve,
    router,
    guest,
    secrets,
    credentialsFile,
    gate,
    async close() {
      guest.power(false);
      router.controls.resumeAnswering();
      await pve.close();
      await router.close();
      fs.rmSync(credentialsFile, { force: true });
    },
  };
}
