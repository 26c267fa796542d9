// The doubles wired together for the bootstrap: a simulated Proxmox host with serial consoles, a
// simulated OPNsense guest on the router VM's serial socket that reads the seed CD the VM has
// attached, and the OPNsense REST double, which answers only once the guest has booted with an
// imported config.xml, and then accepts the API keys that config.xml holds (secrets checked
// against their crypt hashes with openssl, not with the product's code).
//
// Two ways in:
// - `startBootstrapSite()`: an EMPTY host (no VM, no image) + a bootstrappable guest + the router
//   double, for the CLI tests, `dualwan demo` and the bench. Any key the seed carries works, so
//   the CLI's random secrets do.
// - `startBootstrapRig()`: the same pieces around the Proxmox stage harness, with fixed secrets
//   (RIG_SECRETS) the component tests pass to the bootstrap and expect the import to carry.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Document, parseDocument } from 'yaml';
import type { BootstrapSecrets } from '../../../src/bootstrap/seed-config';
import type { DesiredState } from '../../../src/core/desired';
import { proxmoxHarness, type Harness } from '../../helpers/proxmox-harness';
import { apiKeysOf, cryptMatches } from '../opnsense/crypt-check';
import { loadPlaybookState, pointAtRouter, startSimulatedRouter, type SimulatedRouter, type SimulatedRouterOptions } from '../opnsense/simulated-router';
import { OpnsenseGuest, type GuestTiming } from './opnsense-guest';
import type { ProxmoxDouble, ProxmoxDoubleOptions } from './server';
import { pointAtImage, type LocalImage } from './image-server';
import { startSimulatedHost, type SimulatedHost } from './simulated-host';

/** Why the REST double stays silent, when it does (the VM is off, booted the factory config…). */
export interface Gate {
  open: boolean;
  reason: string;
}

export interface GuestOptions {
  readonly timing?: Partial<GuestTiming>;
  readonly noise?: boolean;
  readonly sshFingerprints?: { type: string; fingerprint: string }[];
  /** The router VM whose serial socket the guest sits on (default 100). */
  readonly vmid?: number;
  /**
   * Open the REST API only when the imported config.xml carries this key with a hash of this
   * secret (the component tests' fixed secrets); default: whatever key the import carries.
   */
  readonly expect?: { readonly apiKey: string; readonly apiSecret: string };
}

/**
 * Puts a simulated OPNsense nano guest on the serial socket of `vmid` and couples the REST double
 * to it: silent while the VM is off or runs the factory config (whose LAN is not where dualwan
 * looks), answering with the imported config's API keys once it booted with one.
 */
export function attachBootstrappableGuest(host: ProxmoxDouble, router: SimulatedRouter, o: GuestOptions = {}): { guest: OpnsenseGuest; gate: Gate } {
  const vmid = o.vmid ?? 100;
  const gate: Gate = { open: false, reason: 'the VM has not booted' };
  router.controls.stopAnswering();
  const close = (reason: string) => {
    gate.open = false;
    gate.reason = reason;
    router.controls.stopAnswering();
  };
  const guest = new OpnsenseGuest({
    timing: o.timing,
    noise: o.noise,
    httpsFingerprint: router.fingerprint,
    // what the host holds on the VM's boot disk: the imported image, or nothing
    bootDisk: () => {
      const drive = host.state.vms.find((v) => v.vmid === vmid)?.conf.scsi0;
      const volid = drive?.split(',')[0]?.replace(/^file=/, '');
      return volid ? host.state.volumes.find((v) => v.volid === volid)?.bytes : undefined;
    },
    sshFingerprints: o.sshFingerprints ?? [{ type: 'ED25519', fingerprint: 'SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8' }],
    media: () => {
      const vm = host.state.vms.find((v) => v.vmid === vmid);
      const drive = vm?.conf.ide2;
      if (!drive) return [];
      const volid = drive.split(',')[0]!;
      return [{ device: 'cd0', bytes: host.state.volumes.find((v) => v.volid === volid)?.bytes }];
    },
    onBooted: (xml) => {
      if (!xml) return close('the VM booted with the factory config');
      const keys = apiKeysOf(xml);
      router.controls.setApiKeys(keys);
      if (o.expect && !keys.some((k) => k.key === o.expect!.apiKey && cryptMatches(o.expect!.apiSecret, k.secretHash))) {
        return close('the imported config.xml does not carry the expected API key');
      }
      if (!keys.length) return close('the imported config.xml holds no API key');
      gate.open = true;
      gate.reason = '';
      router.controls.resumeAnswering();
    },
    onPowerOff: () => close('the VM is off'),
  });
  host.attachSerialGuest(vmid, guest);
  return { guest, gate };
}

export interface BootstrapSite {
  /** The simulated Proxmox VE host: no VM, no image yet. */
  readonly host: SimulatedHost;
  /** The loopback stand-in of the release mirror (host.localImage) that `pointAt` sets as vm.image. */
  readonly image: LocalImage;
  /** The OPNsense REST double the router VM becomes once bootstrapped (silent until then). */
  readonly router: SimulatedRouter;
  readonly guest: OpnsenseGuest;
  readonly gate: Gate;
  /** Points a playbook at the router and its vm.image at the local image (use as, or inside, the `edit` of writePlaybookFor). */
  pointAt(doc: Document): void;
  close(): Promise<void>;
}

