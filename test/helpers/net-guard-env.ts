import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Environment for a dualwan binary an end-to-end test starts: loads the network guard
 * (test/helpers/net-guard.js) into it, logging to the run's guard log, so the binary too may reach
 * loopback only and any attempt to go elsewhere fails the run (see the jest global teardown).
 */
export function netGuardEnv(): { NODE_OPTIONS: string; DUALWAN_NET_GUARD_LOG: string } {
  let dir = __dirname;
  let guard = '';
  for (let i = 0; i < 5 && !guard; i++) {
    for (const candidate of [path.join(dir, 'net-guard.js'), path.join(dir, 'test', 'helpers', 'net-guard.js')]) {
      if (fs.existsSync(candidate)) {
        guard = candidate;
        break;
      }
    }
    dir = path.dirname(dir);
  }
  if (!guard) throw new Error('test/helpers/net-guard.js not found');
  const log = process.env.DUALWAN_NET_GUARD_LOG;
  if (!log) throw new Error('DUALWAN_NET_GUARD_LOG is not set: run the tests through jest (its global setup creates the log)');
  return { NODE_OPTIONS: `--require ${JSON.stringify(guard).slice(1, -1)}`, DUALWAN_NET_GUARD_LOG: log };
}
