import type { DesiredState, WanUplink } from '../../core/desired';

/**
 * The network device name OPNsense (FreeBSD) gives each uplink of the router VM.
 *
 * - `pci-nic`: a NIC passed through with `hostpciN`. FreeBSD numbers devices per driver in the
 *   order it probes them, which follows the guest PCI slots, i.e. the `hostpci0`, `hostpci1`, …
 *   order the Proxmox provider assigns (WANs first, then the LAN). Intel I226/I225 NICs use the
 *   `igc` driver, hence igc0, igc1, …; a different NIC model gets its driver from `pciDriver`.
 * - `bridge`: a virtio NIC `netN` on a Proxmox bridge is `vtnetN`, in NIC order (each bridge gets
 *   one NIC, in uplink order, then `vm.bridgeNic` when it names another bridge).
 * - `usb-tether`: a phone sharing its connection over USB is an `ue` (USB Ethernet) device:
 *   ue0, then ue1 for a second one.
 * - `interface` uplinks belong to the Linux backend; their name is used as is.
 *
 * Shared with the OPNsense bootstrap, which writes the same names into the seeded config.xml.
 */
export interface UplinkDevice {
  /** `lan` or the WAN's name from dualwan.yaml. */
  readonly uplink: string;
  readonly role: 'wan' | 'lan';
  readonly device: string;
}

export interface DeviceNamingOptions {
  /** FreeBSD driver of a passed-through NIC, by PCI address; default `igc` (Intel I225/I226). */
  readonly pciDriver?: (pci: string) => string;
}

export function opnsenseDevices(state: Pick<DesiredState, 'wans' | 'lan' | 'vm'>, opts: DeviceNamingOptions = {}): UplinkDevice[] {
  const driverOf = opts.pciDriver ?? (() => 'igc');
  const uplinks: { uplink: string; role: 'wan' | 'lan'; spec: WanUplink }[] = [
    ...state.wans.map((w) => ({ uplink: w.name, role: 'wan' as const, spec: w.uplink })),
    { uplink: 'lan', role: 'lan' as const, spec: state.lan.uplink },
  ];
  // Virtio NICs: one per distinct bridge, in uplink order, then the VM's extra bridge NIC.
  const bridges: string[] = [];
  for (const u of uplinks) if (u.spec.type === 'bridge' && !bridges.includes(u.spec.bridge)) bridges.push(u.spec.bridge);
  const extra = state.vm?.bridgeNic?.bridge;
  if (extra && !bridges.includes(extra)) bridges.push(extra);

  const perDriver = new Map<string, number>();
  let usb = 0;
  return uplinks.map((u) => {
    const s = u.spec;
    let device: string;
    switch (s.type) {
      case 'pci-nic': {
        const driver = driverOf(s.pci);
        const n = perDriver.get(driver) ?? 0;
        perDriver.set(driver, n + 1);
        device = `${driver}${n}`;
        break;
      }
      case 'bridge':
        device = `vtnet${bridges.indexOf(s.bridge)}`;
        break;
      case 'usb-tether':
        device = `ue${usb++}`;
        break;
      case 'interface':
        device = s.interface;
        break;
    }
    return { uplink: u.uplink, role: u.role, device };
  });
}

/** The virtio device (`vtnetN`) of the VM's NIC on `bridge`, in the numbering of `opnsenseDevices`. */
export function bridgeDevice(state: Pick<DesiredState, 'wans' | 'lan' | 'vm'>, bridge: string): string | undefined {
  const bridges: string[] = [];
  for (const u of [...state.wans.map((w) => w.uplink), state.lan.uplink]) if (u.type === 'bridge' && !bridges.includes(u.bridge)) bridges.push(u.bridge);
  const extra = state.vm?.bridgeNic?.bridge;
  if (extra && !bridges.includes(extra)) bridges.push(extra);
  const i = bridges.indexOf(bridge);
  return i < 0 ? undefined : `vtnet${i}`;
}
