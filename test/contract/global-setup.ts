// jest globalSetup: creates the contract-violation log that the Proxmox test double appends to
// (one JSON line per request from the dualwan client that fails the PVE 8.4 or 9.1 schema).
// Test workers are started after this runs and inherit process.env, so they see the variable.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export default async function globalSetup(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-contract-'));
  const file = path.join(dir, 'pve-contract-violations.jsonl');
  fs.writeFileSync(file, '');
  process.env.DUALWAN_CONTRACT_LOG = file;
  // The network guard (test/helpers/net-guard.js) logs here every connection a test process tried
  // to open beyond loopback; the teardown fails the run when it is not empty.
  const guard = path.join(dir, 'net-guard.jsonl');
  fs.writeFileSync(guard, '');
  process.env.DUALWAN_NET_GUARD_LOG = guard;
}
