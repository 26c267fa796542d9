/**
 * The resolved desired state: what `dualwan.yaml` means once parsed, defaulted and checked.
 * Produced by `config/load.ts` (normalise), consumed by every provider. Pure data, no imports.
 */

/** Where a value came from in the user's file, for messages that point at it. */
export interface SourceRef {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export type Cidr = string; // "192.168.10.0/24"
export type Ipv4 = string; // "192.168.10.1"

/** How a WAN reaches the router. */
export type WanUplink =
  | { readonly type: 'pci-nic'; readonly pci: string } // a physical NIC passed through: "0000:01:00.0"
  | { readonly type: 'usb-tether'; readonly vendorId: string; readonly productId: string } // a phone (ue0)
  | { readonly type: 'bridge'; readonly bridge: string } // a Proxmox bridge joined with a virtio NIC
  | { readonly type: 'interface'; readonly interface: string }; // Linux backend: an interface name on the router

export interface MonitorProfile {
  readonly name: 'fast' | 'balanced' | 'conservative';
  /** Probe interval while healthy, ms. */
  readonly intervalMs: number;
  /** Loss over the window that marks the gateway down, percent. */
  readonly lossDownPercent: number;
  /** Latency that marks the gateway degraded, ms. */
  readonly latencyHighMs: number;
  /** Time a gateway must be healthy again before traffic fails back, seconds. */
  readonly failbackAfterSeconds: number;
}

export interface WanSpec {
  /** Stable id, lower case: "isp", "hotspot". Used in resource addresses and routing table names. */
  readonly name: string;
  readonly description: string;
  readonly uplink: WanUplink;
  readonly addressing:
    | { readonly mode: 'dhcp' }
    | { readonly mode: 'static'; readonly address: Cidr; readonly gateway: Ipv4 };
  /** The subnet the upstream modem or phone hands out, when known (for the overlap rules). */
  readonly upstreamSubnet?: Cidr;
  /** Addresses probed through this WAN to judge its health; unique across WANs. */
  readonly monitorIps: readonly Ipv4[];
  /** DNS servers reached through this WAN. */
  readonly dnsServers: readonly Ipv4[];
  /** Failover tier: 1 is used first. */
  readonly tier: number;
  /** Load-balance weight within a tier. */
  readonly weight: number;
  /** Metered links (a phone hotspot) are probed sparingly and their states killed on failback. */
  readonly metered: boolean;
  /** Monthly data budget for health probes on a metered link, megabytes. */
  readonly probeBudgetMBPerMonth: number;
  readonly source?: SourceRef;
}

export interface LanSpec {
  readonly uplink: WanUplink;
  readonly subnet: Cidr;
  readonly routerAddress: Ipv4;
  readonly dhcp: { readonly enabled: boolean; readonly rangeStart: Ipv4; readonly rangeEnd: Ipv4 };
}

export interface PolicySpec {
  readonly mode: 'failover' | 'loadbalance';
  readonly monitor: MonitorProfile;
  /** OPNsense gateway group trigger. */
  readonly trigger: 'down' | 'packet-loss' | 'high-latency' | 'packet-loss-or-high-latency';
  /** Kill states on the failed gateway when it goes down. */
  readonly killStatesOnFailover: boolean;
  /** Kill states on the metered WAN when the primary comes back. */
  readonly killMeteredStatesOnFailback: boolean;
  /** Keep one client on one WAN (load balance). */
  readonly stickyConnections: boolean;
  /** Destinations that always leave through one WAN. */
  readonly stickyHosts: readonly { readonly destination: Cidr; readonly wan: string }[];
}

export interface ProxmoxTarget {
  /** Host name or address of the Proxmox API. */
  readonly host: string;
  readonly port: number;
  readonly node: string;
  /** API token id, `user@realm!name`. The secret never lives here. */
  readonly tokenId: string;
  /** Pinned SHA-256 fingerprint of the API certificate, "AA:BB:…", or undefined before first contact. */
  readonly fingerprint?: string;
  /** Opt-in lockout-safe cutover: the management NIC may go to the router VM (docs/cutover.md). */
  readonly cutover?: ProxmoxCutover;
}

export interface ProxmoxCutover {
  /** Port-less bridge keeping the host's new management address; the VM joins it. */
  readonly bridge: string;
  /** The host's new address with prefix, reached through the router. */
  readonly hostAddress: Cidr;
  /** The router's address on that bridge: the host's new default gateway. */
  readonly gateway: Ipv4;
  readonly timeoutSeconds: number;
  readonly ssh: { readonly user: string; readonly port: number; readonly hostKey?: string };
}

export interface VmImage {
  /** Where the Proxmox host downloads the image from. */
  readonly url: string;
  /** File name on the image storage. */
  readonly filename: string;
  /** Published checksum of the downloaded file. */
  readonly checksum: string;
  readonly checksumAlgorithm: 'sha256' | 'sha512';
  /** Compression the host removes after download. */
  readonly compression?: 'bz2' | 'gz' | 'lzo' | 'zst';
}

/** A VM shape from `vm-templates/<name>.yaml`, merged with the playbook's overrides. */
export interface VmSpec {
  readonly template: string;
  readonly vmid: number;
  readonly name: string;
  readonly ostype: string;
  readonly machine: string;
  readonly bios: 'seabios' | 'ovmf';
  readonly cpu: string;
  readonly cores: number;
  readonly memoryMiB: number;
  readonly diskGiB: number;
  /** Storage for the VM disk (content `images`). */
  readonly diskStorage: string;
  /** Storage the image is downloaded to (content `iso`). */
  readonly imageStorage: string;
  readonly image: VmImage;
  readonly onboot: boolean;
  readonly startupOrder: number;
  readonly serialConsole: boolean;
  /** Optional virtio NIC on a host bridge (management path, or a bridged WAN). */
  readonly bridgeNic?: { readonly bridge: string; readonly firewall: boolean };
  /** Devices allowed to share an IOMMU group with a passed-through NIC (named by the user). */
  readonly allowIommuGroupPeers: readonly string[];
  /** Start the VM once created. */
  readonly start: boolean;
}

export interface OpnsenseTarget {
  readonly host: string;
  readonly port: number;
  readonly fingerprint?: string;
  /** OPNsense's SSH port (default 22). */
  readonly sshPort?: number;
  /** Pinned SSH host key ("SHA256:…"), recorded by the bootstrap from the console banner. */
  readonly sshHostKey?: string;
  /** Host name and domain of the first configuration (the bootstrap's seed config.xml). */
  readonly hostname?: string;
  readonly domain?: string;
}

export interface LinuxRouterTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Pinned host key, "SHA256:…" as ssh-keygen prints it. */
  readonly hostKey?: string;
  readonly lanInterface: string;
}

export interface AccessPointSpec {
  readonly vendor: 'tp-link' | 'other';
  readonly model?: string;
  readonly address: Ipv4;
}

export interface DesiredState {
  readonly version: 1;
  readonly file: string;
  readonly backend: 'opnsense-vm' | 'linux';
  readonly proxmox?: ProxmoxTarget;
  readonly vm?: VmSpec;
  readonly opnsense?: OpnsenseTarget;
  readonly linux?: LinuxRouterTarget;
  readonly wans: readonly WanSpec[];
  readonly lan: LanSpec;
  readonly policy: PolicySpec;
  readonly accessPoint?: AccessPointSpec;
}
