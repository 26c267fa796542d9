/**
 * Where the lab's helpers and this checkout's dualwan live, whether the caller runs from the
 * TypeScript sources (jest, the lab CLI) or from the build (`dist/`: the benchmark, `dualwan demo`).
 * The JavaScript helpers (lab-client.js, watchdog.js, …) are not compiled, so they are always
 * taken from test/lab in the checkout.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The checkout's root: the nearest directory above this file with dualwan's package.json. */
export function repoRoot(from: string = __dirname): string {
  let dir = from;
  for (let i = 0; i < 12; i++) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'dualwan') return dir;
      } catch {
        // not ours; keep looking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error(`lab: cannot find the dualwan checkout above ${from}`);
}

/** test/lab in the checkout (its .js helpers are never compiled into dist/). */
export function labScriptsDir(): string {
  const here = __dirname;
  if (fs.existsSync(path.join(here, 'lab-client.js'))) return here;
  const dir = path.join(repoRoot(here), 'test', 'lab');
  if (!fs.existsSync(path.join(dir, 'lab-client.js'))) throw new Error(`lab: the lab helpers are not in ${dir}; the lab needs a dualwan checkout, not an installed package`);
  return dir;
}

/** True when this module was loaded from the build (dist/…/*.js), not from the sources. */
export function runningCompiled(): boolean {
  return __filename.endsWith('.js');
}

/**
 * The command that runs `dualwan monitor` from this checkout inside the router namespace: the
 * built module when we run from the build, else the sources through the swc loader (always current).
 */
export function dualwanMonitorCommand(): string[] {
  const root = repoRoot();
  if (runningCompiled()) return [process.execPath, path.join(root, 'dist', 'src', 'cli', 'commands', 'monitor.js')];
  return [process.execPath, '-r', path.join(root, 'test', 'lab', 'register-ts.js'), path.join(root, 'src', 'cli', 'commands', 'monitor.ts')];
}

/** The same for any script of the checkout that exports a main (verify child, etc.). */
export function checkoutScript(relativeTs: string): string[] {
  const root = repoRoot();
  if (runningCompiled()) return [process.execPath, path.join(root, 'dist', relativeTs.replace(/\.ts$/, '.js'))];
  return [process.execPath, '-r', path.join(root, 'test', 'lab', 'register-ts.js'), path.join(root, relativeTs)];
}
