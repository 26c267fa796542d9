import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { parseDocument } from 'yaml';
import { loadConfigFile } from '../../src/config/load';
import type { DesiredState } from '../../src/core/desired';
import type { ApplyReport, Plan } from '../../src/core/plan';
import { proxmoxStage } from '../../src/flows/router-vm';
import type { StageEnv, StageSession } from '../../src/flows/stage';
import { applyStagePlan, planStage } from '../../src/flows/stages';
import { startSimulatedHost, writePlaybookFor, packageRoot, type SimulatedHost } from '../doubles/proxmox/simulated-host';
import type { ProxmoxDoubleOptions } from '../doubles/proxmox/server';
import { TestUi } from './test-ui';
import { pointAtRouter, startSimulatedRouter, type SimulatedRouter } from '../doubles/opnsense/simulated-router';

export interface Harness {
  /** The Proxmox double and, as `host.localImage`, the loopback stand-in of the image mirror vm.image points at. */
  readonly host: SimulatedHost;
  /** The OPNsense the VM would run, already bootstrapped; the config points at it, never at a LAN address. */
  readonly router: SimulatedRouter;
  readonly dir: string;
  readonly file: string;
  readonly env: NodeJS.ProcessEnv;
  state(): DesiredState;
  stageEnv(ui?: TestUi): StageEnv;
  open(ui?: TestUi): Promise<StageSession>;
  plan(ui?: TestUi): Promise<Plan>;
  /** Plan and apply once; returns both. */
  apply(ui?: TestUi): Promise<{ plan: Plan; report: ApplyReport }>;
  close(): Promise<void>;
}

const playbookImage = () => loadConfigFile(path.join(packageRoot(), 'playbooks', 'hotspot-failover.yaml')).state?.vm?.image;

/**
 * A simulated Proxmox host with the hotspot-failover playbook pointed at it, and the product's own
 * Proxmox stage driven through a TestUi. `grants: false` leaves the token without the mapping
 * privileges (as a token made without docs/proxmox-token.md would be).
 */
export async function proxmoxHarness(opts: ProxmoxDoubleOptions & { edit?: (doc: ReturnType<typeof parseDocument>) => void } = {}): Promise<Harness> {
  const { edit, ...doubleOpts } = opts;
  const host = await startSimulatedHost({ image: playbookImage(), authFailDelayMs: 0, ...doubleOpts });
  const router = await startSimulatedRouter();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-test-'));
  const file = writePlaybookFor(host, dir, 'hotspot-failover.yaml', (d) => {
    pointAtRouter(d, router);
    edit?.(d);
  });
  const env = { DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret, ...router.env };
  const h: Harness = {
    host,
    router,
    dir,
    file,
    env,
    state() {
      const r = loadConfigFile(file);
      if (!r.state) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
      return r.state;
    },
    stageEnv: (ui = new TestUi()) => ({ state: h.state(), ui, trustOnFirstUse: true, env, credentialsFile: path.join(dir, 'none'), earlier: [] }),
    open: (ui) => proxmoxStage().open(h.stageEnv(ui)),
    async plan(ui) {
      const s = await h.open(ui);
      try {
        return await planStage(s, h.state());
      } finally {
        await s.close();
      }
    },
    async apply(ui = new TestUi()) {
      const senv = h.stageEnv(ui);
      const s = await proxmoxStage().open(senv);
      try {
        const plan = await planStage(s, senv.state);
        return { plan, report: await applyStagePlan(s, plan, senv) };
      } finally {
        await s.close();
      }
    },
    async close() {
      await host.close();
      await router.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}
