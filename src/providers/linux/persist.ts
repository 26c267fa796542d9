/**
 * What makes the router come back after a reboot: a boot script, systemd units, DHCP hooks and the
 * files they read, all rendered here from the same context the live handlers use.
 *
 * - `dualwan-restore` (POSIX sh) restores, in this order: the nftables table (one `nft -f`
 *   transaction, so the firewall is in place before forwarding starts), the kernel settings with
 *   `ip_forward` last, each WAN's routing table and rules, and finally the default route. Static
 *   WANs are baked in; a DHCP WAN's address and gateway are read from the interface when the
 *   script runs, so a new lease re-renders its table and its `from <address>` rule.
 * - `dualwan-restore.service` runs it once at boot after the network is online;
 *   `dualwan-monitor.service` runs the health monitor after it.
 * - a networkd-dispatcher script (`routable.d`) and a dhclient exit hook run
 *   `dualwan-restore dhcp <interface>` when a WAN gets a lease, whichever DHCP client the router uses.
 * - while the monitor runs it keeps `active-wans` fresh (rewritten every few seconds); the script
 *   then builds the default route from the WANs the monitor considers healthy instead of from all
 *   of the best tier, so a lease renewal never undoes a failover.
 *
 * The script is fixed logic plus a data block; every value in the data block is validated before
 * it is rendered (names, interface names, addresses, numbers), so nothing from dualwan.yaml can
 * become shell syntax.
 */
import { posix as posixPath } from 'node:path';
import { DualwanError } from '../../core/errors';
import { isCidr, isInterfaceName, isIpv4 } from './commands';
import { MARK_MASK, type LinuxContext, type WanFacts } from './context';
import type { MonitorDaemonConfig } from './monitor/config';
import { desiredSysctls } from './resources/sysctl';
import { desiredNatTable } from './resources/nat';
import { WAN_TABLE_FALLBACK_METRIC } from './resources/routing';

/** Where things live on the router, before the optional file-system root prefix. */
export const ROUTER_PATHS = Object.freeze({
  restoreScript: '/usr/local/sbin/dualwan-restore',
  nftRuleset: '/etc/dualwan/dualwan.nft',
  monitorConfig: '/etc/dualwan/monitor.json',
  restoreUnit: '/etc/systemd/system/dualwan-restore.service',
  monitorUnit: '/etc/systemd/system/dualwan-monitor.service',
  networkdHook: '/etc/networkd-dispatcher/routable.d/50-dualwan',
  dhclientHook: '/etc/dhcp/dhclient-exit-hooks.d/dualwan',
  /** Written by the monitor: the WANs carrying new connections, one name per line (tmpfs: gone at boot). */
  activeWans: '/run/dualwan/active-wans',
  /** Written by the monitor: its state as JSON, for `dualwan verify` and people. */
  monitorState: '/run/dualwan/monitor-state.json',
  /** The monitor's pid: the DHCP hooks send it SIGHUP so it re-reads addresses at once. */
  monitorPid: '/run/dualwan/monitor.pid',
  /** The probe budget spent this month on metered WANs, kept across restarts. */
  budget: '/var/lib/dualwan/probe-budget.json',
});

export const RESTORE_UNIT = 'dualwan-restore.service';
export const MONITOR_UNIT = 'dualwan-monitor.service';

/** The monitor rewrites the active-WAN file this often; older than ACTIVE_FRESH_S, it is ignored. */
export const ACTIVE_REFRESH_MS = 10_000;
export const ACTIVE_FRESH_S = 60;

export function routerPath(ctx: Pick<LinuxContext, 'options'>, p: string): string {
  return `${ctx.options.fsRoot}${p}`;
}

export interface RouterFile {
  /** Absolute path on the router, with the file-system root applied. */
  readonly path: string;
  readonly content: string;
  /** Octal mode, e.g. 0o755. */
  readonly mode: number;
  readonly purpose: string;
}

function word(value: string, ok: boolean, what: string): string {
  if (!ok || value.length === 0 || /[^A-Za-z0-9_./:-]/.test(value)) {
    throw new DualwanError('PERSIST_VALUE_INVALID', `Refusing to write ${what} ${JSON.stringify(value)} into the boot script.`, { source: 'tool' });
  }
  return value;
}

function wanLine(w: WanFacts, cidr: string): string {
  const name = word(w.name, /^[a-z0-9][a-z0-9_-]{0,31}$/.test(w.name), 'WAN name');
  const dev = word(w.interface, isInterfaceName(w.interface), 'interface');
  const address = w.addressing === 'static' ? word(cidr, isCidr(cidr), 'address') : '-';
  const gateway = w.addressing === 'static' ? word(w.gateway, isIpv4(w.gateway), 'gateway') : '-';
  const nums = [w.table, w.sourceRulePriority, w.markRulePriority].map((n) => word(String(n), Number.isInteger(n) && n > 0, 'number'));
  return [name, dev, w.addressing, address, gateway, ...nums, `0x${w.mark.toString(16)}`, String(w.weight), String(w.tier)].join(' ');
}

