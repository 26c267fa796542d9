/**
 * "Revert if unreachable" for an OPNsense apply (root only; skipped with the reason otherwise).
 * The REST side is the OPNsense double on loopback; OPNsense's shell is a real sshd in a network
 * namespace (the "host" namespace of the cutover rig, at 10.251.1.1, reached from the admin
 * namespace through a byte pipe), with stand-ins for FreeBSD's `daemon` and OPNsense's `configctl`
 * that record what they were asked, and a fake /conf (config.xml and backup/<id> files) — all
 * through the stage's overridable paths. dualwan logs in with the key of
 * DUALWAN_SSH_PRIVATE_KEY_FILE and the host key pinned in opnsense.sshHostKey, as in real life.
 * - A normal apply arms the timer before the first write and disarms it through a fresh SSH
 *   session once a fresh API connection reads every change back: nothing is restored, no timer
 *   process is left.
 * - The API stops answering after the apply: the timer is not disarmed, it fires, copies the
 *   noted backup over config.xml and runs `configctl service reload all`; the test then lets the
 *   REST double answer again (the "restored" router), and the report says the timer restored it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import type { Step } from '../../src/core/ui';
import { applyWithBackup, opnsenseStage, type OpnsenseStageOptions } from '../../src/flows/opnsense';
import { desiredHash } from '../../src/flows/router-vm';
import type { StageEnv, StageSession } from '../../src/flows/stage';
import { makePlan, observe } from '../../src/plan/engine';
import { OpnsenseApplyError } from '../../src/providers/opnsense/backup';
import { loadState, QuietUi } from '../doubles/opnsense/harness';
import { startSimulatedRouter, writeRouterPlaybook, type SimulatedRouter } from '../doubles/opnsense/simulated-router';
import { CutoverNamespaces } from '../helpers/cutover-namespaces';
import { describeIfRoot } from '../lab/jest-lab';
import { until } from '../helpers/until';

jest.setTimeout(120_000);

const lab = new CutoverNamespaces('dwrt');
let router: SimulatedRouter | undefined;

/** Runs the apply's steps, then `after` (what happens to the router once the last post-action ran). */
class AfterStepsUi extends QuietUi {
  constructor(private readonly after: () => void = () => undefined) {
    super();
  }
  override async runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    await super.runSteps(ctx, steps);
    this.after();
  }
}

const conf = () => path.join(lab.dir, 'conf');
const standInLog = () => path.join(lab.dir, 'stand-in.log');
const readLog = () => (fs.existsSync(standInLog()) ? fs.readFileSync(standInLog(), 'utf8') : '');

