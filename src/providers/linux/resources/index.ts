import type { AnyHandler } from '../../../plan/engine';
import type { LinuxContext } from '../context';
import { natTableHandler } from './nat';
import { defaultRouteHandler, routeTableHandler, ruleHandler } from './routing';
import { sysctlHandler } from './sysctl';

export { natTableHandler, desiredNatTable, parseNatTable, natRulesetSpec, type NatTableDesired, type NatTableValue } from './nat';
export { defaultRouteHandler, routeTableHandler, ruleHandler, activeWans, routeKey, ruleKey, type DefaultRouteValue, type RouteTableValue, type RuleValue, type ObservedRules } from './routing';
export { sysctlHandler, desiredSysctls, type SysctlValue } from './sysctl';

/**
 * The Linux router's resource handlers, in the order a first apply needs: kernel settings, NAT
 * and marks, per-WAN tables and rules, then the default route that starts sending traffic.
 * Not yet here: persistence at boot, the health monitor daemon, conntrack flush on failover.
 */
export const linuxHandlers: readonly AnyHandler<LinuxContext>[] = [sysctlHandler, natTableHandler, routeTableHandler, ruleHandler, defaultRouteHandler];