/** The boot and DHCP-lease script. Same context, same bytes: a second apply finds nothing to do. */
export function renderRestoreScript(ctx: LinuxContext): string {
  const lanIf = word(ctx.lan.interface, isInterfaceName(ctx.lan.interface), 'LAN interface');
  const lanNet = word(ctx.lan.subnet, isCidr(ctx.lan.subnet), 'LAN subnet');
  const sysctls = desiredSysctls(ctx);
  const forward = sysctls.filter((s) => s.key === 'net.ipv4.ip_forward');
  const others = sysctls.filter((s) => s.key !== 'net.ipv4.ip_forward');
  const sysctlLines = [...others, ...forward].map((s) => `try sysctl -q -w ${word(s.key, /^[a-z0-9_.]+$/.test(s.key), 'sysctl key')}=${word(s.value, /^[0-9]+$/.test(s.value), 'sysctl value')}`);
  const staticCidr = (w: WanFacts, i: number) => {
    const a = ctx.state.wans[i]?.addressing;
    return a?.mode === 'static' ? a.address : '';
  };
  const wans = ctx.wans.map((w, i) => wanLine(w, staticCidr(w, i)));
  const bestTier = Math.min(...ctx.wans.map((w) => w.tier));
  const q = (p: string) => `'${word(p, p.startsWith('/'), 'path')}'`;
  return `#!/bin/sh
# dualwan-restore: brings back the dual-WAN routing of this router.
# Written by \`dualwan apply\` from dualwan.yaml; the next apply replaces any edit.
#   dualwan-restore boot            run by ${RESTORE_UNIT} at boot
#   dualwan-restore dhcp <iface>    run by the DHCP hooks when a WAN gets a (new) lease
# Order: nftables table, kernel settings (forwarding last), per-WAN tables and rules, default route.
# Running it again changes nothing.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
NFT_FILE=${q(routerPath(ctx, ROUTER_PATHS.nftRuleset))}
ACTIVE_FILE=${q(routerPath(ctx, ROUTER_PATHS.activeWans))}
PID_FILE=${q(routerPath(ctx, ROUTER_PATHS.monitorPid))}
LAN_IF=${lanIf}
LAN_NET=${lanNet}
MARK_MASK=0x${MARK_MASK.toString(16)}
BEST_TIER=${bestTier}
FALLBACK_METRIC=${WAN_TABLE_FALLBACK_METRIC}
reason=\${1:-boot}
status=0

say() { echo "dualwan-restore ($reason): $*"; }
try() { "$@" || { say "failed: $*"; status=1; }; }

network_of() {
  echo "$1" | awk -F'[./]' '{ p = $5; ip = (($1 * 256 + $2) * 256 + $3) * 256 + $4; s = 2 ^ (32 - p); n = int(ip / s) * s;
    printf "%d.%d.%d.%d/%d\\n", int(n / 16777216) % 256, int(n / 65536) % 256, int(n / 256) % 256, n % 256, p }'
}
gateway_in() { # table [dev]: the gateway of the default route there
  if [ $# -gt 1 ]; then ip -4 route show table "$1" default dev "$2" 2>/dev/null; else ip -4 route show table "$1" default 2>/dev/null; fi |
    awk '{ for (i = 1; i < NF; i++) if ($i == "via") { print $(i + 1); exit } }'
}
set_rule() { # priority expected-text ip-rule-selector...
  prio=$1; want=$2; shift 2
  have=$(ip rule show priority "$prio" 2>/dev/null | sed 's/^[0-9]*:[[:space:]]*//; s/[[:space:]]*$//')
  [ "$have" = "$want" ] && return 0
  for _ in 1 2 3 4 5 6 7 8; do ip rule del priority "$prio" 2>/dev/null || break; done
  try ip rule add priority "$prio" "$@"
}

# 1. Firewall, NAT and connection marks, as one transaction, before forwarding is on.
try nft -f "$NFT_FILE"

# 2. Kernel settings (per-interface ones fail harmlessly until the interface exists).
${sysctlLines.join('\n')}

# 3. Each WAN: name interface addressing address gateway table source-rule mark-rule mark weight tier
WANS='
${wans.join('\n')}
'
HOPS=''
HOP_COUNT=0
ACTIVE=''
if [ -f "$ACTIVE_FILE" ] && [ -n "$(find "$ACTIVE_FILE" -mmin -1 2>/dev/null)" ]; then ACTIVE=$(tr '\\n' ' ' < "$ACTIVE_FILE"); fi

restore_wan() {
  name=$1 dev=$2 mode=$3 cidr=$4 gw=$5 table=$6 srcprio=$7 markprio=$8 mark=$9
  shift 9
  weight=$1 tier=$2
  if [ "$mode" = dhcp ]; then
    cidr=$(ip -4 -o addr show dev "$dev" scope global 2>/dev/null | awk '{ print $4; exit }')
    gw=$(gateway_in main "$dev")
    [ -n "$gw" ] || gw=$(gateway_in "$table")
  fi
  if [ -z "$cidr" ] || [ "$cidr" = - ] || [ -z "$gw" ] || [ "$gw" = - ]; then
    say "WAN $name ($dev) has no address or gateway yet; it is restored when its lease arrives"
    return 0
  fi
  addr=\${cidr%/*}
  net=$(network_of "$cidr")
  try ip route replace "$net" dev "$dev" src "$addr" scope link table "$table"
  try ip route replace "$LAN_NET" dev "$LAN_IF" scope link table "$table"
  try ip route replace default via "$gw" dev "$dev" table "$table"
  try ip route replace unreachable default metric ${'$'}{FALLBACK_METRIC} table "$table"
  for dst in $(ip -4 -o route show table "$table" 2>/dev/null | awk '$1 != "unreachable" { print $1 }'); do
    case "$dst" in "$net"|"$LAN_NET"|default) ;; *) try ip route del "$dst" table "$table" ;; esac
  done
  set_rule "$srcprio" "from $addr lookup $table" from "$addr" table "$table"
  set_rule "$markprio" "from all fwmark $mark/$MARK_MASK lookup $table" fwmark "$mark/$MARK_MASK" table "$table"
  if [ -n "$ACTIVE" ]; then
    case " $ACTIVE " in *" $name "*) ;; *) return 0 ;; esac
  elif [ "$tier" != "$BEST_TIER" ]; then
    return 0
  fi
  HOPS="$HOPS $gw $dev $weight"
  HOP_COUNT=$((HOP_COUNT + 1))
}

while read -r line; do
  [ -n "$line" ] || continue
  # shellcheck disable=SC2086 # the data block holds validated plain words only
  restore_wan $line
done <<EOF
$WANS
EOF

# 4. The default route for new connections: one atomic replace.
if [ "$HOP_COUNT" -eq 1 ]; then
  set -- $HOPS
  try ip route replace default proto static via "$1" dev "$2"
elif [ "$HOP_COUNT" -gt 1 ]; then
  set --
  for word in $HOPS; do set -- "$@" "$word"; done
  args=''
  while [ $# -ge 3 ]; do args="$args nexthop via $1 dev $2 weight $3"; shift 3; done
  # shellcheck disable=SC2086 # validated plain words
  try ip route replace default proto static $args
else
  say "no WAN has an address and a gateway yet; the default route is left as it is"
fi
# 5. A running monitor re-reads the WAN addresses at once (new lease: new probe source).
if [ -f "$PID_FILE" ]; then
  pid=$(cat "$PID_FILE" 2>/dev/null)
  case "$pid" in ''|*[!0-9]*) ;; *) grep -q monitor "/proc/$pid/cmdline" 2>/dev/null && kill -HUP "$pid" 2>/dev/null ;; esac
fi
say "done (status $status)"
exit $status
`;
}

