'use strict';
/**
 * Removes a lab whose owner died without tearing it down (a jest worker killed mid-test, a crash:
 * jest runs tests in a sandbox whose `process` 'exit' listeners never fire for the real exit).
 * Started detached by lab.ts for labs that have an owner; it checks twice a second and exits as
 * soon as the lab's state directory is gone (a normal teardown) or after the lab's lifetime.
 *
 * Usage: node watchdog.js <ownerPid> <labId> <stateRoot> <maxLifetimeS> <stateDir>
 */
const fs = require('node:fs');

const [ownerPid, id, stateRoot, maxLifetimeS, dir] = process.argv.slice(2);
const deadline = Date.now() + Number(maxLifetimeS) * 1000;

function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

const timer = setInterval(() => {
  if (!fs.existsSync(dir)) process.exit(0);
  if (alive(Number(ownerPid)) && Date.now() < deadline) return;
  clearInterval(timer);
  require('./register-ts.js');
  const { DualWanLab } = require('./lab.ts');
  new DualWanLab({ id, stateRoot, ownerPid: null }).down();
  process.exit(0);
}, 500);
