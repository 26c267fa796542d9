/**
 * Persistence on the router (persist.ts renders the content):
 * - `linux.file/<path>`: a file the tool owns, compared by SHA-256 and mode as the router reports
 *   them (`sha256sum`, `stat`), replaced atomically (temporary file + rename) when different;
 * - `linux.unit/<name>`: a systemd unit enabled at boot (`systemctl is-enabled`).
 * Files the tool does not own are never read, written or removed.
 */
import { createHash } from 'node:crypto';
import type { ResourceHandler } from '../../../plan/handler';
import type { LinuxContext } from '../context';
import { dirOf, fileAddress, MONITOR_UNIT, RESTORE_UNIT, routerFiles, routerPath, ROUTER_PATHS } from '../persist';

export interface RouterFileValue {
  readonly path: string;
  readonly sha256: string;
  /** Octal permission bits as `stat -c %a` prints them, e.g. "755". */
  readonly mode: string;
}

export interface RouterFileDesired extends RouterFileValue {
  readonly content: string;
  readonly purpose: string;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** `sha256sum` and `stat` of these paths; a missing file is simply absent from the result. */
export async function readFileFacts(ctx: LinuxContext, paths: readonly string[]): Promise<Map<string, RouterFileValue>> {
  const out = new Map<string, RouterFileValue>();
  if (paths.length === 0) return out;
  const sums = await ctx.router.read(['sha256sum', '--', ...paths], [0, 1]);
  const modes = await ctx.router.read(['stat', '-c', '%a %n', '--', ...paths], [0, 1]);
  const modeOf = new Map<string, string>();
  for (const line of modes.stdout.split('\n')) {
    const m = /^([0-7]{3,4}) (.+)$/.exec(line);
    if (m) modeOf.set(m[2]!, m[1]!);
  }
  for (const line of sums.stdout.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) continue;
    const p = m[2]!;
    out.set(p, { path: p, sha256: m[1]!, mode: modeOf.get(p) ?? '?' });
  }
  return out;
}

export const routerFileHandler: ResourceHandler<LinuxContext, RouterFileDesired, RouterFileValue> = {
  kind: 'linux.file',
  desired(ctx) {
    return routerFiles(ctx).map((f) => ({
      address: fileAddress(ctx, f.path),
      dependsOn: [],
      value: { path: f.path, sha256: sha256(f.content), mode: f.mode.toString(8), content: f.content, purpose: f.purpose },
    }));
  },
  async observe(ctx, desired) {
    const facts = await readFileFacts(
      ctx,
      desired.map((d) => d.value.path),
    );
    return desired.flatMap((d) => {
      const v = facts.get(d.value.path);
      return v ? [{ address: d.address, value: v }] : [];
    });
  },
  diff(desired, observed) {
    if (observed && observed.sha256 === desired.sha256 && observed.mode === desired.mode) return { action: 'noop', properties: [], disruption: [] };
    const props = [];
    if (observed?.sha256 !== desired.sha256) props.push({ path: 'sha256', before: observed?.sha256.slice(0, 16) ?? null, after: desired.sha256.slice(0, 16) });
    if (observed?.mode !== desired.mode) props.push({ path: 'mode', before: observed?.mode ?? null, after: desired.mode });
    return { action: observed ? 'update' : 'create', properties: props, disruption: ['none'], reason: desired.purpose };
  },
  async apply(ctx, change) {
    const want = change.desired;
    await ctx.router.write(['mkdir', '-p', '--', dirOf(want.path)]);
    // writeFile is one write call on the router (SFTP write + chmod + rename, or dd + chmod + mv).
    await ctx.router.writeFile(want.path, want.content, parseInt(want.mode, 8));
    return (await readFileFacts(ctx, [want.path])).get(want.path) ?? { path: want.path, sha256: '', mode: '' };
  },
  postActions(changes) {
    const units = changes.some((c) => c.address.includes('/etc/systemd/system/'));
    const monitor = changes.some((c) => c.address.endsWith(ROUTER_PATHS.monitorConfig) || c.address.endsWith(ROUTER_PATHS.monitorUnit));
    const posts: { id: string; title: string; run(ctx: LinuxContext): Promise<void> }[] = [];
    if (units) {
      posts.push({
        id: 'linux.systemd-daemon-reload',
        title: 'systemd: reload unit files',
        async run(ctx) {
          if (ctx.options.systemd === 'live') await ctx.router.write(['systemctl', 'daemon-reload']);
        },
      });
    }
    if (monitor) {
      posts.push({
        id: 'linux.monitor-restart',
        title: `restart ${MONITOR_UNIT} if it runs (new configuration)`,
        async run(ctx) {
          if (ctx.options.systemd === 'live') await ctx.router.write(['systemctl', 'try-restart', MONITOR_UNIT]);
        },
      });
    }
    return posts;
  },
};

export interface UnitValue {
  readonly unit: string;
  /** As `systemctl is-enabled` prints it: enabled, disabled, masked, not-found, … */
  readonly state: string;
}

function systemctl(ctx: LinuxContext, ...args: string[]): [string, ...string[]] {
  return ctx.options.systemd === 'offline' ? ['systemctl', `--root=${ctx.options.fsRoot || '/'}`, ...args] : ['systemctl', ...args];
}

async function unitState(ctx: LinuxContext, unit: string): Promise<string> {
  // is-enabled exits non-zero for anything but enabled; an unknown unit prints nothing on stdout.
  const res = await ctx.router.read(systemctl(ctx, 'is-enabled', unit), [0, 1, 4]);
  return res.stdout.trim().split('\n')[0] || 'not-found';
}

export const unitHandler: ResourceHandler<LinuxContext, UnitValue, UnitValue> = {
  kind: 'linux.unit',
  desired(ctx) {
    return [RESTORE_UNIT, MONITOR_UNIT].map((unit) => ({
      address: `linux.unit/${unit}`,
      dependsOn: [fileAddress(ctx, routerPath(ctx, unit === RESTORE_UNIT ? ROUTER_PATHS.restoreUnit : ROUTER_PATHS.monitorUnit)), fileAddress(ctx, routerPath(ctx, ROUTER_PATHS.restoreScript))],
      value: { unit, state: 'enabled' },
    }));
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      const state = await unitState(ctx, d.value.unit);
      if (state !== 'not-found') out.push({ address: d.address, value: { unit: d.value.unit, state } });
    }
    return out;
  },
  diff(desired, observed) {
    if (observed?.state === desired.state) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: observed ? 'update' : 'create',
      properties: [{ path: 'is-enabled', before: observed?.state ?? null, after: desired.state }],
      disruption: ['none'],
      reason: desired.unit === RESTORE_UNIT ? 'restores routing and NAT at every boot' : 'starts the health monitor at every boot',
    };
  },
  async apply(ctx, change) {
    const unit = change.desired.unit;
    if (ctx.options.systemd === 'offline') {
      await ctx.router.write(systemctl(ctx, 'enable', unit));
    } else if (unit === MONITOR_UNIT && !ctx.runtimeInstalled) {
      // Enabled for the next boot; it cannot run before dualwan is installed on the router.
      await ctx.router.write(systemctl(ctx, 'enable', unit));
    } else {
      await ctx.router.write(systemctl(ctx, 'enable', '--now', unit));
    }
    return { unit, state: await unitState(ctx, unit) };
  },
};
