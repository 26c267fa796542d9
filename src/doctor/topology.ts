import * as os from 'node:os';
import { runAccessPointChecks, shellLanProbe, type CheckResult, type LanProbe } from '../accesspoint/checks';
import { parseCidr, parseIpv4, rangeContains } from '../config/net';
import type { Diagnostic } from '../core/diagnostics';
import type { DesiredState } from '../core/desired';
import { LocalShell } from '../providers/linux/local';
import type { Finding } from './host';

/**
 * Topology checks. From dualwan.yaml (the config rules): subnet overlaps, common default ranges,
 * a LAN inside the carrier-grade NAT block. From the LAN itself: a second DHCP server and double
 * NAT, with the access-point checks (accesspoint/checks.ts) — they need a LanProbe, i.e. this
 * machine on the LAN; otherwise they are skipped with what to do. The topology the router sees
 * (the same gateway IP on both WANs, a WAN inside the LAN, CGNAT on a WAN) comes with the router
 * checks (router.ts, linux.ts).
 */

/** Config rule codes that are topology checks, by check id. */
const CONFIG_TOPOLOGY: readonly { check: string; codes: readonly string[]; ok: (s: DesiredState) => string }[] = [
  {
    check: 'topology.overlaps',
    codes: ['RULE_SUBNET_OVERLAP', 'RULE_LAN_COMMON_RANGE'],
    ok: (s) => `the LAN ${s.lan.subnet} overlaps no WAN's upstream subnet and avoids the common default ranges`,
  },
  { check: 'topology.lan-cgnat', codes: ['RULE_LAN_CGNAT'], ok: (s) => `the LAN ${s.lan.subnet} is outside the carrier-grade NAT block 100.64.0.0/10` },
];

/** The config rules' findings that are topology checks, under their check ids (ok when silent). */
export function configTopology(state: DesiredState, diagnostics: readonly Diagnostic[]): Finding[] {
  const out: Finding[] = [];
  for (const c of CONFIG_TOPOLOGY) {
    const hits = diagnostics.filter((d) => c.codes.includes(d.code));
    if (!hits.length) out.push({ area: 'topology', check: c.check, status: 'ok', message: c.ok(state) });
    for (const d of hits) {
      const where = d.location ? `${d.location.file}:${d.location.line}:${d.location.column}: ` : '';
      out.push({ area: 'topology', check: c.check, status: d.severity === 'error' ? 'fail' : 'warn', message: `${where}${d.message}`, remedy: d.remedy ?? 'Change the subnets in dualwan.yaml so no two networks overlap.' });
    }
  }
  return out;
}

export const TOPOLOGY_CONFIG_CODES: readonly string[] = CONFIG_TOPOLOGY.flatMap((c) => c.codes);

/** How the doctor gets onto the LAN: a probe, or why not and what to do. */
export type LanAccess = { readonly probe: LanProbe; readonly from: string } | { readonly skipped: string; readonly remedy: string };

/** This machine's IPv4 addresses (name → addresses). */
export type LocalAddresses = Readonly<Record<string, readonly string[]>>;

export function localAddresses(): LocalAddresses {
  const out: Record<string, string[]> = {};
  for (const [name, list] of Object.entries(os.networkInterfaces())) {
    const v4 = (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address);
    if (v4.length) out[name] = v4;
  }
  return out;
}

/**
 * The LAN probe for `mode: 'auto'`: this machine's own shell and DHCP discovery, when one of its
 * addresses is inside the LAN (then its packets go where the LAN's devices' go). Otherwise the
 * checks are skipped: sending them from elsewhere would test another network.
 */
export function chooseLanAccess(state: Pick<DesiredState, 'lan'>, mode: 'auto' | 'off', addresses: LocalAddresses = localAddresses(), probe?: () => LanProbe): LanAccess {
  const lanRemedy = `Run \`dualwan doctor\` from a computer on the LAN (${state.lan.subnet}, through the access point's Wi-Fi or a LAN port), as root so it can listen for DHCP offers.`;
  if (mode === 'off') return { skipped: 'The LAN checks were switched off (--no-lan-checks).', remedy: lanRemedy };
  const lan = parseCidr(state.lan.subnet);
  for (const [name, list] of Object.entries(addresses)) {
    for (const a of list) {
      const n = parseIpv4(a);
      if (lan && n !== undefined && rangeContains(lan, n) && a !== state.lan.routerAddress) {
        return { probe: probe ? probe() : shellLanProbe(new LocalShell(), process.platform === 'freebsd' ? 'freebsd' : 'linux'), from: `${a} on ${name}` };
      }
    }
  }
  const mine = Object.values(addresses).flat();
  return { skipped: `This machine is not on the LAN ${state.lan.subnet}${mine.length ? ` (its addresses: ${mine.join(', ')})` : ''}, so it cannot look for a second DHCP server or double NAT there.`, remedy: lanRemedy };
}

const STATUS: Record<CheckResult['status'], Finding['status']> = { pass: 'ok', fail: 'fail', skipped: 'skipped' };

/** The access-point checks as doctor findings: topology.ap-address, topology.single-dhcp, topology.no-double-nat. */
export async function lanTopology(state: DesiredState, access: LanAccess, opts: { outTarget?: string; maxHops?: number } = {}): Promise<Finding[]> {
  const ids = ['ap-address', 'single-dhcp', 'no-double-nat'] as const;
  if ('skipped' in access) return ids.map((id) => ({ area: 'topology', check: `topology.${id}`, status: 'skipped', message: access.skipped, remedy: access.remedy }));
  const outTarget = opts.outTarget ?? state.wans.find((w) => w.monitorIps.length)?.monitorIps[0] ?? '1.1.1.1';
  const results = await runAccessPointChecks(state, access.probe, { outTarget, maxHops: opts.maxHops ?? 3 });
  return results.map((r) => {
    const remedy = r.change ?? (r.status === 'skipped' ? 'Run `dualwan doctor` as root from a computer on the LAN.' : undefined);
    return { area: 'topology', check: `topology.${r.id}`, status: STATUS[r.status], message: r.status === 'pass' ? `${r.message} (seen from ${access.from})` : r.message, ...(remedy ? { remedy } : {}) };
  });
}
