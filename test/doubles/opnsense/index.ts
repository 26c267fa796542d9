// Public entry point of the OPNsense REST API test double (see BEHAVIOR.md).
export { startOpnsenseDouble, defaultSeed, DEFAULT_API_KEY, DEFAULT_API_SECRET } from './server';
export type { OpnsenseDouble, OpnsenseDoubleOptions, RouterSeed, RequestRecord, ContractViolation, InjectedFailure } from './server';
export { startSimulatedRouter, seedFromState, writeRouterPlaybook, pointAtRouter, loadPlaybookState } from './simulated-router';
export type { SimulatedRouter, SimulatedRouterOptions } from './simulated-router';
export { contractProblems, route, TARGET_VERSION } from './catalogue';
