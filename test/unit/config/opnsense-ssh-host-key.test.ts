// opnsense.sshHostKey: the pinned SSH host key of OPNsense (the bootstrap records it from the
// console banner; the revert timer of an apply logs in with it).
import { buildJsonSchema } from '../../../src/config/json-schema';
import { edit, errors, load, pos, VM_BASE } from './helpers';

const PIN = 'SHA256:p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8';
const withKey = (v: string) => edit(VM_BASE, 'policy:\n', `opnsense:\n  sshHostKey: ${v}\npolicy:\n`);

describe('opnsense.sshHostKey', () => {
  it('is carried into the desired state as written; absent, it stays absent', () => {
    const r = load(withKey(PIN));
    expect(errors(r)).toEqual([]);
    expect(r.state?.opnsense?.sshHostKey).toBe(PIN);
    expect(load(VM_BASE).state?.opnsense).not.toHaveProperty('sshHostKey');
  });

  it('tolerates the base64 padding ssh-keygen may print', () => {
    expect(errors(load(withKey(`"${PIN}="`)))).toEqual([]);
  });

  it.each([
    ['a certificate fingerprint', 'AA:BB:CC'],
    ['no SHA256: prefix', 'p0KjpBlqupzqBXOMot0beFKHKx2EJNgkabxl14CVCZ8'],
    ['a short hash', 'SHA256:p0KjpBlqupzqBXOMot0be'],
    ['an MD5 fingerprint', 'MD5:12:34:56'],
  ])('refuses %s, naming the place and the format', (_what, value) => {
    const text = withKey(`"${value}"`);
    const e = errors(load(text));
    expect(e).toHaveLength(1);
    expect(e[0]!.path).toBe('opnsense.sshHostKey');
    expect(e[0]!.message).toContain('must be an SSH host key fingerprint as ssh-keygen -lf prints it: "SHA256:" and 43 base64 characters');
    expect(e[0]!.location).toMatchObject({ line: pos(text, 'sshHostKey').line });
  });

  it('is described in the JSON schema, with the revert timer it enables', () => {
    const node = buildJsonSchema().properties?.opnsense?.properties?.sshHostKey;
    expect(node?.description).toMatch(/Pinned SSH host key of OPNsense/);
    expect(node?.description).toMatch(/restores the configuration from before the apply/);
    expect(node?.pattern).toBeDefined();
  });
});
