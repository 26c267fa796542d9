/**
 * The serial console path against the doubles: termproxy + vncwebsocket on the Proxmox double
 * (real framing over TLS and a websocket), the simulated OPNsense guest printing the 26.7.2
 * prompts, and the product's console client, expect engine and importer dialogue.
 */
import { openSerialConsole } from '../../src/bootstrap/console';
import { BootstrapConsoleError, runImporterDialogue } from '../../src/bootstrap/dialogue';
import { Expect, ExpectError } from '../../src/bootstrap/expect';
import { buildSeedImage } from '../../src/bootstrap/image';
import { buildSeedConfig, hashSecrets } from '../../src/bootstrap/seed-config';
import type { ProxmoxClient } from '../../src/providers/proxmox/client';
import { RIG_SECRETS, startBootstrapRig, type BootstrapRig } from '../doubles/proxmox/bootstrap-rig';

jest.setTimeout(60_000);

const SHORT = { bootMs: 8_000, deviceMs: 5_000, importMs: 5_000, loginMs: 8_000, replyMs: 5_000 };

async function clientOf(rig: BootstrapRig): Promise<{ client: ProxmoxClient; close: () => Promise<void> }> {
  const s = await rig.pve.open();
  return { client: (s.ctx as { client: ProxmoxClient }).client, close: () => s.close() };
}

async function seedAndAttach(rig: BootstrapRig, client: ProxmoxClient, bytes?: Buffer): Promise<void> {
  const state = rig.pve.state();
  const image = bytes ?? buildSeedImage(buildSeedConfig(state, hashSecrets(RIG_SECRETS, [])).xml);
  await client.uploadFile('local', 'iso', 'dualwan-seed-100.iso', image, { what: 'upload' });
  await client.updateVmConfig(100, { ide2: 'local:iso/dualwan-seed-100.iso,media=cdrom' }, { what: 'attach' });
}

