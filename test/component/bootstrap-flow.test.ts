/**
 * The hotspot-failover playbook against the doubles, from an empty Proxmox host to an OPNsense
 * configured through its REST API: Proxmox stage → bootstrap stage (seed image, upload, attach,
 * start, serial console, importer, pinned certificate, passwords, REST with the new key, eject) →
 * OPNsense stage. Then everything again: nothing to do.
 */
import * as fs from 'node:fs';
import { utils } from 'ssh2';
import { storeOpnsenseApiKey } from '../../src/bootstrap/credentials-store';
import { bootstrapOpnsense, BootstrapError } from '../../src/bootstrap/flow';
import { bootstrapStage, type BootstrapStageContext } from '../../src/bootstrap/stage';
import { loadConfigFile } from '../../src/config/load';
import { pendingChanges } from '../../src/core/plan';
import { applyWithBackup, opnsenseStage } from '../../src/flows/opnsense';
import type { StageEnv } from '../../src/flows/stage';
import { applyStagePlan, planStage } from '../../src/flows/stages';
import type { ProxmoxClient } from '../../src/providers/proxmox/client';
import { RIG_SECRETS, startBootstrapRig, type BootstrapRig } from '../doubles/proxmox/bootstrap-rig';
import { TestUi } from '../helpers/test-ui';

jest.setTimeout(90_000);

const SHORT = { bootMs: 10_000, deviceMs: 5_000, importMs: 5_000, loginMs: 10_000, replyMs: 5_000 };
const SSH_KEY = (() => {
  const k = utils.generateKeyPairSync('ed25519');
  return k.public.trim();
})();

function stateOf(file: string) {
  const r = loadConfigFile(file);
  if (!r.state) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return r.state;
}

function envFor(rig: BootstrapRig, ui: TestUi): StageEnv {
  // Only the Proxmox token from the environment: the OPNsense key must come from the credentials
  // file the bootstrap wrote.
  return { state: stateOf(rig.pve.file), ui, trustOnFirstUse: false, env: { DUALWAN_PROXMOX_TOKEN_SECRET: rig.pve.env.DUALWAN_PROXMOX_TOKEN_SECRET }, credentialsFile: rig.credentialsFile, earlier: [] };
}

