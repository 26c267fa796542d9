/**
 * The failover drill on OPNsense, as data: the steps in order, what each one expects, how long it
 * may take, and whether the drill can go on when it fails. The runner (opnsense.ts) has one
 * implementation per step id and walks this list; the restore is guaranteed apart from it
 * (normal end, failure, SIGINT/SIGTERM/SIGHUP), and a later run removes what a killed run left.
 */
import { limitOf, type DrillMethod, type ExpectedFigures, type Tolerance } from './expectations';

export type OpnsenseStepId = 'cleanup' | 'baseline' | 'dns' | 'public-address' | 'induce' | 'detect' | 'failover' | 'hold' | 'restore' | 'failback' | 'flows';

export interface ScenarioStep {
  readonly id: OpnsenseStepId;
  readonly title: string;
  /** What counts as success, in words (shown in the report). */
  readonly expect: string;
  /** Upper bound of the step, ms. */
  readonly timeoutMs: number;
  /** When it fails, the drill stops here (the restore still runs). */
  readonly stopOnFailure: boolean;
  /** A measured figure must not exceed this (s): expected × tolerance + slack. */
  readonly limitS?: number;
}

export interface ScenarioOptions {
  readonly method: DrillMethod;
  readonly wan: string;
  readonly gateway: string;
  readonly backups: readonly string[];
  readonly expected: ExpectedFigures;
  readonly tolerance: Tolerance;
  readonly holdMs: number;
  /** How long the user has to pull / plug the cable (method cable). */
  readonly cableWaitMs?: number;
}

/** How long a poll for a figure goes on: well past its limit, so a slow router is measured, not cut off. */
const pollBound = (limitS: number) => Math.round(Math.max(limitS * 2, limitS + 30) * 1000);

export function opnsenseScenario(o: ScenarioOptions): readonly ScenarioStep[] {
  const det = limitOf(o.expected.detectionS, o.tolerance);
  const fo = limitOf(o.expected.failoverS, o.tolerance);
  const fb = limitOf(o.expected.failbackS, o.tolerance);
  const backups = o.backups.join(', ') || 'the backup gateway';
  const cable = o.cableWaitMs ?? 180_000;
  const induce =
    o.method === 'block'
      ? { title: `induce: a temporary firewall rule drops ${o.gateway}'s monitor probes (link and line stay up)`, expect: 'the rule is stored and loaded, the probes’ pf state killed' }
      : o.method === 'force-down'
        ? { title: `induce: mark ${o.gateway} down (force_down) and reconfigure routing`, expect: 'the gateway is stored with force_down on and routing reconfigured' }
        : { title: `induce: you pull the cable of WAN ${o.wan}`, expect: `the interface loses its link within ${Math.round(cable / 1000)} s` };
  const restore =
    o.method === 'block'
      ? { title: 'restore: remove the temporary rule and reload the filter', expect: 'the rule is gone and the filter reloaded' }
      : o.method === 'force-down'
        ? { title: `restore: clear force_down on ${o.gateway} and reconfigure routing`, expect: 'force_down is off again' }
        : { title: `restore: you plug the cable of WAN ${o.wan} back in`, expect: `the interface has its link again within ${Math.round(cable / 1000)} s` };
  return [
    { id: 'cleanup', title: 'clean up after earlier drills', expect: 'no temporary rule of an earlier drill and no force_down left on dualwan’s gateways', timeoutMs: 30_000, stopOnFailure: true },
    {
      id: 'baseline',
      title: 'baseline: both gateways online and monitored, the WAN carries the traffic',
      expect: `${o.gateway} Online with monitoring on and in the active tier of the group and the default route; ${backups} in the group and Online`,
      timeoutMs: 30_000,
      stopOnFailure: true,
    },
    { id: 'dns', title: 'DNS through each WAN', expect: 'each WAN’s DNS server answers through that WAN', timeoutMs: 60_000, stopOnFailure: false },
    { id: 'public-address', title: 'public address per WAN', expect: 'the address each WAN presents to the internet', timeoutMs: 15_000, stopOnFailure: false },
    { id: 'induce', ...induce, timeoutMs: o.method === 'cable' ? cable : 60_000, stopOnFailure: true },
    { id: 'detect', title: `detect: ${o.gateway} turns Offline`, expect: `within ${det} s (expected ${o.expected.detectionS} s)`, timeoutMs: pollBound(det), stopOnFailure: false, limitS: det },
    { id: 'failover', title: `failover: traffic and the default route move to ${backups}`, expect: `within ${fo} s (expected ${o.expected.failoverS} s)`, timeoutMs: pollBound(fo), stopOnFailure: false, limitS: fo },
    { id: 'hold', title: 'hold the outage', expect: `${Math.round(o.holdMs / 100) / 10} s on the backup`, timeoutMs: o.holdMs, stopOnFailure: false },
    { id: 'restore', ...restore, timeoutMs: o.method === 'cable' ? cable : 60_000, stopOnFailure: true },
    { id: 'failback', title: `failback: ${o.gateway} Online and carrying the traffic again`, expect: `within ${fb} s (expected ${o.expected.failbackS} s)`, timeoutMs: pollBound(fb), stopOnFailure: false, limitS: fb },
    { id: 'flows', title: 'no flows left on the metered WAN', expect: `no LAN connection left through ${backups} after the failback`, timeoutMs: 30_000, stopOnFailure: false },
  ];
}
