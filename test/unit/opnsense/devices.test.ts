import type { DesiredState } from '../../../src/core/desired';
import { opnsenseDevices } from '../../../src/providers/opnsense/devices';
import { dpingerSettings, layoutOf } from '../../../src/providers/opnsense/layout';
import { loadPlaybookState } from '../../doubles/opnsense/simulated-router';

const wan = (name: string, uplink: DesiredState['wans'][number]['uplink']) => ({ name, uplink }) as DesiredState['wans'][number];

describe('opnsenseDevices', () => {
  it('names the hotspot playbook uplinks as OPNsense sees them: igc0, ue0, vtnet0', () => {
    expect(opnsenseDevices(loadPlaybookState())).toEqual([
      { uplink: 'isp', role: 'wan', device: 'igc0' },
      { uplink: 'hotspot', role: 'wan', device: 'ue0' },
      { uplink: 'lan', role: 'lan', device: 'vtnet0' },
    ]);
  });

  it('numbers passed-through NICs in passthrough order per driver, virtio NICs by bridge, phones ue0, ue1', () => {
    const state = {
      wans: [wan('a', { type: 'pci-nic', pci: '0000:02:00.0' }), wan('b', { type: 'bridge', bridge: 'vmbr1' }), wan('c', { type: 'usb-tether', vendorId: '1', productId: '2' }), wan('d', { type: 'usb-tether', vendorId: '3', productId: '4' }), wan('e', { type: 'pci-nic', pci: '0000:03:00.0' })],
      lan: { uplink: { type: 'pci-nic', pci: '0000:01:00.0' } },
      vm: { bridgeNic: { bridge: 'vmbr0', firewall: false } },
    } as unknown as DesiredState;
    expect(opnsenseDevices(state).map((d) => d.device)).toEqual(['igc0', 'vtnet0', 'ue0', 'ue1', 'igc1', 'igc2']);
    expect(opnsenseDevices(state, { pciDriver: (pci) => (pci === '0000:03:00.0' ? 'igb' : 'igc') }).map((d) => d.device)).toEqual(['igc0', 'vtnet0', 'ue0', 'ue1', 'igb0', 'igc1']);
  });
});

describe('layout', () => {
  it('maps the first WAN to wan, the LAN to lan, further WANs to optN with WAN2… and their DHCP gateways', () => {
    const l = layoutOf(loadPlaybookState());
    expect(l.interfaces.map((i) => [i.identifier, i.descr, i.device])).toEqual([
      ['wan', 'WAN', 'igc0'],
      ['opt1', 'WAN2', 'ue0'],
      ['lan', 'LAN', 'vtnet0'],
    ]);
    expect(l.wans.map((w) => w.gatewayName)).toEqual(['WAN_DHCP', 'WAN2_DHCP']);
  });

  it('turns a monitor profile into dpinger settings OPNsense accepts, within a metered budget', () => {
    const state = loadPlaybookState();
    const profile = state.policy.monitor;
    expect(dpingerSettings(profile, { metered: false, probeBudgetMBPerMonth: 5 })).toEqual({ interval: 1, loss_interval: 2, time_period: 30, latencylow: 160, latencyhigh: 400, losslow: 10, losshigh: 20 });
    const metered = dpingerSettings(profile, { metered: true, probeBudgetMBPerMonth: 5 });
    expect(metered.interval).toBe(30); // 56 B × 86 400 probes a month ≈ 4.8 MB
    expect(metered.time_period).toBeGreaterThanOrEqual(2 * (metered.interval + metered.loss_interval));
    const fast = dpingerSettings({ ...profile, intervalMs: 500, failbackAfterSeconds: 10, latencyHighMs: 300 }, { metered: false, probeBudgetMBPerMonth: 5 });
    expect(fast).toMatchObject({ interval: 1, time_period: 10 }); // whole seconds only
  });
});
