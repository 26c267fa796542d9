/** Runs every benchmark that can run here, one after the other, and prints their tables. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { benchProxmoxCli } from './proxmox-cli';

async function main(): Promise<number> {
  let ok = await benchProxmoxCli();
  // Benchmarks of the other parts live beside this file and run as their own programs.
  for (const f of fs.readdirSync(__dirname).filter((n) => /^(opnsense|linux)-.*\.js$/.test(n)).sort()) {
    const mod = require(path.join(__dirname, f)) as { main?: () => Promise<boolean> };
    if (typeof mod.main === 'function') ok = (await mod.main()) && ok;
  }
  return ok ? 0 : 1;
}

main().then(
  (c) => {
    process.exitCode = c;
  },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 1;
  },
);