export function renderRestoreUnit(ctx: LinuxContext): string {
  return `[Unit]
Description=dualwan: restore dual-WAN routing, rules and NAT
Wants=network-online.target
After=network-online.target nftables.service
Before=${MONITOR_UNIT}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${routerPath(ctx, ROUTER_PATHS.restoreScript)} boot

[Install]
WantedBy=multi-user.target
`;
}

/** The monitor unit's command line (also what the lab runs in place of systemd). */
export function monitorExecStart(ctx: LinuxContext): string[] {
  return [...ctx.options.dualwanCommand, 'monitor', '--config', routerPath(ctx, ROUTER_PATHS.monitorConfig)];
}

export function renderMonitorUnit(ctx: LinuxContext): string {
  return `[Unit]
Description=dualwan: WAN health monitor (failover and failback)
Wants=network-online.target
After=network-online.target ${RESTORE_UNIT}
Requires=${RESTORE_UNIT}

[Service]
Type=simple
# DUALWAN_MONITOR_WEBHOOK=https://… (optional) belongs here, not in dualwan.yaml: such URLs carry tokens.
EnvironmentFile=-/etc/default/dualwan-monitor
ExecStart=${monitorExecStart(ctx).join(' ')}
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=2
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
`;
}

function dhcpInterfaces(ctx: LinuxContext): string[] {
  return ctx.wans.filter((w) => w.addressing === 'dhcp').map((w) => word(w.interface, isInterfaceName(w.interface), 'interface'));
}

