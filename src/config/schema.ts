/**
 * The schema of the WRITTEN file, `dualwan.yaml`: what a user types. It is deliberately looser than
 * the resolved `DesiredState` (core/desired.ts): most fields have defaults, some defaults depend on
 * other fields (the router address on the LAN subnet, the VM size on its template) and are filled
 * in by `normalize.ts`. Every object is strict, so a misspelt key is an error rather than a
 * silently ignored setting.
 *
 * Every field carries a description: the JSON Schema for editors (`schema/dualwan.schema.json`)
 * and `docs/config.md` are generated from it. A default that depends on other fields is stated in
 * the description and in `x-default` (shown in the docs), because JSON Schema cannot express it.
 */
import { z } from 'zod';
import { ADDRESS_OR_CIDR_PATTERN, CIDR_PATTERN, formatCidr, IPV4_PATTERN, isHostAddressIn, isNetworkAddress, parseCidr, parseIpv4 } from './net';

/** Monitor IPs used when a WAN gives none, by the WAN's position in `wans`. Public anycast resolvers. */
export const DEFAULT_MONITOR_IPS = ['1.1.1.1', '9.9.9.9', '8.8.4.4', '208.67.222.222'] as const;
/**
 * DNS servers used when a WAN gives none, by position. Distinct from every default monitor IP:
 * OPNsense adds a host route for a monitor IP through its gateway, which would pull DNS traffic to
 * that address onto one WAN (see shared/research/anchors.md §C item 4).
 */
export const DEFAULT_DNS_SERVERS = ['1.0.0.1', '149.112.112.112', '8.8.8.8', '208.67.220.220'] as const;

export const DEFAULT_LAN_SUBNET = '192.168.10.0/24';

const PCI_ADDRESS = /^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;
const USB_ID = /^[0-9a-fA-F]{4}$/;
/** Linux limits interface names to 15 characters (IFNAMSIZ); Proxmox bridges are interfaces too. */
const INTERFACE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,14}$/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DNS_LABELS = /^(?=.{1,63}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
/** Proxmox API token ids: `user@realm!tokenname` (pve-access-control `pve-tokenid`). */
const TOKEN_ID = /^[^\s:@!/=]+@[A-Za-z][A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]+$/;
const SHA256_FINGERPRINT = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}$/;
const SSH_HOST_KEY = /^SHA256:[A-Za-z0-9+/]{43}=?$/;
const STORAGE_ID = /^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$/;
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const WAN_NAME = /^[a-z][a-z0-9_-]{0,15}$/;
const HEX = /^[0-9a-fA-F]+$/;

// ---------------------------------------------------------------------------------------------
// Field builders. Each returns a fresh schema so every use gets its own description.

function ipv4() {
  return z.string().regex(IPV4_PATTERN, 'must be an IPv4 address such as 192.168.10.1');
}

function cidr() {
  return z.string().regex(CIDR_PATTERN, 'must be an IPv4 CIDR such as 192.168.10.0/24');
}

/** A subnet: a CIDR whose address part is the network address. A malformed CIDR is left to the regex. */
function subnet() {
  return cidr().refine((v) => parseCidr(v) === undefined || isNetworkAddress(v), {
    error: (iss) => {
      const range = typeof iss.input === 'string' ? parseCidr(iss.input) : undefined;
      return range
        ? `${String(iss.input)} has host bits set; write the network address, ${formatCidr(range)}`
        : 'must be a network address with its prefix length';
    },
  });
}

function host() {
  return z.string().regex(HOST_NAME, 'must be a host name or an IPv4 address, without a scheme or port');
}

function port(dflt: number, what: string) {
  return z.number().int().min(1).max(65535).default(dflt).describe(`${what} Default ${dflt}.`);
}

