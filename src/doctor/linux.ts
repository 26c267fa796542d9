import type { Duplex } from 'node:stream';
import { parseCidr, parseIpv4, rangeContains } from '../config/net';
import { pendingChanges, type Change } from '../core/plan';
import { DualwanError } from '../core/errors';
import { linuxPreflight, openLinuxRouter } from '../flows/linux';
import type { StageEnv } from '../flows/stage';
import { makePlan, observe } from '../plan/engine';
import { buildLinuxContext, type LinuxContext, type LinuxRouterOptions } from '../providers/linux/context';
import { MONITOR_UNIT } from '../providers/linux/persist';
import { linuxHandlers } from '../providers/linux/resources';
import type { SshClient } from '../providers/linux/ssh';
import type { Finding } from './host';

/**
 * Read-only checks of a Linux router over SSH, with what the Linux backend itself offers: the
 * programs it runs (its preflight), the WANs' addresses and gateways (its context), whether the
 * kernel settings, NAT table, routing tables, rules, default route and boot files are as
 * dualwan.yaml wants (its handlers' observe + a plan that is never applied), and whether the
 * health monitor runs. Nothing is changed: the session counts writes and none is made.
 */
export interface LinuxDoctorOptions {
  /** Where persistent files live and how units are managed (the lab passes a private root). */
  readonly router?: Partial<LinuxRouterOptions>;
  /** A byte stream to the router's sshd instead of TCP. */
  readonly transport?: () => Duplex;
}

const R = 'router' as const;
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Which handler kinds make which check, and what "ok" says. */
const KIND_CHECKS: readonly { check: string; kinds: readonly string[]; ok: string; what: string }[] = [
  { check: 'router.linux.sysctl', kinds: ['linux.sysctl'], ok: 'kernel settings (forwarding, rp_filter) as dualwan sets them', what: 'kernel settings' },
  { check: 'router.linux.nat', kinds: ['linux.nft-table'], ok: 'the nftables table dualwan (NAT per WAN, connection marks) is in place', what: 'the nftables NAT table' },
  { check: 'router.linux.tables', kinds: ['linux.route-table'], ok: 'one routing table per WAN', what: 'the routing tables' },
  { check: 'router.linux.rules', kinds: ['linux.rule'], ok: 'the source and mark rules send each WAN\'s traffic to its table', what: 'the routing rules' },
  { check: 'router.linux.default-route', kinds: ['linux.default-route'], ok: 'the default route follows the policy (and the monitor)', what: 'the default route' },
  { check: 'router.linux.persistence', kinds: ['linux.file', 'linux.unit'], ok: 'the boot files and units bring it all back after a restart', what: 'the boot files and units' },
];

function describe(c: Change): string {
  const props = c.properties.slice(0, 3).map((p) => p.path).filter(Boolean);
  return `${c.action} ${c.address}${props.length ? ` (${props.join(', ')}${c.properties.length > 3 ? ', …' : ''})` : ''}`;
}