export function renderNetworkdHook(ctx: LinuxContext): string {
  return `#!/bin/sh
# networkd-dispatcher: a DHCP WAN became routable (new or renewed lease). Written by dualwan apply.
case "\${IFACE:-}" in
  ${dhcpInterfaces(ctx).join('|')}) exec ${routerPath(ctx, ROUTER_PATHS.restoreScript)} dhcp "$IFACE" ;;
esac
exit 0
`;
}

export function renderDhclientHook(ctx: LinuxContext): string {
  return `# dhclient exit hook (sourced by dhclient-script; must not exit). Written by dualwan apply.
case "\${reason:-}" in
  BOUND|RENEW|REBIND|REBOOT)
    case "\${interface:-}" in
      ${dhcpInterfaces(ctx).join('|')}) ${routerPath(ctx, ROUTER_PATHS.restoreScript)} dhcp "$interface" || true ;;
    esac ;;
esac
`;
}

/** What the monitor daemon reads: everything it needs, no secret, nothing it must look up in dualwan.yaml. */
export function monitorDaemonConfig(ctx: LinuxContext): MonitorDaemonConfig {
  const policy = ctx.state.policy;
  return {
    kind: 'dualwan-monitor',
    version: 1,
    lanInterface: ctx.lan.interface,
    markMask: MARK_MASK,
    profile: { ...policy.monitor },
    killStatesOnFailover: policy.killStatesOnFailover,
    killMeteredStatesOnFailback: policy.killMeteredStatesOnFailback,
    activeFile: routerPath(ctx, ROUTER_PATHS.activeWans),
    stateFile: routerPath(ctx, ROUTER_PATHS.monitorState),
    budgetFile: routerPath(ctx, ROUTER_PATHS.budget),
    pidFile: routerPath(ctx, ROUTER_PATHS.monitorPid),
    wans: ctx.wans.map((w, i) => {
      const spec = ctx.state.wans[i]!;
      return {
        name: w.name,
        interface: w.interface,
        addressing: w.addressing,
        ...(w.addressing === 'static' ? { address: w.address, gateway: w.gateway } : {}),
        table: w.table,
        mark: w.mark,
        weight: w.weight,
        tier: w.tier,
        targets: [...spec.monitorIps],
        dnsServers: [...spec.dnsServers],
        metered: spec.metered,
        probeBudgetMBPerMonth: spec.probeBudgetMBPerMonth,
      };
    }),
  };
}

/** Every file the tool owns on the router, in the order they are written. */
export function routerFiles(ctx: LinuxContext): RouterFile[] {
  const files: RouterFile[] = [
    { path: routerPath(ctx, ROUTER_PATHS.nftRuleset), content: desiredNatTable(ctx).ruleset, mode: 0o600, purpose: 'the nftables table, loaded at boot' },
    { path: routerPath(ctx, ROUTER_PATHS.restoreScript), content: renderRestoreScript(ctx), mode: 0o755, purpose: 'restores routing, rules and NAT' },
    { path: routerPath(ctx, ROUTER_PATHS.monitorConfig), content: `${JSON.stringify(monitorDaemonConfig(ctx), null, 2)}\n`, mode: 0o644, purpose: 'what the health monitor watches' },
    { path: routerPath(ctx, ROUTER_PATHS.restoreUnit), content: renderRestoreUnit(ctx), mode: 0o644, purpose: 'runs dualwan-restore at boot' },
    { path: routerPath(ctx, ROUTER_PATHS.monitorUnit), content: renderMonitorUnit(ctx), mode: 0o644, purpose: 'runs the health monitor' },
  ];
  if (dhcpInterfaces(ctx).length > 0) {
    files.push(
      { path: routerPath(ctx, ROUTER_PATHS.networkdHook), content: renderNetworkdHook(ctx), mode: 0o755, purpose: 're-renders a DHCP WAN on a new lease (systemd-networkd)' },
      { path: routerPath(ctx, ROUTER_PATHS.dhclientHook), content: renderDhclientHook(ctx), mode: 0o644, purpose: 're-renders a DHCP WAN on a new lease (ifupdown/dhclient)' },
    );
  }
  return files;
}

export function fileAddress(ctx: Pick<LinuxContext, 'options'>, fullPath: string): string {
  const rel = ctx.options.fsRoot && fullPath.startsWith(ctx.options.fsRoot) ? fullPath.slice(ctx.options.fsRoot.length) : fullPath;
  return `linux.file/${rel}`;
}

export function dirOf(p: string): string {
  return posixPath.dirname(p);
}
