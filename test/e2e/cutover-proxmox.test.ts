/**
 * The lockout-safe cutover stage, applied by the product's plan engine after the Proxmox stage made
 * and started the router VM without the management NIC (root only; skipped with the reason
 * otherwise). The API side is the Proxmox double (loopback); the host's SSH side is real: a "host"
 * network namespace with its own sshd, reached through namespaces with the prefix dwco<id>-:
 *
 *   admin (dualwan)  oldA 10.251.1.2 ───────────── mgmt0 10.251.1.1   host (sshd :22)
 *                    toVm 10.251.2.2 ── toAdmin 10.251.2.1  vm (router)
 *                                        toHost 10.251.3.1 ── vmbr1 10.251.3.2
 *
 * The namespaces follow what the double does: when the Proxmox stage applies the new bridge, the
 * host gets proxmox.cutover.hostAddress on vmbr1 (no gateway: the default route stays); when the
 * cutover applies its staged network, the default route goes via the router there; when the VM starts
 * with the management NIC (the cutover adds it as hostpci1 and restarts the VM), that NIC leaves
 * the host (mgmt0 goes down). The dead-man timer is the `process` backend (no systemd in a
 * namespace); its revert is the product's own command list, with stand-ins for `ifreload` and `qm`
 * that act on the namespace and record what they were asked.
 * - the router routes: dualwan reaches the host at the new address, finishes there, disarms; the VM
 *   runs with the NIC, the network is applied, and new plans of both stages show nothing to do;
 * - the router does not route: the timer fires, the host is back on mgmt0 with its old interfaces
 *   file (vmbr1 keeps its address, without the gateway), the VM stop was asked, and the error says
 *   what to change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfigFile } from '../../src/config/load';
import type { DesiredState } from '../../src/core/desired';
import { CutoverRevertedError } from '../../src/cutover/cutover';
import { prepareProxmox } from '../../src/flows/router-vm';
import type { StageEnv, StageSession } from '../../src/flows/stage';
import { applyStagePlan, planStage } from '../../src/flows/stages';
import { type RemoteShell } from '../../src/providers/linux/ssh';
import { connectProxmox, proxmoxHandlers, type ProxmoxConnection, type ProxmoxContext } from '../../src/providers/proxmox/provider';
import { cutoverHandler, type CutoverIo } from '../../src/providers/proxmox/resources/cutover';
import type { ProxmoxDouble } from '../doubles/proxmox/server';
import { packageRoot, startSimulatedHost, writePlaybookFor } from '../doubles/proxmox/simulated-host';
import { TestUi } from '../helpers/test-ui';
import { describeIfRoot } from '../lab/jest-lab';
import { CutoverNamespaces } from '../helpers/cutover-namespaces';

jest.setTimeout(120_000);

const lab = new CutoverNamespaces('dwco');
const NS = lab.ns;
const TIMEOUT_S = 10;
let host: ProxmoxDouble | undefined;
/** The PCI devices of each VM start the double saw. */
const starts: (readonly string[])[] = [];
const conns: ProxmoxConnection[] = [];
const run = (argv: string[], ok = true) => lab.run(argv, ok);
const sshVia = (address: string): Promise<RemoteShell> => lab.sshVia(address);
const teardown = () => lab.teardown();

/** The host's interfaces file as the Proxmox stage leaves it: vmbr1 has the new address, no gateway. */
const INTERFACES = 'auto lo\niface lo inet loopback\n\niface enp1s0 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 192.168.1.10/24\n\tgateway 192.168.1.1\n\tbridge-ports enp1s0\n\tbridge-stp off\n\tbridge-fd 0\n\niface enp2s0 inet manual\n\nauto vmbr1\niface vmbr1 inet static\n\taddress 10.251.3.2/24\n\tbridge-ports none\n';

