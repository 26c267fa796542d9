import { child, childrenNamed, parseXml, type XmlElement } from '../bootstrap/xml';

/**
 * The multi-WAN settings OPNsense keeps only in config.xml (no API reads or writes them, up to
 * 26.7.x): default gateway switching, DNS servers with their gateway, sticky connections, shared
 * forwarding, skip rules when a gateway is down. The doctor reads them from the newest
 * configuration backup (`core/backup/download/this`), which is a copy of the current config.
 *
 * The download also holds password and API key hashes: it is parsed in memory and dropped, never
 * written or shown.
 */
export interface SystemSettings {
  /** system/gw_switch_default: "Allow default gateway switching" (present and not "0" = on) */
  readonly gatewaySwitching: boolean;
  /** system/lb_use_sticky: "Sticky connections" (on in the factory config) */
  readonly stickyConnections: boolean;
  /** system/pf_share_forward: "Shared forwarding" (on in the factory config) */
  readonly sharedForwarding: boolean;
  /** system/skip_rules_gw_down */
  readonly skipRulesGatewayDown: boolean;
  /** system/dnsserver[n] with system/dns<n+1>gw ("none" or absent = not bound) */
  readonly dnsServers: readonly { readonly server: string; readonly gateway?: string }[];
}

/** PHP's !empty(): absent, "" and "0" are off. */
function on(system: XmlElement, name: string): boolean {
  const el = child(system, name);
  if (!el) return false;
  const t = el.text.trim();
  return t !== '' && t !== '0';
}

export function systemSettings(xml: string): SystemSettings {
  const root = parseXml(xml);
  const system = child(root, 'system');
  if (!system) throw new Error('config.xml has no <system> section');
  const servers = childrenNamed(system, 'dnsserver')
    .map((e) => e.text.trim())
    .filter(Boolean);
  const dnsServers = servers.map((server, i) => {
    const gw = child(system, `dns${i + 1}gw`)?.text.trim();
    return gw && gw !== 'none' ? { server, gateway: gw } : { server };
  });
  return {
    gatewaySwitching: on(system, 'gw_switch_default'),
    stickyConnections: on(system, 'lb_use_sticky'),
    sharedForwarding: on(system, 'pf_share_forward'),
    skipRulesGatewayDown: on(system, 'skip_rules_gw_down'),
    dnsServers,
  };
}