export interface SiteOptions extends GuestOptions {
  /** The desired state the host serves the image of and the router double is seeded from (default: the hotspot-failover playbook). */
  readonly state?: DesiredState;
  readonly proxmox?: ProxmoxDoubleOptions;
  /**
   * Grant the token Datastore.Allocate on the image storage, the optional grant of
   * docs/proxmox-token.md that lets the bootstrap delete its seed image (default true).
   */
  readonly seedCleanupGrant?: boolean;
  /** Options of the router double (e.g. `dpinger: { timeScale: 20 }` for gateway status over time). */
  readonly router?: Omit<SimulatedRouterOptions, 'state'>;
}

/** An empty host, a bootstrappable guest on the router VM's serial socket, the router double. */
export async function startBootstrapSite(o: SiteOptions = {}): Promise<BootstrapSite> {
  const state = o.state ?? loadPlaybookState();
  const router = await startSimulatedRouter({ ...o.router, state });
  let host: SimulatedHost;
  try {
    host = await startSimulatedHost({ image: state.vm?.image, consoles: true, ...o.proxmox });
  } catch (e) {
    await router.close();
    throw e;
  }
  if (o.seedCleanupGrant !== false) {
    // An entry on /storage/<id> replaces what the token inherits from /storage there, so it
    // carries the storage privileges of the dualwan role as well (docs/proxmox-token.md).
    const privs = ['Datastore.Allocate', 'Datastore.AllocateSpace', 'Datastore.AllocateTemplate', 'Datastore.Audit'];
    host.grant(host.tokenId, `/storage/${state.vm?.imageStorage ?? 'local'}`, privs);
  }
  const { guest, gate } = attachBootstrappableGuest(host, router, { ...o, vmid: o.vmid ?? state.vm?.vmid });
  return {
    host,
    image: host.localImage,
    router,
    guest,
    gate,
    pointAt: (doc) => {
      pointAtRouter(doc, router);
      pointAtImage(doc, host.localImage);
    },
    async close() {
      guest.power(false);
      router.controls.resumeAnswering();
      await host.close();
      await router.close();
    },
  };
}

export interface BootstrapRig {
  readonly pve: Harness;
  readonly router: SimulatedRouter;
  readonly guest: OpnsenseGuest;
  readonly secrets: BootstrapSecrets;
  readonly credentialsFile: string;
  readonly gate: Gate;
  close(): Promise<void>;
}

export interface RigOptions {
  readonly timing?: Partial<GuestTiming>;
  readonly noise?: boolean;
  /** Leave the VM stopped after the Proxmox stage (vm.start: false), so the bootstrap boots it first. */
  readonly vmStopped?: boolean;
  readonly edit?: (doc: ReturnType<typeof parseDocument>) => void;
  readonly sshFingerprints?: { type: string; fingerprint: string }[];
  /**
   * The router VM exists already (tagged dualwan, stopped) with an EMPTY boot disk, as a VM made by
   * hand or by an earlier dualwan would be: the Proxmox stage keeps it, the firmware finds nothing
   * to boot.
   */
  readonly emptyDisk?: boolean;
}

/** A tagged VM 100 whose 16 GiB disk on local-lvm was allocated empty, not imported. */
function vmWithEmptyDisk(): Pick<NonNullable<ProxmoxDoubleOptions['inventory']>, 'vms' | 'volumes'> {
  return {
    vms: { 100: { name: 'opnsense', tags: 'dualwan', ostype: 'other', scsihw: 'virtio-scsi-single', scsi0: 'local-lvm:vm-100-disk-0,discard=on,iothread=1,size=16G', serial0: 'socket', vga: 'serial0' } },
    volumes: [{ volid: 'local-lvm:vm-100-disk-0', storage: 'local-lvm', content: 'images', format: 'raw', size: 16 * 1024 ** 3, ctime: 1767225600, vmid: 100 }],
  };
}

export const RIG_SECRETS: BootstrapSecrets = {
  rootPassword: 'Rk4mW9xTp2QvB7nZc3Hd',
  apiKey: Buffer.alloc(60, 0x5a).toString('base64'),
  apiSecret: Buffer.alloc(60, 0xa5).toString('base64'),
};

export async function startBootstrapRig(o: RigOptions = {}): Promise<BootstrapRig> {
  const secrets = RIG_SECRETS;
  const router = await startSimulatedRouter({ apiKey: secrets.apiKey, apiSecret: secrets.apiSecret });
  let pve: Harness;
  try {
    pve = await proxmoxHarness({
      consoles: true,
      ...(o.emptyDisk ? { inventory: vmWithEmptyDisk() } : {}),
      edit: (doc) => {
        pointAtRouter(doc, router);
        if (o.vmStopped) doc.setIn(['vm', 'start'], false);
        o.edit?.(doc);
      },
    });
  } catch (e) {
    await router.close();
    throw e;
  }
  const { guest, gate } = attachBootstrappableGuest(pve.host, router, { timing: o.timing, noise: o.noise, sshFingerprints: o.sshFingerprints, expect: secrets });
  const credentialsFile = path.join(pve.dir, 'credentials');
  return {
    pve,
    router,
    guest,
    secrets,
    credentialsFile,
    gate,
    async close() {
      guest.power(false);
      router.controls.resumeAnswering();
      await pve.close();
      await router.close();
      fs.rmSync(credentialsFile, { force: true });
    },
  };
}