function fingerprint(what: string) {
  return z
    .string()
    .regex(SHA256_FINGERPRINT, 'must be a SHA-256 fingerprint: 32 hexadecimal pairs separated by colons, "AA:BB:…"')
    .optional()
    .describe(
      `Pinned SHA-256 fingerprint of ${what}'s TLS certificate, "AA:BB:…:FF" (32 pairs). Not a secret. ` +
        'When absent, the first connection asks you to confirm the certificate and writes its fingerprint here.',
    );
}

function uplinkSchema(role: string) {
  return z
    .discriminatedUnion('type', [
      z
        .strictObject({
          type: z.literal('pci-nic').describe('A physical NIC passed through to the router VM (opnsense-vm backend).'),
          pci: z
            .string()
            .regex(PCI_ADDRESS, 'must be a full PCI address as `lspci -D` prints it, e.g. 0000:02:00.0')
            .describe('PCI address of the NIC on the Proxmox host, as `lspci -D` prints it, e.g. 0000:02:00.0.'),
        })
        .describe('Pass a physical NIC through to the router VM.'),
      z
        .strictObject({
          type: z.literal('usb-tether').describe('A phone or dongle sharing its connection over USB (opnsense-vm backend).'),
          vendorId: z
            .string()
            .regex(USB_ID, 'must be 4 hexadecimal digits as `lsusb` prints them, quoted: "18d1"')
            .describe('USB vendor id in tethering mode, 4 hex digits as `lsusb` prints them, e.g. "18d1". Quote it in YAML.'),
          productId: z
            .string()
            .regex(USB_ID, 'must be 4 hexadecimal digits as `lsusb` prints them, quoted: "4ee3"')
            .describe(
              'USB product id in tethering mode, 4 hex digits, e.g. "4ee3". Phones change it when tethering is switched on, so read it with tethering on. Quote it in YAML.',
            ),
        })
        .describe('Pass a USB-tethered phone through to the router VM.'),
      z
        .strictObject({
          type: z.literal('bridge').describe('A Proxmox bridge the router VM joins with a virtio NIC (opnsense-vm backend).'),
          bridge: z
            .string()
            .regex(INTERFACE_NAME, 'must be a bridge name such as vmbr0')
            .describe('Name of the Proxmox bridge, e.g. vmbr0.'),
        })
        .describe('Join a Proxmox bridge with a virtio NIC.'),
      z
        .strictObject({
          type: z.literal('interface').describe('A network interface of the Linux router (linux backend).'),
          interface: z
            .string()
            .regex(INTERFACE_NAME, 'must be a Linux interface name such as eth1 or enp2s0 (at most 15 characters)')
            .describe('Interface name on the Linux router, e.g. eth1 or enp2s0.'),
        })
        .describe('Use a network interface of the Linux router.'),
    ])
    .describe(`How the ${role} reaches the router: a passed-through NIC, a USB-tethered phone, a Proxmox bridge, or a Linux interface.`);
}

// ---------------------------------------------------------------------------------------------

