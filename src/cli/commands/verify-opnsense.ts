/**
 * `dualwan verify` on the opnsense-vm backend: the failover drill against OPNsense's REST API.
 *
 *   dualwan verify [-c dualwan.yaml] [--method block|force-down|cable] [--wan NAME] [--hold S] [--yes] [--json]
 *
 * Exit 0 when failover behaved, 3 when it did not (the drill ran), 1 on errors. The WAN is
 * restored on every path, Ctrl-C included; what a killed run leaves is removed by the next run.
 */
import type { DesiredState } from '../../core/desired';
import { DualwanError, UserAbortError } from '../../core/errors';
import { opnsenseStage } from '../../flows/opnsense';
import type { OpnsenseContext } from '../../providers/opnsense/context';
import { DRILL_METHODS, type DrillMethod } from '../../verify/expectations';
import { renderOpnsenseVerifyReport, runOpnsenseVerify } from '../../verify/opnsense';
import type { TerminalUi } from '../terminal-ui';
import type { VerifyOptions } from './verify';

export function drillMethodOf(v: string | undefined): DrillMethod {
  const m = (v ?? 'block') as DrillMethod;
  if (!DRILL_METHODS.includes(m)) throw new DualwanError('VERIFY_METHOD_INVALID', `--method takes ${DRILL_METHODS.join(', ')}, not ${JSON.stringify(v)}.`, { source: 'user', remedy: 'block exercises detection (the default), force-down routing only, cable a real link loss.' });
  return m;
}

export async function verifyOpnsense(o: VerifyOptions, state: DesiredState, ui: TerminalUi, holdS: number, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const method = drillMethodOf(o.method);
  const target = o.wan ?? state.wans[0]?.name;
  const session = await opnsenseStage().open({ state, ui, trustOnFirstUse: !!o.trustOnFirstUse, credentialsFile: o.credentials, env, earlier: [] });
  try {
    const ctx = session.ctx as OpnsenseContext;
    const what =
      method === 'block'
        ? `Block the monitor probes of WAN ${target} with a temporary firewall rule until OPNsense fails over, hold ${holdS} s, then remove it?`
        : method === 'force-down'
          ? `Mark WAN ${target}'s gateway down (force_down) for about ${holdS} s to measure the switch-over?`
          : `Measure a failover while you pull the cable of WAN ${target}?`;
    const ok = await ui.request({ code: 'VERIFY_CONFIRM', kind: 'confirm', message: `${what} New connections move to the backup WAN while it lasts.`, default: !!o.yes });
    if (!ok) throw new UserAbortError('No drill was run; nothing was changed.');
    const report = await runOpnsenseVerify({ client: ctx.client, state, layout: ctx.layout, ui, method, wan: target, holdMs: holdS * 1000 });
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `\n${renderOpnsenseVerifyReport(report)}\n`);
    return report.behaved ? 0 : 3;
  } finally {
    await session.close();
  }
}
