import * as fs from 'node:fs';
import * as path from 'node:path';
import { hasPrivilege, missingPrivileges, requiredPrivileges } from '../../../src/providers/proxmox/privileges';
import { loadConfigFile } from '../../../src/config/load';
import { TOOL_VERSION } from '../../../src/version';
import { sampleData } from '../../helpers/pve-samples';

const state = () => {
  const r = loadConfigFile(path.resolve(__dirname, '../../../playbooks/hotspot-failover.yaml'));
  if (!r.state) throw new Error('playbook does not load');
  return r.state;
};

describe('token privileges', () => {
  it('follows ACL propagation: an entry on the path, or a propagating one above it', () => {
    const perms = { '/': { 'Sys.Audit': 1 }, '/vms': { 'VM.Audit': 0 }, '/storage/local': { 'Datastore.Audit': 1 } };
    expect(hasPrivilege(perms, '/nodes/pve', 'Sys.Audit')).toBe(true);
    expect(hasPrivilege(perms, '/vms', 'VM.Audit')).toBe(true);
    expect(hasPrivilege(perms, '/vms/100', 'VM.Audit')).toBe(false);
    expect(hasPrivilege(perms, '/storage/local-lvm', 'Datastore.Audit')).toBe(false);
  });

  it('the sample token lacks exactly the mapping privileges for dualwan-named mappings', () => {
    const missing = missingPrivileges(sampleData('access-permissions-token.json'), requiredPrivileges(state()));
    expect(missing.map((m) => `${m.anyOf.join('|')} ${m.path}`).sort()).toEqual(
      ['Mapping.Modify /mapping/pci', 'Mapping.Modify /mapping/usb', 'Mapping.Use /mapping/pci/dualwan-isp', 'Mapping.Use /mapping/usb/dualwan-hotspot'].sort(),
    );
  });

  it('docs/proxmox-token.md names every privilege dualwan checks, in the role command too', () => {
    const doc = fs.readFileSync(path.resolve(__dirname, '../../../docs/proxmox-token.md'), 'utf8');
    const role = /pveum role add DualwanRouter -privs "([^"]+)"/.exec(doc.replace(/\\\n\s*/g, ''))?.[1]?.split(/\s+/) ?? [];
    for (const r of requiredPrivileges(state())) {
      expect(r.anyOf.some((p) => role.includes(p))).toBe(true);
      expect(doc).toContain(r.anyOf[0]!);
    }
  });

  it('the tool version is the package version', () => {
    expect(TOOL_VERSION).toBe((JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { version: string }).version);
  });
});
