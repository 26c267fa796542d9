import { CapabilityError } from '../../../src/core/errors';
import { capabilitiesOf, parseVersion, requireDualWanCapabilities } from '../../../src/providers/opnsense/capabilities';

it('reads release, hotfix and development versions', () => {
  expect(parseVersion('26.7.2')).toMatchObject({ major: 26, minor: 7, patch: 2 });
  expect(parseVersion('26.7.2_1')).toMatchObject({ major: 26, minor: 7, patch: 2 });
  expect(parseVersion('27.1.a')).toMatchObject({ major: 27, minor: 1, patch: 0 });
  expect(parseVersion('banana')).toBeUndefined();
});

it('accepts 26.7 and newer', () => {
  for (const v of ['26.7', '26.7.2', '27.1']) expect(() => requireDualWanCapabilities(capabilitiesOf('OPNsense', v), 'h:443')).not.toThrow();
});

it('refuses 26.1.9 naming what is missing and the remedy', () => {
  const caps = capabilitiesOf('OPNsense', '26.1.9');
  expect(caps.has('gateways')).toBe(true);
  expect(caps.has('gateway-groups')).toBe(false);
  let err: unknown;
  try {
    requireDualWanCapabilities(caps, '192.168.10.1:443');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CapabilityError);
  const e = err as CapabilityError;
  expect(e.message).toContain('OPNsense 26.1.9 at 192.168.10.1:443 is older than 26.7');
  expect(e.message).toContain('gateway groups by API (routing/group_settings): since 26.7');
  expect(e.message).toContain('interface assignment by API (interfaces/assignment): since 26.7');
  expect(e.message).toContain('Nothing was written.');
  expect(e.remedy).toMatch(/^Upgrade OPNsense to 26\.7 or newer/);
});

it('refuses an unreadable version loudly', () => {
  expect(() => capabilitiesOf('OPNsense', 'x')).toThrow(CapabilityError);
});
