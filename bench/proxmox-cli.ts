/**
 * Side-by-side figures for the foundation, measured in one run:
 *   1. `dualwan --help` cold start against `node -e 0` (target: at most 250 ms more, median);
 *   2. the first `dualwan apply --yes` from an empty simulated Proxmox host: VM, bootstrap over the
 *      serial console of the simulated OPNsense, REST configuration (wall time, for the record);
 *   3. a no-op `dualwan apply --yes` against the same host and router (target: ≤ 1 s, 0 writes).
 * Run: npm run build && node dist/bench/proxmox-cli.js [runs]
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfigFile } from '../src/config/load';
import { startBootstrapSite } from '../test/doubles/proxmox/bootstrap-rig';
import { writePlaybookFor, packageRoot } from '../test/doubles/proxmox/simulated-host';

const root = packageRoot(__dirname);
const BIN = path.join(root, 'dist', 'src', 'cli', 'main.js');

function timeRun(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ ms: number; code: number; stdout: string }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    execFile(process.execPath, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: 60_000 }, (err, stdout) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code, stdout });
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;
const fmt = (ms: number) => `${ms.toFixed(0).padStart(5)} ms`;

export async function benchProxmoxCli(runs = 15): Promise<boolean> {
  // 1. cold start, interleaved so both see the same machine load
  const node: number[] = [];
  const help: number[] = [];
  for (let i = 0; i < runs; i++) {
    node.push((await timeRun(['-e', '0'])).ms);
    const r = await timeRun([BIN, '--help']);
    if (r.code !== 0) throw new Error('dualwan --help failed');
    help.push(r.ms);
  }
  const extra = median(help) - median(node);

  // 2. the first apply from an empty host, 3. no-op applies against the same host and router
  const playbook = loadConfigFile(path.join(root, 'playbooks', 'hotspot-failover.yaml'));
  const site = await startBootstrapSite(playbook.state ? { state: playbook.state } : {});
  const { host, router } = site;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dualwan-bench-'));
  const noop: number[] = [];
  let writes = 0;
  let firstMs = 0;
  try {
    const file = writePlaybookFor(host, dir, 'hotspot-failover.yaml', (d) => site.pointAt(d));
    // the OPNsense key is made by the bootstrap and kept in this credentials file
    const env = { DUALWAN_PROXMOX_TOKEN_SECRET: host.tokenSecret, DUALWAN_CREDENTIALS: path.join(dir, 'credentials') };
    const first = await timeRun([BIN, 'apply', '--yes', '--trust-on-first-use', '--config', file], env);
    if (first.code !== 0) throw new Error('the first apply failed');
    firstMs = first.ms;
    const before = host.writeCount;
    const routerBefore = router.controls.writeCount;
    for (let i = 0; i < Math.max(10, Math.floor(runs / 1.5)); i++) {
      const r = await timeRun([BIN, 'apply', '--yes', '--config', file], env);
      if (r.code !== 0) throw new Error('a no-op apply failed');
      noop.push(r.ms);
    }
    writes = host.writeCount - before + (router.controls.writeCount - routerBefore);
  } finally {
    await site.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const rows = [
    ['measure', 'median', 'p95', 'target', 'ok'],
    ['node -e 0', fmt(median(node)), fmt(p95(node)), '', ''],
    ['dualwan --help', fmt(median(help)), fmt(p95(help)), '', ''],
    ['  --help minus node', fmt(extra), '', '≤   250 ms', extra <= 250 ? 'yes' : 'NO'],
    ['first apply from an empty host (VM, bootstrap, OPNsense; once)', fmt(firstMs), '', '', ''],
    [`no-op apply, host + router (${noop.length} runs, whole process)`, fmt(median(noop)), fmt(p95(noop)), '≤  1000 ms', median(noop) <= 1000 ? 'yes' : 'NO'],
    ['  writes during the no-op applies', String(writes).padStart(8), '', '0', writes === 0 ? 'yes' : 'NO'],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  process.stdout.write(`\nFoundation (${runs} runs each, interleaved, ${os.cpus().length} cores)\n`);
  for (const r of rows) process.stdout.write(`${r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')}\n`);
  return extra <= 250 && median(noop) <= 1000 && writes === 0;
}

if (require.main === module) {
  benchProxmoxCli(Number(process.argv[2] ?? 15)).then(
    (ok) => {
      process.exitCode = ok ? 0 : 1;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
