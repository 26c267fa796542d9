// `dualwan verify` on OPNsense against the simulated router with dpinger over time on a clock the
// test drives: the figures come out in the router's seconds, exactly, without waiting for them.
import { pendingChanges } from '../../src/core/plan';
import type { Notice } from '../../src/core/ui';
import type { OpnsenseContext } from '../../src/providers/opnsense/context';
import { drillRuleDescription, isDrillRuleDescription } from '../../src/providers/opnsense/drill';
import type { DrillMethod } from '../../src/verify/expectations';
import { renderOpnsenseVerifyReport, runOpnsenseVerify, type OpnsenseVerifyDeps, type OpnsenseVerifyReport } from '../../src/verify/opnsense';
import type { OpnsenseStepId } from '../../src/verify/scenario';
import { ManualClock } from '../doubles/opnsense/dpinger';
import { openRouterRun, QuietUi, type RouterRun } from '../doubles/opnsense/harness';
import { startSimulatedRouter, type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { FakeProcess } from '../helpers/fake-process';

jest.setTimeout(60_000);

/** A Ui that can act on what it is told (pull the cable when asked to). */
class ReactingUi extends QuietUi {
  constructor(private readonly on: (n: Notice) => void = () => undefined) {
    super();
  }
  override notify(n: Notice): void {
    super.notify(n);
    this.on(n);
  }
}

const clock = new ManualClock();
let router: SimulatedRouter;
let run: RouterRun;
const ctx = () => run.session.ctx as OpnsenseContext;
const s = () => router.controls.state;
const drillRules = () => Object.values(s().config.rules).filter((r) => isDrillRuleDescription(r.description));

beforeAll(async () => {
  router = await startSimulatedRouter({ dpinger: { clock: clock.now } });
  run = await openRouterRun(router);
});
afterAll(async () => {
  await run.close();
  await router.close();
});
beforeEach(async () => {
  router.controls.reset();
  await run.apply(await run.plan());
  clock.advance(70_000); // full dpinger windows of answered probes on both WANs
  expect(router.controls.unapplied()).toEqual([]);
});
afterEach(() => {
  expect(router.controls.contractViolations).toEqual([]);
});

async function drill(method: DrillMethod, o: Partial<OpnsenseVerifyDeps> = {}): Promise<{ report: OpnsenseVerifyReport; ui: QuietUi; proc: FakeProcess }> {
  const proc = new FakeProcess();
  const ui = (o.ui as QuietUi | undefined) ?? new QuietUi();
  const report = await runOpnsenseVerify({
    client: ctx().client,
    state: run.state,
    layout: ctx().layout,
    method,
    holdMs: 5_000,
    now: clock.now,
    sleep: clock.sleep,
    processLike: proc as unknown as NonNullable<OpnsenseVerifyDeps['processLike']>,
    ...o,
    ui,
  });
  return { report, ui, proc };
}

const flowsDuringHold = (ids: OpnsenseStepId[] = []) => (id: OpnsenseStepId) => {
  ids.push(id);
  if (id !== 'hold') return;
  // LAN clients keep opening connections while the ISP is out: they leave through the hotspot
  for (let i = 0; i < 3; i++) expect(router.controls.openConnection({ src: `192.168.10.${100 + i}`, dst: '93.184.216.34' })).toMatchObject({ gateway: 'WAN2_DHCP' });
};

describe('verify --method block (the real detection path)', () => {
  it('measures detection, failover and failback beside the balanced profile’s figures; no flow stays on the hotspot', async () => {
    const ids: OpnsenseStepId[] = [];
    const { report } = await drill('block', { onStep: flowsDuringHold(ids) });
    expect(report.problems).toEqual([]);
    expect(report.behaved).toBe(true);
    expect(ids).toEqual(['cleanup', 'baseline', 'dns', 'public-address', 'induce', 'detect', 'failover', 'hold', 'restore', 'failback', 'flows']);
    expect(report.profile).toBe('balanced');
    // balanced on WAN1: a probe every 1 s, lost after 2 s, a 30 s window, down above 20 % loss
    expect(report.expected).toMatchObject({ detectionS: 8, failoverS: 8 });
    expect(report.figures.detectionS).toBeGreaterThanOrEqual(6);
    expect(report.figures.detectionS).toBeLessThanOrEqual(report.expected.limits.detectionS);
    expect(report.figures.failoverS).toBeGreaterThanOrEqual(report.figures.detectionS!); // the default route moves once it is down
    expect(report.figures.failbackS).toBeGreaterThan(5); // the lost probes must leave the window first
    expect(report.figures.failbackS).toBeLessThanOrEqual(report.expected.limits.failbackS);
    // the lost probes must fall back under 10 % of the 30 s window: about 26 s, whatever the outage's length
    expect(report.expected.failbackS).toBeGreaterThanOrEqual(24);
    expect(report.expected.failbackS).toBeLessThanOrEqual(28);
    expect(report.baseline).toMatchObject({ defaultGateway: 'WAN_DHCP', activeMembers: ['WAN_DHCP'] });
    expect(report.dns.map((d) => [d.wan, d.server, d.via, d.ok])).toEqual([
      ['isp', '1.0.0.1', '192.168.1.100', true],
      ['hotspot', '149.112.112.112', '192.168.43.101', true],
    ]);
    expect(report.publicAddress.map((p) => [p.wan, p.address, p.skipped])).toEqual([
      ['isp', '192.168.1.100', true],
      ['hotspot', '192.168.43.101', true],
    ]);
    expect(report.publicAddress[0]!.detail).toContain('cannot ask an outside service');
    expect(report.meteredFlows).toEqual({ wans: ['hotspot'], count: 0, sample: [] });
    expect(report.restored).toBe(true);
    // back as it was: no temporary rule, nothing left to apply, ping jobs removed
    expect(drillRules()).toEqual([]);
    expect(Object.values(s().applied.firewall.rules).filter((r) => isDrillRuleDescription(r.description))).toEqual([]);
    expect(s().pingJobs.size).toBe(0);
    expect(pendingChanges(await run.plan())).toEqual([]);
    // the router saw it over time, as dpinger would
    const alarms = s().gatewayLog.map((l) => l.text).filter((t) => t.includes('WAN_DHCP'));
    expect(alarms.some((t) => /none -> loss/.test(t))).toBe(true);
    expect(alarms.some((t) => /-> down/.test(t))).toBe(true);
    const text = renderOpnsenseVerifyReport(report);
    expect(text).toMatch(/detection\s+\d+\.\d s\s+expected 8\.0 s\s+limit 17\.0 s/);
    expect(text).toContain('Failover behaved.');
  });

  it('monitoring off on WAN1: stops at the baseline with the reason, breaks nothing', async () => {
    const [uuid, gw] = Object.entries(s().config.gateways).find(([, g]) => g.name === 'WAN_DHCP')!;
    s().config.gateways[uuid] = { ...gw, monitor_disable: '1' };
    s().applyRouting();
    const n = router.controls.requests.length;
    const { report } = await drill('block');
    expect(report.behaved).toBe(false);
    expect(report.problems[0]).toContain('monitoring is off on WAN_DHCP: OPNsense never marks it down');
    expect(report.steps.filter((x) => !x.skipped).map((x) => x.id)).toEqual(['cleanup', 'baseline']);
    expect(report.figures.detectionS).toBeNull();
    expect(router.controls.requests.slice(n).filter((r) => r.write).map((r) => r.endpoint)).toEqual([]);
  });

  it('the group without WAN2: nothing to fail over to', async () => {
    const [uuid, g] = Object.entries(s().config.groups)[0]!;
    s().config.groups[uuid] = { ...g, item2: '' };
    s().applyRouting();
    const { report } = await drill('block');
    expect(report.behaved).toBe(false);
    expect(report.problems[0]).toContain('the gateway group DUALWAN has no member besides WAN_DHCP (WAN2_DHCP missing): nothing to fail over to');
  });

  it('flows left on the hotspot after the failback (no Failback States): did not behave, with the count', async () => {
    const [uuid, gw] = Object.entries(s().config.gateways).find(([, g]) => g.name === 'WAN2_DHCP')!;
    s().config.gateways[uuid] = { ...gw, monitor_killstates_priority: '0' };
    s().applyRouting();
    clock.advance(70_000);
    const { report } = await drill('block', { onStep: flowsDuringHold() });
    expect(report.behaved).toBe(false);
    expect(report.figures.failbackS).not.toBeNull();
    expect(report.meteredFlows).toMatchObject({ wans: ['hotspot'], count: 3 });
    expect(report.problems).toEqual([expect.stringContaining('3 LAN connection(s) still leave through WAN2_DHCP after the failback')]);
  });

  it('a block that never reaches the probes → no detection, no failover: reported, and the rule still removed', async () => {
    // someone disables the drill's rule on the router as soon as it is loaded
    const { report } = await drill('block', {
      onStep: (id) => {
        if (id !== 'detect') return;
        for (const r of Object.values(s().config.rules)) if (isDrillRuleDescription(r.description)) r.enabled = '0';
        s().applyFirewall();
      },
    });
    expect(report.behaved).toBe(false);
    expect(report.figures.detectionS).toBeNull();
    expect(report.problems.join('\n')).toContain('WAN_DHCP was not marked Offline within');
    expect(report.problems.join('\n')).toContain('no failover within');
    expect(drillRules()).toEqual([]); // restored all the same
  });

  it('SIGINT in the middle of the outage: restores, then lets the signal end the process', async () => {
    const proc = new FakeProcess();
    const { report } = await drill('block', {
      processLike: proc as unknown as NonNullable<OpnsenseVerifyDeps['processLike']>,
      onStep: (id) => {
        if (id === 'failover') {
          expect(drillRules()).toHaveLength(1);
          proc.emit('SIGINT');
        }
      },
    });
    expect(proc.killed).toEqual(['SIGINT']);
    expect(report.interrupted).toBe(true);
    expect(report.problems).toContain('interrupted; the WAN was restored');
    expect(drillRules()).toEqual([]);
    expect(router.controls.unapplied()).toEqual([]);
  });
});

describe('verify --method force-down and cable', () => {
  it('force-down: the switch happens with the reconfigure, figures near zero', async () => {
    const { report } = await drill('force-down', { onStep: flowsDuringHold() });
    expect(report.problems).toEqual([]);
    expect(report.behaved).toBe(true);
    expect(report.expected).toMatchObject({ detectionS: 0, failoverS: 0, failbackS: 0 });
    expect(report.figures.detectionS).toBeLessThanOrEqual(1);
    expect(report.figures.failbackS).toBeLessThanOrEqual(1);
    expect(Object.values(s().config.gateways).every((g) => g.force_down === '0')).toBe(true);
  });

  it('cable: asks for the pull, measures from the link drop, asks to plug back in', async () => {
    const ui = new ReactingUi((n) => {
      if (n.code === 'VERIFY_PULL_CABLE') router.controls.setLinkHealth('wan', { up: false });
      if (n.code === 'VERIFY_PLUG_CABLE') router.controls.setLinkHealth('wan', { up: true });
    });
    const { report } = await drill('cable', { ui });
    expect(report.problems).toEqual([]);
    expect(report.behaved).toBe(true);
    expect(ui.notices.map((n) => n.code).filter((c) => c.startsWith('VERIFY_P'))).toEqual(['VERIFY_PULL_CABLE', 'VERIFY_PLUG_CABLE']);
    expect(report.figures.detectionS).toBeGreaterThanOrEqual(6);
    expect(report.figures.detectionS).toBeLessThanOrEqual(report.expected.limits.detectionS);
  });

  it('cable never pulled: the drill says so and stops', async () => {
    const { report } = await drill('cable', { cableWaitMs: 5_000 });
    expect(report.behaved).toBe(false);
    expect(report.problems[0]).toContain('did not go down within 5 s');
  });
});

describe('what an interrupted drill leaves behind', () => {
  it('verify removes a leftover rule and resets force_down, saying so, then drills', async () => {
    const ruleUuid = s().newUuid();
    s().config.rules[ruleUuid] = { ...Object.values(s().config.rules)[0]!, action: 'block', interface: '', direction: 'out', protocol: 'ICMP', destination_net: '1.1.1.1', source_net: 'any', gateway: '', description: drillRuleDescription({ gateway: 'WAN_DHCP', monitor: '1.1.1.1', expiresAt: Date.now() + 600_000 }) };
    const [uuid, gw] = Object.entries(s().config.gateways).find(([, g]) => g.name === 'WAN_DHCP')!;
    s().config.gateways[uuid] = { ...gw, force_down: '1' };
    s().applyRouting();
    expect(drillRules()).toHaveLength(1);
    const { report, ui } = await drill('force-down');
    const codes = ui.notices.map((n) => n.code);
    expect(codes).toContain('VERIFY_LEFTOVER_RULE_REMOVED');
    expect(codes).toContain('VERIFY_FORCE_DOWN_RESET');
    expect(report.steps[0]).toMatchObject({ id: 'cleanup', ok: true });
    expect(report.steps[0]!.detail).toMatch(/^removed 1 leftover rule\(s\); cleared force_down on WAN_DHCP; waited \d+(\.\d)? s for the gateways to recover$/);
    expect(report.behaved).toBe(true);
    expect(drillRules()).toEqual([]);
  });

  it('plan never touches a drill rule; apply removes it once stale and leaves a live one alone', async () => {
    const base = Object.values(s().config.rules)[0]!;
    const rule = (expiresAt: number) => ({ ...base, action: 'block', interface: '', direction: 'out', protocol: 'ICMP', destination_net: '1.1.1.1', source_net: 'any', gateway: '', sequence: '1', description: drillRuleDescription({ gateway: 'WAN_DHCP', monitor: '1.1.1.1', expiresAt }) });
    s().config.rules[s().newUuid()] = rule(Date.UTC(2020, 0, 1));
    const live = s().newUuid();
    s().config.rules[live] = rule(Date.now() + 3_600_000);
    s().applyFirewall();
    const ui = new QuietUi();
    const r2 = await openRouterRun(router, { ui });
    try {
      const plan = await r2.plan();
      expect(pendingChanges(plan)).toEqual([]);
      expect(plan.changes.every((c) => !JSON.stringify(c).includes('dualwan verify'))).toBe(true);
      expect(ui.notices.filter((n) => n.code === 'OPNSENSE_DRILL_RULE_FOUND').map((n) => n.level)).toEqual(['warn', 'warn']);
      await r2.apply(plan);
      expect(ui.notices.map((n) => n.code)).toContain('OPNSENSE_DRILL_RULE_REMOVED');
      expect(Object.keys(s().config.rules).filter((u) => isDrillRuleDescription(s().config.rules[u]!.description))).toEqual([live]);
      expect(router.controls.unapplied()).toEqual([]);
    } finally {
      await r2.close();
    }
  });
});