describe('hotspot-failover playbook: empty Proxmox host → OPNsense answering with the new key → configured', () => {
  let rig: BootstrapRig;
  beforeAll(async () => {
    rig = await startBootstrapRig();
  });
  afterAll(() => rig.close());

  it('runs the three stages in order with no console step waiting a fixed time', async () => {
    const started = Date.now();
    // 1. Proxmox: mappings, image, VM, start (the VM boots with nobody on its console).
    const pve = await rig.pve.apply();
    expect(pendingChanges(pve.plan).map((c) => c.address)).toContain('proxmox.vm/100');
    await rig.guest.until('login'); // its first boot ends at the login prompt with the factory config

    // 2. Bootstrap.
    const ui = new TestUi();
    const env = envFor(rig, ui);
    const stage = bootstrapStage({ secrets: () => RIG_SECRETS, timeouts: SHORT, apiRequestTimeoutMs: 1_000, apiWaitMs: 10_000, sshPublicKeys: [SSH_KEY] });
    const session = await stage.open(env);
    try {
      const plan = await planStage(session, env.state);
      const change = pendingChanges(plan)[0]!;
      expect(change).toMatchObject({ address: 'opnsense.bootstrap/100', action: 'create', disruption: ['stops-router-vm', 'starts-router-vm'] });
      const report = await applyStagePlan(session, plan, env, stage);
      expect(report.applied.map((a) => a.address)).toEqual(['opnsense.bootstrap/100']);
      const r = (session.ctx as BootstrapStageContext).lastReport!;
      // The Proxmox stage had started the VM: the importer prompt went by unseen, so the seed
      // was imported from the shell after a login with the factory password.
      expect(r).toMatchObject({ importedBy: 'shell', device: 'cd0', httpsFingerprint: rig.router.fingerprint, apiKey: RIG_SECRETS.apiKey, seedVolume: 'local:iso/dualwan-seed-100.iso' });
      // Without Datastore.Allocate on the storage (the dualwan role leaves it out) the seed image stays, and the run says so.
      expect(r.seedImage).toBe('kept');
      expect(ui.notices.find((n) => n.code === 'BOOTSTRAP_SEED_KEPT')?.text).toContain('pvesm free local:iso/dualwan-seed-100.iso');
      expect(rig.pve.host.state.volumes.map((v) => v.volid)).toContain('local:iso/dualwan-seed-100.iso');
    } finally {
      await session.close();
    }

    // The root password was shown exactly once and appears nowhere else.
    const pw = RIG_SECRETS.rootPassword;
    expect(ui.notices.filter((n) => n.text.includes(pw)).map((n) => n.code)).toEqual(['BOOTSTRAP_ROOT_PASSWORD']);
    expect(fs.readFileSync(rig.pve.file, 'utf8')).not.toContain(pw);
    expect(fs.readFileSync(rig.credentialsFile, 'utf8')).not.toContain(pw);
    expect(rig.guest.transcript).not.toContain(pw);
    // The API key lives in the 0600 credentials file; the certificate pin in dualwan.yaml.
    expect(fs.statSync(rig.credentialsFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(rig.credentialsFile, 'utf8')).toContain(`DUALWAN_OPNSENSE_API_SECRET=${RIG_SECRETS.apiSecret}`);
    expect(stateOf(rig.pve.file).opnsense?.fingerprint).toBe(rig.router.fingerprint);
    // and OPNsense's SSH host key (ED25519) from the same console banner, for the revert timer
    expect(stateOf(rig.pve.file).opnsense?.sshHostKey).toBe('SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8');
    expect(fs.readFileSync(rig.pve.file, 'utf8')).toMatch(/^ {2}sshHostKey: SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8$/m);
    // The seed CD is ejected (the double applies CD changes of a running VM at its next restart).
    const vm = rig.pve.host.state.vms.find((v) => v.vmid === 100)!;
    expect(vm.pending.ide2 ?? vm.conf.ide2).toBe('none,media=cdrom');
    expect(rig.pve.host.contractViolations).toEqual([]);

    // 3. OPNsense over REST, with the key and pin the bootstrap left (no trust on first use).
    const oui = new TestUi();
    const oenv = { ...envFor(rig, oui), env: {} };
    const ostage = opnsenseStage({ sleep: async () => undefined, gatewayListWaitMs: 2_000, revertBackoffMs: 0, client: { requestTimeoutMs: 10_000 } });
    const os = await ostage.open(oenv);
    try {
      const plan = await planStage(os, oenv.state);
      expect(pendingChanges(plan).length).toBeGreaterThan(0);
      await applyWithBackup(os, plan, { state: oenv.state, ui: oui });
      expect(pendingChanges(await planStage(os, oenv.state))).toEqual([]);
      // the host key is pinned, but this run has no SSH key: no revert timer, said once, with why
      const no = oui.notices.filter((n) => n.code === 'OPNSENSE_NO_REVERT_TIMER');
      expect(no.map((n) => n.level)).toEqual(['warn']);
      expect(no[0]!.text).toMatch(/^No automatic revert is armed for this apply: DUALWAN_SSH_PRIVATE_KEY_FILE is not set/);
    } finally {
      await os.close();
    }
    expect(rig.router.controls.contractViolations).toEqual([]);

    // Again: the bootstrap sees OPNsense answering with the stored key and plans nothing.
    const again = await stage.open(envFor(rig, new TestUi()));
    try {
      expect(pendingChanges(await planStage(again, stateOf(rig.pve.file)))).toEqual([]);
    } finally {
      await again.close();
    }
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});

describe('bootstrapOpnsense on a VM that was never started', () => {
  let rig: BootstrapRig;
  let client: ProxmoxClient;
  let close: () => Promise<void>;
  beforeEach(async () => {
    rig = await startBootstrapRig({ vmStopped: true, timing: { kernelMs: 1_500, dotMs: 600 } }); // a prompt window a loaded machine cannot miss
    await rig.pve.apply();
    const s = await rig.pve.open();
    client = (s.ctx as { client: ProxmoxClient }).client;
    close = () => s.close();
  });
  afterEach(async () => {
    await close();
    await rig.close();
  });

  it('answers the importer prompt itself and ends with the REST API answering', async () => {
    const ui = new TestUi();
    const sshPins: string[] = [];
    const r = await bootstrapOpnsense(
      { state: rig.pve.state(), ui, client, credentialsFile: rig.credentialsFile, sshPublicKeys: [SSH_KEY], recordSshHostKey: (k) => sshPins.push(k) },
      { secrets: () => RIG_SECRETS, timeouts: SHORT, apiRequestTimeoutMs: 1_000, apiWaitMs: 10_000 },
    );
    expect(r).toMatchObject({ importedBy: 'boot-prompt', device: 'cd0' });
    expect(rig.guest.boots).toBe(1);
    expect(ui.codes()).toEqual(expect.arrayContaining(['BOOTSTRAP_API_KEY_STORED', 'BOOTSTRAP_ROOT_PASSWORD', 'BOOTSTRAP_PINNED', 'BOOTSTRAP_SSH_PINNED', 'BOOTSTRAP_API_OK']));
    expect(sshPins).toEqual(['SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8']);
    // The upload went through the schema-checked multipart route and Proxmox verified its checksum.
    const uploads = rig.pve.host.requests.filter((q) => q.template === '/nodes/{node}/storage/{storage}/upload');
    expect(uploads.find((q) => q.params.content === 'iso')?.params).toMatchObject({ 'checksum-algorithm': 'sha256', filename: 'dualwan-seed-100.iso' });
    // The guest booted from the disk the Proxmox stage imported from the uploaded nano image.
    expect(uploads.find((q) => q.params.content === 'import')?.params).toMatchObject({ filename: 'OPNsense-26.7-nano-amd64.raw' });
    const disk = rig.pve.host.state.volumes.find((v) => v.volid === String(rig.pve.host.state.vms[0]!.conf.scsi0).split(',')[0]);
    expect(disk?.bytes?.equals(rig.pve.host.localImage.raw)).toBe(true);
    expect(rig.pve.host.contractViolations).toEqual([]);
  });

  it('fails when the REST API never answers with the key the seed carried, and says where to look', async () => {
    const other = { ...RIG_SECRETS, apiKey: Buffer.alloc(60, 1).toString('base64') };
    const err = await bootstrapOpnsense(
      { state: rig.pve.state(), ui: new TestUi(), client, credentialsFile: rig.credentialsFile, sshPublicKeys: [] },
      { secrets: () => other, timeouts: SHORT, apiRequestTimeoutMs: 300, apiWaitMs: 1_500 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BootstrapError);
    expect((err as Error).message).toMatch(/REST API at 127\.0\.0\.1:\d+ did not answer within 2 s/);
    expect(rig.gate.reason).toBe('the imported config.xml does not carry the expected API key');
  });

  it('refuses, before any write, a bootstrap whose new key a key in the environment would hide', async () => {
    const ui = new TestUi();
    const base = envFor(rig, ui);
    // OPNsense not reachable (a new VM's factory LAN is elsewhere): nothing to pin, so it is bootstrapped…
    const env: StageEnv = { ...base, state: { ...base.state, opnsense: { ...base.state.opnsense!, port: 1 } }, env: { ...base.env, DUALWAN_OPNSENSE_API_KEY: 'k'.repeat(40), DUALWAN_OPNSENSE_API_SECRET: 's'.repeat(40) } };
    const writes = rig.pve.host.writeCount;
    const session = await bootstrapStage({ secrets: () => RIG_SECRETS }).open(env);
    try {
      const err = await planStage(session, env.state).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('BOOTSTRAP_KEY_SHADOWED');
      expect((err as Error).message).toContain('DUALWAN_OPNSENSE_API_KEY');
      expect((err as Error).message).not.toContain('s'.repeat(40));
      expect((err as { remedy?: string }).remedy).toMatch(/^Unset DUALWAN_OPNSENSE_API_KEY and DUALWAN_OPNSENSE_API_SECRET/);
    } finally {
      await session.close();
    }
    expect(rig.pve.host.writeCount).toBe(writes);
    expect(fs.existsSync(rig.credentialsFile)).toBe(false);
  });

  it('refuses to bootstrap over an OPNsense that was set up before (pinned, key on file) and now refuses the key', async () => {
    rig.router.controls.resumeAnswering(); // it answers, but not with the key on file
    storeOpnsenseApiKey(rig.credentialsFile, Buffer.alloc(60, 7).toString('base64'), Buffer.alloc(60, 8).toString('base64'));
    const base = envFor(rig, new TestUi());
    const env: StageEnv = { ...base, state: { ...base.state, opnsense: { ...base.state.opnsense!, fingerprint: rig.router.fingerprint } } };
    const writes = rig.pve.host.writeCount;
    const session = await bootstrapStage({ secrets: () => RIG_SECRETS }).open(env);
    try {
      const err = await planStage(session, env.state).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('BOOTSTRAP_WOULD_REPLACE_CONFIG');
      expect((err as Error).message).toMatch(/was set up before .* but refuses that key/);
      expect((err as { remedy?: string }).remedy).toContain('remove opnsense.fingerprint from dualwan.yaml');
    } finally {
      await session.close();
    }
    expect(rig.pve.host.writeCount).toBe(writes);
    expect(rig.guest.boots).toBe(0);
  });

  it('refuses a VM without a serial console before writing anything', async () => {
    await client.updateVmConfig(100, { delete: 'serial0,vga' }, { what: 'drop serial' });
    const writes = rig.pve.host.writeCount;
    const err = await bootstrapOpnsense({ state: rig.pve.state(), ui: new TestUi(), client, credentialsFile: rig.credentialsFile, sshPublicKeys: [] }, { secrets: () => RIG_SECRETS }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/has no serial console/);
    expect(rig.pve.host.writeCount).toBe(writes);
    expect(fs.existsSync(rig.credentialsFile)).toBe(false);
  });
});
