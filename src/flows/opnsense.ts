import * as fs from 'node:fs';
import type { Duplex } from 'node:stream';
import type { Diagnostic } from '../core/diagnostics';
import { DualwanError, PreflightError } from '../core/errors';
import type { ApplyReport, Change, Plan } from '../core/plan';
import { pendingChanges } from '../core/plan';
import type { Step, Ui } from '../core/ui';
import { applyPlan, makePlan, observe, symbol, type AnyHandler } from '../plan/engine';
import type { ArmedDeadman, DeadmanKind } from '../cutover/deadman';
import { connectSsh } from '../providers/linux/ssh';
import { revertToBackup, takeBackup, OpnsenseApplyError, type ApplyOutcome, type BackupPoint } from '../providers/opnsense/backup';
import { armRevertTimer, disarmRevertTimer, revertTimerReport, RevertTimerError, REVERT_TIMER_DEFAULTS, type RevertTimer, type RevertTimerSettings } from '../providers/opnsense/revert-timer';
import { readCapabilities, requireDualWanCapabilities } from '../providers/opnsense/capabilities';
import { OpnsenseClient, type OpnsenseClientOptions } from '../providers/opnsense/client';
import { isOpnsenseContext, type OpnsenseContext } from '../providers/opnsense/context';
import { removeStaleDrillRules } from '../providers/opnsense/drill';
import { layoutOf, type Layout } from '../providers/opnsense/layout';
import { opnsenseHandlers } from '../providers/opnsense/provider';
import { FirmwareStatusSchema, gridSchema, InterfaceInfoRowSchema } from '../providers/opnsense/schemas';
import { loadCredentials, type Credentials } from '../secrets/credentials';
import { redact } from '../secrets/redact';
import { openOpnsenseReach } from './opnsense-route';
import { desiredHash } from './router-vm';
import type { Stage, StageEnv, StageSession } from './stage';
import { ensurePinned } from './trust';

export interface OpnsenseStageOptions {
  /** Client timeouts (defaults: connect 10 s, request 60 s). */
  readonly client?: Pick<OpnsenseClientOptions, 'connectTimeoutMs' | 'requestTimeoutMs'>;
  readonly sleep?: (ms: number) => Promise<void>;
  /** How long a rule naming a just-stored group is retried (default 30 s; configd caches 20 s). */
  readonly gatewayListWaitMs?: number;
  /** Where a copy of the pre-apply config backup is saved (mode 0600); default: kept in memory. */
  readonly backupDir?: string;
  /** Attempts and backoff of the revert when OPNsense does not answer (default 3, 1 s). */
  readonly revertAttempts?: number;
  readonly revertBackoffMs?: number;
  /** After the apply: how long (default 120 s) and how many times (default 8) a fresh connection is tried. */
  readonly reachWithinMs?: number;
  readonly reachAttempts?: number;
  /**
   * With proxmox.cutover: whether the cutover is done, when the caller knows (tests); by default
   * the Proxmox host is asked. Until it is done OPNsense is reached through the host (opnsense-route.ts).
   */
  readonly cutoverDone?: boolean;
  /**
   * The revert timer on OPNsense (revert-timer.ts): defaults for a real OPNsense; tests give the
   * paths and programs of a stand-in shell, a short timeout, and `openSocket` (the byte stream to
   * its sshd) instead of TCP to opnsense.host:port.
   */
  readonly revertTimer?: {
    readonly port?: number;
    readonly kind?: DeadmanKind;
    readonly stateDir?: string;
    readonly timeoutSeconds?: number;
    readonly paths?: Partial<RevertTimerSettings['paths']>;
    readonly bin?: Partial<RevertTimerSettings['bin']>;
    readonly openSocket?: () => Duplex;
    /** SSH handshake deadline (default 15 s). */
    readonly readyTimeoutMs?: number;
  };
}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The OPNsense router, configured over its REST API: interface assignments, gateways with
 * monitoring, the gateway group, outbound NAT, LAN rules. `apply` for this stage must go through
 * `applyWithBackup` (exposed as `apply` on the stage), which backs up first and reverts on failure.
 */
