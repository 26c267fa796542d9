/**
 * `dualwan doctor` for the Linux backend, against the real sshd of the lab router (root only):
 * a bare router fails the checks of everything dualwan sets up, an applied one passes them, a
 * removed NAT table and a removed rule are flagged, and the doctor changes nothing on the router
 * (its routes, rules and nftables ruleset read the same before and after).
 */
import * as path from 'node:path';
import { loadConfigFile } from '../../src/config/load';
import { pendingChanges } from '../../src/core/plan';
import { runDoctor, type Finding } from '../../src/doctor/run';
import { linuxStage } from '../../src/flows/linux';
import { applyPlan, makePlan, observe } from '../../src/plan/engine';
import { TestUi } from '../helpers/test-ui';
import { describeIfRoot, useLab } from '../lab/jest-lab';
import { labRouterOptions } from '../lab/units';
import { writeLabPlaybook } from '../lab/desired';

jest.setTimeout(120_000);

const status = (f: readonly Finding[], check: string) => f.filter((x) => x.check === check).map((x) => x.status);

describeIfRoot('dualwan doctor on a Linux router through SSH (lab)', () => {
  const lab = useLab({ maxLifetimeS: 600 });
  let file: string;
  const env = () => ({ DUALWAN_SSH_PRIVATE_KEY_FILE: path.join(lab().dir, 'client_ed25519') });
  const linux = () => ({ router: labRouterOptions(lab()), transport: () => lab().sshTransport() });
  const doctor = () => runDoctor({ file, ui: new TestUi(), env: env(), credentialsFile: path.join(lab().dir, 'no-credentials'), trustOnFirstUse: true, lan: 'off', linux: linux() });
  const routerView = () => ['ip -4 rule show', 'ip -4 route show table all', 'nft list ruleset'].map((c) => lab().exec('router', c.split(' ')).stdout).join('\n---\n');

  beforeAll(() => {
    const p = lab().plan;
    lab().dhcpLease(0);
    lab().dhcpLease(1);
    file = path.join(lab().dir, 'dualwan.yaml');
    writeLabPlaybook(p, file);
  });

  it('a bare router: reachable, tools present, every part dualwan sets up flagged with a remedy; nothing changed', async () => {
    const before = routerView();
    const f = await doctor();
    expect(routerView()).toBe(before);
    expect(status(f, 'router.reachable')).toEqual(['ok']);
    expect(status(f, 'router.linux.tools')).toEqual(['ok']);
    expect(status(f, 'router.linux.wans')).toEqual(['ok']);
    for (const c of ['router.linux.nat', 'router.linux.tables', 'router.linux.rules', 'router.linux.default-route', 'router.linux.persistence']) {
      expect([c, status(f, c)]).toEqual([c, ['fail']]);
      expect(f.find((x) => x.check === c)!.remedy).toMatch(/dualwan apply/);
    }
    expect(status(f, 'router.linux.monitor')).toEqual(['skipped']);
    expect(status(f, 'topology.same-gateway-ip')).toEqual(['ok']);
  });

  it('applied: every router check passes; a removed NAT table and a removed rule are flagged', async () => {
    const state = loadConfigFile(file).state!; // host key pinned by the first doctor run
    expect(state.linux?.hostKey).toMatch(/^SHA256:/);
    const stage = linuxStage(linux());
    const session = await stage.open({ state, ui: new TestUi({}, true), trustOnFirstUse: false, env: env(), credentialsFile: path.join(lab().dir, 'no-credentials'), earlier: [] });
    try {
      const plan = makePlan(session.handlers, await observe(session.ctx, session.handlers), 'doctor-test', new Date().toISOString());
      expect(pendingChanges(plan).length).toBeGreaterThan(0);
      await applyPlan(plan, 'doctor-test', { ctx: session.ctx, handlers: session.handlers, ui: new TestUi({}, true), writeCalls: () => session.writeCalls() });
    } finally {
      await session.close();
    }
    const before = routerView();
    const f = await doctor();
    expect(routerView()).toBe(before);
    expect(f.filter((x) => x.area === 'router' && x.status === 'fail')).toEqual([]);
    for (const c of ['router.linux.sysctl', 'router.linux.nat', 'router.linux.tables', 'router.linux.rules', 'router.linux.default-route', 'router.linux.persistence']) expect([c, status(f, c)]).toEqual([c, ['ok']]);

    expect(lab().exec('router', ['nft', 'delete', 'table', 'inet', 'dualwan']).code === 0 || lab().exec('router', ['nft', 'delete', 'table', 'ip', 'dualwan']).code === 0).toBe(true);
    expect(lab().exec('router', ['ip', 'rule', 'del', 'priority', '1001']).code).toBe(0);
    const g = await doctor();
    expect(status(g, 'router.linux.nat')).toEqual(['fail']);
    expect(status(g, 'router.linux.rules')).toEqual(['fail']);
    expect(g.find((x) => x.check === 'router.linux.rules')!.message).toMatch(/1001/);
  });
});
