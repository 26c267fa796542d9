/**
 * Writes the wizard's answers into `dualwan.yaml` as a commented YAML document. Every key the
 * wizard adds gets the schema's description as a comment above it, so the file explains itself.
 * An existing file is updated in place: its own comments, layout and the keys the wizard does not
 * ask about (the opnsense section, monitor IPs, …) are kept; only answered values change.
 */
import * as fs from 'node:fs';
import { Document, isMap, isScalar, isSeq, parseDocument, Scalar, YAMLMap, YAMLSeq, type Node, type Pair } from 'yaml';
import { buildJsonSchema } from '../config/json-schema';
import type { JsonSchemaNode } from '../config/json-schema';

type Json = Record<string, unknown>;

/** The schema node describing the value at `path`, choosing union variants by the value's discriminator. */
export function schemaAt(path: readonly (string | number)[], value: unknown, root: JsonSchemaNode = buildJsonSchema()): JsonSchemaNode | undefined {
  let node: JsonSchemaNode | undefined = root;
  let cursor: unknown = value;
  for (const seg of path) {
    if (!node) return undefined;
    node = pickVariant(node, cursor);
    const n = node as Json;
    if (typeof seg === 'number') {
      node = n.items as JsonSchemaNode | undefined;
      cursor = Array.isArray(cursor) ? cursor[seg] : undefined;
    } else {
      node = (n.properties as Record<string, JsonSchemaNode> | undefined)?.[seg];
      cursor = cursor && typeof cursor === 'object' ? (cursor as Json)[seg] : undefined;
    }
  }
  return node;
}

function pickVariant(node: JsonSchemaNode, value: unknown): JsonSchemaNode {
  const n = node as Json;
  const variants = (n.oneOf ?? n.anyOf) as JsonSchemaNode[] | undefined;
  if (!variants) return node;
  const v = value && typeof value === 'object' ? (value as Json) : {};
  const hit = variants.find((variant) => {
    const props = ((variant as Json).properties ?? {}) as Record<string, Json>;
    return Object.entries(props).some(([k, p]) => p.const !== undefined && v[k] === p.const);
  });
  return hit ?? node;
}

/** Wraps text into comment lines of at most `width` characters (the YAML writer adds "#"). */
export function wrapComment(text: string, width = 88): string {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + word.length > width) {
        out.push(` ${line}`);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(` ${line}`);
  }
  return out.join('\n');
}

/** Keys whose values are written as quoted strings (hex ids YAML could misread, PCI addresses). */
const QUOTED = new Set(['pci', 'vendorId', 'productId']);

/** Objects replaced as a whole when they change: their variants have different keys. */
const ATOMIC = new Set(['uplink', 'addressing']);

function describe(path: readonly (string | number)[], full: unknown, schema: JsonSchemaNode): string | undefined {
  const node = schemaAt(path, full, schema) as Json | undefined;
  const d = node?.description;
  return typeof d === 'string' ? d : undefined;
}

/** Puts the schema descriptions on a freshly created node and everything under it. */
function commentTree(doc: Document, node: unknown, path: readonly (string | number)[], full: unknown, schema: JsonSchemaNode): void {
  if (isMap(node)) {
    for (const pair of node.items as Pair[]) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) continue;
      const p = [...path, key];
      const d = describe(p, full, schema);
      if (d && isScalar(pair.key) && !pair.key.commentBefore) pair.key.commentBefore = wrapComment(d);
      if (QUOTED.has(key) && isScalar(pair.value)) (pair.value as Scalar).type = Scalar.QUOTE_DOUBLE;
      commentTree(doc, pair.value, p, full, schema);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      commentTree(doc, item, [...path, i], full, schema);
      liftFirstComment(item);
    });
  }
}

/** A value without its null members (null means "absent" in the answers' value). */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v as Json).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => [k, withoutNulls(x)]));
  return v;
}

/** In a list of maps, the first key's comment goes above the "- " (YAML would put it after it). */
function liftFirstComment(item: unknown): void {
  if (!isMap(item)) return;
  const first = (item.items as Pair[])[0];
  if (first && isScalar(first.key) && first.key.commentBefore) {
    item.commentBefore = first.key.commentBefore;
    first.key.commentBefore = undefined;
  }
}

