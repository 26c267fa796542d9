import * as path from 'node:path';
import type { parseDocument } from 'yaml';
import { runDoctor, type Finding } from '../../src/doctor/run';
import { opnsenseStage } from '../../src/flows/opnsense';
import { planStage } from '../../src/flows/stages';
import type { LanProbe } from '../../src/accesspoint/checks';
import { proxmoxHarness, type Harness } from './proxmox-harness';
import { TestUi } from './test-ui';

/**
 * The doctor's world: the simulated Proxmox host with the router VM applied, and the simulated
 * OPNsense configured by the product's own OPNsense stage (as `dualwan apply` leaves it). The
 * config points at loopback only.
 */
export interface DoctorRig {
  readonly h: Harness;
  /** Configures the router from dualwan.yaml (after a reset, to start clean). */
  applyRouter(): Promise<void>;
  /** Back to the bootstrapped router, then applied: a clean router. */
  resetRouter(): Promise<void>;
  doctor(o?: { lan?: 'off' | LanProbe; env?: NodeJS.ProcessEnv }): Promise<Finding[]>;
  close(): Promise<void>;
}

export async function doctorRig(edit?: (doc: ReturnType<typeof parseDocument>) => void): Promise<DoctorRig> {
  const h = await proxmoxHarness(edit ? { edit } : {});
  await h.apply();
  const applyRouter = async () => {
    const env = h.stageEnv(new TestUi({}, true));
    const stage = opnsenseStage({ sleep: async () => undefined, gatewayListWaitMs: 2_000, revertBackoffMs: 0, client: { requestTimeoutMs: 10_000 } });
    const s = await stage.open(env);
    try {
      const state = h.state(); // with the fingerprint pinned by open()
      await stage.apply(s, await planStage(s, state), { ...env, state });
    } finally {
      await s.close();
    }
  };
  return {
    h,
    applyRouter,
    async resetRouter() {
      h.router.controls.reset();
      h.router.controls.setVersion('26.7.2');
      await applyRouter();
    },
    doctor: (o = {}) => runDoctor({ file: h.file, ui: new TestUi(), env: o.env ?? h.env, credentialsFile: path.join(h.dir, 'none'), trustOnFirstUse: true, lan: o.lan ?? 'off' }),
    close: () => h.close(),
  };
}

export const findingsOf = (f: readonly Finding[], check: string) => f.filter((x) => x.check === check);