export function opnsenseStage(opts: OpnsenseStageOptions = {}): Stage & { apply(session: StageSession, plan: Plan, env: Pick<StageEnv, 'state' | 'ui'>): Promise<ApplyReport> } {
  return {
    name: 'opnsense',
    title: 'OPNsense router',
    deferred: opnsenseDeferred,
    async open(env): Promise<StageSession<OpnsenseContext>> {
      const { state, ui } = env;
      const t = state.opnsense;
      if (!t) throw new DualwanError('OPNSENSE_NOT_CONFIGURED', 'dualwan.yaml has no OPNsense router (backend opnsense-vm).', { source: 'user', remedy: 'Use backend: opnsense-vm to configure an OPNsense router.' });
      const creds = loadCredentials({ env: env.env, file: env.credentialsFile });
      const apiKey = creds.require('DUALWAN_OPNSENSE_API_KEY', `The OPNsense API at ${t.host}:${t.port}`);
      const apiSecret = creds.require('DUALWAN_OPNSENSE_API_SECRET', `The OPNsense API at ${t.host}:${t.port}`);
      // before the cutover (proxmox.cutover) through the Proxmox host, else at opnsense.host
      const reach = await openOpnsenseReach(env, opts.cutoverDone === undefined ? {} : { cutoverDone: opts.cutoverDone });
      const where = reach.where;
      let client: OpnsenseClient | undefined;
      try {
        const fingerprint = await ensurePinned({
          system: 'OPNsense',
          host: reach.client.host,
          port: reach.client.port,
          pinned: t.fingerprint,
          trustOnFirstUse: env.trustOnFirstUse,
          ui,
          record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['opnsense', 'fingerprint'] } : undefined,
          compareWith: 'the web GUI certificate in System > Trust > Certificates',
          ...(reach.via ? { via: reach.via } : {}),
        });
        client = new OpnsenseClient({ ...reach.client, apiKey, apiSecret, fingerprint, ...opts.client });
        // Capabilities before anything else: an older OPNsense is refused before any write.
        const caps = await readCapabilities(client);
        requireDualWanCapabilities(caps, where);
        ui.notify({ code: 'OPNSENSE_VERSION', level: 'info', text: `${caps.product} ${caps.version.text} at ${where}${reach.text ? ` ${reach.text}` : ''}.`, data: { version: caps.version.text, route: reach.route.kind } });
        const layout = layoutOf(state);
        await preflightInterfaces(client, layout, ui);
        const revertTimer = revertTimerFor(t, creds, reach.route.kind === 'direct', opts.revertTimer);
        const ctx: OpnsenseContext = {
          system: 'opnsense',
          state,
          client,
          layout,
          caps,
          ui,
          sleep: opts.sleep ?? realSleep,
          gatewayListWaitMs: opts.gatewayListWaitMs ?? 30_000,
          backup: {
            ...(opts.backupDir ? { dir: opts.backupDir } : {}),
            revertAttempts: opts.revertAttempts ?? 3,
            revertBackoffMs: opts.revertBackoffMs ?? 1_000,
            reachWithinMs: opts.reachWithinMs ?? 120_000,
            reachAttempts: opts.reachAttempts ?? 8,
          },
          revertTimer,
        };
        const opened = client;
        return {
          ctx,
          handlers: opnsenseHandlers(),
          writeCalls: () => opened.writeCalls,
          close: async () => {
            opened.close();
            await reach.close();
          },
        };
      } catch (e) {
        client?.close();
        await reach.close();
        throw e;
      }
    },
    apply: (session, plan, env) => applyWithBackup(session, plan, env),
  };
}

/** OPNsense can only be planned once its VM exists and runs, and has been given its API key. */
export function opnsenseDeferred(env: Pick<StageEnv, 'earlier'>): string | undefined {
  const pve = env.earlier.find((e) => e.stage === 'proxmox');
  const pending = pve ? pendingChanges(pve.plan) : [];
  if (pending.some((c) => c.kind === 'proxmox.vm' && c.action === 'create')) return 'the router VM is created by this apply; OPNsense is configured once it runs';
  if (pending.some((c) => c.kind === 'proxmox.vm-state')) return 'the router VM is started by this apply; OPNsense is configured once it answers';
  const boot = env.earlier.find((e) => e.stage === 'bootstrap');
  if (boot && pendingChanges(boot.plan).length) return 'the bootstrap of this apply gives OPNsense its first configuration and API key; OPNsense is configured once it answers with that key';
  return undefined;
}

/**
 * Every interface dualwan routes through must be assigned and enabled: the 26.7 API can neither
 * enable an interface nor give it an address (the bootstrap seeds them), and a gateway on a
 * disabled interface is refused.
 */
