/**
 * Runs the benchmarks one after the other, each as its own process, and prints their tables.
 * The Linux lab benchmark needs root and takes about a quarter of an hour: it runs with --linux.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const quick = ['proxmox-cli.js', 'opnsense-apply.js'];
const all = process.argv.includes('--linux') ? [...quick, 'linux-bench.js'] : quick;
let failed = 0;
for (const f of all) {
  const r = spawnSync(process.execPath, [path.join(__dirname, f)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
if (!process.argv.includes('--linux')) {
  process.stdout.write('\nThe Linux backend benchmark (root, about 15 minutes): npm run bench -- --linux\n');
}
process.exitCode = failed ? 1 : 0;
