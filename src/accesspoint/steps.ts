import type { DesiredState } from '../core/desired';
import { formatIpv4, parseCidr, parseIpv4, rangeContains } from '../config/net';

/**
 * The TP-Link router becomes an access point. No API does it reliably (tplinkrouterc6u can toggle
 * DHCP on some models but cannot set the mode or the LAN address), so dualwan prints the steps
 * with the real addresses filled in, then checks the result (checks.ts).
 *
 * Two ways, from research/anchors.md §D:
 * - Operation Mode → Access Point, on most current Archer and Deco models and the TL-WR841N v14
 *   (verify per model and firmware); TP-Link's FAQ 2420 names the TL-WR840N as a model without it.
 * - The manual method, on any model: DHCP server off, a static LAN address outside the router's
 *   DHCP pool, the router cabled into a LAN port (the WAN port stays empty).
 * Known pitfalls are part of the steps: one change per reboot on some firmwares, DHCP that stays
 * on in AP mode on some models, the admin page that moves, tplinkwifi.net that no longer resolves.
 */
export type ApMethod = 'operation-mode' | 'manual';

export interface ModelFacts {
  readonly operationMode: boolean | 'unknown';
  /** Why we think so. */
  readonly source: string;
}

const MODELS: readonly { readonly re: RegExp; readonly facts: ModelFacts }[] = [
  { re: /^TL-?WR840N/i, facts: { operationMode: false, source: 'TP-Link FAQ 2420 names the TL-WR840N as a model without an Operation Mode option' } },
  { re: /^TL-?WR841N/i, facts: { operationMode: true, source: 'the TL-WR841N v14 user guide has Operation Mode → Access Point (older hardware versions may not)' } },
  { re: /^Archer\s*(A|C|AX|BE|GX)\d+/i, facts: { operationMode: true, source: 'current Archer models with the newer web UI have Operation Mode → Access Point (verify for your firmware)' } },
  { re: /^Deco/i, facts: { operationMode: true, source: 'Deco units switch to Access Point mode in the Deco app (More → Advanced → Operation Mode)' } },
];

export function modelFacts(model: string | undefined): ModelFacts {
  const m = model?.trim();
  if (!m) return { operationMode: 'unknown', source: 'no model given' };
  return MODELS.find((x) => x.re.test(m))?.facts ?? { operationMode: 'unknown', source: `no facts about ${m}; look for "Operation Mode" in its web UI` };
}

export interface ApPlanProblem {
  readonly code: string;
  readonly message: string;
}

export interface ApSteps {
  readonly model: string;
  readonly address: string;
  readonly method: ApMethod | 'ask';
  readonly facts: ModelFacts;
  /** Problems with the addresses themselves (fix dualwan.yaml first). */
  readonly problems: readonly ApPlanProblem[];
  readonly sections: readonly { readonly title: string; readonly steps: readonly string[] }[];
}

