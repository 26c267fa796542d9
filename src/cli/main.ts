#!/usr/bin/env node
import { Command, Option } from 'commander';
import { TOOL_VERSION } from '../version';

/**
 * The entry point: parses flags, lazily loads one command, maps errors to exit codes. Only this
 * file decides exit codes: 0 ok, 1 error, 2 changes pending (--detailed-exitcode), 3 verify failed,
 * 130 setup interrupted by Ctrl-C (the code a command returns is passed on).
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command()
    .name('dualwan')
    .description('Two internet connections for a home network: an OPNsense router VM on Proxmox VE, or a plain Linux router.')
    .version(TOOL_VERSION)
    .option('--debug', 'show stack traces and debug messages', false)
    .option('--credentials <file>', 'credentials file (mode 0600); default $DUALWAN_CREDENTIALS or ~/.config/dualwan/credentials')
    .showHelpAfterError()
    .exitOverride();

  let code = 0;
  // Each command module is required only when its command runs, so --help stays fast.
  const run =
    <O>(load: () => (o: O) => Promise<number>) =>
    async (opts: Record<string, unknown>) => {
      const g = program.opts<{ debug: boolean; credentials?: string }>();
      code = await load()({ ...opts, debug: g.debug, credentials: g.credentials } as O);
    };

  const configOpt = () => new Option('-c, --config <file>', 'the configuration file').default('dualwan.yaml');
  program
    .command('setup')
    .description('guided setup: ask, write dualwan.yaml, show the plan, apply; a re-run resumes where the last one stopped')
    .addOption(configOpt())
    .option('-y, --yes', 'no questions: use the file (and the obvious choices for what it leaves out)', false)
    .option('--host <host>', 'the Proxmox VE host (default: from the file or the last run)')
    .option('--port <port>', 'the Proxmox VE API port (default 8006)')
    .option('--token-id <id>', 'the API token id, user@realm!name (its secret: DUALWAN_PROXMOX_TOKEN_SECRET or the credentials file)')
    .option('--trust-on-first-use', 'pin a server certificate seen for the first time without asking', false)
    .action(run(() => (require('./commands/setup') as typeof import('./commands/setup')).setupCommand));

  program
    .command('plan')
    .description('show what apply would change (read-only)')
    .addOption(configOpt())
    .option('--json', 'print the plan as JSON', false)
    .option('--out <file>', 'save the plan as JSON, for `apply --plan`')
    .option('--detailed-exitcode', 'exit 2 when there are changes, 0 when none', false)
    .option('--trust-on-first-use', 'pin a server certificate seen for the first time without asking', false)
    .action(run(() => (require('./commands/plan-apply') as typeof import('./commands/plan-apply')).planCommand));

  program
    .command('apply')
    .description('plan, show, confirm, then converge the router to dualwan.yaml')
    .addOption(configOpt())
    .option('-y, --yes', 'apply without asking', false)
    .option('--json', 'print the plan and the report as JSON', false)
    .option('--plan <file>', 'apply a plan saved by `plan --out` (refused if anything changed since)')
    .option('--detailed-exitcode', 'exit 2 when changes were applied, 0 when there were none', false)
    .option('--trust-on-first-use', 'pin a server certificate seen for the first time without asking', false)
    .action(run(() => (require('./commands/plan-apply') as typeof import('./commands/plan-apply')).applyCommand));

  program
    .command('verify')
    .description('failover drill: break one WAN, measure detection, failover and failback against the expected figures, check DNS through each WAN, restore; exit 3 when failover misbehaves')
    .addOption(configOpt())
    .option('--wan <name>', 'the WAN to break (default: the first in dualwan.yaml)')
    .option('--hold <seconds>', 'keep the WAN broken this long after the failover (default 3 s on linux, 5 s on opnsense-vm)')
    .addOption(new Option('--method <how>', 'opnsense-vm: block the monitor probes (default), force-down the gateway, or you pull the cable').choices(['block', 'force-down', 'cable']))
    .option('-y, --yes', 'run without asking', false)
    .option('--json', 'print the report as JSON', false)
    .option('--trust-on-first-use', 'pin a certificate or host key seen for the first time without asking', false)
    .action(run(() => (require('./commands/verify') as typeof import('./commands/verify')).verifyCommand));

  program
    .command('monitor')
    .description('the health monitor daemon that runs on a Linux router (started by its systemd unit)')
    .option('-c, --config <file>', 'the monitor configuration written by dualwan apply', '/etc/dualwan/monitor.json')
    .option('--webhook <url>', 'POST each event as JSON to this URL (default $DUALWAN_MONITOR_WEBHOOK)')
    .option('--duration <seconds>', 'stop after this many seconds (default: until SIGTERM)')
    .action(run(() => (require('./commands/monitor') as typeof import('./commands/monitor')).monitorCommand));

  program
    .command('doctor')
    .description('read-only checks of the configuration, the host and the router, each with a remedy')
    .addOption(configOpt())
    .option('--json', 'print the findings as JSON', false)
    .option('--no-lan-checks', 'skip the checks sent from this machine on the LAN (second DHCP server, double NAT, access point)')
    .option('--trust-on-first-use', 'pin a server certificate seen for the first time without asking', false)
    .action(run(() => (require('./commands/doctor') as typeof import('./commands/doctor')).doctorCommand));

  program
    .command('topology')
    .description('draw dualwan.yaml: modem and phone, WAN devices, router, LAN, access point (read-only, no network)')
    .addOption(configOpt())
    .option('--mermaid', 'print a Mermaid flowchart instead of the text picture', false)
    .action(run(() => (require('./commands/topology') as typeof import('./commands/topology')).topologyCommand));

  program
    .command('demo')
    .description('the whole flow on an embedded default: a simulated Proxmox host, no hardware needed')
    .option('--keep', 'keep the demo directory (dualwan.yaml, saved plan) instead of deleting it', false)
    .action(run(() => (require('./commands/demo') as typeof import('./commands/demo')).demoCommand));

  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return code;
  } catch (e) {
    const err = e as { code?: string; exitCode?: number };
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : 1;
    }
    const { renderError } = require('./render') as typeof import('./render');
    process.stderr.write(`${renderError(e, program.opts<{ debug: boolean }>().debug)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