const ProxmoxSchema = z
  .strictObject({
    host: host().describe('Host name or IPv4 address of the Proxmox VE API, e.g. 192.168.1.10.'),
    port: port(8006, 'Port of the Proxmox VE API.'),
    node: z
      .string()
      .regex(HOST_NAME, 'must be a Proxmox node name such as pve')
      .default('pve')
      .describe('Name of the Proxmox node the router VM runs on, as shown under Datacenter. Default "pve".'),
    tokenId: z
      .string()
      .regex(TOKEN_ID, 'must be an API token id of the form user@realm!name, e.g. dualwan@pve!setup, without the secret')
      .describe(
        'API token id, "user@realm!name", e.g. dualwan@pve!setup. Only the id: the token secret comes from ' +
          'DUALWAN_PROXMOX_TOKEN_SECRET in the environment or the 0600 credentials file, never from this file.',
      ),
    fingerprint: fingerprint('the Proxmox API'),
    cutover: z
      .strictObject({
        bridge: z
          .string()
          .regex(INTERFACE_NAME, 'must be a bridge name such as vmbr1')
          .default('vmbr1')
          .describe('Bridge without physical ports that keeps the host\'s new management address; the router VM joins it (vm.bridgeNic must name it). Created when missing. Default "vmbr1".'),
        hostAddress: cidr().describe('The host\'s management address on that bridge afterwards, with its prefix, e.g. 10.10.99.2/24. dualwan, the API and SSH reach the host there, through the router.'),
        gateway: ipv4().describe('The router\'s address on that bridge, the host\'s new default gateway, e.g. 10.10.99.1. The router must answer there and route between it and the LAN.'),
        timeoutSeconds: z
          .number()
          .int()
          .min(60)
          .max(3600)
          .default(300)
          .describe('Dead-man timer: unless dualwan reaches the host through the new path within this many seconds, the host restores its network config and stops the router VM. Default 300.'),
        ssh: z
          .strictObject({
            user: z
              .string()
              .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a user name such as root')
              .default('root')
              .describe('SSH user on the Proxmox host; root, or passwordless sudo. Default "root".'),
            port: port(22, 'SSH port of the Proxmox host.'),
            hostKey: z
              .string()
              .regex(SSH_HOST_KEY, 'must be an SSH host key fingerprint as ssh-keygen -lf prints it: "SHA256:" and 43 base64 characters')
              .optional()
              .describe('Pinned SSH host key of the Proxmox host, "SHA256:…" as `ssh-keygen -lf` prints it. When absent, the first connection asks you to confirm it and writes it here.'),
          })
          .prefault({})
          .describe('SSH to the Proxmox host (at proxmox.host before, at hostAddress after), which arms and disarms the dead-man timer. The key comes from DUALWAN_SSH_PRIVATE_KEY_FILE, never from here.'),
      })
      .optional()
      .describe(
        'Opt-in: let the NIC that carries the Proxmox management address go to the router VM, guarded by a dead-man timer (docs/cutover.md). When absent, preflight refuses to pass that NIC through.',
      ),
  })
  .describe('How to reach the Proxmox VE host. Required with backend opnsense-vm; ignored, with a warning, with backend linux.');

const VmImageSchema = z
  .strictObject({
    url: z
      .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
      .describe('Where dualwan downloads the image from (on the machine it runs on; it then uploads the unpacked image to the Proxmox host).'),
    filename: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a plain file name without a directory')
      .regex(/\.(raw|qcow2|vmdk)$/, 'must end in .raw, .qcow2 or .vmdk (the formats Proxmox imports a VM disk from)')
      .describe('File name of the unpacked image in the image storage\'s import content, ending in .raw, .qcow2 or .vmdk; the VM disk is imported from it.'),
    checksum: z
      .string()
      .regex(HEX, 'must be a hexadecimal digest')
      .describe('Published checksum of the downloaded (still compressed) file; dualwan verifies it before the image is unpacked and uploaded.'),
    checksumAlgorithm: z.enum(['sha256', 'sha512']).default('sha256').describe('Algorithm of `checksum`. Default sha256.'),
    compression: z
      .enum(['bz2', 'gz', 'lzo', 'zst'])
      .optional()
      .describe('Compression dualwan removes after the download, with the system tool (bzip2, gzip, lzop or zstd must be installed). When absent the file is uploaded as downloaded.'),
  })
  .superRefine((image, ctx) => {
    const want = image.checksumAlgorithm === 'sha512' ? 128 : 64;
    if (HEX.test(image.checksum) && image.checksum.length !== want) {
      ctx.addIssue({
        code: 'custom',
        path: ['checksum'],
        message: `a ${image.checksumAlgorithm} checksum has ${want} hexadecimal digits, this one has ${image.checksum.length}`,
      });
    }
  })
  .describe('The disk image the router VM boots from.');