function maskOf(prefix: number): string {
  return formatIpv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/** Checks the AP address against the LAN: inside the subnet, not the router, outside the DHCP pool. */
export function apAddressProblems(state: Pick<DesiredState, 'lan' | 'accessPoint'>): ApPlanProblem[] {
  const ap = state.accessPoint;
  if (!ap) return [{ code: 'AP_NOT_CONFIGURED', message: 'dualwan.yaml has no accessPoint section.' }];
  const out: ApPlanProblem[] = [];
  const lan = parseCidr(state.lan.subnet);
  const a = parseIpv4(ap.address);
  if (!lan || a === undefined) return [{ code: 'AP_ADDRESS_INVALID', message: `${ap.address} is not an IPv4 address in ${state.lan.subnet}.` }];
  if (!rangeContains(lan, a)) out.push({ code: 'AP_OUTSIDE_LAN', message: `${ap.address} is not in the LAN ${state.lan.subnet}; the access point must be in it.` });
  if (ap.address === state.lan.routerAddress) out.push({ code: 'AP_IS_ROUTER', message: `${ap.address} is the router's own address.` });
  const lo = parseIpv4(state.lan.dhcp.rangeStart);
  const hi = parseIpv4(state.lan.dhcp.rangeEnd);
  if (state.lan.dhcp.enabled && lo !== undefined && hi !== undefined && a >= lo && a <= hi) {
    out.push({ code: 'AP_IN_DHCP_POOL', message: `${ap.address} is inside the router's DHCP pool ${state.lan.dhcp.rangeStart}–${state.lan.dhcp.rangeEnd}; the router could give it to another device.` });
  }
  return out;
}

export function accessPointSteps(state: Pick<DesiredState, 'lan' | 'accessPoint'>, opts: { hasOperationMode?: boolean } = {}): ApSteps {
  const ap = state.accessPoint;
  const model = ap?.model ?? (ap?.vendor === 'tp-link' ? 'TP-Link router' : 'router');
  const address = ap?.address ?? '(set accessPoint.address)';
  const facts = modelFacts(ap?.model);
  const problems = apAddressProblems(state);
  const prefix = Number(state.lan.subnet.split('/')[1] ?? 24);
  const mask = maskOf(prefix);
  const router = state.lan.routerAddress;
  const pool = state.lan.dhcp.enabled ? `${state.lan.dhcp.rangeStart}–${state.lan.dhcp.rangeEnd}` : '(the router hands out no addresses)';
  const method: ApSteps['method'] = opts.hasOperationMode !== undefined ? (opts.hasOperationMode ? 'operation-mode' : 'manual') : facts.operationMode === 'unknown' ? 'ask' : facts.operationMode ? 'operation-mode' : 'manual';

  const before = [
    `Plug a computer into one of the ${model}'s LAN ports (not into the router yet) and open its web page at its current address (often http://192.168.0.1 or http://tplinkwifi.net).`,
    'Make one change at a time and let the device restart when it asks: some firmwares restart after each change and forget the next one if it was entered too early.',
  ];
  const operationMode = [
    'Open Advanced → Operation Mode (on some models System → Operation Mode; Deco: in the app, More → Advanced → Operation Mode), choose Access Point, save, and wait for the restart.',
    `After the restart it takes an address from the router; give it a fixed one: Network → LAN → IP address type Static: ${address}, subnet mask ${mask}, gateway ${router}, DNS ${router}. This is outside the router's DHCP pool ${pool}.`,
    'Check Network → DHCP Server (or Advanced → Network → DHCP Server): it must be off. One report says a model left it on in Access Point mode.',
    `Cable: a LAN port of the router (the box's LAN side, ${router}) into the ${model}'s WAN/Internet port — in Access Point mode that port joins the LAN on TP-Link's current models; if your model's guide names a LAN port instead, use that.`,
  ];
  const manual = [
    'Open DHCP → DHCP Settings (or Advanced → Network → DHCP Server), switch the DHCP server off, save.',
    `Open Network → LAN, set the IP address to ${address} and the subnet mask to ${mask}, save. The page moves to http://${address}; tplinkwifi.net only works while the ${model} is your DNS server, so use the address.`,
    `Cable: a LAN port of the router (${router}) into one of the ${model}'s LAN ports (1–4), not its WAN/Internet port. Leave the WAN port empty: it still routes and would hide clients behind a second NAT.`,
  ];
  const after = [
    `Keep the Wi-Fi names and passwords as they are: phones and laptops reconnect by themselves and now get addresses from the router (${pool}).`,
    'Then run `dualwan verify` (or the access-point checks): the access point must answer at its new address, the LAN must have exactly one DHCP server (the router), and traffic must leave through the router alone (no double NAT).',
  ];
  const sections: { title: string; steps: string[] }[] = [{ title: 'Before you start', steps: before }];
  if (method === 'operation-mode' || method === 'ask') sections.push({ title: method === 'ask' ? 'If its web UI has "Operation Mode": switch to Access Point' : 'Switch to Access Point mode', steps: operationMode });
  if (method === 'manual' || method === 'ask') sections.push({ title: method === 'ask' ? 'If it has no "Operation Mode": the manual method' : 'The manual method (no Operation Mode on this model)', steps: manual });
  sections.push({ title: 'Afterwards', steps: after });
  return { model, address, method, facts, problems, sections };
}

/** The steps as text for the terminal. */
export function renderAccessPointSteps(s: ApSteps): string {
  const lines: string[] = [`Turn the ${s.model} into an access point at ${s.address}`, `  (${s.facts.source})`];
  for (const p of s.problems) lines.push(`  ! ${p.message}`);
  for (const sec of s.sections) {
    lines.push('', `${sec.title}:`);
    sec.steps.forEach((t, i) => lines.push(`  ${i + 1}. ${t}`));
  }
  return lines.join('\n');
}
