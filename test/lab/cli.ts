/**
 * Command-line entry to the lab, for demos and for poking at a lab by hand:
 *
 *   node test/lab/bin.js up [--id ID]        build (or complete) a lab; prints its state as JSON
 *   node test/lab/bin.js down --id ID        tear it down (safe to repeat)
 *   node test/lab/bin.js status --id ID      which namespaces exist
 *   node test/lab/bin.js exec --id ID NODE -- PROGRAM ARGS…   run a program in lan|router|isp1|isp2|internet
 *   node test/lab/bin.js impair --id ID isp1|isp2 blackhole|loss:PCT|linkdown|clear
 *   node test/lab/bin.js reap                remove labs whose owning test process died
 *
 * A lab made with `up` here belongs to nobody (it outlives this process) until `down`; its
 * processes still stop by themselves after --max-lifetime seconds (default 3600).
 */
import { DualWanLab, LAB_NODES, reapStaleLabs, type LabNode } from './lab';

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
}

export function main(argv: readonly string[]): number {
  const args = [...argv];
  const command = args.shift();
  const id = option(args, 'id');
  const maxLifetime = option(args, 'max-lifetime');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const lab = () => {
    if (command !== 'up' && id === undefined) throw new Error(`${command ?? ''} needs --id`);
    return new DualWanLab({ id, ownerPid: null, log, maxLifetimeS: maxLifetime === undefined ? undefined : Number(maxLifetime) });
  };
  switch (command) {
    case 'up': {
      const l = lab();
      const state = l.up();
      process.stdout.write(`${JSON.stringify({ ...state, dir: l.dir, ssh: { ...l.sshTarget(), privateKey: `${l.dir}/client_ed25519` } }, null, 2)}\n`);
      return 0;
    }
    case 'down':
      lab().down();
      return 0;
    case 'status': {
      const l = lab();
      process.stdout.write(`${JSON.stringify({ id: l.id, exists: l.exists(), namespaces: l.namespaces }, null, 2)}\n`);
      return l.exists() ? 0 : 1;
    }
    case 'exec': {
      const l = lab();
      const node = args.shift() as LabNode | undefined;
      if (node === undefined || !LAB_NODES.includes(node)) throw new Error(`exec needs a node: ${LAB_NODES.join('|')}`);
      if (args[0] === '--') args.shift();
      const res = l.exec(node, args, { timeoutMs: 60_000 });
      process.stdout.write(res.stdout);
      process.stderr.write(res.stderr);
      return res.code ?? 1;
    }
    case 'impair': {
      const [isp, what] = args;
      if (isp !== 'isp1' && isp !== 'isp2') throw new Error('impair needs isp1 or isp2');
      const [kind, pct] = (what ?? '').split(':');
      const l = lab();
      if (kind === 'loss') l.impair(isp, { kind: 'loss', percent: Number(pct) });
      else if (kind === 'blackhole' || kind === 'linkdown' || kind === 'clear') l.impair(isp, { kind });
      else throw new Error('impair needs blackhole|loss:PCT|linkdown|clear');
      return 0;
    }
    case 'reap':
      process.stdout.write(`${JSON.stringify({ reaped: reapStaleLabs(undefined, log) })}\n`);
      return 0;
    default:
      process.stderr.write('usage: bin.js up|down|status|exec|impair|reap [--id ID] (see test/lab/cli.ts)\n');
      return 2;
  }
}