async function preflightInterfaces(client: OpnsenseClient, layout: Layout, ui: Ui): Promise<void> {
  const grid = await client.get('interfaces/overview/interfaces_info', gridSchema(InterfaceInfoRowSchema));
  const found: Diagnostic[] = [];
  for (const i of layout.interfaces) {
    const row = grid.rows.find((r) => r.identifier === i.identifier);
    const what = `${i.descr} (${i.identifier}, for ${i.uplink === 'lan' ? 'the LAN' : `WAN ${i.uplink}`})`;
    if (!row) {
      found.push({
        severity: 'error',
        code: 'OPNSENSE_INTERFACE_MISSING',
        message: `OPNsense has no interface ${what}.`,
        remedy: `The OPNsense API cannot create an enabled interface with an address. Let the dualwan bootstrap seed it, or in the GUI assign ${i.device} (Interfaces > Assignments), enable it with IPv4 ${i.role === 'wan' ? 'DHCP' : 'static'}, then run apply again.`,
      });
    } else if (row.enabled === false) {
      found.push({
        severity: 'error',
        code: 'OPNSENSE_INTERFACE_DISABLED',
        message: `OPNsense interface ${what} is not enabled; a gateway on it would be refused.`,
        remedy: `Enable it in Interfaces > ${i.descr} (the API cannot), then run apply again.`,
      });
    }
  }
  const link = layout.hostLink;
  if (link) {
    // The Proxmox host's gateway after the cutover: seeded, static, the API cannot address it.
    const row = grid.rows.find((r) => r.identifier === link.identifier);
    const want = `${link.address}/${link.prefix}`;
    const what = `${link.descr} (${link.identifier} on ${link.device}, the router's NIC on the Proxmox bridge ${link.bridge})`;
    const fix = `In the GUI assign ${link.device} as ${link.identifier} (Interfaces > Assignments), enable it with static IPv4 ${want} (no gateway); the dualwan bootstrap seeds this for a new router. Then run apply again.`;
    if (!row || row.device !== link.device) {
      found.push({ severity: 'error', code: 'OPNSENSE_HOST_LINK_MISSING', message: `OPNsense has no interface ${what}${row ? ` (${link.identifier} is on ${row.device})` : ''}; the cutover needs the router at ${link.address} there.`, remedy: fix, path: 'proxmox.cutover.gateway' });
    } else if (row.enabled === false || (row.addr4 ?? '').split('/')[0] !== link.address) {
      found.push({ severity: 'error', code: 'OPNSENSE_HOST_LINK_ADDRESS', message: `OPNsense interface ${what} is ${row.enabled === false ? 'not enabled' : `at ${row.addr4 || 'no address'}`}, not at ${want}; the Proxmox host would not reach its gateway after the cutover.`, remedy: fix, path: 'proxmox.cutover.gateway' });
    }
  }
  if (found.length) throw new PreflightError(found);
  ui.notify({ code: 'OPNSENSE_PREFLIGHT_OK', level: 'success', text: `Interfaces ${[...layout.interfaces, ...(link ? [link] : [])].map((i) => `${i.identifier}=${i.descr}`).join(', ')} are assigned and enabled.` });
}

function postActionIds(handlers: readonly AnyHandler<OpnsenseContext>[], plan: Plan): string[] {
  const ids: string[] = [];
  for (const h of handlers) {
    const mine = pendingChanges(plan).filter((c) => c.kind === h.kind);
    if (mine.length && h.postActions) ids.push(...h.postActions(mine).map((p) => p.id));
  }
  return ids;
}

const outcome = (c: Change): ApplyOutcome => ({ address: c.address, action: c.action });
const line = (c: ApplyOutcome) => `    ${symbol(c.action as Change['action'])} ${c.action} ${c.address}`;

/**
 * Applies an OPNsense plan inside a safety net: notes OPNsense's current configuration backup
 * before the first write; when a write fails midway, a post-action fails or the API stops
 * answering, reverts to that backup, re-runs the reconfigure/apply of every module touched, and
 * throws an OpnsenseApplyError whose message starts with the failure itself ("Unable to <verb>
 * <resource> <name>: <field>: <message>") and lists what was applied, what failed, what was not
 * attempted and what the revert did. A plan with nothing to do writes nothing and takes no backup.
 */
export async function applyWithBackup(session: StageSession, plan: Plan, env: Pick<StageEnv, 'state' | 'ui'>): Promise<ApplyReport> {
  const ctx = session.ctx;
  if (!isOpnsenseContext(ctx)) throw new DualwanError('STAGE_MISMATCH', 'applyWithBackup needs a session of the OPNsense stage.', { source: 'tool' });
  const handlers = session.handlers as readonly AnyHandler<OpnsenseContext>[];
  const hash = desiredHash(env.state);
  const writeCalls = () => session.writeCalls();
  // a verify drill killed before it could clean up left its rule behind: remove it once stale
  await removeStaleDrillRules(ctx, env.ui);
  if (!pendingChanges(plan).length) return applyPlan(plan, hash, { ctx, handlers, ui: env.ui, writeCalls });

  const backup = await takeBackup(ctx.client, ctx.backup.dir);
  env.ui.notify({
    code: 'OPNSENSE_BACKUP',
    level: 'info',
    text: `Before the first write: OPNsense's configuration backup ${backup.id} is the point to return to if anything fails${backup.savedTo ? ` (copy: ${backup.savedTo})` : ''}.`,
    data: { id: backup.id, savedTo: backup.savedTo },
  });

  const armed = await armTimerFor(ctx, backup, env.ui);

  const logStart = ctx.client.log.length;
  const done = new Set<number>();
  let started = false;
  const tracking: Ui = {
    notify: (n) => env.ui.notify(n),
    request: (q) => env.ui.request(q),
    runSteps: <C>(c: C, steps: readonly Step<C>[]) =>
      env.ui.runSteps(
        c,
        steps.map((s, i) => ({
          ...s,
          run: async (cc: C, report: (output: string) => void) => {
            started = true;
            await s.run(cc, report);
            done.add(i);
          },
        })),
      ),
  };
  let report: ApplyReport;
  try {
    report = await applyPlan(plan, hash, { ctx, handlers, ui: tracking, writeCalls });
  } catch (failure) {
    // a refused write saved nothing; an unanswered one may have been saved
    const wrote = ctx.client.log.slice(logStart).some((r) => r.write && r.outcome !== 'refused');
    if (!started && !wrote) {
      // refused before the first step (a stale plan…): nothing to restore
      if (armed) await settleTimer(ctx, armed, 'stop');
      throw failure;
    }
    const err = await revertAfterFailure(ctx, handlers, plan, backup, failure, done, wrote);
    if (armed) await settleTimer(ctx, armed, err.reverted || !wrote ? 'stop' : 'keep');
    throw err;
  }
  const reach = await reReach(ctx, handlers, plan, hash);
  if (reach.outcome === 'ok') {
    if (armed) await disarmAfterApply(ctx, plan, backup, armed);
    return report;
  }
  if (reach.outcome === 'read-back') {
    // it answers, so the API can still undo the apply: revert, through the fresh connection
    const fresh: OpnsenseContext = { ...ctx, client: reach.client };
    let err: OpnsenseApplyError;
    try {
      err = await revertAfterFailure(fresh, handlers, plan, backup, reach.error, done, true);
    } finally {
      reach.client.close();
    }
    // reverted through the API: the timer has nothing left to do; not reverted: it still restores
    if (armed) await settleTimer(ctx, armed, err.reverted ? 'stop' : 'keep');
    throw err;
  }
  if (armed) throw await waitForRevertTimer(ctx, plan, backup, armed, reach);
  throw unreachableAfterApply(ctx, plan, backup, reach);
}

