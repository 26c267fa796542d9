// The factory defaults the double starts from, read from OPNsense's own config.xml.sample
// (26.7.2): the two MVC "Default allow LAN" rules, the outbound NAT mode, sticky connections.
import { modelOf } from './catalogue';
import { factoryConfigXml } from './data';
import { defaultsOf } from './fields';
import type { Item } from './state';

function children(xml: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /<([A-Za-z0-9_-]+)(?:\s[^>]*)?(?:\/>|>([^<]*)<\/\1>)/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) out[m[1]!] = (m[2] ?? '').trim();
  return out;
}

/** The factory MVC filter rules (OPNsense/Firewall/Filter/rules/rule), with model defaults filled in. */
export function factoryRules(): Item[] {
  const xml = factoryConfigXml();
  const block = /<Filter>[\s\S]*?<rules>([\s\S]*?)<\/rules>/.exec(xml)?.[1] ?? '';
  const defaults = defaultsOf(modelOf('Firewall.Filter.rules.rule'));
  return [...block.matchAll(/<rule>([\s\S]*?)<\/rule>/g)].map((m) => ({ ...defaults, ...children(m[1]!) }));
}

export function factorySnatMode(): string {
  return /<outbound>\s*<mode>([^<]*)<\/mode>/.exec(factoryConfigXml())?.[1] ?? 'automatic';
}

export function factoryStickyConnections(): boolean {
  return /<lb_use_sticky>1<\/lb_use_sticky>/.test(factoryConfigXml());
}

export function factorySharedForwarding(): boolean {
  return /<pf_share_forward>1<\/pf_share_forward>/.test(factoryConfigXml());
}