const VmSchema = z
  .strictObject({
    template: z
      .string()
      .regex(TEMPLATE_NAME, 'must be a template name such as opnsense (a file vm-templates/<name>.yaml)')
      .default('opnsense')
      .describe('VM template, the file vm-templates/<template>.yaml, that supplies every value not set here. Default "opnsense".'),
    vmid: z.number().int().min(100).max(999999999).default(100).describe('Proxmox VM id, 100–999999999. Default 100.'),
    name: z
      .string()
      .regex(DNS_LABELS, 'must be a DNS name: letters, digits and hyphens, at most 63 characters')
      .default('opnsense')
      .describe('VM name shown in Proxmox (a DNS name). Default "opnsense".'),
    cores: z.number().int().min(1).max(128).optional().describe('Virtual CPU cores. Default: from the template.').meta({ 'x-default': 'from the template' }),
    memoryMiB: z
      .number()
      .int()
      .min(512)
      .max(1048576)
      .optional()
      .describe('Memory in MiB; all of it is pinned (no ballooning) because passthrough needs it. Default: from the template.')
      .meta({ 'x-default': 'from the template' }),
    diskGiB: z.number().int().min(1).max(4096).optional().describe('Disk size in GiB. Default: from the template.').meta({ 'x-default': 'from the template' }),
    diskStorage: z
      .string()
      .regex(STORAGE_ID, 'must be a Proxmox storage id such as local-lvm')
      .default('local-lvm')
      .describe('Proxmox storage for the VM disk (content "images"). Default "local-lvm".'),
    imageStorage: z
      .string()
      .regex(STORAGE_ID, 'must be a Proxmox storage id such as local')
      .default('local')
      .describe('Proxmox directory storage for the VM image (content "import", where the VM disk is imported from) and the bootstrap\'s seed CD (content "iso"). Default "local".'),
    image: VmImageSchema.optional()
      .describe('The disk image to boot, to pin a different release than the template. Default: from the template.')
      .meta({ 'x-default': 'from the template' }),
    bridgeNic: z
      .strictObject({
        bridge: z.string().regex(INTERFACE_NAME, 'must be a bridge name such as vmbr0').describe('Proxmox bridge the extra NIC joins, e.g. vmbr0.'),
        firewall: z.boolean().default(false).describe('Enable the Proxmox firewall on this NIC. Default false.'),
      })
      .optional()
      .describe('An extra virtio NIC on a host bridge, e.g. a management path. When absent the VM has no such NIC.'),
    allowIommuGroupPeers: z
      .array(z.string().regex(PCI_ADDRESS, 'must be a full PCI address such as 0000:00:1f.0').describe('PCI address of an allowed peer device.'))
      .default([])
      .describe(
        'PCI devices you accept to share an IOMMU group with a passed-through NIC. Preflight refuses a NIC whose group holds any other device not named here. Default: none.',
      ),
    start: z.boolean().default(true).describe('Start the VM once it is created. Default true.'),
    onboot: z.boolean().optional().describe('Start the VM when the host boots. Default: from the template.').meta({ 'x-default': 'from the template' }),
  })
  .describe(
    'The router VM on Proxmox. Required with backend opnsense-vm (`vm: {}` takes every default); ignored with backend linux. Values not given come from the VM template.',
  );

