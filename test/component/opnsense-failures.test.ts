// What an OPNsense apply does when OPNsense refuses, stops answering, or is too old.
import { renderError } from '../../src/cli/render';
import { CapabilityError, ValidationError } from '../../src/core/errors';
import { pendingChanges } from '../../src/core/plan';
import { OpnsenseApplyError } from '../../src/providers/opnsense/backup';
import { OpnsenseStepError } from '../../src/providers/opnsense/resources/common';
import { openRouterRun } from '../doubles/opnsense/harness';
import { type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { useSimulatedRouter } from '../helpers/router-fixture';

let router: SimulatedRouter;
useSimulatedRouter((r) => (router = r));

const snapshot = () => JSON.stringify(router.controls.state.config);

it('a validation failure surfaces as "Unable to <verb> <resource> <name>: <field>: <message>" (exit 1), nothing written', async () => {
  const run = await openRouterRun(router);
  try {
    const plan = await run.plan();
    const before = snapshot();
    router.controls.failNextWrite({ field: 'interface.descr', message: 'Invalid description.' });
    const err = await run.apply(plan).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpnsenseApplyError);
    const e = err as OpnsenseApplyError;
    expect(e.message.split('\n')[0]).toBe('Unable to update interface wan (igc0): interface.descr: Invalid description.');
    expect(e.cause).toBeInstanceOf(OpnsenseStepError);
    expect((e.cause as OpnsenseStepError).validation).toBeInstanceOf(ValidationError);
    expect(e.message).toContain('Nothing was written before the failure; OPNsense is unchanged.');
    expect(e.reverted).toBe(false);
    // what the CLI prints (and any thrown error is exit 1)
    expect(renderError(e, false).split('\n')[0]).toBe('Error: Unable to update interface wan (igc0): interface.descr: Invalid description.');
    expect(router.controls.writeCount).toBe(0);
    expect(snapshot()).toBe(before);
    expect(router.controls.requests.some((r) => r.path.includes('revert_backup'))).toBe(false);
  } finally {
    await run.close();
  }
});

it('a failure injected midway restores the backup, re-applies, and reports what was reverted', async () => {
  const run = await openRouterRun(router);
  try {
    const plan = await run.plan();
    const before = snapshot();
    // the 3 interface and 2 gateway writes pass; the gateway group is refused
    router.controls.failNextWrite({ after: 5, field: 'gateway_group.item', message: 'option not in list' });
    const err = (await run.apply(plan).catch((e: unknown) => e)) as OpnsenseApplyError;
    expect(err).toBeInstanceOf(OpnsenseApplyError);
    const lines = err.message.split('\n');
    expect(lines[0]).toBe('Unable to create gateway group DUALWAN: gateway_group.item: option not in list');
    expect(lines[1]).toMatch(/^OPNsense was put back as it was before this apply: reverted to configuration backup config-[\d.]+\.xml \(noted before the first write\), then re-applied interfaces\/assignment\/reconfigure, routing\/settings\/reconfigure, routing\/group_settings\/reconfigure\.$/);
    expect(err.message).toContain(
      [
        '  applied, then reverted:',
        '    ~ update opnsense.interface/wan',
        '    ~ update opnsense.interface/opt1',
        '    ~ update opnsense.interface/lan',
        '    ~ update opnsense.gateway/WAN_DHCP',
        '    ~ update opnsense.gateway/WAN2_DHCP',
        '  failed:',
        '    + create opnsense.gateway-group/DUALWAN',
        '  not attempted:',
        '    ~ update opnsense.outbound-nat/mode',
      ].join('\n'),
    );
    expect(err.reverted).toBe(true);
    expect(err.applied.map((a) => a.address)).toHaveLength(5);
    expect(err.failed).toEqual({ address: 'opnsense.gateway-group/DUALWAN', action: 'create' });
    expect(err.notAttempted).toHaveLength(5);
    // config.xml is back to what it was, and what runs follows it again
    expect(snapshot()).toBe(before);
    expect(router.controls.unapplied()).toEqual([]);
    const revert = router.controls.requests.find((r) => r.path.startsWith('/api/core/backup/revert_backup/'))!;
    expect(revert.path).toBe(`/api/core/backup/revert_backup/${err.backupId}`);
    // the next run plans the same changes again
    expect(pendingChanges(await run.plan()).length).toBe(pendingChanges(plan).length);
    expect(router.controls.contractViolations).toEqual([]);
  } finally {
    await run.close();
  }
});

