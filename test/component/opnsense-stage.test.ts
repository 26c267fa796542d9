// The OPNsense stage: deferral, credentials, pinning, preflight, drift repair, the gateway-list
// cache, stale plans and sticky hosts.
import * as fs from 'node:fs';
import { CredentialsError, PreflightError, StalePlanError } from '../../src/core/errors';
import { pendingChanges, type Plan } from '../../src/core/plan';
import { opnsenseDeferred } from '../../src/flows/opnsense';
import { openRouterRun, QuietUi } from '../doubles/opnsense/harness';
import { startSimulatedRouter, type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { rawCall } from '../doubles/opnsense/test-client';
import { useSimulatedRouter } from '../helpers/router-fixture';

let router: SimulatedRouter;
useSimulatedRouter((r) => (router = r));

const planWith = (changes: { kind: string; action: Plan['changes'][number]['action'] }[]): Plan =>
  ({ formatVersion: 1, tool: 't', createdAt: '', desiredHash: '', postActions: [], changes: changes.map((c) => ({ ...c, address: `${c.kind}/x`, properties: [], disruption: [], dependsOn: [], observedFingerprint: null, desired: null })) }) as Plan;

it('defers planning while the earlier Proxmox stage creates or starts the router VM', () => {
  expect(opnsenseDeferred({ earlier: [] })).toBeUndefined();
  expect(opnsenseDeferred({ earlier: [{ stage: 'proxmox', plan: planWith([{ kind: 'proxmox.vm', action: 'create' }]) }] })).toMatch(/router VM is created by this apply/);
  expect(opnsenseDeferred({ earlier: [{ stage: 'proxmox', plan: planWith([{ kind: 'proxmox.vm-state', action: 'update' }]) }] })).toMatch(/started by this apply/);
  expect(opnsenseDeferred({ earlier: [{ stage: 'proxmox', plan: planWith([{ kind: 'proxmox.vm', action: 'noop' }]) }] })).toBeUndefined();
});

it('needs the API key and secret, and asks for nothing else before it has them', async () => {
  const saved = { ...router.env };
  Object.assign(router.env, { DUALWAN_OPNSENSE_API_KEY: '' });
  try {
    const err = await openRouterRun(router).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialsError);
    expect((err as Error).message).toMatch(/needs DUALWAN_OPNSENSE_API_KEY/);
    expect(router.controls.requests).toEqual([]);
  } finally {
    Object.assign(router.env, saved);
  }
});

it('pins the certificate on first contact into dualwan.yaml at opnsense.fingerprint', async () => {
  const ui = new QuietUi();
  const run = await openRouterRun(router, { ui });
  try {
    expect(fs.readFileSync(run.file, 'utf8')).toContain(`fingerprint: ${router.fingerprint}`);
    expect(run.state.opnsense?.fingerprint).toBe(router.fingerprint);
    expect(ui.notices.map((n) => n.code)).toEqual(expect.arrayContaining(['TLS_FIRST_CONTACT', 'TLS_PINNED', 'OPNSENSE_VERSION', 'OPNSENSE_PREFLIGHT_OK']));
  } finally {
    await run.close();
  }
});

it('refuses, before any write, a WAN interface the bootstrap did not enable', async () => {
  const r2 = await startSimulatedRouter({ editSeed: (s) => ({ ...s, interfaces: { ...s.interfaces, opt1: { ...s.interfaces.opt1!, enable: false } } }) });
  try {
    const err = await openRouterRun(r2).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PreflightError);
    expect((err as PreflightError).diagnostics.map((d) => d.code)).toEqual(['OPNSENSE_INTERFACE_DISABLED']);
    expect((err as Error).message).toContain('OPNsense interface WAN2 (opt1, for WAN hotspot) is not enabled');
    expect(r2.controls.writeCount).toBe(0);
  } finally {
    await r2.close();
  }
});

it('relinks a WAN whose device drifted and applies it with interfaces/assignment/reconfigure', async () => {
  const r2 = await startSimulatedRouter({ editSeed: (s) => ({ ...s, devices: [...s.devices, 'igc1'], interfaces: { ...s.interfaces, wan: { ...s.interfaces.wan!, if: 'igc1', lock: true } } }) });
  const run = await openRouterRun(r2);
  try {
    const plan = await run.plan();
    const wan = pendingChanges(plan).find((c) => c.address === 'opnsense.interface/wan')!;
    expect(wan.properties).toEqual([{ path: 'if', before: 'igc1', after: 'igc0' }]);
    expect(wan.disruption).toEqual(['reloads-firewall']);
    await run.apply(plan);
    expect(r2.controls.state.applied.interfaces.wan!.if).toBe('igc0');
    expect(pendingChanges(await run.plan())).toEqual([]);
  } finally {
    await run.close();
    await r2.close();
  }
});

it("waits, bounded and said out loud, while OPNsense's cached gateway list does not show the new group yet", async () => {
  const r2 = await startSimulatedRouter({ gatewayListCacheMs: 1_500 });
  const ui = new QuietUi();
  const run = await openRouterRun(r2, { ui, stage: { sleep: (ms) => new Promise((res) => setTimeout(res, Math.min(ms, 250))), gatewayListWaitMs: 8_000 } });
  try {
    await run.apply(await run.plan());
    expect(ui.notices.filter((n) => n.code === 'OPNSENSE_GATEWAY_LIST_WAIT').map((n) => n.text)).toEqual([expect.stringMatching(/^OPNsense does not list DUALWAN yet \(its gateway list is cached for up to 20 s\)/)]);
    expect(r2.controls.requests.filter((r) => r.endpoint === 'firewall.filter.set_rule').length).toBeGreaterThan(1);
    expect(pendingChanges(await run.plan())).toEqual([]);
  } finally {
    await run.close();
    await r2.close();
  }
});

it('refuses a stale plan before writing anything', async () => {
  const run = await openRouterRun(router);
  try {
    const plan = await run.plan();
    await rawCall(router.controls, 'POST', '/api/routing/settings/set_gateway/WAN_DHCP', { body: { gateway_item: { name: 'WAN_DHCP', interface: 'wan', monitor: '8.8.8.8' } } });
    const writes = router.controls.writeCount;
    const err = await run.apply(plan).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StalePlanError);
    expect((err as Error).message).toContain('opnsense.gateway/WAN_DHCP changed since it was planned');
    expect(router.controls.writeCount).toBe(writes);
  } finally {
    await run.close();
  }
});

it('routes sticky hosts through their WAN with a rule before the LAN default', async () => {
  const run = await openRouterRun(router, { edit: (doc) => doc.setIn(['policy', 'stickyHosts'], [{ destination: '198.51.100.23', wan: 'isp' }]) });
  try {
    await run.apply(await run.plan());
    const rules = Object.values(router.controls.state.config.rules).sort((a, b) => Number(a.sequence) - Number(b.sequence));
    expect(rules.filter((r) => r.ipprotocol === 'inet').map((r) => [r.sequence, r.destination_net, r.gateway])).toEqual([
      ['10', 'lanip', ''],
      ['20', '198.51.100.23/32', 'WAN_DHCP'],
      ['100', 'any', 'DUALWAN'],
    ]);
    router.controls.setLinkHealth('wan', { up: false });
    expect(router.controls.openConnection({ src: '192.168.10.100', dst: '198.51.100.23' })).toMatchObject({ gateway: 'WAN_DHCP' });
    expect(router.controls.openConnection({ src: '192.168.10.100', dst: '203.0.113.9' })).toMatchObject({ gateway: 'WAN2_DHCP' });
  } finally {
    await run.close();
  }
});
