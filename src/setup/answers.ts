/**
 * The wizard's answers and how they become a `dualwan.yaml` value. The answers hold no secret: the
 * token secret goes to the credentials file only. The same shape is kept in the state file beside
 * the config, so an interrupted run resumes with them as defaults.
 */
import { defaultRouterAddress } from '../config/normalize';
import { formatIpv4, parseCidr } from '../config/net';
import type { Uplink } from './host-facts';

export type Profile = 'failover' | 'loadbalance';

export interface SetupAnswers {
  host?: string;
  port?: number;
  tokenId?: string;
  /** The certificate fingerprint the user confirmed (not a secret). */
  fingerprint?: string;
  node?: string;
  /** WAN 1, the ISP modem. */
  isp?: Uplink;
  /** The TP-Link side. */
  lan?: Uplink;
  /** WAN 2, the backup. */
  backup?: Uplink;
  /** A name for the backup device, used in its description ("Pixel 8"). */
  backupLabel?: string;
  diskStorage?: string;
  imageStorage?: string;
  vmid?: number;
  profile?: Profile;
  /** Load balance only: the ISP's share against the backup's, e.g. 2 for 2:1. */
  ispWeight?: number;
  lanSubnet?: string;
  routerAddress?: string;
  /** The TP-Link's address once it is an access point. */
  accessPointAddress?: string;
  accessPointModel?: string;
  /**
   * Set when the management NIC goes to the router VM: the guarded cutover (proxmox.cutover) keeps
   * the host reachable on a port-less bridge the VM joins.
   */
  cutover?: { bridge: string; hostAddress: string; gateway: string };
}

type OptionalAnswer = 'fingerprint' | 'backupLabel' | 'accessPointModel' | 'ispWeight' | 'cutover';
export type CompleteAnswers = Required<Omit<SetupAnswers, OptionalAnswer>> & Pick<SetupAnswers, OptionalAnswer>;

/** The keys a complete answer set needs, in the order the wizard asks them (for messages). */
export const REQUIRED_ANSWERS = [
  'host',
  'port',
  'tokenId',
  'node',
  'isp',
  'lan',
  'backup',
  'diskStorage',
  'imageStorage',
  'vmid',
  'profile',
  'lanSubnet',
  'routerAddress',
  'accessPointAddress',
] as const satisfies readonly (keyof SetupAnswers)[];

export function missingAnswers(a: SetupAnswers): string[] {
  return REQUIRED_ANSWERS.filter((k) => a[k] === undefined);
}

export function isComplete(a: SetupAnswers): a is CompleteAnswers {
  return missingAnswers(a).length === 0;
}

/** The access point's default address: the router's address + 1 (".2" on a /24 whose router is ".1"), else the first free host address. */
export function defaultAccessPointAddress(subnet: string, routerAddress?: string): string {
  const r = parseCidr(subnet);
  const router = routerAddress ?? defaultRouterAddress(subnet);
  if (!r) return router;
  const ip = router.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
  if (ip + 1 < r.last && ip + 1 > r.first) return formatIpv4(ip + 1);
  for (let c = r.first + 1; c < r.last; c++) if (c !== ip) return formatIpv4(c);
  return router;
}

export function backupWanName(u: Uplink): string {
  return u.type === 'usb-tether' ? 'hotspot' : 'backup';
}

/**
 * The `dualwan.yaml` value of complete answers (input shape: defaults left to the schema). Sections
 * the wizard does not ask about (opnsense, monitor IPs, …) are not produced here; an existing file's
 * values for them are kept by the document writer.
 */
