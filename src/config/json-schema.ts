/**
 * The JSON Schema of `dualwan.yaml`, generated from the zod schema, for editors
 * (`# yaml-language-server: $schema=../schema/dualwan.schema.json`) and for the generated docs.
 * The committed `schema/dualwan.schema.json` is checked by a test against this output.
 */
import { z } from 'zod';
import { WrittenConfigSchema } from './schema';

/** The JSON Schema keywords this project reads back (descriptions, defaults, variants). */
export interface JsonSchemaNode {
  readonly type?: string | readonly string[];
  readonly description?: string;
  readonly default?: unknown;
  readonly 'x-default'?: string;
  readonly const?: unknown;
  readonly enum?: readonly unknown[];
  readonly properties?: Readonly<Record<string, JsonSchemaNode>>;
  readonly required?: readonly string[];
  readonly items?: JsonSchemaNode;
  readonly oneOf?: readonly JsonSchemaNode[];
  readonly anyOf?: readonly JsonSchemaNode[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly pattern?: string;
  readonly format?: string;
  readonly [key: string]: unknown;
}

export const SCHEMA_FILE = 'schema/dualwan.schema.json';

let cached: JsonSchemaNode | undefined;

/**
 * Draft-07 rather than 2020-12: the YAML language server (VS Code, Neovim, Helix) has supported
 * draft-07 the longest, and nothing here needs a newer keyword. `io: 'input'` describes the file as
 * typed, so a field with a default is optional.
 */
export function buildJsonSchema(): JsonSchemaNode {
  if (!cached) {
    const generated = z.toJSONSchema(WrittenConfigSchema, { io: 'input', target: 'draft-7' }) as Record<string, unknown>;
    const { $schema, ...rest } = generated;
    cached = { $schema, title: 'dualwan.yaml', ...rest } as JsonSchemaNode;
  }
  return cached;
}

/** The file's exact text: two-space indentation and a final newline. */
export function renderJsonSchema(): string {
  return `${JSON.stringify(buildJsonSchema(), null, 2)}\n`;
}

/** The variant of a oneOf/anyOf that matches `value` by its constant (discriminator) fields. */
export function chooseVariant(node: JsonSchemaNode, value: unknown): JsonSchemaNode {
  const variants = node.oneOf ?? node.anyOf;
  if (!variants) return node;
  const obj = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const match = variants.find((v) =>
    Object.entries(v.properties ?? {}).every(([k, p]) => p.const === undefined || obj[k] === p.const),
  );
  return match ?? node;
}

/** The schema of the value at `path` inside `root`, or undefined when the path leaves the schema. */
export function schemaAt(root: JsonSchemaNode, path: readonly (string | number)[], data: unknown): JsonSchemaNode | undefined {
  let node: JsonSchemaNode | undefined = root;
  let value: unknown = data;
  for (const segment of path) {
    if (!node) return undefined;
    const chosen: JsonSchemaNode = chooseVariant(node, value);
    if (typeof segment === 'number' && chosen.items) {
      node = chosen.items;
    } else if (chosen.properties && Object.hasOwn(chosen.properties, String(segment))) {
      node = chosen.properties[String(segment)];
    } else {
      return undefined;
    }
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[String(segment)] : undefined;
  }
  return node ? chooseVariant(node, value) : undefined;
}

/** The keys allowed in the map at `path`. */
export function keysAt(root: JsonSchemaNode, path: readonly (string | number)[], data: unknown): string[] {
  const node = schemaAt(root, path, data);
  if (!node) return [];
  const own = Object.keys(node.properties ?? {});
  if (own.length > 0) return own;
  // An unresolved union (no discriminator yet): offer the keys of every variant.
  return [...new Set((node.oneOf ?? node.anyOf ?? []).flatMap((v) => Object.keys(v.properties ?? {})))];
}
