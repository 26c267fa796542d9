import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildJsonSchema, renderJsonSchema, SCHEMA_FILE, schemaAt, keysAt, type JsonSchemaNode } from '../../../src/config/json-schema';
import { DOCS_FILE, renderConfigDocs } from '../../../src/config/generate-docs';
import { findPackageRoot } from '../../../src/config/templates';

const root = findPackageRoot();

/** Every property of every object in the schema, with its dotted path. */
function properties(node: JsonSchemaNode, at: string): { path: string; node: JsonSchemaNode; required: boolean }[] {
  const out: { path: string; node: JsonSchemaNode; required: boolean }[] = [];
  const required = new Set(node.required ?? []);
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const p = at ? `${at}.${key}` : key;
    out.push({ path: p, node: child, required: required.has(key) });
    out.push(...properties(child, p));
  }
  if (node.items) out.push(...properties(node.items, `${at}[]`));
  for (const variant of [...(node.oneOf ?? []), ...(node.anyOf ?? [])]) out.push(...properties(variant, at));
  return out;
}

describe('schema/dualwan.schema.json', () => {
  it('is the current output of the generator (run `npm run build && npm run schema` after a schema change)', () => {
    const committed = fs.readFileSync(path.join(root, SCHEMA_FILE), 'utf8');
    expect(committed).toBe(renderJsonSchema());
  });

  const all = properties(buildJsonSchema(), '');

  it('walks a schema of realistic size (the walker itself works)', () => {
    expect(all.length).toBeGreaterThan(80);
    expect(all.map((p) => p.path)).toEqual(expect.arrayContaining(['wans[].uplink.pci', 'lan.dhcp.rangeEnd', 'policy.stickyHosts[].wan']));
  });

  it('describes every property', () => {
    const undescribed = all.filter((p) => !p.node.description || p.node.description.trim().length < 8).map((p) => p.path);
    expect(undescribed).toEqual([]);
    expect(buildJsonSchema().description).toBeTruthy();
  });

  it('gives every optional property a default or says what its absence means', () => {
    const unexplained = all
      .filter((p) => !p.required)
      .filter((p) => p.node.default === undefined && p.node['x-default'] === undefined)
      .filter((p) => !/when absent|left out|required with backend/i.test(p.node.description ?? ''))
      .map((p) => p.path);
    expect(unexplained).toEqual([]);
  });

  it('refuses unknown keys in every object', () => {
    const open = all.filter((p) => p.node.type === 'object' && p.node.additionalProperties !== false).map((p) => p.path);
    expect(open).toEqual([]);
    expect(buildJsonSchema().additionalProperties).toBe(false);
  });

  it('keeps the defaults the product decided', () => {
    const at = (p: (string | number)[], data: unknown = {}) => schemaAt(buildJsonSchema(), p, data);
    expect(at(['proxmox', 'port'])?.default).toBe(8006);
    expect(at(['proxmox', 'node'])?.default).toBe('pve');
    expect(at(['vm', 'vmid'])).toMatchObject({ default: 100, minimum: 100, maximum: 999999999 });
    expect(at(['wans', 0, 'weight'])).toMatchObject({ default: 1, minimum: 1, maximum: 5 });
    expect(at(['wans', 0, 'tier'])?.default).toBe(1);
    expect(at(['wans', 0, 'probeBudgetMBPerMonth'])?.default).toBe(5);
    expect(at(['wans', 0, 'monitorIps'])).toMatchObject({ minItems: 1, maxItems: 4 });
    expect(at(['wans'])).toMatchObject({ minItems: 2, maxItems: 4 });
    expect(at(['lan', 'subnet'])?.default).toBe('192.168.10.0/24');
    expect(at(['policy', 'monitorProfile'])?.default).toBe('balanced');
    expect(at(['policy', 'trigger'])?.default).toBe('packet-loss-or-high-latency');
    expect(at(['linux', 'user'])?.default).toBe('root');
    expect(at(['opnsense', 'port'])?.default).toBe(443);
  });

  it('resolves union variants by their discriminator', () => {
    const s = buildJsonSchema();
    const data = { wans: [{ uplink: { type: 'usb-tether' } }] };
    expect(keysAt(s, ['wans', 0, 'uplink'], data)).toEqual(['type', 'vendorId', 'productId']);
    expect(schemaAt(s, ['wans', 0, 'uplink', 'vendorId'], data)?.description).toMatch(/vendor id/);
  });
});

describe('docs/config.md', () => {
  it('is the current output of the generator (run `npm run build && node dist/src/config/generate-docs.js`)', () => {
    const committed = fs.readFileSync(path.join(root, DOCS_FILE), 'utf8');
    expect(committed).toBe(renderConfigDocs());
  });

  it('lists every field with its description and default', () => {
    const docs = renderConfigDocs();
    for (const p of properties(buildJsonSchema(), '')) {
      const key = p.path.split('.').pop()?.replace('[]', '') ?? '';
      expect(docs).toContain(`| \`${key}\` |`);
    }
    expect(docs).toContain('| `vmid` | integer 100–999999999 | `100` |');
    expect(docs).toContain('| `routerAddress` | string | first address of lan.subnet |');
    expect(docs).toContain('### `wans[].uplink (type: usb-tether)`');
  });
});
