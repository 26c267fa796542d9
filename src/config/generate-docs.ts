/**
 * Writes docs/config.md, the reference of every dualwan.yaml field, from the generated JSON Schema
 * (itself generated from the zod schema, so descriptions and defaults have one source). Run after
 * a schema change:
 *   npm run build && node dist/src/config/generate-docs.js
 * A test fails while the committed file differs from what this would write.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildJsonSchema, type JsonSchemaNode } from './json-schema';
import { RULES } from './rules';
import { findPackageRoot } from './templates';

export const DOCS_FILE = 'docs/config.md';
const TOP = '';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function code(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

function typeOf(node: JsonSchemaNode): string {
  if (node.const !== undefined) return code(node.const);
  if (node.enum) return node.enum.map(code).join(' \\| ');
  if (node.oneOf ?? node.anyOf) return 'one of the variants below';
  const above = typeof node.exclusiveMinimum === 'number' ? ` > ${node.exclusiveMinimum}` : '';
  const range = (lo?: number, hi?: number): string =>
    lo !== undefined && hi !== undefined
      ? ` ${lo}–${hi}`
      : lo !== undefined
        ? ` ≥ ${lo}`
        : hi !== undefined
          ? `${above ? `${above},` : ''} ≤ ${hi}`
          : above;
  switch (node.type) {
    case 'integer':
      return `integer${range(node.minimum, node.maximum)}`;
    case 'number':
      return `number${range(node.minimum, node.maximum)}`;
    case 'array': {
      const count = range(node.minItems, node.maxItems);
      return `list${count ? ` of${count}` : ''}: ${node.items ? typeOf(node.items) : 'any'}`;
    }
    case 'object':
      return 'map, see below';
    case 'string':
      return node.format ? `string (${node.format})` : 'string';
    default:
      return String(node.type ?? 'any');
  }
}

function defaultOf(node: JsonSchemaNode, required: boolean): string {
  if (node.default !== undefined) return code(node.default);
  if (node['x-default']) return cell(node['x-default']);
  return required ? '**required**' : 'optional';
}

interface Section {
  readonly title: string;
  readonly node: JsonSchemaNode;
}

/** One table per map in the schema, depth first, in schema order. */
function sections(node: JsonSchemaNode, title: string, out: string[]): void {
  const variants = node.oneOf ?? node.anyOf;
  if (variants) {
    out.push(`## \`${title}\``, '', cell(node.description ?? ''), '');
    for (const v of variants) {
      const tag = Object.entries(v.properties ?? {}).find(([, p]) => p.const !== undefined);
      const label = tag ? `${title} (${tag[0]}: ${String(tag[1].const)})` : title;
      table({ title: label, node: v }, out, false);
    }
    return;
  }
  table({ title, node }, out, true);
}

function table(section: Section, out: string[], heading: boolean): void {
  const { node, title } = section;
  const props = node.properties ?? {};
  const required = new Set(node.required ?? []);
  const top = title === TOP;
  out.push(`${heading ? '##' : '###'} ${top ? 'Top level' : `\`${title}\``}`, '');
  if (node.description && !top) out.push(cell(node.description), '');
  out.push('| Key | Type | Default | Description |', '| --- | --- | --- | --- |');
  const nested: [string, JsonSchemaNode][] = [];
  for (const [key, p] of Object.entries(props)) {
    out.push(`| \`${key}\` | ${typeOf(p)} | ${defaultOf(p, required.has(key))} | ${cell(p.description ?? '')} |`);
    const child = p.type === 'array' && p.items ? p.items : p;
    const suffix = p.type === 'array' ? '[]' : '';
    if (child.properties || child.oneOf || child.anyOf) nested.push([`${title === TOP ? '' : `${title}.`}${key}${suffix}`, child]);
  }
  out.push('');
  for (const [t, n] of nested) sections(n, t, out);
}

export function renderConfigDocs(): string {
  const schema = buildJsonSchema();
  const out: string[] = [
    '# `dualwan.yaml` reference',
    '',
    '<!-- Generated from src/config/schema.ts by src/config/generate-docs.ts; do not edit by hand.',
    '     Regenerate with: npm run build && node dist/src/config/generate-docs.js -->',
    '',
    cell(schema.description ?? ''),
    '',
    'Keys are case-sensitive and unknown keys are errors. Secrets (passwords, token secrets, API keys)',
    'are refused anywhere in the file: they come from the environment or the credentials file (mode 0600).',
    'Editors that understand the first line of the example playbooks',
    '(`# yaml-language-server: $schema=../schema/dualwan.schema.json`) complete and check these keys as you type.',
    '',
  ];
  sections(schema, TOP, out);
  out.push(
    '## Checks across fields',
    '',
    'After the fields above are valid, these rules check how they fit together. Each finding points at the',
    'place in the file to change and says how.',
    '',
    '| Rule | Checks | Codes |',
    '| --- | --- | --- |',
    ...RULES.map((r) => `| \`${r.name}\` | ${cell(r.checks)} | ${r.codes.map((c) => `\`${c}\``).join(', ')} |`),
    '',
  );
  return `${out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

export function writeConfigDocs(root: string = findPackageRoot()): string {
  const file = path.join(root, DOCS_FILE);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, renderConfigDocs());
  return file;
}

if (require.main === module) {
  writeConfigDocs();
  // `npm run schema` also redraws docs/topology.md, the pictures of the shipped playbooks.
  (require('../topology/generate-docs') as typeof import('../topology/generate-docs')).writeTopologyDocs();
}