const OpnsenseSchema = z
  .strictObject({
    host: host()
      .optional()
      .describe('Address of the OPNsense API once it runs. Default: lan.routerAddress.')
      .meta({ 'x-default': 'lan.routerAddress' }),
    port: port(443, 'Port of the OPNsense web GUI and API.'),
    sshPort: port(22, "Port of OPNsense's SSH server (the seed turns it on, keys only), used for the revert timer around each apply."),
    fingerprint: fingerprint('the OPNsense web GUI'),
    sshHostKey: z
      .string()
      .regex(SSH_HOST_KEY, 'must be an SSH host key fingerprint as ssh-keygen -lf prints it: "SHA256:" and 43 base64 characters')
      .optional()
      .describe(
        "Pinned SSH host key of OPNsense (its ED25519 key), \"SHA256:…\" as `ssh-keygen -lf` prints it. Not a secret. The bootstrap writes it here from OPNsense's console banner. " +
          'With it and DUALWAN_SSH_PRIVATE_KEY_FILE, every apply arms a timer on OPNsense over SSH that restores the configuration from before the apply unless dualwan reaches OPNsense afterwards. When absent, no automatic revert is armed (the apply says so).',
      ),
    hostname: z
      .string()
      .regex(DNS_LABEL, 'must be a host name: one DNS label of letters, digits and hyphens (not at either end), at most 63 characters, no dots')
      .default('dualwan-router')
      .describe('Host name OPNsense gets in its first configuration (the bootstrap); shown in its prompt and web GUI. Default "dualwan-router".'),
    domain: z
      .string()
      .regex(DNS_NAME, 'must be a domain name: dot-separated DNS labels of letters, digits and hyphens, at most 253 characters')
      .default('home.arpa')
      .describe('Domain OPNsense gets in its first configuration (the bootstrap). Default "home.arpa", the name reserved for home networks (RFC 8375).'),
  })
  .describe('How to reach OPNsense after bootstrap (backend opnsense-vm). Every field has a default, so the section may be left out.');

const LinuxSchema = z
  .strictObject({
    host: host().describe('Host name or IPv4 address of the Linux router, reached over SSH.'),
    port: port(22, 'SSH port of the Linux router.'),
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a user name such as root')
      .default('root')
      .describe('SSH user; must be root or able to run sudo without a password. Default "root".'),
    hostKey: z
      .string()
      .regex(SSH_HOST_KEY, 'must be an SSH host key fingerprint as ssh-keygen -lf prints it: "SHA256:" and 43 base64 characters')
      .optional()
      .describe(
        'Pinned SSH host key fingerprint, "SHA256:…" as `ssh-keygen -lf` prints it. Not a secret. When absent, the first connection asks you to confirm it and writes it here.',
      ),
    lanInterface: z
      .string()
      .regex(INTERFACE_NAME, 'must be a Linux interface name such as eth0')
      .optional()
      .describe('LAN interface of the Linux router. Default: lan.uplink.interface.')
      .meta({ 'x-default': 'lan.uplink.interface' }),
  })
  .describe(
    'How to reach the Linux router. Required with backend linux; ignored with backend opnsense-vm. The SSH key is the private key file named by DUALWAN_SSH_PRIVATE_KEY_FILE (environment or credentials file), never this file.',
  );

const AddressingSchema = z
  .discriminatedUnion('mode', [
    z
      .strictObject({ mode: z.literal('dhcp').describe('Take the address and gateway from the upstream modem or phone by DHCP.') })
      .describe('Address by DHCP.'),
    z
      .strictObject({
        mode: z.literal('static').describe('A fixed address given by the ISP.'),
        address: cidr()
          .refine((v) => {
            const range = parseCidr(v);
            const ip = parseIpv4(v.split('/')[0] ?? '');
            return range === undefined || ip === undefined || isHostAddressIn(range, ip);
          }, 'must be a host address with its prefix, e.g. 203.0.113.10/24, not the network or broadcast address')
          .describe('The WAN address with its prefix length, e.g. 203.0.113.10/24.'),
        gateway: ipv4().describe('The upstream gateway, inside the address\'s subnet, e.g. 203.0.113.1.'),
      })
      .describe('A static address.'),
  ])
  .default({ mode: 'dhcp' })
  .describe('How the WAN gets its address. Default DHCP.');

