import type { AnyHandler } from '../../plan/engine';
import type { OpnsenseContext } from './context';
import { filterRuleHandler } from './resources/filter-rules';
import { gatewayGroupHandler } from './resources/gateway-group';
import { gatewayHandler } from './resources/gateways';
import { interfaceHandler } from './resources/interfaces';
import { outboundNatHandler } from './resources/outbound-nat';

export type { OpnsenseContext } from './context';

/**
 * In dependency order, one handler per OPNsense controller so that each controller's
 * reconfigure/apply runs once: interface assignments, gateways, the gateway group (names the
 * gateways), outbound NAT (names the interfaces), LAN filter rules (name the group and gateways).
 */
export function opnsenseHandlers(): AnyHandler<OpnsenseContext>[] {
  return [interfaceHandler, gatewayHandler, gatewayGroupHandler, outboundNatHandler, filterRuleHandler];
}
