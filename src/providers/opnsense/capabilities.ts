import { CapabilityError } from '../../core/errors';
import type { OpnsenseClient } from './client';
import { FirmwareStatusSchema } from './schemas';

/**
 * What the running OPNsense can do by API, from its version (`GET core/firmware/status`; a POST
 * there would start a firmware probe). Release landmarks: shared/research/opnsense-api.md §0.
 */
export interface OpnsenseVersion {
  readonly text: string;
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

export interface Capability {
  readonly id: string;
  /** What it is, in words, with the endpoint. */
  readonly what: string;
  readonly since: readonly [number, number, number];
}

/** Everything dualwan's OPNsense stage uses, with the first release that has it. */
export const CAPABILITIES: readonly Capability[] = [
  { id: 'gateways', what: 'gateways by API (routing/settings)', since: [24, 1, 0] },
  { id: 'kill-states', what: 'failover and failback state killing per gateway (monitor_killstates, monitor_killstates_priority)', since: [25, 1, 6] },
  { id: 'weight-10', what: 'gateway weights up to 10', since: [26, 1, 7] },
  { id: 'gateway-groups', what: 'gateway groups by API (routing/group_settings)', since: [26, 7, 0] },
  { id: 'interface-assignment', what: 'interface assignment by API (interfaces/assignment)', since: [26, 7, 0] },
  { id: 'snat-mode', what: 'the outbound NAT mode by API (firewall/source_nat/set)', since: [26, 7, 0] },
  { id: 'mvc-lan-rules', what: 'the default LAN rule as an API-editable rule (firewall/filter)', since: [26, 7, 0] },
];

export const MINIMUM_VERSION = '26.7';

export function parseVersion(text: string): OpnsenseVersion | undefined {
  // "26.7.2", "26.7", "26.7.2_1" (hotfix), "27.1.a" (development)
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) return undefined;
  return { text: text.trim(), major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) };
}

function atLeast(v: OpnsenseVersion, since: readonly [number, number, number]): boolean {
  const a = [v.major, v.minor, v.patch];
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== since[i]!) return a[i]! > since[i]!;
  }
  return true;
}

export interface Capabilities {
  readonly version: OpnsenseVersion;
  readonly product: string;
  has(id: string): boolean;
  readonly missing: readonly Capability[];
}

export function capabilitiesOf(product: string, versionText: string): Capabilities {
  const version = parseVersion(versionText);
  if (!version) {
    throw new CapabilityError(
      `${product} reports the version ${JSON.stringify(versionText)}, which dualwan cannot read; nothing was written.`,
      `dualwan supports OPNsense ${MINIMUM_VERSION} or newer. Check System > Firmware > Status, and report this version text if it is a release.`,
    );
  }
  const missing = CAPABILITIES.filter((c) => !atLeast(version, c.since));
  return { version, product, missing, has: (id) => !missing.some((c) => c.id === id) };
}

/** Reads the version once (GET core/firmware/status). */
export async function readCapabilities(client: OpnsenseClient): Promise<Capabilities> {
  const status = await client.get('core/firmware/status', FirmwareStatusSchema);
  return capabilitiesOf(status.product.product_name ?? 'OPNsense', status.product.product_version);
}

/** Refuses, before any write, an OPNsense that lacks something dualwan needs. */
export function requireDualWanCapabilities(caps: Capabilities, where: string): void {
  if (!caps.missing.length) return;
  throw new CapabilityError(
    `${caps.product} ${caps.version.text} at ${where} is older than ${MINIMUM_VERSION} and lacks what dualwan needs:\n${caps.missing
      .map((c) => `  - ${c.what}: since ${c.since[0]}.${c.since[1]}${c.since[2] ? `.${c.since[2]}` : ''}`)
      .join('\n')}\nNothing was written.`,
    `Upgrade OPNsense to ${MINIMUM_VERSION} or newer (System > Firmware > Status: check for updates, then upgrade; or the firmware update entry of the console menu), then run dualwan again.`,
  );
}