function build(): void {
  lab.build('Proxmox host sshd for the cutover test', (dir) => {
    // stand-ins for the host's ifreload and qm, used by the dead-man's revert
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.writeFileSync(path.join(dir, 'bin', 'ifreload'), '#!/bin/sh\n# test stand-in: what ifreload -a of the restored file does to this host\nip route del default dev vmbr1 2>/dev/null\nip link set mgmt0 up\necho "ifreload $*"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'bin', 'qm'), `#!/bin/sh\necho "qm $*" >> ${path.join(dir, 'qm.log')}\n`, { mode: 0o755 });
  });
}

const linkUp = (dev: string) => !/state DOWN|[<,]DOWN/.test(run(['ip', '-n', NS.host, '-o', 'link', 'show', dev]).out) && /[<,]UP[,>]/.test(run(['ip', '-n', NS.host, '-o', 'link', 'show', dev]).out);
const hostAddrs = (dev: string) => run(['ip', '-n', NS.host, '-o', '-4', 'addr', 'show', 'dev', dev]).out;
const defaultRoute = () => run(['ip', '-n', NS.host, '-4', 'route', 'show', 'default']).out;

/** The double's events, mirrored onto the host namespace. */
function mirror(d: ProxmoxDouble): void {
  d.onNetworkEvent((e) => {
    if (e.type === 'network-applied') {
      const br = e.network.find((i) => i.iface === 'vmbr1');
      if (br?.cidr && !hostAddrs('vmbr1').includes(String(br.cidr))) {
        run(['ip', '-n', NS.host, 'addr', 'add', String(br.cidr), 'dev', 'vmbr1']);
        run(['ip', '-n', NS.host, 'link', 'set', 'vmbr1', 'up']);
      }
      if (br?.gateway) run(['ip', '-n', NS.host, 'route', 'replace', 'default', 'via', String(br.gateway), 'dev', 'vmbr1']);
    } else if (e.pci.includes('0000:01:00.0')) {
      starts.push(e.pci);
      run(['ip', '-n', NS.host, 'link', 'set', 'mgmt0', 'down']);
    } else {
      starts.push(e.pci);
    }
  });
}

function resetHost(vmRoutes: boolean): void {
  run(['ip', '-n', NS.host, 'addr', 'flush', 'dev', 'vmbr1']);
  run(['ip', '-n', NS.host, 'link', 'set', 'mgmt0', 'up']);
  run(['ip', 'netns', 'exec', NS.vm, 'sysctl', '-q', '-w', `net.ipv4.ip_forward=${vmRoutes ? 1 : 0}`]);
  fs.writeFileSync(path.join(lab.dir, 'interfaces'), INTERFACES);
  fs.rmSync(path.join(lab.dir, 'qm.log'), { force: true });
}

/** dualwan.yaml: both NICs passed through, the LAN one is the management NIC, the cutover opted in. */
async function setup(stateDir: string): Promise<{ state: DesiredState; session: StageSession<ProxmoxContext>; env: StageEnv; ui: TestUi; recorded: string[] }> {
  host!.reset();
  // as startSimulatedHost prepares the token (reset drops it)
  host!.grant(host!.tokenId, '/mapping/pci', ['Mapping.Modify', 'Mapping.Use']);
  host!.grant(host!.tokenId, '/mapping/usb', ['Mapping.Modify', 'Mapping.Use']);
  const ui = new TestUi();
  const file = writePlaybookFor(host!, lab.dir, 'hotspot-failover.yaml', (doc) => {
    doc.setIn(['lan', 'uplink'], doc.createNode({ type: 'pci-nic', pci: '0000:01:00.0' }));
    doc.setIn(['vm', 'bridgeNic'], doc.createNode({ bridge: 'vmbr1' }));
    doc.setIn(['proxmox', 'cutover'], doc.createNode({ hostAddress: '10.251.3.2/24', gateway: '10.251.3.1' }));
  });
  const loaded = loadConfigFile(file);
  if (!loaded.state) throw new Error(loaded.diagnostics.map((x) => x.message).join('\n'));
  // the schema asks for at least 60 s; the test keeps the timer short
  const state: DesiredState = { ...loaded.state, proxmox: { ...loaded.state.proxmox!, cutover: { ...loaded.state.proxmox!.cutover!, timeoutSeconds: TIMEOUT_S } } };
  const conn = connectProxmox(state, host!.tokenSecret, host!.fingerprint);
  conns.push(conn);
  // the stages before: the Proxmox stage makes the bridge and the VM without the management NIC and
  // starts it (the bootstrap and OPNsense stages are the router double's business elsewhere)
  const env: StageEnv = { state, ui, trustOnFirstUse: false, env: {}, earlier: [] };
  const pveCtx = await prepareProxmox(state, conn.client, ui);
  const pve: StageSession<ProxmoxContext> = { ctx: pveCtx, handlers: proxmoxHandlers(), writeCalls: () => conn.transport.writeCalls, close: async () => undefined };
  starts.length = 0;
  await applyStagePlan(pve, await planStage(pve, state), env);
  expect(starts).toEqual([['0000:02:00.0']]);
  expect(linkUp('mgmt0')).toBe(true);
  // the host has its new address on vmbr1 already, but its default route is not there yet
  expect(hostAddrs('vmbr1')).toContain('10.251.3.2/24');
  expect(defaultRoute()).not.toMatch(/vmbr1/);
  const prepared = await prepareProxmox(state, conn.client, ui);
  const recorded: string[] = [];
  const io: CutoverIo = {
    ui,
    kind: 'process',
    stateDir,
    interfacesFile: path.join(lab.dir, 'interfaces'),
    bin: { ifreload: path.join(lab.dir, 'bin', 'ifreload'), qm: path.join(lab.dir, 'bin', 'qm') },
    confirmWithinMs: 7_000,
    recoverWithinMs: 20_000,
    connectOld: () => sshVia('10.251.1.1'),
    connectNew: () => sshVia('10.251.3.2'),
    connectApiNew: async () => {
      // the double stays on loopback; in real life this is the API at the new address
      const c = connectProxmox(state, host!.tokenSecret, host!.fingerprint);
      conns.push(c);
      return c.client;
    },
    recordNewHost: (h) => recorded.push(h),
  };
  const ctx: ProxmoxContext = { ...prepared, cutover: io };
  const session: StageSession<ProxmoxContext> = { ctx, handlers: [cutoverHandler], writeCalls: () => conn.transport.writeCalls, close: async () => undefined };
  return { state, session, env, ui, recorded };
}

function causeChain(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let x = e, i = 0; x && i < 10; i++, x = (x as { cause?: unknown }).cause) out.push(x);
  return out;
}