/**
 * Builds the revert timer's settings when everything it needs is there: opnsense.sshHostKey (the
 * bootstrap records it), DUALWAN_SSH_PRIVATE_KEY_FILE (root's key in the seed), and a direct path
 * to OPNsense (before the cutover it is reached through the Proxmox host, whose SSH session
 * forwards only the API). Otherwise says why not.
 */
function revertTimerFor(t: NonNullable<StageEnv['state']['opnsense']>, creds: Credentials, direct: boolean, o: OpnsenseStageOptions['revertTimer'] = {}): RevertTimer {
  if (!t.sshHostKey) {
    return { missing: "opnsense.sshHostKey is not in dualwan.yaml (the bootstrap records it from OPNsense's console; for an OPNsense set up otherwise, put there what `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on it)" };
  }
  const keyFile = creds.get('DUALWAN_SSH_PRIVATE_KEY_FILE');
  if (!keyFile) return { missing: "DUALWAN_SSH_PRIVATE_KEY_FILE is not set (the key root on OPNsense accepts over SSH; the environment or the credentials file names it)" };
  if (!direct && !o.openSocket) return { missing: 'until the cutover OPNsense is reached through the Proxmox host, and the timer is armed only when dualwan reaches OPNsense directly' };
  const port = o.port ?? t.sshPort ?? 22;
  const d = REVERT_TIMER_DEFAULTS;
  let key: string | undefined;
  const privateKey = (): string => {
    try {
      key ??= fs.readFileSync(keyFile, 'utf8');
      return key;
    } catch (error) {
      throw new DualwanError('SSH_PRIVATE_KEY_UNREADABLE', `Cannot read the SSH private key ${keyFile}: ${error instanceof Error ? error.message : String(error)}`, {
        source: 'user',
        remedy: "Point DUALWAN_SSH_PRIVATE_KEY_FILE at an unencrypted OpenSSH private key file readable by you, whose public key root on OPNsense accepts.",
      });
    }
  };
  const hostKey = t.sshHostKey;
  return {
    settings: {
      target: `root@${t.host}:${port}`,
      connect: () => connectSsh({ host: t.host, port, user: 'root', privateKey: privateKey(), hostKey, readyTimeoutMs: o.readyTimeoutMs ?? 15_000, commandTimeoutMs: 30_000, ...(o.openSocket ? { sock: o.openSocket() } : {}) }),
      kind: o.kind ?? d.kind,
      stateDir: o.stateDir ?? d.stateDir,
      timeoutSeconds: o.timeoutSeconds ?? d.timeoutSeconds,
      paths: { ...d.paths, ...o.paths },
      bin: { ...d.bin, ...o.bin },
    },
  };
}