function sameValue(node: unknown, value: unknown): boolean {
  const js = node && typeof node === 'object' && 'toJSON' in node ? (node as { toJSON(): unknown }).toJSON() : node;
  return JSON.stringify(js) === JSON.stringify(value);
}

/** Merges `value` into the map `target` at `path` of `doc`. */
function mergeInto(doc: Document, target: YAMLMap, value: Json, path: readonly (string | number)[], full: unknown, schema: JsonSchemaNode): void {
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const p = [...path, key];
    const pair = (target.items as Pair[]).find((x) => isScalar(x.key) && String(x.key.value) === key);
    if (v === null) {
      // null: the key must not be there (an answer that no longer applies).
      if (pair) target.items.splice(target.items.indexOf(pair), 1);
      continue;
    }
    const existing = pair?.value as Node | undefined;
    if (pair && existing !== undefined && existing !== null) {
      if (sameValue(existing, withoutNulls(v))) continue;
      if (isScalar(existing) && (v === null || typeof v !== 'object')) {
        existing.value = v; // the node stays, with its comments
        continue;
      }
      if (isMap(existing) && v && typeof v === 'object' && !Array.isArray(v) && !ATOMIC.has(key)) {
        mergeInto(doc, existing, v as Json, p, full, schema);
        continue;
      }
      if (isSeq(existing) && Array.isArray(v) && existing.items.length === v.length && v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
        (existing as YAMLSeq).items.forEach((item, i) => {
          if (isMap(item)) mergeInto(doc, item, v[i] as Json, [...p, i], full, schema);
        });
        continue;
      }
      const created = doc.createNode(withoutNulls(v));
      pair.value = created;
      commentTree(doc, created, p, full, schema);
      if (isScalar(created) && QUOTED.has(key)) created.type = Scalar.QUOTE_DOUBLE;
      continue;
    }
    const created = doc.createNode(withoutNulls(v));
    const newPair = doc.createPair(key, created);
    const d = describe(p, full, schema);
    if (d && isScalar(newPair.key)) newPair.key.commentBefore = wrapComment(d);
    if (isScalar(created) && QUOTED.has(key)) created.type = Scalar.QUOTE_DOUBLE;
    commentTree(doc, created, p, full, schema);
    if (pair) pair.value = created;
    else target.items.push(newPair as Pair<unknown, unknown>);
  }
}

export const HEADER = [
  ' dualwan.yaml, written by `dualwan setup`. Every key is explained in docs/config.md.',
  ' It holds no secret: the Proxmox token secret is in the credentials file (mode 0600).',
  ' Run `dualwan setup` again to change the answers, or edit this file and run `dualwan apply`.',
].join('\n');

/**
 * The text of `dualwan.yaml` with `value` merged in: into `existingText` when given (keeping its
 * comments and other keys), else into a new, fully commented document.
 */
export function renderConfigDocument(value: Json, existingText?: string): string {
  const schema = buildJsonSchema();
  let doc: Document;
  const parsed = existingText !== undefined && existingText.trim() !== '' ? parseDocument(existingText) : undefined;
  if (parsed && parsed.errors.length === 0 && isMap(parsed.contents)) {
    doc = parsed;
  } else {
    doc = new Document({});
    doc.commentBefore = HEADER;
  }
  const root = doc.contents as YAMLMap;
  const full = { ...((doc.toJSON() as Json | null) ?? {}), ...value };
  mergeInto(doc, root, value, [], full, schema);
  // A blank line before each top-level section reads better.
  (root.items as Pair[]).forEach((p, i) => {
    if (i > 0 && isScalar(p.key)) p.key.spaceBefore = true;
  });
  return doc.toString({ lineWidth: 0 });
}

/** Writes atomically (temporary file, then rename); a crash never leaves half a file. */
export function writeFileAtomic(file: string, text: string, mode = 0o644): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode });
  fs.renameSync(tmp, file);
}

/** The value of an existing file, leniently: undefined when it does not exist or does not parse. */
export function readExistingConfig(file: string): { text: string; value: unknown } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const doc = parseDocument(text);
  return { text, value: doc.errors.length ? undefined : doc.toJSON() };
}