const WanSchema = z
  .strictObject({
    name: z
      .string()
      .regex(WAN_NAME, 'must be a lower-case id of at most 16 characters: a letter, then letters, digits, "-" or "_", e.g. isp')
      .describe('Stable id of the WAN, lower case, e.g. "isp" or "hotspot". Used in gateway and routing-table names; do not rename once applied.'),
    description: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe('Human description, e.g. "Fibre (ISP modem)". Default: the name.')
      .meta({ 'x-default': 'the WAN name' }),
    uplink: uplinkSchema('WAN'),
    addressing: AddressingSchema,
    upstreamSubnet: subnet()
      .optional()
      .describe(
        'Subnet the upstream modem or phone hands out, e.g. 192.168.43.0/24 for Android tethering. Used only to check for overlaps with the LAN and other WANs; when absent, this WAN is not checked.',
      ),
    monitorIps: z
      .array(ipv4().describe('A far address probed through this WAN.'))
      .min(1)
      .max(4)
      .optional()
      .describe(
        `1–4 far addresses probed through this WAN to judge its health; unique across WANs and never a DNS server. OPNsense probes only the first. Default by position: ${DEFAULT_MONITOR_IPS.join(', ')}.`,
      )
      .meta({ 'x-default': `by position: ${DEFAULT_MONITOR_IPS.join(', ')}` }),
    dnsServers: z
      .array(ipv4().describe('A DNS server reached through this WAN.'))
      .min(1)
      .max(4)
      .optional()
      .describe(`DNS servers reached through this WAN, so name lookups keep working when another WAN fails. Default by position: ${DEFAULT_DNS_SERVERS.join(', ')}.`)
      .meta({ 'x-default': `by position: ${DEFAULT_DNS_SERVERS.join(', ')}` }),
    tier: z
      .number()
      .int()
      .min(1)
      .max(5)
      .default(1)
      .describe('Failover tier, 1–5: the lowest tier with a healthy WAN carries the traffic. Default 1.'),
    weight: z
      .number()
      .int()
      .min(1)
      .max(5)
      .default(1)
      .describe('Load-balance weight within a tier, 1–5 (the range every supported OPNsense accepts): weight 2 gets twice the connections of weight 1. Default 1.'),
    metered: z
      .boolean()
      .default(false)
      .describe('A metered link, such as a phone hotspot: probed sparingly, and its states are killed when the primary returns. Default false.'),
    probeBudgetMBPerMonth: z
      .number()
      .positive()
      .max(10000)
      .default(5)
      .describe('Monthly data budget for health probes on a metered link, in MB. Default 5 (one small probe every 30 s is about 4.8 MB).'),
  })
  .describe('One internet connection.');

const LanSchema = z
  .strictObject({
    uplink: uplinkSchema('LAN'),
    subnet: subnet()
      .refine((v) => {
        const prefix = parseCidr(v)?.prefix;
        return prefix === undefined || (prefix >= 8 && prefix <= 30);
      }, 'must have a prefix length between /8 and /30')
      .default(DEFAULT_LAN_SUBNET)
      .describe(`Subnet of the home network. Default ${DEFAULT_LAN_SUBNET}, which avoids common modem, phone and TP-Link ranges.`),
    routerAddress: ipv4()
      .optional()
      .describe("The router's address on the LAN, the clients' gateway and DNS server. Default: the first address of lan.subnet.")
      .meta({ 'x-default': 'first address of lan.subnet' }),
    dhcp: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Serve DHCP on the LAN. Default true; the access point must then have its own DHCP server off.'),
        rangeStart: ipv4()
          .optional()
          .describe('First address handed out. Default: .100 of a /24 or larger, else the middle of the subnet.')
          .meta({ 'x-default': '.100 of a /24, else the middle of the subnet' }),
        rangeEnd: ipv4()
          .optional()
          .describe('Last address handed out. Default: .249 of a /24 or larger, else the last host address.')
          .meta({ 'x-default': '.249 of a /24, else the last host address' }),
      })
      .prefault({})
      .describe('DHCP server on the LAN.'),
  })
  .describe('The home network behind the router.');

export const MONITOR_PROFILE_NAMES = ['fast', 'balanced', 'conservative'] as const;
export const TRIGGERS = ['down', 'packet-loss', 'high-latency', 'packet-loss-or-high-latency'] as const;

