// The verify drill's temporary rule is recognised by its description, which carries its expiry.
import { drillRuleDescription, drillRuleExpiry, drillRulesOf, isDrillRuleDescription } from '../../../src/providers/opnsense/drill';

it('writes the expiry into the description (whole seconds, UTC) and reads it back', () => {
  const at = Date.UTC(2026, 7, 30, 12, 40, 0, 250);
  const d = drillRuleDescription({ gateway: 'WAN_DHCP', monitor: '1.1.1.1', expiresAt: at });
  expect(d).toBe('dualwan verify: temporary block of WAN_DHCP monitor probes to 1.1.1.1, stale after 2026-08-30T12:40:01Z');
  expect(d.length).toBeLessThanOrEqual(255); // DescriptionField
  expect(drillRuleExpiry(d)).toBe(Date.UTC(2026, 7, 30, 12, 40, 1));
});

it('finds only drill rules; a damaged expiry reads as NaN (treated as stale)', () => {
  const rows = [
    { uuid: 'a', description: 'Default allow LAN to any rule' },
    { uuid: 'b', description: 'dualwan verify: temporary block of WAN_DHCP monitor probes to 1.1.1.1, stale after soon' },
    { uuid: 'c' },
    { uuid: 'd', description: 'dualwan: LAN to any via DUALWAN (was: Default allow LAN to any rule)' },
  ];
  const found = drillRulesOf(rows);
  expect(found.map((r) => r.uuid)).toEqual(['b']);
  expect(Number.isNaN(found[0]!.expiresAt)).toBe(true);
  expect(isDrillRuleDescription('dualwan: LAN to this router (DNS, GUI), no gateway')).toBe(false);
});
