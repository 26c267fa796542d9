// Known-bad router states for the doctor's tests: each fault puts the simulated OPNsense in a
// state a real one reaches through its web GUI, a DHCP lease or a firmware choice (no API call is
// made, none is needed), saved in config.xml and applied, so every read endpoint of the catalogue
// shows it consistently. See BEHAVIOR.md, "Faults".
import type { OpnsenseDouble } from './server';
import type { Item } from './state';

export const ROUTER_FAULTS = [
  /** The ISP gateway's monitoring switched off (as OPNsense leaves DHCP gateways). */
  'monitoring-off',
  /** Both WAN gateways probe the same monitor IP (OPNsense accepts it once one has "Disable Host Route"). */
  'duplicate-monitor-ip',
  /** The hotspot gateway's host route is disabled: its probes follow the default route, through the ISP. */
  'monitor-via-other-wan',
  /** The ISP gateway's monitor IP is also one of the router's DNS servers. */
  'monitor-is-dns',
  /** The ISP gateway probes its own modem (the DHCP router address). */
  'monitor-is-modem',
  /** The DNS servers are not bound to a gateway (dns<N>gw = none). */
  'no-dns-per-gateway',
  /** "Failover States" off on every gateway. */
  'kill-states-off',
  /** "Failback States" off on the metered gateway. */
  'failback-states-off',
  /** "Allow default gateway switching" off. */
  'gateway-switching-off',
  /** The gateway group deleted, after the LAN rule was set back to the default gateway. */
  'group-missing',
  /** Failover group with both gateways in tier 1. */
  'group-tiers-wrong',
  /** The LAN rule routed by the default gateway instead of the group. */
  'lan-rule-default-route',
  /** The load-balancing group's pool option set to plain round robin (not sticky). */
  'pool-not-sticky',
  /** "Shared forwarding" on (as in the factory config). */
  'shared-forwarding-on',
  /** Both gateways at the same priority. */
  'equal-priorities',
  /** The ISP line down (the modem answers no more). */
  'isp-down',
  /** The ISP gateway marked down by hand (an interrupted drill). */
  'isp-forced-down',
  /** The hotspot hands out the same subnet as the modem: both DHCP gateways are 192.168.1.1. */
  'same-gateway-ip',
  /** The hotspot hands out an address inside the LAN. */
  'wan-in-lan',
  /** The ISP gives a carrier-grade NAT address. */
  'isp-cgnat',
  /** The router runs 26.1.9 (no gateway-group API). */
  'old-version',
] as const;
export type RouterFault = (typeof ROUTER_FAULTS)[number];

function gatewayByName(d: OpnsenseDouble, name: string): Item {
  const g = Object.values(d.state.config.gateways).find((x) => x.name === name);
  if (!g) throw new Error(`fault: the router has no stored gateway ${name} (apply the playbook first)`);
  return g;
}

/** A GUI edit: change config.xml, save it (a history copy), then run the controller's apply. */
function edit(d: OpnsenseDouble, what: string, change: () => void, apply: 'routing' | 'firewall' | 'none' = 'routing'): void {
  change();
  d.state.save(`${what} (GUI)`);
  if (apply === 'routing') d.state.applyRouting();
  if (apply === 'firewall') d.state.applyFirewall();
}

/**
 * Puts the router into `fault`. Gateway names are those the dualwan layout gives the first two
 * WANs (`WAN_DHCP`, `WAN2_DHCP`); the router must have been applied from a playbook first.
 */