describeIfRoot('Proxmox stage: the lockout-safe cutover with a real host over SSH', () => {
  beforeAll(async () => {
    process.once('exit', () => teardown());
    build();
    const image = loadConfigFile(path.join(packageRoot(), 'playbooks', 'hotspot-failover.yaml')).state?.vm?.image;
    host = await startSimulatedHost({ image, authFailDelayMs: 0, taskDurationMs: 20 });
    mirror(host);
  });
  afterAll(async () => {
    for (const c of conns) await c.close().catch(() => undefined);
    await host?.close();
    teardown();
  });

  it('the router routes: reached through the new path, finished there, disarmed; nothing left to do', async () => {
    resetHost(true);
    const stateDir = path.join(lab.dir, 'state-ok');
    const { state, session, env, ui, recorded } = await setup(stateDir);
    const plan = await planStage(session, state);
    const cut = plan.changes.find((c) => c.address === 'proxmox.network-cutover/pve')!;
    expect(cut.action).toBe('update');
    expect(cut.disruption).toEqual(['drops-management-session', 'restarts-router-vm']);
    await applyStagePlan(session, plan, env);

    expect(ui.codes()).toEqual(expect.arrayContaining(['CUTOVER_ARMED', 'CUTOVER_CONFIRMING', 'CUTOVER_CONFIRMED']));
    // the host's network as the API reports it: applied, nothing pending
    const net = host!.state.network;
    expect(host!.state.networkPending).toBeUndefined();
    expect(net.find((i) => i.iface === 'vmbr1')).toMatchObject({ cidr: '10.251.3.2/24', gateway: '10.251.3.1', active: 1 });
    const vmbr0 = net.find((i) => i.iface === 'vmbr0')!;
    expect(vmbr0.bridge_ports).toBeUndefined();
    expect(vmbr0.gateway).toBeUndefined();
    expect(vmbr0.cidr).toBeUndefined();
    const vm = host!.state.vms.find((v) => v.vmid === 100)!;
    expect(vm.status).toBe('running');
    // restarted with the management NIC, in the slot it was held back for
    expect(vm.conf.hostpci1).toBe('mapping=dualwan-lan,pcie=1');
    expect(starts[starts.length - 1]).toEqual(expect.arrayContaining(['0000:01:00.0', '0000:02:00.0']));
    expect(recorded).toEqual(['10.251.3.2']);
    // disarmed and cleaned up: no state, no revert log, the waiting process gone
    expect(fs.readdirSync(stateDir).filter((f) => f.startsWith('dualwan-cutover-'))).toEqual([]);
    expect(fs.existsSync(path.join(lab.dir, 'qm.log'))).toBe(false);
    // the backup of the old interfaces file stays next to it
    expect(fs.readdirSync(lab.dir).some((f) => f.startsWith('interfaces.dualwan-'))).toBe(true);
    // the host answers only through the router now
    expect(linkUp('mgmt0')).toBe(false);
    const fresh = await sshVia('10.251.3.2');
    expect((await fresh.exec(['true'])).code).toBe(0);
    await fresh.close();
    // idempotent: the same stage plans nothing more, nor does a fresh Proxmox stage (which now finds
    // the management address on vmbr1 and wants the NIC in the VM, where it is)
    const again = await planStage(session, state);
    expect(again.changes.filter((c) => c.action !== 'noop').map((c) => c.address)).toEqual([]);
    const conn = connectProxmox(state, host!.tokenSecret, host!.fingerprint);
    conns.push(conn);
    const fresh2 = await prepareProxmox(state, conn.client, new TestUi());
    expect(fresh2.discovery.management.bridge).toBe('vmbr1');
    const pveAgain = await planStage({ ctx: fresh2, handlers: proxmoxHandlers(), writeCalls: () => 0, close: async () => undefined }, state);
    expect(pveAgain.changes.filter((c) => c.action !== 'noop').map((c) => c.address)).toEqual([]);
  });

  it('the router does not route: the timer restores the host, stops the VM, and the error says what to change', async () => {
    resetHost(false);
    const stateDir = path.join(lab.dir, 'state-fire');
    const { state, session, env } = await setup(stateDir);
    const plan = await planStage(session, state);
    const started = Date.now();
    const err = await applyStagePlan(session, plan, env).catch((e: unknown) => e);
    const reverted = causeChain(err).find((x): x is CutoverRevertedError => x instanceof CutoverRevertedError);
    expect(reverted).toBeDefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_S * 1000);
    expect(reverted!.deadmanState).toBe('fired');
    expect(reverted!.revertLog).toContain(`+ cp -- ${path.join(lab.dir, 'interfaces.dualwan-')}`);
    expect(reverted!.revertLog).toContain('ifreload -a');
    // the host is as before: its old interfaces file, the management link up, off the VM's bridge
    expect(fs.readFileSync(path.join(lab.dir, 'interfaces'), 'utf8')).toBe(INTERFACES);
    expect(linkUp('mgmt0')).toBe(true);
    // vmbr1 as the Proxmox stage left it: the address, not the default route
    expect(hostAddrs('vmbr1')).toContain('10.251.3.2/24');
    expect(defaultRoute()).not.toMatch(/vmbr1/);
    // the VM is stopped and loses the NIC the cutover added, so no start can take it unguarded
    expect(fs.readFileSync(path.join(lab.dir, 'qm.log'), 'utf8')).toBe('qm stop 100\nqm set 100 --delete hostpci1\nqm set 100 --onboot 0\n');
    // what to change: the cabling of the NIC, the router's address on vmbr1, where this computer is
    expect(reverted!.remedy).toMatch(/enp1s0 is the router's LAN port/);
    expect(reverted!.remedy).toMatch(/the router answers at 10\.251\.3\.1 on its NIC on vmbr1/);
    expect(reverted!.remedy).toMatch(/on the LAN 192\.168\.10\.0\/24/);
    // nothing is left staged through the API
    expect(host!.state.networkPending).toBeUndefined();
    const back = await sshVia('10.251.1.1');
    expect((await back.exec(['true'])).code).toBe(0);
    await back.close();
  });
});