describe('serial console through termproxy and the websocket', () => {
  let rig: BootstrapRig;
  let client: ProxmoxClient;
  let closeClient: () => Promise<void>;
  beforeEach(async () => {
    rig = await startBootstrapRig({ vmStopped: true });
    await rig.pve.apply();
    ({ client, close: closeClient } = await clientOf(rig));
  });
  afterEach(async () => {
    await closeClient();
    await rig.close();
  });

  it('speaks termproxy: ticket line answered OK, resize, input as 0:LEN:DATA with the UTF-8 length', async () => {
    await client.startVm(100, { what: 'start' });
    const con = await openSerialConsole(client, 100);
    const seen: string[] = [];
    con.onData((t) => seen.push(t));
    con.send('é\r');
    const hub = rig.pve.host.consoles!;
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (hub.received.some((r) => r.kind === 'input')) {
          clearInterval(t);
          resolve();
        }
      }, 5);
    });
    con.close();
    const kinds = hub.received.map((r) => r.kind);
    expect(kinds.slice(0, 3)).toEqual(['ticket', 'resize', 'input']);
    expect(hub.received[0]!.data).toMatch(/^dualwan@pve!setup:PVEVNC:[0-9A-F]{8}::/);
    expect(hub.received[1]!.data).toBe('80x24');
    expect(hub.received[2]!.data).toBe('é\r');
    expect(seen.join('')).toContain('starting serial terminal on interface serial0');
    // the websocket GET was checked against both schemas like every REST call
    expect(rig.pve.host.contractViolations).toEqual([]);
    expect(rig.pve.host.requests.some((r) => r.template === '/nodes/{node}/qemu/{vmid}/vncwebsocket' && r.status === 101)).toBe(true);
  });

  it('a stopped VM: the console closes with qm terminal\'s words', async () => {
    const con = await openSerialConsole(client, 100);
    const text: string[] = [];
    con.onData((t) => text.push(t));
    const reason = await new Promise<string>((r) => con.onClose(r));
    expect(text.join('')).toContain('VM 100 not running');
    expect(reason).toMatch(/closed/);
  });

  it('imports the seed at the importer prompt, pins the certificate from the banner, proves the passwords', async () => {
    // The console is opened after the start, as the product does: give the prompt a window that a
    // loaded CI machine cannot miss (the missed-prompt path has its own test below).
    await closeClient();
    await rig.close();
    rig = await startBootstrapRig({ vmStopped: true, timing: { kernelMs: 1_500, dotMs: 600 } });
    await rig.pve.apply();
    ({ client, close: closeClient } = await clientOf(rig));
    await seedAndAttach(rig, client);
    await client.startVm(100, { what: 'start' });
    const con = await openSerialConsole(client, 100);
    const x = new Expect(con);
    const r = await runImporterDialogue(x, { rootPassword: RIG_SECRETS.rootPassword, factoryPassword: 'opnsense', timeouts: SHORT });
    con.close();
    expect(r).toMatchObject({ importedBy: 'boot-prompt', device: 'cd0', factoryPasswordRefused: true, newPasswordAccepted: true, httpsFingerprint: rig.router.fingerprint });
    expect(r.sshHostKeys).toEqual([{ type: 'ED25519', fingerprint: 'SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8' }]);
    expect(rig.gate.open).toBe(true);
    expect(rig.guest.transcript).toContain('Restoring config.xml...done.');
  });

  it('survives a slow boot (the prompt comes late) and garbage on the line', async () => {
    await closeClient();
    await rig.close();
    rig = await startBootstrapRig({ vmStopped: true, noise: true, timing: { kernelMs: 2_500, dotMs: 600, servicesMs: 600 } });
    await rig.pve.apply();
    ({ client, close: closeClient } = await clientOf(rig));
    await seedAndAttach(rig, client);
    await client.startVm(100, { what: 'start' });
    const con = await openSerialConsole(client, 100);
    const r = await runImporterDialogue(new Expect(con), { rootPassword: RIG_SECRETS.rootPassword, factoryPassword: 'opnsense', timeouts: SHORT });
    con.close();
    expect(r.importedBy).toBe('boot-prompt');
    expect(r.httpsFingerprint).toBe(rig.router.fingerprint);
  });

  it('recovers from a missed importer prompt: factory login, shell, opnsense-importer, reboot', async () => {
    await seedAndAttach(rig, client);
    await client.startVm(100, { what: 'start' });
    await rig.guest.until('login'); // nobody was connected: the prompt and its seven dots are gone
    expect(rig.guest.factory).toBe(true);
    const con = await openSerialConsole(client, 100);
    con.send('\r'); // a fresh login prompt, as a person would press Enter
    const r = await runImporterDialogue(new Expect(con), { rootPassword: RIG_SECRETS.rootPassword, factoryPassword: 'opnsense', timeouts: SHORT });
    con.close();
    expect(r.importedBy).toBe('shell');
    expect(rig.guest.boots).toBe(2);
    expect(rig.gate.open).toBe(true);
  });

  it('a boot slower than the step\'s timeout fails with the last screen lines quoted', async () => {
    await closeClient();
    await rig.close();
    rig = await startBootstrapRig({ vmStopped: true, timing: { firmwareMs: 1_000, kernelMs: 8_000 } });
    await rig.pve.apply();
    ({ client, close: closeClient } = await clientOf(rig));
    await client.startVm(100, { what: 'start' });
    const con = await openSerialConsole(client, 100);
    const err = await runImporterDialogue(new Expect(con), { rootPassword: 'x', factoryPassword: 'opnsense', timeouts: { ...SHORT, bootMs: 2_500 } }).catch((e: unknown) => e);
    con.close();
    expect(err).toBeInstanceOf(ExpectError);
    expect((err as ExpectError).code).toBe('CONSOLE_TIMEOUT');
    expect((err as Error).message).toMatch(/first boot: wait for the config importer" saw none of "importer", "device", "login", "live", "no-boot" within 3 s/);
    expect((err as Error).message).toContain('| Mounting filesystems...');
  });

  it('an empty VM disk (the nano image never reached it): SeaBIOS finds nothing to boot, and the error says so at once', async () => {
    await closeClient();
    await rig.close();
    rig = await startBootstrapRig({ vmStopped: true, emptyDisk: true });
    await rig.pve.apply();
    // the VM existed with its (empty) disk, so the Proxmox stage neither uploaded an image nor replaced the disk
    expect(rig.pve.host.requests.some((r) => r.template === '/nodes/{node}/storage/{storage}/upload')).toBe(false);
    expect(rig.pve.host.state.volumes.find((v) => v.volid === 'local-lvm:vm-100-disk-0')?.bytes).toBeUndefined();
    ({ client, close: closeClient } = await clientOf(rig));
    await client.startVm(100, { what: 'start' });
    const con = await openSerialConsole(client, 100);
    const started = Date.now();
    const err = await runImporterDialogue(new Expect(con), { rootPassword: 'x', factoryPassword: 'opnsense', timeouts: { ...SHORT, bootMs: 60_000 } }).catch((e: unknown) => e);
    con.close();
    expect(err).toBeInstanceOf(BootstrapConsoleError);
    expect((err as Error).message).toContain('The VM has nothing to boot');
    expect((err as Error).message).toContain('| No bootable device.');
    expect((err as BootstrapConsoleError).remedy).toContain('"The boot disk"');
    expect((err as BootstrapConsoleError).remedy).toMatch(/Remove the VM in Proxmox .* run dualwan apply again: it uploads the image/);
    expect(Date.now() - started).toBeLessThan(50_000); // reacted to the screen, not to the step's timeout
  });

  it('no CD attached: the importer lists none, dualwan leaves the importer and says what to fix', async () => {
    await client.startVm(100, { what: 'start' });
    const con = await openSerialConsole(client, 100);
    const err = await runImporterDialogue(new Expect(con), { rootPassword: 'x', factoryPassword: 'opnsense', timeouts: SHORT }).catch((e: unknown) => e);
    con.close();
    expect((err as Error).message).toMatch(/lists no CD device/);
    expect((err as Error).message).toContain('| Select device to import from (e.g. ada0) or leave blank to exit:');
  });

  it('a CD that is not ISO 9660: "could not be mounted" is reported with the screen', async () => {
    await seedAndAttach(rig, client, Buffer.alloc(40_000, 0x42));
    await client.startVm(100, { what: 'start' });
    const con = await openSerialConsole(client, 100);
    const err = await runImporterDialogue(new Expect(con), { rootPassword: 'x', factoryPassword: 'opnsense', timeouts: SHORT }).catch((e: unknown) => e);
    con.close();
    expect((err as Error).message).toMatch(/could not read the seed from cd0 \(not mounted\)/);
    expect((err as Error).message).toContain('| The device could not be mounted.');
  });
});