function build(): void {
  lab.build("OPNsense's sshd for the revert-timer test", (dir) => {
    const log = path.join(dir, 'stand-in.log');
    fs.mkdirSync(path.join(dir, 'bin'));
    // FreeBSD's daemon(8) -f: detach (own session, stdio on /dev/null) and return at once
    fs.writeFileSync(path.join(dir, 'bin', 'daemon'), `#!/bin/sh\n# test stand-in for FreeBSD's daemon -f\n[ "$1" = -f ] || { echo "daemon: usage: daemon -f command" >&2; exit 64; }\nshift\necho "daemon -f $*" >> ${log}\nsetsid -f "$@" </dev/null >/dev/null 2>&1\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'bin', 'configctl'), `#!/bin/sh\n# test stand-in for OPNsense's configctl\necho "configctl $*" >> ${log}\necho OK\n`, { mode: 0o755 });
  });
}

/** A fake /conf: config.xml (the applied config) and one history file per backup the double lists. */
function writeConf(): void {
  fs.rmSync(conf(), { recursive: true, force: true });
  fs.mkdirSync(path.join(conf(), 'backup'), { recursive: true });
  for (const b of router!.controls.state.backups) fs.writeFileSync(path.join(conf(), 'backup', b.id), `<opnsense><!-- history copy ${b.id} --></opnsense>\n`);
  fs.writeFileSync(path.join(conf(), 'config.xml'), '<opnsense><!-- what the apply left --></opnsense>\n');
  fs.rmSync(standInLog(), { force: true });
}

/** Processes whose command line names the timer's state directory (its waiting shell). */
function timerProcesses(stateDir: string): string[] {
  return lab
    .run(['ps', '-eo', 'pid=,args='])
    .out.split('\n')
    .filter((l) => l.includes(`${stateDir}/`));
}

/** Opens the OPNsense stage as `dualwan apply` does, with the key file and the pinned SSH host key. */
async function open(ui: QuietUi, stateDir: string, timeoutSeconds: number): Promise<{ session: StageSession; env: StageEnv; apply: () => Promise<unknown> }> {
  const dir = fs.mkdtempSync(path.join(lab.dir, 'run-'));
  const file = writeRouterPlaybook(router!, dir, 'hotspot-failover.yaml', (doc) => doc.setIn(['opnsense', 'sshHostKey'], lab.hostKeyPin()));
  expect(parseDocument(fs.readFileSync(file, 'utf8')).getIn(['opnsense', 'sshHostKey'])).toMatch(/^SHA256:/);
  const state = loadState(file);
  const env: StageEnv = { state, ui, trustOnFirstUse: true, credentialsFile: path.join(dir, 'no-credentials'), env: { ...router!.env, DUALWAN_SSH_PRIVATE_KEY_FILE: path.join(lab.dir, 'client_key') }, earlier: [] };
  const revertTimer: OpnsenseStageOptions['revertTimer'] = {
    kind: 'daemon',
    stateDir,
    timeoutSeconds,
    paths: { config: path.join(conf(), 'config.xml'), backupDir: path.join(conf(), 'backup') },
    bin: { daemon: path.join(lab.dir, 'bin', 'daemon'), configctl: path.join(lab.dir, 'bin', 'configctl') },
    openSocket: () => lab.pipeTo('10.251.1.1'),
  };
  const stage = opnsenseStage({ gatewayListWaitMs: 2_000, revertBackoffMs: 200, client: { requestTimeoutMs: 1_000 }, reachAttempts: 4, reachWithinMs: 8_000, revertTimer });
  const session = await stage.open(env);
  const pinned = loadState(file); // with the certificate pinned on first use
  return {
    session,
    env: { ...env, state: pinned },
    async apply() {
      const plan = makePlan(session.handlers, await observe(session.ctx, session.handlers), desiredHash(pinned), new Date().toISOString());
      expect(plan.changes.filter((c) => c.action !== 'noop').length).toBeGreaterThan(0);
      return applyWithBackup(session, plan, { state: pinned, ui });
    },
  };
}

describeIfRoot('the revert timer of an OPNsense apply, on a real sshd in a network namespace', () => {
  beforeAll(async () => {
    process.once('exit', () => lab.teardown());
    build();
    router = await startSimulatedRouter();
  });
  afterAll(async () => {
    await router?.close();
    lab.teardown();
  });
  beforeEach(() => {
    router!.controls.reset();
    writeConf();
  });

  it('a normal apply arms the timer before the first write and disarms it over a fresh SSH session; nothing is restored', async () => {
    const ui = new AfterStepsUi();
    const stateDir = path.join(lab.dir, 'state-ok');
    const run = await open(ui, stateDir, 60);
    try {
      const writesBefore = router!.controls.writeCount;
      await run.apply();
      const codes = ui.notices.map((n) => n.code);
      // backup noted, then the timer armed, and only then the writes; after the re-reach, disarmed
      expect(codes.indexOf('OPNSENSE_BACKUP')).toBeLessThan(codes.indexOf('OPNSENSE_REVERT_TIMER_ARMED'));
      expect(codes.indexOf('OPNSENSE_REVERT_TIMER_ARMED')).toBeLessThan(codes.indexOf('OPNSENSE_REACHED_AFTER_APPLY'));
      expect(codes.indexOf('OPNSENSE_REACHED_AFTER_APPLY')).toBeLessThan(codes.indexOf('OPNSENSE_REVERT_TIMER_DISARMED'));
      expect(codes).not.toContain('OPNSENSE_NO_REVERT_TIMER');
      expect(router!.controls.writeCount).toBeGreaterThan(writesBefore);
      const armed = ui.notices.find((n) => n.code === 'OPNSENSE_REVERT_TIMER_ARMED')!;
      const backupId = (ui.notices.find((n) => n.code === 'OPNSENSE_BACKUP')!.data as { id: string }).id;
      expect(armed.data).toMatchObject({ backup: backupId, timeoutSeconds: 60 });
      expect(armed.text).toContain(`restores backup ${backupId}`);
      // the stand-in daemon was asked to detach the waiting shell; no restore ran
      const log = readLog();
      expect(log).toMatch(new RegExp(`^daemon -f /bin/sh ${stateDir}/dualwan-apply-[0-9a-f]{8}\\.wait\\.sh$`, 'm'));
      expect(log).not.toContain('configctl');
      expect(fs.readFileSync(path.join(conf(), 'config.xml'), 'utf8')).toContain('what the apply left');
      // disarmed: its waiting process is gone (so it can never fire) and its files are cleaned up
      await until(() => timerProcesses(stateDir).length === 0, 5_000, 'the timer process ends');
      expect(fs.readdirSync(stateDir)).toEqual([]);
    } finally {
      await run.session.close();
    }
  });

  it('the API stops answering after the apply: not disarmed, the timer restores the noted backup, and the report says so', async () => {
    const ui = new AfterStepsUi(() => router!.controls.stopAnswering());
    const stateDir = path.join(lab.dir, 'state-fire');
    const run = await open(ui, stateDir, 25);
    try {
      const applying = run.apply().catch((e: unknown) => e);
      // the router is "restored" when the timer has run configctl: it answers again from then on
      await until(() => readLog().includes('configctl service reload all'), 60_000, 'the timer runs configctl');
      router!.controls.resumeAnswering();
      const err = (await applying) as OpnsenseApplyError;
      expect(err).toBeInstanceOf(OpnsenseApplyError);
      const backupId = (ui.notices.find((n) => n.code === 'OPNSENSE_BACKUP')!.data as { id: string }).id;
      expect(err.backupId).toBe(backupId);
      const codes = ui.notices.map((n) => n.code);
      expect(codes).toContain('OPNSENSE_WAITING_FOR_REVERT_TIMER');
      expect(codes).not.toContain('OPNSENSE_REVERT_TIMER_DISARMED');
      expect(codes).not.toContain('OPNSENSE_REACHED_AFTER_APPLY');
      // what the timer did on "OPNsense": the noted backup copied over config.xml, then every service reloaded
      expect(fs.readFileSync(path.join(conf(), 'config.xml'), 'utf8')).toBe(`<opnsense><!-- history copy ${backupId} --></opnsense>\n`);
      expect(readLog()).toMatch(/configctl service reload all\n$/);
      // the report
      expect(err.code).toBe('OPNSENSE_APPLY_REVERTED');
      expect(err.reverted).toBe(true);
      const lines = err.message.split('\n');
      expect(lines[0]).toMatch(/^OPNsense at 127\.0\.0\.1:\d+ did not answer a fresh connection after the apply \(\d+ tries in \d+ s; last: /);
      expect(lines[1]).toBe(`The revert timer armed on OPNsense before the first write fired: it restored backup ${backupId} (the configuration from before this apply, ${path.join(conf(), 'config.xml')}) and reloaded all services, and OPNsense answers a fresh connection again.`);
      expect(err.message).toContain('  applied, then reverted by the timer:');
      expect(err.message).toContain(`+ cp -- ${path.join(conf(), 'backup', backupId)} ${path.join(conf(), 'config.xml')}`);
      expect(err.message).toContain(`+ ${path.join(lab.dir, 'bin', 'configctl')} service reload all`);
      expect(err.remedy).toMatch(/cut the path from this machine to OPNsense/);
      expect(err.applied.length).toBeGreaterThan(0);
      // the timer is done: its state says fired, no process left
      expect(fs.readFileSync(path.join(stateDir, `${(ui.notices.find((n) => n.code === 'OPNSENSE_REVERT_TIMER_ARMED')!.data as { id: string }).id}.state`), 'utf8')).toBe('fired\n');
      expect(timerProcesses(stateDir)).toEqual([]);
    } finally {
      router!.controls.resumeAnswering();
      await run.session.close();
    }
  });
});