/** Arms the revert timer before the first write, or says once why there is none. */
async function armTimerFor(ctx: OpnsenseContext, backup: BackupPoint, ui: Ui): Promise<ArmedDeadman | undefined> {
  const timer: RevertTimer = ctx.revertTimer ?? { missing: 'this run was opened without one' };
  if ('missing' in timer) {
    ui.notify({
      code: 'OPNSENSE_NO_REVERT_TIMER',
      level: 'warn',
      text: `No automatic revert is armed for this apply: ${timer.missing}. If the apply cuts the path to OPNsense, it stays as it is until backup ${backup.id} is restored by hand.`,
      data: { reason: timer.missing },
    });
    return undefined;
  }
  const s = timer.settings;
  let armed: ArmedDeadman;
  try {
    armed = await armRevertTimer(s, backup.id);
  } catch (e) {
    if (e instanceof RevertTimerError && e.refuse) throw e;
    // the timer is a net, not a precondition: say why there is none, and go on as without one
    const why = redact(e instanceof Error ? e.message : String(e));
    ui.notify({
      code: 'OPNSENSE_NO_REVERT_TIMER',
      level: 'warn',
      text: `No automatic revert is armed for this apply: ${why}. If the apply cuts the path to OPNsense, it stays as it is until backup ${backup.id} is restored by hand.${e instanceof DualwanError && e.remedy ? ` ${e.remedy}` : ''}`,
      data: { reason: why },
    });
    return undefined;
  }
  ui.notify({
    code: 'OPNSENSE_REVERT_TIMER_ARMED',
    level: 'info',
    text: `Armed a revert timer on OPNsense (${s.target}, ${armed.id}): unless dualwan reaches OPNsense again after the apply and stops it, in ${armed.timeoutSeconds} s it restores backup ${backup.id} and reloads all services.`,
    data: { id: armed.id, timeoutSeconds: armed.timeoutSeconds, backup: backup.id },
  });
  return armed;
}

const timerSettings = (ctx: OpnsenseContext): RevertTimerSettings => {
  const t = ctx.revertTimer;
  if (!t || !('settings' in t)) throw new DualwanError('STAGE_MISMATCH', 'a revert timer was armed without settings', { source: 'tool' });
  return t.settings;
};
const clock = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

/** After a failure dealt with otherwise: stop the timer (best effort), or leave it to restore and say when. */
async function settleTimer(ctx: OpnsenseContext, armed: ArmedDeadman, what: 'stop' | 'keep'): Promise<void> {
  const fireAt = armed.armedAt + armed.timeoutSeconds * 1000;
  if (what === 'keep') {
    ctx.ui.notify({ code: 'OPNSENSE_REVERT_TIMER_KEPT', level: 'warn', text: `The revert timer ${armed.id} stays armed on OPNsense: at ${clock(fireAt)} it restores the configuration from before this apply.` });
    return;
  }
  try {
    await disarmRevertTimer(timerSettings(ctx), armed, { sleep: ctx.sleep, backoffMs: ctx.backup.revertBackoffMs });
  } catch (e) {
    ctx.ui.notify({ code: 'OPNSENSE_REVERT_TIMER_KEPT', level: 'warn', text: `The revert timer ${armed.id} could not be stopped (${redact(e instanceof Error ? e.message : String(e))}); at ${clock(fireAt)} it restores the configuration from before this apply.` });
  }
}

/** The apply stands and OPNsense answers: stop the timer through a fresh SSH session (the path after the apply). */
async function disarmAfterApply(ctx: OpnsenseContext, plan: Plan, backup: BackupPoint, armed: ArmedDeadman): Promise<void> {
  const s = timerSettings(ctx);
  const fireAt = armed.armedAt + armed.timeoutSeconds * 1000;
  const applied = pendingChanges(plan).map(outcome);
  let result: Awaited<ReturnType<typeof disarmRevertTimer>>;
  try {
    result = await disarmRevertTimer(s, armed, { sleep: ctx.sleep, backoffMs: ctx.backup.revertBackoffMs });
  } catch (e) {
    const why = redact(e instanceof Error ? e.message : String(e));
    throw new OpnsenseApplyError({
      message: [
        `After the apply OPNsense answers its API and every change reads back, but SSH to it (${s.target}) failed, so the revert timer could not be stopped: ${why}`,
        `At ${clock(fireAt)} the timer restores backup ${backup.id} (the configuration from before this apply) and reloads all services, undoing:`,
        ...applied.map(line),
      ].join('\n'),
      failure: e,
      backupId: backup.id,
      applied,
      notAttempted: [],
      reverted: false,
      reapplied: [],
      remedy: `Check that this machine reaches ${s.target} with the key of DUALWAN_SSH_PRIVATE_KEY_FILE. Once the timer has run, run dualwan apply again; to stop it by hand first, run \`sh -c 'mkdir ${armed.stateDir}/${armed.id}.claim && kill $(cat ${armed.stateDir}/${armed.id}.pid)'\` as root on OPNsense.`,
    });
  }
  if (result === 'disarmed') {
    ctx.ui.notify({ code: 'OPNSENSE_REVERT_TIMER_DISARMED', level: 'success', text: `Stopped the revert timer ${armed.id} on OPNsense through a fresh SSH session; the apply stands.` });
    return;
  }
  throw new OpnsenseApplyError({
    message: [
      `After the apply OPNsense answered, but its revert timer ${armed.id} had already ${result === 'unknown' ? 'gone (state unknown)' : 'fired'} before dualwan could stop it: backup ${backup.id} (the configuration from before this apply) is being or was restored, and all services reloaded.`,
      '  applied, then reverted by the timer:',
      ...applied.map(line),
    ].join('\n'),
    failure: new DualwanError('OPNSENSE_REVERT_TIMER_FIRED', `the revert timer fired after ${armed.timeoutSeconds} s, before the apply was confirmed`, { source: 'remote' }),
    backupId: backup.id,
    applied,
    notAttempted: [],
    reverted: result !== 'unknown',
    reapplied: [],
    remedy: 'The apply took longer than the timer allowed. Run dualwan apply again once OPNsense answers; if it happens again, check what slows the apply down (dualwan apply --verbose).',
  });
}

