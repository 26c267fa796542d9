// jest fixture: one simulated OPNsense router for a test file, started before its tests, closed
// after them, reset to its seed before each test. `use` receives it once started.
import { startSimulatedRouter, type SimulatedRouter, type SimulatedRouterOptions } from '../doubles/opnsense/simulated-router';

export function useSimulatedRouter(use: (router: SimulatedRouter) => unknown, opts: SimulatedRouterOptions = {}): void {
  let router: SimulatedRouter | undefined;
  beforeAll(async () => {
    router = await startSimulatedRouter(opts);
    use(router);
  });
  afterAll(async () => {
    await router?.close();
  });
  beforeEach(() => router?.controls.reset());
}
