// The guarded cutover as the last stage (proxmox → bootstrap → opnsense → cutover): the order, the
// first plan of an empty host (the VM without the management NIC, everything after it deferred),
// the router side the OPNsense stage sets up (the interface on the cutover bridge, its rules), and
// the cutover stage's own check that the router answers there before anything is written.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDocument, type Document } from 'yaml';
import { planCommand } from '../../src/cli/commands/plan-apply';
import { loadConfigText } from '../../src/config/load';
import type { DesiredState } from '../../src/core/desired';
import { PreflightError } from '../../src/core/errors';
import { pendingChanges, type Plan } from '../../src/core/plan';
import { cutoverDeferred, requireRouterReady } from '../../src/flows/cutover';
import { directReach } from '../../src/flows/opnsense-route';
import { isUnreachable, stagesFor } from '../../src/flows/stages';
import { openRouterRun } from '../doubles/opnsense/harness';
import { packageRoot, startSimulatedRouter, type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import type { ProxmoxDouble } from '../doubles/proxmox/server';
import { startSimulatedHost, writePlaybookFor } from '../doubles/proxmox/simulated-host';

/** The hotspot playbook with both I226 NICs passed through, the LAN one carrying the management bridge today. */
function optIn(doc: Document): void {
  doc.setIn(['lan', 'uplink'], doc.createNode({ type: 'pci-nic', pci: '0000:01:00.0' }));
  doc.setIn(['vm', 'bridgeNic'], doc.createNode({ bridge: 'vmbr1' }));
  doc.setIn(['proxmox', 'cutover'], doc.createNode({ hostAddress: '10.10.99.2/24', gateway: '10.10.99.1' }));
}

function cutoverState(): DesiredState {
  const doc = parseDocument(fs.readFileSync(path.join(packageRoot(), 'playbooks', 'hotspot-failover.yaml'), 'utf8'));
  optIn(doc);
  const r = loadConfigText(doc.toString(), 'dualwan.yaml');
  if (!r.state) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.state;
}

const planWith = (stage: string, actions: Plan['changes'][number]['action'][]): { stage: string; plan: Plan } => ({
  stage,
  plan: { formatVersion: 1, tool: 't', createdAt: '', desiredHash: '', postActions: [], changes: actions.map((action, i) => ({ kind: 'k', address: `k/${i}`, action, properties: [], disruption: [], dependsOn: [], observedFingerprint: null, desired: null })) } as unknown as Plan,
});

describe('the stage order', () => {
  it('the cutover is a stage of its own, after OPNsense, only with the opt-in', () => {
    expect(stagesFor(cutoverState()).map((s) => s.name)).toEqual(['proxmox', 'bootstrap', 'opnsense', 'cutover']);
    const plain = loadConfigText(fs.readFileSync(path.join(packageRoot(), 'playbooks', 'hotspot-failover.yaml'), 'utf8'), 'dualwan.yaml').state!;
    expect(stagesFor(plain).map((s) => s.name)).toEqual(['proxmox', 'bootstrap', 'opnsense']);
  });

  it('is deferred while any earlier stage has changes or was itself deferred; planned once all are done', () => {
    const done = [planWith('proxmox', ['noop']), planWith('bootstrap', ['noop']), planWith('opnsense', ['noop'])];
    expect(cutoverDeferred({ earlier: done })).toBeUndefined();
    expect(cutoverDeferred({ earlier: [planWith('proxmox', ['create']), done[1]!, done[2]!] })).toMatch(/the proxmox stage of this apply has changes first/);
    expect(cutoverDeferred({ earlier: [done[0]!, done[1]!, planWith('opnsense', ['noop', 'update'])] })).toMatch(/the opnsense stage of this apply has changes first/);
    expect(cutoverDeferred({ earlier: [done[0]!] })).toMatch(/the bootstrap stage comes first/);
    expect(cutoverDeferred({ earlier: [] })).toMatch(/the proxmox stage comes first/);
  });
});

describe('the first plan of an empty host with the cutover opted in', () => {
  let host: ProxmoxDouble;
  let dir: string;
  beforeAll(async () => {
    host = await startSimulatedHost({ image: cutoverState().vm?.image, authFailDelayMs: 0 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-cutover-stage-'));
  });
  afterAll(async () => {
    await host.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('plans the VM without the management NIC and defers bootstrap, OPNsense and the cutover', async () => {
    const file = writePlaybookFor(host, dir, 'hotspot-failover.yaml', optIn);
    const out: string[] = [];
    const stdout = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await planCommand({ config: file, json: true, detailedExitcode: true, trustOnFirstUse: true, debug: false, credentials: path.join(dir, 'no-credentials') }, { DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret });
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
    expect(code).toBe(2);
    const set = JSON.parse(out.join('')) as { stages: { stage: string; plan: Plan }[]; deferred: { stage: string; reason: string }[] };
    expect(set.stages.map((s) => s.stage)).toEqual(['proxmox']);
    expect(set.deferred.map((d) => d.stage)).toEqual(['bootstrap', 'opnsense', 'cutover']);
    expect(set.deferred.find((d) => d.stage === 'cutover')!.reason).toMatch(/comes first|has changes first/);
    const pve = set.stages[0]!.plan;
    const vm = pve.changes.find((c) => c.address === 'proxmox.vm/100')!;
    expect(vm.action).toBe('create');
    expect(vm.properties.map((p) => p.path)).toEqual(expect.arrayContaining(['hostpci0', 'net0']));
    expect(vm.properties.map((p) => p.path)).not.toContain('hostpci1');
    expect(vm.properties.find((p) => p.path === 'net0')?.after).toMatch(/bridge=vmbr1/);
    expect(pendingChanges(pve).map((c) => c.address)).toContain('proxmox.bridge/vmbr1');
    expect(pve.changes.some((c) => c.kind === 'proxmox.network-cutover')).toBe(false);
    // nothing was written: planning is read-only
    expect(host.state.vms).toEqual([]);
  });
});

/**
 * The router double listens on loopback, reached directly: these tests tell the stage the cutover is
 * done instead of asking a Proxmox host (the route through the host before the cutover, over a real
 * sshd, is test/component/opnsense-route.test.ts).
 */
const DIRECT = { cutoverDone: true } as const;
const direct = (state: DesiredState) => directReach({ kind: 'direct', host: state.opnsense!.host, port: state.opnsense!.port });

describe('the router side: OPNsense answers on the cutover bridge and routes to it', () => {
  let router: SimulatedRouter;
  beforeAll(async () => {
    router = await startSimulatedRouter({ state: cutoverState() });
  });
  afterAll(async () => {
    await router.close();
  });
  beforeEach(() => router.controls.reset());

  it('the OPNsense stage assigns it, adds the LAN-to-host rule and keeps the seeded host-out rule, all without a gateway; then nothing more', async () => {
    const run = await openRouterRun(router, { edit: optIn, stage: DIRECT });
    try {
      const plan = await run.plan();
      const byAddress = (a: string) => plan.changes.find((c) => c.address === a);
      expect(byAddress('opnsense.interface/opt2')?.properties).toEqual([{ path: 'lock', before: '0', after: '1' }]);
      const toHost = byAddress('opnsense.filter-rule/lan-to-host')!;
      expect(toHost.action).toBe('create');
      expect(toHost.properties).toEqual(expect.arrayContaining([
        { path: 'interface', before: null, after: 'lan' },
        { path: 'destination_net', before: null, after: 'opt2' },
        { path: 'gateway', before: null, after: '' },
        { path: 'sequence', before: null, after: '11' },
      ]));
      // the bootstrap seeded the host-out rule (the route to the router before the cutover needs it): found and kept
      const out = byAddress('opnsense.filter-rule/host-out')!;
      expect(out.action).toBe('noop');
      expect(out.properties).toEqual([]);
      await run.apply(plan);
      const rules = Object.values(router.controls.state.applied.firewall.rules);
      expect(rules.find((r) => r.description === 'dualwan: LAN to the Proxmox host network (PVEHOST), no gateway')).toMatchObject({ interface: 'lan', source_net: 'lan', destination_net: 'opt2', gateway: '' });
      expect(rules.find((r) => r.description === 'dualwan: Proxmox host network (PVEHOST) out, no gateway')).toMatchObject({ interface: 'opt2', source_net: 'opt2', gateway: '' });
      // the LAN-to-host rule is evaluated before the policy-routed LAN default
      const seq = (d: RegExp) => Number(rules.find((r) => d.test(r.description ?? ''))!.sequence);
      expect(seq(/LAN to the Proxmox host/)).toBeLessThan(seq(/LAN to any via DUALWAN/));
      expect(pendingChanges(await run.plan())).toEqual([]);
    } finally {
      await run.close();
    }
  });

  it('the OPNsense stage refuses, before any write, a router without the interface or with another address there', async () => {
    const missing = await startSimulatedRouter({ state: cutoverState(), editSeed: (s) => ({ ...s, interfaces: Object.fromEntries(Object.entries(s.interfaces).filter(([k]) => k !== 'opt2')) }) });
    const wrong = await startSimulatedRouter({ state: cutoverState(), editSeed: (s) => ({ ...s, interfaces: { ...s.interfaces, opt2: { ...s.interfaces.opt2!, ipaddr: '10.10.99.254' } } }) });
    try {
      const e1 = await openRouterRun(missing, { edit: optIn, stage: DIRECT }).catch((e: unknown) => e);
      expect((e1 as PreflightError).diagnostics.map((d) => d.code)).toEqual(['OPNSENSE_HOST_LINK_MISSING']);
      expect((e1 as PreflightError).diagnostics[0]!.remedy).toMatch(/assign vtnet0 as opt2 .* static IPv4 10\.10\.99\.1\/24/);
      const e2 = await openRouterRun(wrong, { edit: optIn, stage: DIRECT }).catch((e: unknown) => e);
      expect((e2 as PreflightError).diagnostics.map((d) => d.code)).toEqual(['OPNSENSE_HOST_LINK_ADDRESS']);
      expect((e2 as Error).message).toMatch(/at 10\.10\.99\.254\/24, not at 10\.10\.99\.1\/24/);
      expect(missing.controls.writeCount + wrong.controls.writeCount).toBe(0);
    } finally {
      await missing.close();
      await wrong.close();
    }
  });

  it('the cutover stage opens only once the router answers at the gateway; "not yet" is what apply defers on', async () => {
    const base = { ...cutoverState(), opnsense: { ...cutoverState().opnsense!, host: router.host, port: router.port, fingerprint: router.fingerprint } };
    const env = { state: base, env: { ...router.env } as NodeJS.ProcessEnv, credentialsFile: '/nonexistent/credentials' };
    await expect(requireRouterReady(env, direct(base))).resolves.toBeUndefined();
    // no pin or no key: OPNsense was not set up by dualwan yet
    const unpinned = await requireRouterReady({ ...env, state: { ...base, opnsense: { ...base.opnsense, fingerprint: undefined } } }, direct(base)).catch((e: unknown) => e);
    expect(isUnreachable(unpinned)).toBe(true);
    expect((unpinned as Error).message).toMatch(/not set up by dualwan yet/);
    // silent: not reachable (yet)
    router.controls.stopAnswering();
    try {
      const silent = await requireRouterReady(env, direct(base), 500).catch((e: unknown) => e);
      expect(isUnreachable(silent)).toBe(true);
      expect((silent as Error).message).toMatch(/does not answer, so the cutover cannot run yet/);
    } finally {
      router.controls.resumeAnswering();
    }
    // answering, but not on the cutover bridge: refused with what to do
    const bare = await startSimulatedRouter({ state: cutoverState(), editSeed: (s) => ({ ...s, interfaces: { ...s.interfaces, opt2: { ...s.interfaces.opt2!, enable: false } } }) });
    try {
      const bareState = { ...base, opnsense: { ...base.opnsense, host: bare.host, port: bare.port, fingerprint: bare.fingerprint } };
      const e = await requireRouterReady({ state: bareState, env: { ...bare.env }, credentialsFile: '/nonexistent/credentials' }, direct(bareState)).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(PreflightError);
      expect(isUnreachable(e)).toBe(false);
      expect((e as PreflightError).diagnostics[0]).toMatchObject({ code: 'CUTOVER_ROUTER_NOT_READY', path: 'proxmox.cutover.gateway' });
      expect((e as Error).message).toMatch(/does not answer at 10\.10\.99\.1 on vtnet0 \(opt2, the VM's NIC on vmbr1\): opt2 is on vtnet0, disabled/);
    } finally {
      await bare.close();
    }
  });
});
