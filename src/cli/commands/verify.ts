/**
 * `dualwan verify`: a measured failover drill on the router named in dualwan.yaml.
 *
 *   dualwan verify [-c dualwan.yaml] [--wan NAME] [--hold SECONDS] [--method block|force-down|cable] [--yes] [--json] [--trust-on-first-use]
 *
 * Dispatches on the backend: linux (below) or opnsense-vm (verify-opnsense.ts, --method).
 *
 * It breaks one WAN on purpose (black hole, link up) for a bounded time, so it asks first unless
 * --yes. Exit 0 when failover behaved, 3 when it did not (the drill ran), 1 on errors. The WAN is
 * restored on every path, Ctrl-C included; on the router the block also expires by itself.
 */
import type { LinuxContext } from '../../providers/linux/context';
import { DualwanError, UserAbortError } from '../../core/errors';
import { linuxStage } from '../../flows/linux';
import { routerPath, ROUTER_PATHS } from '../../providers/linux/persist';
import { UdpDnsClientProber } from '../../verify/client';
import { linuxFailoverScenario, renderVerifyReport, RouterNftInjector, runLinuxVerify, SshRouterView, type VerifyWan } from '../../verify/linux';
import type { GlobalOptions } from '../options';
import { loadState, terminalUi } from '../session';

export interface VerifyOptions extends GlobalOptions {
  readonly config: string;
  /** The WAN to break (default: the first in dualwan.yaml). */
  readonly wan?: string;
  /** Seconds to keep the WAN broken after the failover (default 3). */
  readonly hold?: string | number;
  readonly yes?: boolean;
  readonly json?: boolean;
  readonly trustOnFirstUse?: boolean;
  /** opnsense-vm: how the WAN is broken — block (default), force-down, cable. */
  readonly method?: string;
}

export async function verifyCommand(o: VerifyOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const ui = terminalUi(o);
  const state = loadState(o.config, ui);
  const holdS = o.hold === undefined ? (state.backend === 'linux' ? 3 : 5) : Number(o.hold);
  if (!(holdS >= 0 && holdS <= 120)) throw new DualwanError('VERIFY_HOLD_INVALID', '--hold takes 0–120 seconds.', { source: 'user' });
  if (state.backend === 'opnsense-vm') return (require('./verify-opnsense') as typeof import('./verify-opnsense')).verifyOpnsense(o, state, ui, holdS, env);
  if (o.method !== undefined) throw new DualwanError('VERIFY_METHOD_UNAVAILABLE', '--method applies to the opnsense-vm backend.', { source: 'user', remedy: 'The Linux drill always black-holes the WAN with its link up; leave --method out.' });
  const target = o.wan ?? state.wans[0]?.name;
  const spec = state.wans.find((w) => w.name === target);
  if (!spec) throw new DualwanError('VERIFY_WAN_UNKNOWN', `No WAN named ${String(target)} in ${o.config}.`, { source: 'user', remedy: `Use one of: ${state.wans.map((w) => w.name).join(', ')}.` });

  const session = await linuxStage().open({ state, ui, trustOnFirstUse: !!o.trustOnFirstUse, credentialsFile: o.credentials, env, earlier: [] });
  try {
    const ctx = session.ctx as LinuxContext;
    const ok = await ui.request({
      code: 'VERIFY_CONFIRM',
      kind: 'confirm',
      message: `Black-hole WAN ${target} for up to ${holdS + 40} s to measure failover? New connections move to the other WAN; open ones on ${target} are reset.`,
      default: !!o.yes,
    });
    if (!ok) throw new UserAbortError('No drill was run; nothing was changed.');
    const wans: VerifyWan[] = ctx.wans.map((w, i) => ({ name: w.name, interface: w.interface, address: w.address, dnsServers: state.wans[i]?.dnsServers ?? [] }));
    const shell = ctx.router.shell;
    const failbackWindowMs = state.policy.monitor.failbackAfterSeconds * 1000 * 2;
    const report = await runLinuxVerify({
      wans,
      wan: target,
      injector: new RouterNftInjector(shell, (name) => ctx.wans.find((w) => w.name === name)!.interface, Math.ceil((holdS * 1000 + failbackWindowMs) / 1000) + 90),
      client: new UdpDnsClientProber(spec.dnsServers[0] ?? '1.1.1.1'),
      router: new SshRouterView(shell, routerPath(ctx, ROUTER_PATHS.monitorState)),
      scenario: linuxFailoverScenario({ failbackWindowMs, holdMs: holdS * 1000 }),
      log: (line) => ui.notify({ code: 'VERIFY_STEP', level: 'info', text: line }),
    });
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `\n${renderVerifyReport(report)}\n`);
    return report.behaved ? 0 : 3;
  } finally {
    await session.close();
  }
}