/**
 * OPNsense never answered after the apply, and the timer was left armed: wait until it is due
 * (bounded: its own timeout), then reach OPNsense again (bounded like the re-reach) and read over
 * SSH what the timer did.
 */
async function waitForRevertTimer(ctx: OpnsenseContext, plan: Plan, backup: BackupPoint, armed: ArmedDeadman, r: Extract<Reach, { outcome: 'unreachable' }>): Promise<OpnsenseApplyError> {
  const s = timerSettings(ctx);
  const t = ctx.state.opnsense;
  const where = t ? `${t.host}:${t.port}` : 'its address';
  const fireAt = armed.armedAt + armed.timeoutSeconds * 1000;
  const applied = pendingChanges(plan).map(outcome);
  const last = redact(r.lastError instanceof Error ? r.lastError.message : String(r.lastError));
  const first = `OPNsense at ${where} did not answer a fresh connection after the apply (${r.attempts} tries in ${Math.round(r.waitedMs / 1000)} s; last: ${last}).`;
  const wait = Math.max(0, Math.min(fireAt - Date.now(), armed.timeoutSeconds * 1000));
  ctx.ui.notify({ code: 'OPNSENSE_WAITING_FOR_REVERT_TIMER', level: 'warn', text: `${first} dualwan does not stop the revert timer: at ${clock(fireAt)} (in ${Math.ceil(wait / 1000)} s) it restores backup ${backup.id}; then dualwan reaches OPNsense again.` });
  if (wait > 0) await ctx.sleep(wait);
  const again = await answersAgain(ctx);
  const failure = new DualwanError('OPNSENSE_UNREACHABLE_AFTER_APPLY', `OPNsense stopped answering after the apply: ${last}`, { source: 'remote', cause: r.lastError });
  const timerError = (lines: readonly string[], reverted: boolean, remedy: string) =>
    new OpnsenseApplyError({ message: [first, ...lines].join('\n'), failure, backupId: backup.id, applied, notAttempted: [], reverted, reapplied: [], remedy });
  if (!again.ok) {
    const still = redact(again.lastError instanceof Error ? again.lastError.message : String(again.lastError));
    return timerError(
      [
        `The revert timer ${armed.id} on OPNsense was due at ${clock(fireAt)} to restore backup ${backup.id}, but OPNsense still does not answer (${again.attempts} more tries in ${Math.round(again.waitedMs / 1000)} s; last: ${still}).`,
        '  applied:',
        ...applied.map(line),
      ],
      false,
      [`On OPNsense's console, see whether the timer ran: \`cat ${armed.stateDir}/${armed.id}.state ${armed.stateDir}/${armed.id}.log\`.`, consoleRemedy(ctx, backup, where)].join('\n'),
    );
  }
  // it answers: read what the timer did (its reload may still run: bounded polling)
  again.client.close();
  let report: { state: string; log: string } = { state: 'unknown', log: '' };
  let sshError: unknown;
  const until = Date.now() + (ctx.backup.reachWithinMs ?? 120_000);
  for (let i = 0; i < 10; i++) {
    try {
      report = await revertTimerReport(s, armed);
      sshError = undefined;
    } catch (e) {
      sshError = e;
    }
    if (report.state === 'fired' || Date.now() >= until) break;
    await ctx.sleep(Math.min(1_000 * (i + 1), Math.max(0, until - Date.now())));
  }
  if (report.state === 'fired') {
    return timerError(
      [
        `The revert timer armed on OPNsense before the first write fired: it restored backup ${backup.id} (the configuration from before this apply, ${s.paths.config}) and reloaded all services, and OPNsense answers a fresh connection again.`,
        '  applied, then reverted by the timer:',
        ...applied.map(line),
        "  the timer's log on OPNsense:",
        ...report.log.trim().split('\n').map((l) => `    ${redact(l)}`),
      ],
      true,
      `This apply cut the path from this machine to OPNsense at ${where}. Check the planned changes to the LAN interface, its rules and gateways (dualwan plan), then run dualwan apply again.`,
    );
  }
  const why = sshError ? `SSH failed: ${redact(sshError instanceof Error ? sshError.message : String(sshError))}` : `its state is ${report.state}`;
  return timerError(
    [`OPNsense answers again after the revert timer ${armed.id} was due, but whether it restored backup ${backup.id} is not known (${why}).`, '  applied:', ...applied.map(line)],
    false,
    `Run dualwan plan: it shows what is in place. If the apply stands there, it is complete; otherwise ${consoleRemedy(ctx, backup, where)}`,
  );
}

