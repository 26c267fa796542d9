import type { ResourceHandler } from '../../../plan/handler';
import { parseSysctlOutput, sysctlRead, sysctlWrite } from '../commands';
import type { LinuxContext } from '../context';

/** One kernel setting on the router (runtime value; persistence at boot is a separate unit). */
export interface SysctlValue {
  readonly key: string;
  readonly value: string;
}

/**
 * The kernel settings a dual-WAN router needs (shared/research/linux-lab.md §1–3):
 * forwarding; loose reverse-path filtering (strict mode drops the replies of a connection routed
 * out of the other WAN); per-flow (L4) multipath hashing so one client spreads over both lines;
 * and dropping a next hop whose link lost carrier, which costs nothing and catches the easy failure.
 */
export function desiredSysctls(ctx: LinuxContext): SysctlValue[] {
  const values: Record<string, string> = {
    'net.ipv4.ip_forward': '1',
    'net.ipv4.conf.all.rp_filter': '2',
    'net.ipv4.fib_multipath_hash_policy': '1',
    'net.ipv4.conf.all.ignore_routes_with_linkdown': '1',
  };
  for (const w of ctx.wans) values[`net.ipv4.conf.${w.interface}.rp_filter`] = '2';
  return Object.entries(values).map(([key, value]) => ({ key, value }));
}

export const sysctlHandler: ResourceHandler<LinuxContext, SysctlValue, SysctlValue> = {
  kind: 'linux.sysctl',
  desired(ctx) {
    return desiredSysctls(ctx).map((value) => ({ address: `linux.sysctl/${value.key}`, dependsOn: [], value }));
  },
  async observe(ctx, desired) {
    if (desired.length === 0) return [];
    const res = await ctx.router.read(sysctlRead(desired.map((d) => d.value.key)));
    const now = parseSysctlOutput(res.stdout);
    return desired.flatMap((d) => {
      const value = now.get(d.value.key);
      return value === undefined ? [] : [{ address: d.address, value: { key: d.value.key, value } }];
    });
  },
  diff(desired, observed) {
    if (!observed) {
      return { action: 'create', properties: [{ path: desired.key, before: null, after: desired.value }], disruption: ['none'], reason: 'the kernel does not report this setting' };
    }
    if (observed.value === desired.value) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: 'update',
      properties: [{ path: desired.key, before: observed.value, after: desired.value }],
      disruption: ['none'],
      reason: desired.key === 'net.ipv4.ip_forward' ? 'the router starts forwarding between LAN and WANs' : undefined,
    };
  },
  async apply(ctx, change) {
    const { key, value } = change.desired;
    await ctx.router.write(sysctlWrite(key, value));
    const back = parseSysctlOutput((await ctx.router.read(sysctlRead([key]))).stdout).get(key);
    return { key, value: back ?? '' };
  },
};