it('when the API stops answering midway, the revert is retried once it answers again', async () => {
  const run = await openRouterRun(router, { stage: { client: { requestTimeoutMs: 1_000 } } });
  try {
    const plan = await run.plan();
    const before = snapshot();
    const n = router.controls.requests.length;
    // answer the backup list/download, the apply's re-read (5 searches + 1 get) and 5 writes with
    // their read-backs, then swallow one request: the gateway group write
    router.controls.stopAnswering({ after: 2 + 6 + 5 * 2, count: 1, process: true });
    const err = (await run.apply(plan).catch((e: unknown) => e)) as OpnsenseApplyError;
    expect(router.controls.requests.length).toBeGreaterThan(n);
    expect(err).toBeInstanceOf(OpnsenseApplyError);
    expect(err.message.split('\n')[0]).toBe('Unable to create opnsense.gateway-group/DUALWAN: opnsense POST routing/group_settings/add: no answer: timed out after 1000 ms');
    expect(err.reverted).toBe(true);
    expect(err.failed?.address).toBe('opnsense.gateway-group/DUALWAN');
    expect(snapshot()).toBe(before); // the swallowed write had been saved: the revert undid it too
  } finally {
    await run.close();
  }
});

it('when a reconfigure fails after all writes, the revert covers every change and names the post-action', async () => {
  const run = await openRouterRun(router, { stage: { client: { requestTimeoutMs: 1_000 } } });
  try {
    const plan = await run.plan();
    const before = snapshot();
    // backup (2) + re-read (6) + 11 writes with read-backs; then the first post-action is swallowed
    router.controls.stopAnswering({ after: 2 + 6 + 11 * 2, count: 1 });
    const err = (await run.apply(plan).catch((e: unknown) => e)) as OpnsenseApplyError;
    expect(err).toBeInstanceOf(OpnsenseApplyError);
    expect(err.message.split('\n')[0]).toBe('opnsense POST interfaces/assignment/reconfigure: no answer: timed out after 1000 ms');
    expect(err.message).toContain('  failed:\n    → interfaces/assignment/reconfigure');
    expect(err.applied).toHaveLength(11);
    expect(err.reverted).toBe(true);
    expect(snapshot()).toBe(before);
    expect(router.controls.unapplied()).toEqual([]);
  } finally {
    await run.close();
  }
});

it('when the API never answers again, the report says the revert did not happen and how to do it by hand', async () => {
  const run = await openRouterRun(router, { stage: { client: { requestTimeoutMs: 1_000 }, revertAttempts: 2 } });
  try {
    const plan = await run.plan();
    router.controls.stopAnswering({ after: 2 + 6 + 2 * 2 });
    const err = (await run.apply(plan).catch((e: unknown) => e)) as OpnsenseApplyError;
    expect(err).toBeInstanceOf(OpnsenseApplyError);
    expect(err.reverted).toBe(false);
    expect(err.message).toContain(`The revert to configuration backup ${err.backupId} did NOT happen`);
    expect(err.message).toContain('  applied:\n    ~ update opnsense.interface/wan\n    ~ update opnsense.interface/opt1\n  failed:\n    ~ update opnsense.interface/lan');
    expect(err.remedy).toContain(`System > Configuration > History, backup ${err.backupId}`);
  } finally {
    router.controls.resumeAnswering();
    await run.close();
  }
});

it('OPNsense 26.1 → a capability error before any write', async () => {
  router.controls.setVersion('26.1.9');
  try {
    const err = await openRouterRun(router).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapabilityError);
    const e = err as CapabilityError;
    expect(e.message).toMatch(/^OPNsense 26\.1\.9 at 127\.0\.0\.1:\d+ is older than 26\.7 and lacks what dualwan needs:/);
    expect(e.message).toContain('gateway groups by API (routing/group_settings): since 26.7');
    expect(e.message).toContain('Nothing was written.');
    expect(e.remedy).toMatch(/^Upgrade OPNsense to 26\.7 or newer/);
    expect(router.controls.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /api/core/firmware/status']);
    expect(router.controls.writeCount).toBe(0);
  } finally {
    router.controls.setVersion('26.7.2');
  }
});