export function answersToConfig(a: CompleteAnswers): Record<string, unknown> {
  const metered = a.backup.type === 'usb-tether';
  const loadbalance = a.profile === 'loadbalance';
  const ispDescription = a.isp.type === 'pci-nic' ? 'ISP modem' : `ISP modem (bridge ${a.isp.type === 'bridge' ? a.isp.bridge : ''})`;
  const backupDescription =
    a.backup.type === 'usb-tether' ? `${a.backupLabel ?? 'Phone'} (USB tethering)` : a.backup.type === 'pci-nic' ? 'Backup line (second NIC)' : `Backup line (bridge ${a.backup.bridge})`;
  return {
    version: 1,
    backend: 'opnsense-vm',
    proxmox: {
      host: a.host,
      port: a.port,
      node: a.node,
      tokenId: a.tokenId,
      ...(a.fingerprint ? { fingerprint: a.fingerprint } : {}),
      // null removes a cutover an earlier run wrote, once no management NIC is passed through.
      cutover: a.cutover ? { bridge: a.cutover.bridge, hostAddress: a.cutover.hostAddress, gateway: a.cutover.gateway } : null,
    },
    vm: {
      template: 'opnsense',
      vmid: a.vmid,
      diskStorage: a.diskStorage,
      imageStorage: a.imageStorage,
      ...(a.cutover ? { bridgeNic: { bridge: a.cutover.bridge } } : {}),
    },
    wans: [
      { name: 'isp', description: ispDescription, uplink: a.isp, tier: 1, weight: loadbalance ? (a.ispWeight ?? 2) : 1, metered: false },
      { name: backupWanName(a.backup), description: backupDescription, uplink: a.backup, tier: loadbalance ? 1 : 2, weight: 1, metered },
    ],
    lan: { uplink: a.lan, subnet: a.lanSubnet, routerAddress: a.routerAddress },
    policy: { mode: a.profile },
    accessPoint: { vendor: 'tp-link', ...(a.accessPointModel ? { model: a.accessPointModel } : {}), address: a.accessPointAddress },
  };
}

/**
 * Answers read back from an existing file (written by an earlier run or by hand), leniently: the
 * file may be partial or invalid, and whatever has the right shape becomes a default.
 */
export function answersFromConfig(value: unknown): SetupAnswers {
  const o = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) ? v : undefined);
  const uplink = (v: unknown): Uplink | undefined => {
    const u = o(v);
    if (u.type === 'pci-nic' && str(u.pci)) return { type: 'pci-nic', pci: String(u.pci) };
    if (u.type === 'usb-tether' && str(u.vendorId) && str(u.productId)) return { type: 'usb-tether', vendorId: String(u.vendorId), productId: String(u.productId) };
    if (u.type === 'bridge' && str(u.bridge)) return { type: 'bridge', bridge: String(u.bridge) };
    return undefined;
  };
  const root = o(value);
  const px = o(root.proxmox);
  const vm = o(root.vm);
  const wans = Array.isArray(root.wans) ? root.wans.map(o) : [];
  const lan = o(root.lan);
  const policy = o(root.policy);
  const ap = o(root.accessPoint);
  const out: SetupAnswers = {
    host: str(px.host),
    port: num(px.port),
    tokenId: str(px.tokenId),
    fingerprint: str(px.fingerprint),
    node: str(px.node),
    isp: uplink(wans[0]?.uplink),
    backup: uplink(wans[1]?.uplink),
    lan: uplink(lan.uplink),
    diskStorage: str(vm.diskStorage),
    imageStorage: str(vm.imageStorage),
    vmid: num(vm.vmid),
    profile: policy.mode === 'failover' || policy.mode === 'loadbalance' ? policy.mode : undefined,
    ispWeight: policy.mode === 'loadbalance' ? num(wans[0]?.weight) : undefined,
    lanSubnet: str(lan.subnet),
    routerAddress: str(lan.routerAddress),
    accessPointAddress: str(ap.address),
    accessPointModel: str(ap.model),
    cutover:
      str(o(px.cutover).hostAddress) && str(o(px.cutover).gateway)
        ? { bridge: str(o(px.cutover).bridge) ?? 'vmbr1', hostAddress: String(o(px.cutover).hostAddress), gateway: String(o(px.cutover).gateway) }
        : undefined,
  };
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as SetupAnswers;
}
