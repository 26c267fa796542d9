import * as fs from 'node:fs';
import type { Diagnostic } from '../core/diagnostics';
import { DualwanError, PreflightError } from '../core/errors';
import type { ApplyReport, Change, Plan } from '../core/plan';
import { pendingChanges } from '../core/plan';
import type { Step, Ui } from '../core/ui';
import { applyPlan, symbol, type AnyHandler } from '../plan/engine';
import { revertToBackup, takeBackup, OpnsenseApplyError, type ApplyOutcome, type BackupPoint } from '../providers/opnsense/backup';
import { readCapabilities, requireDualWanCapabilities } from '../providers/opnsense/capabilities';
import { OpnsenseClient, type OpnsenseClientOptions } from '../providers/opnsense/client';
import { isOpnsenseContext, type OpnsenseContext } from '../providers/opnsense/context';
import { layoutOf, type Layout } from '../providers/opnsense/layout';
import { opnsenseHandlers } from '../providers/opnsense/provider';
import { FirmwareStatusSchema, gridSchema, InterfaceInfoRowSchema } from '../providers/opnsense/schemas';
import { loadCredentials } from '../secrets/credentials';
import { redact } from '../secrets/redact';
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
      const where = `${t.host}:${t.port}`;
      const creds = loadCredentials({ env: env.env, file: env.credentialsFile });
      const apiKey = creds.require('DUALWAN_OPNSENSE_API_KEY', `The OPNsense API at ${where}`);
      const apiSecret = creds.require('DUALWAN_OPNSENSE_API_SECRET', `The OPNsense API at ${where}`);
      const fingerprint = await ensurePinned({
        system: 'OPNsense',
        host: t.host,
        port: t.port,
        pinned: t.fingerprint,
        trustOnFirstUse: env.trustOnFirstUse,
        ui,
        record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['opnsense', 'fingerprint'] } : undefined,
        compareWith: 'the web GUI certificate in System > Trust > Certificates',
      });
      const client = new OpnsenseClient({ host: t.host, port: t.port, apiKey, apiSecret, fingerprint, ...opts.client });
      try {
        // Capabilities before anything else: an older OPNsense is refused before any write.
        const caps = await readCapabilities(client);
        requireDualWanCapabilities(caps, where);
        ui.notify({ code: 'OPNSENSE_VERSION', level: 'info', text: `${caps.product} ${caps.version.text} at ${where}.`, data: { version: caps.version.text } });
        const layout = layoutOf(state);
        await preflightInterfaces(client, layout, ui);
        const ctx: OpnsenseContext = {
          system: 'opnsense',
          state,
          client,
          layout,
          caps,
          ui,
          sleep: opts.sleep ?? realSleep,
          gatewayListWaitMs: opts.gatewayListWaitMs ?? 30_000,
          backup: { ...(opts.backupDir ? { dir: opts.backupDir } : {}), revertAttempts: opts.revertAttempts ?? 3, revertBackoffMs: opts.revertBackoffMs ?? 1_000 },
        };
        return { ctx, handlers: opnsenseHandlers(), writeCalls: () => client.writeCalls, close: async () => client.close() };
      } catch (e) {
        client.close();
        throw e;
      }
    },
    apply: (session, plan, env) => applyWithBackup(session, plan, env),
  };
}

/** OPNsense can only be planned once its VM exists and runs. */
export function opnsenseDeferred(env: Pick<StageEnv, 'earlier'>): string | undefined {
  const pve = env.earlier.find((e) => e.stage === 'proxmox');
  if (!pve) return undefined;
  const pending = pendingChanges(pve.plan);
  if (pending.some((c) => c.kind === 'proxmox.vm' && c.action === 'create')) return 'the router VM is created by this apply; OPNsense is configured once it runs';
  if (pending.some((c) => c.kind === 'proxmox.vm-state')) return 'the router VM is started by this apply; OPNsense is configured once it answers';
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
  if (found.length) throw new PreflightError(found);
  ui.notify({ code: 'OPNSENSE_PREFLIGHT_OK', level: 'success', text: `Interfaces ${layout.interfaces.map((i) => `${i.identifier}=${i.descr}`).join(', ')} are assigned and enabled.` });
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
  if (!pendingChanges(plan).length) return applyPlan(plan, hash, { ctx, handlers, ui: env.ui, writeCalls });

  const backup = await takeBackup(ctx.client, ctx.backup.dir);
  env.ui.notify({
    code: 'OPNSENSE_BACKUP',
    level: 'info',
    text: `Before the first write: OPNsense's configuration backup ${backup.id} is the point to return to if anything fails${backup.savedTo ? ` (copy: ${backup.savedTo})` : ''}.`,
    data: { id: backup.id, savedTo: backup.savedTo },
  });

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
  try {
    const report = await applyPlan(plan, hash, { ctx, handlers, ui: tracking, writeCalls });
    await confirmReachable(ctx);
    return report;
  } catch (failure) {
    // a refused write saved nothing; an unanswered one may have been saved
    const wrote = ctx.client.log.slice(logStart).some((r) => r.write && r.outcome !== 'refused');
    if (!started && !wrote) throw failure; // refused before the first step (a stale plan…)
    throw await revertAfterFailure(ctx, handlers, plan, backup, failure, done, wrote);
  }
}

async function confirmReachable(ctx: OpnsenseContext): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await ctx.client.get('core/firmware/status', FirmwareStatusSchema);
      return;
    } catch (e) {
      if (i >= 3) throw new DualwanError('OPNSENSE_UNREACHABLE_AFTER_APPLY', `OPNsense stopped answering after the apply: ${e instanceof Error ? e.message : String(e)}`, { source: 'remote', cause: e });
      await ctx.sleep(1_000 * i);
    }
  }
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