/**
 * A fresh connection (new TLS session, the pinned certificate, the key) answers
 * core/firmware/status: polled with a growing interval, bounded in tries and time. On success the
 * caller owns the open client.
 */
async function answersAgain(ctx: OpnsenseContext): Promise<{ ok: true; client: OpnsenseClient } | { ok: false; lastError: unknown; attempts: number; waitedMs: number }> {
  const within = ctx.backup.reachWithinMs ?? 120_000;
  const maxAttempts = ctx.backup.reachAttempts ?? 8;
  const started = Date.now();
  let lastError: unknown;
  let attempts = 0;
  for (let delay = 1_000; attempts < maxAttempts; delay = Math.min(delay * 2, 15_000)) {
    attempts++;
    const client = ctx.client.reconnect();
    try {
      await client.get('core/firmware/status', FirmwareStatusSchema);
      return { ok: true, client };
    } catch (e) {
      client.close();
      lastError = e;
    }
    const left = started + within - Date.now();
    if (left <= 0 || attempts >= maxAttempts) break;
    await ctx.sleep(Math.min(delay, left));
  }
  return { ok: false, lastError, attempts, waitedMs: Date.now() - started };
}

type Reach = { outcome: 'ok' } | { outcome: 'read-back'; error: DualwanError; client: OpnsenseClient } | { outcome: 'unreachable'; lastError: unknown; attempts: number; waitedMs: number };

/**
 * After the apply, the step that catches an apply which cut the session in use: a fresh
 * connection (new TLS session, the pinned certificate, the key) must answer, polled with a growing
 * interval, bounded in tries and time; then a read-back through it must find every change of the
 * plan in place. OPNsense 26.7 has no rollback timer of its own (the filter savepoint is gone), so
 * this is the only thing that notices.
 */
async function reReach(ctx: OpnsenseContext, handlers: readonly AnyHandler<OpnsenseContext>[], plan: Plan, hash: string): Promise<Reach> {
  const reached = await answersAgain(ctx);
  if (!reached.ok) return { outcome: 'unreachable', lastError: reached.lastError, attempts: reached.attempts, waitedMs: reached.waitedMs };
  const client = reached.client;
  try {
    const fresh: OpnsenseContext = { ...ctx, client };
    const again = makePlan(handlers, await observe(fresh, handlers), hash, new Date().toISOString());
    const changed = new Set(pendingChanges(plan).map((c) => c.address));
    const missing = pendingChanges(again).filter((c) => changed.has(c.address));
    if (!missing.length) {
      client.close();
      ctx.ui.notify({ code: 'OPNSENSE_REACHED_AFTER_APPLY', level: 'success', text: `OPNsense answers a fresh connection after the apply, and every change reads back in place.` });
      return { outcome: 'ok' };
    }
    const error = new DualwanError('OPNSENSE_READ_BACK_AFTER_APPLY', `After the apply, a fresh connection finds ${missing.length} change${missing.length === 1 ? '' : 's'} not in place: ${missing.map((c) => `${c.address} (${c.properties.map((p) => p.path).join(', ') || c.action})`).join('; ')}`, {
      source: 'remote',
      remedy: 'Something else changed OPNsense during the apply, or a reconfigure did not take. Check System > Configuration > History, then run dualwan plan.',
    });
    return { outcome: 'read-back', error, client };
  } catch (e) {
    const error = e instanceof DualwanError ? e : new DualwanError('OPNSENSE_READ_BACK_AFTER_APPLY', `After the apply, the read-back through a fresh connection failed: ${e instanceof Error ? e.message : String(e)}`, { source: 'remote', cause: e });
    return { outcome: 'read-back', error, client };
  }
}

