/**
 * The health monitor's own configuration file (`/etc/dualwan/monitor.json`), written by
 * `dualwan apply` (persist.ts) and read by `dualwan monitor` on the router. It holds everything the
 * daemon needs and no secret; the optional webhook URL comes from the environment
 * (DUALWAN_MONITOR_WEBHOOK, set in /etc/default/dualwan-monitor), because such URLs carry tokens.
 */
import { z } from 'zod';
import { DualwanError } from '../../../core/errors';
import { isInterfaceName, isIpv4 } from '../commands';
import { timingsFromProfile, validateMonitorConfig, type MonitorConfig } from './decision';

const ipv4 = z.string().refine(isIpv4, 'an IPv4 address');
const absPath = z.string().regex(/^\/[A-Za-z0-9_.+@/-]*$/, 'an absolute path of plain characters');

const MonitorWanSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/),
  interface: z.string().refine(isInterfaceName, 'an interface name'),
  addressing: z.enum(['static', 'dhcp']),
  address: ipv4.optional(),
  gateway: ipv4.optional(),
  table: z.number().int().min(1).max(252),
  mark: z.number().int().min(1).max(0xffffffff),
  weight: z.number().int().min(1).max(256),
  tier: z.number().int().min(1),
  targets: z.array(ipv4).min(2),
  dnsServers: z.array(ipv4).default([]),
  metered: z.boolean(),
  probeBudgetMBPerMonth: z.number().min(0),
});

export const MonitorDaemonConfigSchema = z.object({
  kind: z.literal('dualwan-monitor'),
  version: z.literal(1),
  lanInterface: z.string().refine(isInterfaceName, 'an interface name'),
  markMask: z.number().int().min(1).max(0xffffffff),
  profile: z.object({
    name: z.enum(['fast', 'balanced', 'conservative']),
    intervalMs: z.number().int().min(100),
    lossDownPercent: z.number().min(1).max(100),
    latencyHighMs: z.number().min(1),
    failbackAfterSeconds: z.number().min(0),
  }),
  killStatesOnFailover: z.boolean(),
  killMeteredStatesOnFailback: z.boolean(),
  activeFile: absPath,
  stateFile: absPath,
  budgetFile: absPath,
  pidFile: absPath.optional(),
  wans: z.array(MonitorWanSchema).min(1),
});

export type MonitorDaemonConfig = z.input<typeof MonitorDaemonConfigSchema>;
export type MonitorDaemonConfigParsed = z.output<typeof MonitorDaemonConfigSchema>;
export type MonitorWanConfig = MonitorDaemonConfigParsed['wans'][number];

export function parseMonitorDaemonConfig(text: string, file: string): MonitorDaemonConfigParsed {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new DualwanError('MONITOR_CONFIG_UNREADABLE', `${file} is not JSON: ${error instanceof Error ? error.message : String(error)}`, {
      source: 'user',
      remedy: 'Run `dualwan apply` again: it writes this file.',
    });
  }
  const parsed = MonitorDaemonConfigSchema.safeParse(data);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new DualwanError('MONITOR_CONFIG_INVALID', `${file} is not a dualwan monitor configuration${first ? ` (at ${first.path.join('.')}: ${first.message})` : ''}.`, {
      source: 'user',
      remedy: 'Run `dualwan apply` again: it writes this file from dualwan.yaml.',
    });
  }
  return parsed.data;
}

/** The decision logic's view of the daemon configuration. */
export function decisionConfig(c: MonitorDaemonConfigParsed): MonitorConfig {
  return validateMonitorConfig({
    wans: c.wans.map((w) => ({ name: w.name, targets: w.targets, tier: w.tier, metered: w.metered, probeBudgetMBPerMonth: w.probeBudgetMBPerMonth })),
    timings: timingsFromProfile(c.profile),
  });
}
