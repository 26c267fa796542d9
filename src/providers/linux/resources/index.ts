import type { AnyHandler } from '../../../plan/engine';
import type { LinuxContext } from '../context';
import { natTableHandler } from './nat';
import { defaultRouteHandler, routeTableHandler, ruleHandler } from './routing';
import { routerFileHandler, unitHandler } from './persistence';
import { sysctlHandler } from './sysctl';

export { natTableHandler, desiredNatTable, parseNatTable, natRulesetSpec, type NatTableDesired, type NatTableValue } from './nat';
export { defaultRouteHandler, routeTableHandler, ruleHandler, activeWans, routeKey, ruleKey, type DefaultRouteValue, type RouteTableValue, type RuleValue, type ObservedRules } from './routing';
export { sysctlHandler, desiredSysctls, type SysctlValue } from './sysctl';
export { routerFileHandler, unitHandler, readFileFacts, sha256, type RouterFileValue, type UnitValue } from './persistence';

/**
 * The Linux router's resource handlers, in the order a first apply needs: kernel settings, NAT
 * and marks, per-WAN tables and rules, the default route that starts sending traffic, then what
 * brings all of it back at boot (files, then the units that run them: persist.ts).
 */
export const linuxHandlers: readonly AnyHandler<LinuxContext>[] = [sysctlHandler, natTableHandler, routeTableHandler, ruleHandler, defaultRouteHandler, routerFileHandler, unitHandler];