const PolicySchema = z
  .strictObject({
    mode: z
      .enum(['failover', 'loadbalance'])
      .describe('failover: use the lowest tier and switch when it fails. loadbalance: spread connections over the WANs of tier 1 by weight.'),
    monitorProfile: z
      .enum(MONITOR_PROFILE_NAMES)
      .default('balanced')
      .describe('How quickly a failing WAN is detected and how long it must be healthy before traffic returns: fast, balanced or conservative. Default balanced.'),
    trigger: z
      .enum(TRIGGERS)
      .default('packet-loss-or-high-latency')
      .describe('What makes a WAN count as failed: down, packet-loss, high-latency or packet-loss-or-high-latency. Default packet-loss-or-high-latency.'),
    killStatesOnFailover: z
      .boolean()
      .default(true)
      .describe('Kill the connections of a WAN when it fails, so clients reconnect through the next one at once. Default true.'),
    killMeteredStatesOnFailback: z
      .boolean()
      .default(true)
      .describe('Kill the connections on metered WANs when the primary returns, so nothing lingers on the hotspot. Default true.'),
    stickyConnections: z
      .boolean()
      .optional()
      .describe('Keep each client on one WAN while load balancing. Default: true for loadbalance, false for failover.')
      .meta({ 'x-default': 'true for loadbalance, false for failover' }),
    stickyHosts: z
      .array(
        z
          .strictObject({
            destination: z
              .string()
              .regex(
                ADDRESS_OR_CIDR_PATTERN,
                'must be an IPv4 address or CIDR, e.g. 198.51.100.7 or 203.0.113.0/24',
              )
              .describe('Destination address or CIDR, e.g. 198.51.100.7 or 203.0.113.0/24.'),
            wan: z.string().regex(WAN_NAME, 'must be the name of a WAN').describe('Name of the WAN this destination always leaves through.'),
          })
          .describe('A destination pinned to one WAN.'),
      )
      .default([])
      .describe('Destinations that always leave through one WAN, so their source address never changes (an IRC server, a VPN endpoint). Default: none.'),
  })
  .describe('How the WANs are used together.');

const AccessPointSchema = z
  .strictObject({
    vendor: z.enum(['tp-link', 'other']).describe('Maker of the access point: tp-link gets model-aware steps, other gets generic ones.'),
    model: z.string().min(1).max(64).optional().describe('Model as printed on its label, e.g. "Archer C6". When absent the steps cover both TP-Link UI styles.'),
    address: ipv4().describe('Static LAN address to give the access point, outside the DHCP range, e.g. 192.168.10.2.'),
  })
  .describe(
    'The former home router, now an access point on the LAN: the tool prints the steps to convert it and checks the result. When absent, no access point is expected.',
  );

export const WrittenConfigSchema = z
  .strictObject({
    version: z.literal(1).describe('Format version of this file. Always 1.'),
    backend: z
      .enum(['opnsense-vm', 'linux'])
      .describe('opnsense-vm: an OPNsense router VM on Proxmox VE. linux: an existing Linux machine configured over SSH.'),
    proxmox: ProxmoxSchema.optional(),
    vm: VmSchema.optional(),
    opnsense: OpnsenseSchema.optional(),
    linux: LinuxSchema.optional(),
    wans: z.array(WanSchema).min(2).max(4).describe('The internet connections, 2 to 4.'),
    lan: LanSchema,
    policy: PolicySchema,
    accessPoint: AccessPointSchema.optional(),
  })
  .describe('dualwan.yaml: a home network with two or more internet connections. Holds no secret.');

/** The file as typed (fields with defaults may be absent). */
export type WrittenConfigInput = z.input<typeof WrittenConfigSchema>;
/** The file after schema defaults are applied; the input of `normalize`. */
export type WrittenConfig = z.output<typeof WrittenConfigSchema>;
export type WrittenWan = WrittenConfig['wans'][number];