export async function doctorLinux(env: StageEnv, o: LinuxDoctorOptions = {}): Promise<Finding[]> {
  const state = env.state;
  const target = state.linux ? `${state.linux.user}@${state.linux.host}:${state.linux.port}` : 'the Linux router';
  const out: Finding[] = [];
  let ssh: SshClient;
  try {
    ssh = await openLinuxRouter(env, o);
  } catch (e) {
    out.push({
      area: R,
      check: 'router.reachable',
      status: 'fail',
      message: `Could not open an SSH session to ${target}: ${message(e)}`,
      remedy: e instanceof DualwanError && e.remedy ? e.remedy : `Check that ${target} answers SSH from this machine, that DUALWAN_SSH_PRIVATE_KEY_FILE names the key in the router's authorized_keys, and linux.hostKey in dualwan.yaml.`,
    });
    return out;
  }
  try {
    out.push({ area: R, check: 'router.reachable', status: 'ok', message: `SSH to ${target} with the pinned host key` });

    const pre = await linuxPreflight(ssh, state, o.router ?? {});
    const tools = pre.filter((d) => d.code === 'LINUX_TOOL_MISSING');
    out.push(...(tools.length ? tools.map((d) => ({ area: R, check: 'router.linux.tools', status: 'fail' as const, message: d.message, remedy: d.remedy ?? 'Install it on the router.' })) : [{ area: R, check: 'router.linux.tools', status: 'ok' as const, message: 'every program the backend runs is installed' }]));
    for (const d of pre.filter((x) => x.code !== 'LINUX_TOOL_MISSING')) {
      out.push({ area: R, check: 'router.linux.monitor-targets', status: d.severity === 'error' ? 'fail' : 'warn', message: d.message, remedy: d.remedy ?? 'Give each WAN two monitor IPs.' });
    }
    if (tools.length) return out; // the reads below need these programs

    let ctx: LinuxContext;
    try {
      ctx = await buildLinuxContext(state, ssh, o.router ?? {});
    } catch (e) {
      out.push({ area: R, check: 'router.linux.wans', status: 'fail', message: message(e), remedy: e instanceof DualwanError && e.remedy ? e.remedy : 'Bring the WAN interfaces up (ip -br addr) and run dualwan doctor again.' });
      return out;
    }
    out.push({ area: R, check: 'router.linux.wans', status: 'ok', message: ctx.wans.map((w) => `${w.name} on ${w.interface} ${w.address} via ${w.gateway}`).join('; ') });

    const plan = makePlan(linuxHandlers, await observe(ctx, linuxHandlers), 'doctor', new Date().toISOString());
    const pending = pendingChanges(plan);
    for (const c of KIND_CHECKS) {
      const mine = pending.filter((p) => c.kinds.includes(p.kind));
      out.push(
        mine.length
          ? {
              area: R,
              check: c.check,
              status: 'fail',
              message: `${c.what[0]!.toUpperCase()}${c.what.slice(1)} differ from dualwan.yaml: ${mine.map(describe).join('; ')}.`,
              remedy: 'Run `dualwan plan` to see the differences, then `dualwan apply` (a reboot without it, or another tool editing the router, undoes them).',
            }
          : { area: R, check: c.check, status: 'ok', message: c.ok },
      );
    }

    // The health monitor: without it nothing fails over.
    if (ctx.monitorActive) {
      out.push({ area: R, check: 'router.linux.monitor', status: 'ok', message: `the health monitor runs and routes new connections through ${ctx.monitorActive.join(', ')}` });
    } else if (ctx.options.systemd === 'offline') {
      out.push({ area: R, check: 'router.linux.monitor', status: 'skipped', message: 'This router\'s units are enabled but not run by dualwan (offline systemd), and no monitor has published which WANs are up.', remedy: `Start ${MONITOR_UNIT} on the router (systemctl start ${MONITOR_UNIT}).` });
    } else {
      const active = await ctx.router.read(['systemctl', 'is-active', MONITOR_UNIT], [0, 1, 2, 3, 4]);
      const st = active.stdout.trim() || 'unknown';
      if (!ctx.runtimeInstalled) {
        out.push({
          area: R,
          check: 'router.linux.monitor',
          status: 'fail',
          message: `dualwan is not installed on the router (${ctx.options.dualwanCommand.join(' ')}), so the health monitor cannot run: nothing fails over.`,
          remedy: `On the router: install Node.js 20 and run \`npm install -g dualwan\`, then \`systemctl start ${MONITOR_UNIT}\`.`,
        });
      } else if (st !== 'active') {
        out.push({
          area: R,
          check: 'router.linux.monitor',
          status: 'fail',
          message: `The health monitor ${MONITOR_UNIT} is ${st}: nothing fails over.`,
          remedy: `On the router: \`systemctl start ${MONITOR_UNIT}\`; if it stops again, \`journalctl -u ${MONITOR_UNIT}\` says why. \`dualwan apply\` installs and enables it.`,
        });
      } else {
        out.push({ area: R, check: 'router.linux.monitor', status: 'warn', message: `${MONITOR_UNIT} is active but has not said within the last minute which WANs are up.`, remedy: `Look at \`journalctl -u ${MONITOR_UNIT}\` on the router; restart it if it hangs.` });
      }
    }
    if (ctx.router.writes !== 0) throw new DualwanError('DOCTOR_WROTE', `doctor made ${ctx.router.writes} write calls on the router; it must make none.`, { source: 'tool' });

    // What the router sees of the topology.
    const same: Finding[] = [];
    for (let i = 0; i < ctx.wans.length; i++) {
      for (let j = i + 1; j < ctx.wans.length; j++) {
        const a = ctx.wans[i]!;
        const b = ctx.wans[j]!;
        if (a.gateway === b.gateway) {
          same.push({
            area: 'topology',
            check: 'topology.same-gateway-ip',
            status: 'warn',
            message: `Both ${a.name} (${a.interface}) and ${b.name} (${b.interface}) reach the internet through ${a.gateway}: two upstream devices hand out the same default subnet. The Linux backend routes by interface so traffic still flows, but the two devices cannot both be reached by address (admin pages, the monitor's gateway view).`,
            remedy: `Change the LAN subnet of one upstream device in its own settings (e.g. ${b.name}'s to 192.168.2.0/24), or put a modem in bridge mode; then renew the lease on ${b.interface}.`,
          });
        }
      }
    }
    out.push(...(same.length ? same : [{ area: 'topology' as const, check: 'topology.same-gateway-ip', status: 'ok' as const, message: `each WAN has its own gateway (${ctx.wans.map((w) => `${w.name} ${w.gateway}`).join(', ')})` }]));
    const lan = parseCidr(state.lan.subnet);
    const inside = ctx.wans.filter((w) => {
      const n = parseIpv4(w.address);
      return lan && n !== undefined && rangeContains(lan, n);
    });
    out.push(
      ...(inside.length
        ? inside.map((w) => ({ area: 'topology' as const, check: 'topology.wan-subnet', status: 'fail' as const, message: `${w.name} has the address ${w.address}, inside the LAN ${state.lan.subnet}.`, remedy: `Change lan.subnet in dualwan.yaml or the subnet the upstream device of ${w.name} hands out.` }))
        : [{ area: 'topology' as const, check: 'topology.wan-subnet', status: 'ok' as const, message: 'no WAN address falls inside the LAN' }]),
    );
    return out;
  } finally {
    await ssh.close();
  }
}