export function presentFault(d: OpnsenseDouble, fault: RouterFault): void {
  const isp = () => gatewayByName(d, 'WAN_DHCP');
  const hotspot = () => gatewayByName(d, 'WAN2_DHCP');
  const group = () => {
    const e = Object.entries(d.state.config.groups)[0];
    if (!e) throw new Error('fault: the router has no gateway group');
    return e;
  };
  const lanRule = () => {
    const e = Object.entries(d.state.config.rules).find(([, r]) => (r.gateway ?? '') !== '' && (r.interface ?? '') === 'lan' && !(r.destination_net ?? '').includes('/'));
    if (!e) throw new Error('fault: no LAN rule routed through a gateway group');
    return e;
  };
  switch (fault) {
    case 'monitoring-off':
      return edit(d, 'gateway WAN_DHCP: Disable Gateway Monitoring', () => void (isp().monitor_disable = '1'));
    case 'duplicate-monitor-ip':
      return edit(d, 'gateway WAN2_DHCP: monitor IP as WAN_DHCP, Disable Host Route', () => {
        hotspot().monitor = isp().monitor ?? '';
        hotspot().monitor_noroute = '1';
      });
    case 'monitor-via-other-wan':
      return edit(d, 'gateway WAN2_DHCP: Disable Host Route', () => void (hotspot().monitor_noroute = '1'));
    case 'monitor-is-dns':
      return edit(d, 'gateway WAN_DHCP: monitor IP = DNS server', () => {
        const dns = d.state.config.system.dns?.[0]?.server;
        if (!dns) throw new Error('fault: the router has no DNS server');
        isp().monitor = dns;
      });
    case 'monitor-is-modem':
      return edit(d, 'gateway WAN_DHCP: monitor IP = the modem', () => void (isp().monitor = d.state.leases.wan?.router ?? '192.168.1.1'));
    case 'no-dns-per-gateway':
      return edit(d, 'System > Settings > General: DNS servers without gateway', () => void (d.state.config.system.dns = (d.state.config.system.dns ?? []).map((x) => ({ ...x, gateway: 'none' }))), 'none');
    case 'kill-states-off':
      return edit(d, 'gateways: Failover States off', () => {
        for (const g of Object.values(d.state.config.gateways)) g.monitor_killstates = '0';
      });
    case 'failback-states-off':
      return edit(d, 'gateway WAN2_DHCP: Failback States off', () => void (hotspot().monitor_killstates_priority = '0'));
    case 'gateway-switching-off':
      return edit(d, 'System > Settings > General: default gateway switching off', () => void (d.state.config.system.gw_switch_default = false), 'none');
    case 'group-missing': {
      const [ruleId] = lanRule();
      edit(d, 'LAN rule: default gateway', () => void (d.state.config.rules[ruleId]!.gateway = ''), 'firewall');
      const [groupId] = group();
      return edit(d, 'gateway group deleted', () => void delete d.state.config.groups[groupId]);
    }
    case 'group-tiers-wrong':
      return edit(d, 'gateway group: both gateways in tier 1', () => {
        const [, g] = group();
        g.item = 'WAN2_DHCP,WAN_DHCP';
        g.item2 = '';
      });
    case 'lan-rule-default-route': {
      const [ruleId] = lanRule();
      return edit(d, 'LAN rule: default gateway', () => void (d.state.config.rules[ruleId]!.gateway = ''), 'firewall');
    }
    case 'pool-not-sticky':
      return edit(d, 'gateway group: pool option round-robin', () => void (group()[1].poolopts = 'round-robin'));
    case 'shared-forwarding-on':
      return edit(d, 'Firewall > Settings > Advanced: shared forwarding on', () => void (d.state.config.system.pf_share_forward = true), 'firewall');
    case 'equal-priorities':
      return edit(d, 'gateways: same priority', () => {
        isp().priority = '255';
        hotspot().priority = '255';
      });
    case 'isp-down':
      return d.setLinkHealth('wan', { up: false });
    case 'isp-forced-down':
      return edit(d, 'gateway WAN_DHCP: Mark Gateway as Down', () => void (isp().force_down = '1'));
    case 'same-gateway-ip':
      // a renewed lease: the phone now hands out the modem's subnet
      d.state.leases.opt1 = { address: '192.168.1.101', prefix: 24, router: d.state.leases.wan?.router ?? '192.168.1.1' };
      return;
    case 'wan-in-lan': {
      const lan = d.state.config.interfaces.lan;
      const base = (lan?.ipaddr ?? '192.168.10.1').split('.').slice(0, 3).join('.');
      d.state.leases.opt1 = { address: `${base}.77`, prefix: Number(lan?.subnet ?? 24), router: `${base}.254` };
      return;
    }
    case 'isp-cgnat':
      d.state.leases.wan = { address: '100.64.23.7', prefix: 10, router: '100.64.0.1' };
      return;
    case 'old-version':
      return d.setVersion('26.1.9');
  }
}
