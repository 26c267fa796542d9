/**
 * `dualwan monitor`: the health monitor daemon, run on the router by dualwan-monitor.service.
 *
 *   dualwan monitor [--config /etc/dualwan/monitor.json] [--webhook URL] [--duration SECONDS]
 *
 * It logs one JSON line per event on stdout (the journal keeps them), stops cleanly on SIGTERM or
 * SIGINT (exit 0), and with --duration after that many seconds (tests and benchmarks bound every
 * process's life that way). The webhook URL defaults to $DUALWAN_MONITOR_WEBHOOK.
 *
 * The module can also be run directly (`node dist/src/cli/commands/monitor.js --config …`), which
 * the namespace lab does before this command is registered in main.ts.
 */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { DualwanError } from '../../core/errors';
import { LocalShell } from '../../providers/linux/local';
import { parseMonitorDaemonConfig } from '../../providers/linux/monitor/config';
import { MonitorDaemon } from '../../providers/linux/monitor/daemon';
import { PingProber } from '../../providers/linux/monitor/probe';
import { ROUTER_PATHS } from '../../providers/linux/persist';
import type { GlobalOptions } from '../options';

export interface MonitorOptions extends GlobalOptions {
  /** The monitor configuration written by `dualwan apply` (default /etc/dualwan/monitor.json). */
  readonly config?: string;
  /** POST each event as JSON here (default $DUALWAN_MONITOR_WEBHOOK). */
  readonly webhook?: string;
  /** Stop after this many seconds (default: run until SIGTERM/SIGINT). */
  readonly duration?: string | number;
}

export async function monitorCommand(o: MonitorOptions): Promise<number> {
  const file = o.config ?? ROUTER_PATHS.monitorConfig;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new DualwanError('MONITOR_CONFIG_MISSING', `Cannot read the monitor configuration ${file}: ${error instanceof Error ? error.message : String(error)}`, {
      source: 'user',
      remedy: '`dualwan apply` writes it on the router; run the monitor there with --config pointing at it.',
    });
  }
  const config = parseMonitorDaemonConfig(text, file);
  const webhook = o.webhook ?? process.env.DUALWAN_MONITOR_WEBHOOK ?? undefined;
  if (webhook !== undefined && !/^https?:\/\//.test(webhook)) {
    throw new DualwanError('MONITOR_WEBHOOK_INVALID', 'The webhook must be an http(s) URL.', { source: 'user' });
  }
  const durationS = o.duration === undefined ? undefined : Number(o.duration);
  if (durationS !== undefined && !(durationS > 0)) throw new DualwanError('MONITOR_DURATION_INVALID', '--duration needs a positive number of seconds.', { source: 'user' });

  const write = (record: unknown) => process.stdout.write(`${JSON.stringify(record)}\n`);
  const late: { daemon?: MonitorDaemon } = {};
  const prober = new PingProber({
    onSkip: (order, why) => write({ at: new Date().toISOString(), event: 'probe-skipped', seq: order.seq, target: order.target, why }),
    // A probe ping could not send (source address gone, or no route): maybe a new lease; at most every 5 s.
    onError: () => late.daemon?.requestRefresh('a probe could not be sent', 5_000),
  });
  const running = new MonitorDaemon({ config, shell: new LocalShell(), prober, log: write, watchLinks: true, ...(webhook ? { webhook } : {}) });
  late.daemon = running;
  // The DHCP hooks (and `systemctl reload`) send SIGHUP after a new lease.
  const onHup = () => running.requestRefresh('SIGHUP');
  process.on('SIGHUP', onHup);

  let finish: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const onSignal = () => finish();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const limit = durationS === undefined ? undefined : setTimeout(onSignal, durationS * 1000);
  try {
    await running.start();
    await stopped;
  } finally {
    if (limit) clearTimeout(limit);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGHUP', onHup);
    await running.stop();
  }
  return 0;
}

/** Direct use without main.ts (the lab, and a router where only this module is installed). */
export async function monitorMain(argv: readonly string[]): Promise<number> {
  const program = new Command()
    .name('dualwan monitor')
    .option('-c, --config <file>', 'the monitor configuration written by dualwan apply', ROUTER_PATHS.monitorConfig)
    .option('--webhook <url>', 'POST every event as JSON to this URL (default $DUALWAN_MONITOR_WEBHOOK)')
    .option('--duration <seconds>', 'stop after this many seconds')
    .exitOverride();
  // Accept the unit's `… monitor --config …` when this module stands in for the dualwan command.
  program.parse((argv[0] === 'monitor' ? argv.slice(1) : argv) as string[], { from: 'user' });
  return monitorCommand({ ...program.opts<{ config: string; webhook?: string; duration?: string }>(), debug: false });
}

if (require.main === module) {
  monitorMain(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
      if (e instanceof DualwanError && e.remedy) process.stderr.write(`  remedy: ${e.remedy}\n`);
      process.exitCode = 1;
    },
  );
}