/** How to restore the backup by hand, from OPNsense's console or its web GUI. */
function consoleRemedy(ctx: OpnsenseContext, backup: BackupPoint, where: string): string {
  const vmid = ctx.state.vm?.vmid;
  return [
    `Restore backup ${backup.id} from OPNsense's console: ${vmid !== undefined ? `the Proxmox GUI (VM ${vmid} > Console) or \`qm terminal ${vmid}\` on the host` : 'its serial console or screen'}, log in as root, choose "13) Restore a backup", pick ${backup.id}, and let it reload (or choose "6) Reboot system").`,
    `If the web GUI still answers from the LAN: System > Configuration > History, backup ${backup.id}, "Revert".`,
    `Then check that this machine reaches ${where} and run dualwan apply again.`,
  ].join('\n');
}

/** OPNsense never answered again and no timer was armed: nothing can revert over the API, so say exactly what to do by hand. */
function unreachableAfterApply(ctx: OpnsenseContext, plan: Plan, backup: BackupPoint, r: Extract<Reach, { outcome: 'unreachable' }>): OpnsenseApplyError {
  const t = ctx.state.opnsense;
  const where = t ? `${t.host}:${t.port}` : 'its address';
  const applied = pendingChanges(plan).map(outcome);
  const last = redact(r.lastError instanceof Error ? r.lastError.message : String(r.lastError));
  const message = [
    `OPNsense at ${where} did not answer a fresh connection after the apply (${r.attempts} tries in ${Math.round(r.waitedMs / 1000)} s; last: ${last}).`,
    `The apply may have cut the path to it. dualwan cannot revert over the API, and OPNsense 26.7 has no rollback timer of its own: nothing undoes the apply by itself.`,
    `The configuration before this apply is backup ${backup.id}${backup.savedTo ? ` (a copy: ${backup.savedTo})` : ''}.`,
    '  applied:',
    ...applied.map(line),
  ].join('\n');
  const remedy = consoleRemedy(ctx, backup, where);
  return new OpnsenseApplyError({
    message,
    failure: new DualwanError('OPNSENSE_UNREACHABLE_AFTER_APPLY', `OPNsense stopped answering after the apply: ${last}`, { source: 'remote', cause: r.lastError }),
    backupId: backup.id,
    applied,
    notAttempted: [],
    reverted: false,
    reapplied: [],
    remedy,
  });
}

async function revertAfterFailure(
  ctx: OpnsenseContext,
  handlers: readonly AnyHandler<OpnsenseContext>[],
  plan: Plan,
  backup: BackupPoint,
  failure: unknown,
  done: ReadonlySet<number>,
  wrote: boolean,
): Promise<OpnsenseApplyError> {
  const changes = plan.changes;
  const posts = postActionIds(handlers, plan);
  const applied = changes.filter((c, i) => c.action !== 'noop' && done.has(i)).map(outcome);
  const failedIndex = changes.findIndex((c, i) => c.action !== 'noop' && !done.has(i));
  const failedChange = failedIndex >= 0 ? changes[failedIndex] : undefined;
  const notAttempted = failedIndex >= 0 ? changes.slice(failedIndex + 1).filter((c) => c.action !== 'noop').map(outcome) : [];
  const failedPost = failedChange ? undefined : posts.find((_, j) => !done.has(changes.length + j));
  const ranPosts = posts.filter((_, j) => done.has(changes.length + j));
  const failedText = redact(failure instanceof Error ? failure.message : String(failure));

  const lines: string[] = [failedText];
  let reverted = false;
  const reapplied: string[] = [];
  let revertError: unknown;
  if (!wrote) {
    lines.push('Nothing was written before the failure; OPNsense is unchanged.');
  } else {
    try {
      await revertToBackup(ctx.client, backup, { attempts: ctx.backup.revertAttempts, backoffMs: ctx.backup.revertBackoffMs, sleep: ctx.sleep });
      reverted = true;
    } catch (e) {
      revertError = e;
    }
    if (reverted) {
      // revert_backup rewrites config.xml only: make the running system follow it again.
      const touched = new Set([...applied, ...(failedChange ? [outcome(failedChange)] : [])].map((c) => changes.find((x) => x.address === c.address)?.kind));
      const reapplyErrors: string[] = [];
      for (const h of handlers) {
        if (!touched.has(h.kind) || !h.postActions) continue;
        const mine = pendingChanges(plan).filter((c) => c.kind === h.kind);
        for (const p of h.postActions(mine)) {
          try {
            await p.run(ctx);
            reapplied.push(p.id);
          } catch (e) {
            reapplyErrors.push(`${p.id}: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
      }
      lines.push(
        `OPNsense was put back as it was before this apply: reverted to configuration backup ${backup.id} (noted before the first write)${reapplied.length ? `, then re-applied ${reapplied.join(', ')}` : ''}.`,
      );
      if (reapplyErrors.length) lines.push(`  re-applying after the revert failed for: ${reapplyErrors.join('; ')}`);
    } else {
      lines.push(
        `The revert to configuration backup ${backup.id} did NOT happen: ${redact(revertError instanceof Error ? revertError.message : String(revertError))}. OPNsense keeps the changes listed as applied.`,
      );
    }
  }
  if (applied.length) lines.push(reverted ? '  applied, then reverted:' : '  applied:', ...applied.map(line));
  if (failedChange) lines.push('  failed:', line(outcome(failedChange)));
  if (failedPost) lines.push('  failed:', `    → ${failedPost}`);
  if (ranPosts.length) lines.push(`  post-actions that had run: ${ranPosts.join(', ')}`);
  if (notAttempted.length) lines.push('  not attempted:', ...notAttempted.map(line));

  const remedy = wrote && !reverted
    ? `Revert by hand once OPNsense answers: System > Configuration > History, backup ${backup.id} ("Revert"), then reboot or apply Interfaces, Gateways and Firewall rules. Then run dualwan apply again.`
    : undefined;
  return new OpnsenseApplyError({
    message: lines.join('\n'),
    failure,
    backupId: backup.id,
    applied,
    ...(failedChange ? { failed: outcome(failedChange) } : {}),
    notAttempted,
    reverted,
    reapplied,
    ...(remedy ? { remedy } : {}),
  });
}
