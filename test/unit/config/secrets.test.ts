import { buildJsonSchema, type JsonSchemaNode } from '../../../src/config/json-schema';
import { load } from './helpers';

function allKeys(node: JsonSchemaNode): string[] {
  return [
    ...Object.entries(node.properties ?? {}).flatMap(([k, v]) => [k, ...allKeys(v)]),
    ...(node.items ? allKeys(node.items) : []),
    ...[...(node.oneOf ?? []), ...(node.anyOf ?? [])].flatMap(allKeys),
  ];
}

describe('secret detection', () => {
  it('never mistakes a key of the schema for a secret', () => {
    const keys = [...new Set(allKeys(buildJsonSchema()))];
    expect(keys).toEqual(expect.arrayContaining(['tokenId', 'hostKey', 'fingerprint', 'checksum']));
    const text = `version: 1\n${keys.map((k) => `${k}: 1`).join('\n')}\n`;
    expect(load(text).diagnostics.filter((d) => d.code === 'CONFIG_SECRET_IN_FILE')).toEqual([]);
  });

  it.each(['password', 'passwd', 'passphrase', 'secret', 'tokenSecret', 'token', 'apiKey', 'api_key', 'key', 'privateKey', 'private-key', 'credentials', 'psk'])(
    'flags a key named %s',
    (key) => {
      const result = load(`version: 1\nlinux:\n  ${key}: x\n`);
      expect(result.diagnostics.filter((d) => d.code === 'CONFIG_SECRET_IN_FILE').map((d) => d.path)).toEqual([`linux.${key}`]);
      expect(result.diagnostics.filter((d) => d.path === `linux.${key}`)).toHaveLength(1);
    },
  );

  it('flags PEM private key material under any key', () => {
    const text = 'version: 1\nlinux:\n  hostKey: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    abc\n';
    const d = load(text).diagnostics.find((x) => x.code === 'CONFIG_SECRET_IN_FILE');
    expect(d?.location).toEqual({ file: 'dualwan.yaml', line: 3, column: 12 });
  });
});
