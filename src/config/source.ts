/**
 * A parsed YAML file that remembers where every value was written, so a problem found in the
 * parsed data (a zod issue, a rule) can point at file:line:column.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node, Pair } from 'yaml';
import type { SourceRef } from '../core/desired';
import type { Diagnostic } from '../core/diagnostics';

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

export function pathToString(path: Path): string {
  return path.map(String).join('.');
}

/** What a path resolved to in the document. */
interface Resolved {
  /** The node at the full path, when it exists. */
  readonly node?: Node;
  /** The key node of the last segment, when the path ends at a map entry. */
  readonly keyNode?: Node;
  /** The deepest node that exists along the path (the document root at worst). */
  readonly deepest?: Node;
  /** The key of the deepest node, when it is a map entry. */
  readonly deepestKey?: Node;
  /** How many segments resolved. */
  readonly depth: number;
}

export class YamlSource {
  constructor(
    readonly file: string,
    readonly text: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /** Position of a character offset, 1-based. */
  positionOf(offset: number): SourceRef {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line: Math.max(line, 1), column: Math.max(col, 1) };
  }

  private resolve(path: Path): Resolved {
    let current: unknown = this.doc.contents;
    let deepest = isNodeLike(current) ? current : undefined;
    let deepestKey: Node | undefined;
    let keyNode: Node | undefined;
    let depth = 0;
    for (const segment of path) {
      if (isAlias(current)) current = current.resolve(this.doc);
      keyNode = undefined;
      let next: unknown;
      if (isMap(current)) {
        const pair = (current.items as Pair[]).find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
        if (!pair) break;
        keyNode = pair.key as Node;
        next = pair.value;
      } else if (isSeq(current) && Number.isInteger(Number(segment))) {
        next = current.items[Number(segment)];
        if (next === undefined) break;
      } else {
        break;
      }
      depth += 1;
      current = next;
      // `key:` with nothing after it has no value node; the key stands for it.
      deepest = isNodeLike(next) ? next : (keyNode ?? deepest);
      deepestKey = keyNode;
    }
    const complete = depth === path.length;
    return {
      node: complete && isNodeLike(current) ? current : undefined,
      keyNode: complete ? keyNode : undefined,
      deepest,
      deepestKey,
      depth,
    };
  }

  /** True when the path names something written in the file. */
  has(path: Path): boolean {
    const r = this.resolve(path);
    return r.depth === path.length;
  }

  /**
   * Where the value at `path` was written; when it was not written (a default), where its nearest
   * written ancestor is. With `key: true`, the key of a map entry rather than its value.
   */
  locate(path: Path, opts: { key?: boolean } = {}): SourceRef {
    const r = this.resolve(path);
    if (opts.key && r.keyNode?.range) return this.positionOf(r.keyNode.range[0]);
    const node = r.node ?? r.deepest;
    if (node?.range) return this.positionOf(node.range[0]);
    return { file: this.file, line: 1, column: 1 };
  }

  /** Where the map holding `path`'s last segment starts: for a missing key. */
  locateParent(path: Path): SourceRef {
    return this.locate(path.slice(0, -1));
  }

  /** The text as written for the value at `path` (e.g. `0781` that YAML read as the number 781). */
  sourceText(path: Path): string | undefined {
    const node = this.resolve(path).node;
    if (!node?.range) return undefined;
    return this.text.slice(node.range[0], node.range[1]).trim();
  }

  /** Every map key in the document with its path, for scans such as the secret check. */
  keys(): { path: Path; key: string; value: unknown }[] {
    const out: { path: Path; key: string; value: unknown }[] = [];
    const walk = (node: unknown, path: Path, seen: Set<unknown>): void => {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (!node || seen.has(node)) return;
      seen.add(node);
      if (isMap(node)) {
        for (const pair of node.items as Pair[]) {
          if (!isScalar(pair.key)) continue;
          const key = String(pair.key.value);
          const value = isScalar(pair.value) ? pair.value.value : pair.value;
          out.push({ path: [...path, key], key, value });
          walk(pair.value, [...path, key], seen);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => walk(item, [...path, i], seen));
      }
    };
    walk(this.doc.contents, [], new Set());
    return out;
  }
}

function isNodeLike(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && 'range' in value;
}

export interface ParsedYaml {
  readonly source?: YamlSource;
  /** The data, when the YAML is well formed. */
  readonly value?: unknown;
  readonly diagnostics: Diagnostic[];
}

const SYNTAX_REMEDIES: Partial<Record<string, string>> = {
  TAB_AS_INDENT: 'Indent with spaces; YAML does not allow tabs for indentation.',
  BAD_INDENT: 'Line the keys of one map up in the same column, indented with spaces under their parent.',
  DUPLICATE_KEY: 'Keep one of the two entries with this key and delete the other.',
  MULTIPLE_DOCS: 'Keep a single YAML document in the file (remove the extra `---`).',
  BAD_DQ_ESCAPE: 'Fix the escape sequence in the double-quoted string, or use single quotes.',
};

/**
 * An error reported at the start of an indented line points at its first non-blank character
 * instead (but not past a tab, which may be the error itself).
 */
function skipSpaces(text: string, start: number): number {
  let at = start;
  while (text[at] === ' ') at += 1;
  return at < text.length && text[at] !== '\n' && text[at] !== '\r' ? at : start;
}

/** Parse YAML text, keeping positions. Syntax problems come back as diagnostics, never thrown. */
export function parseYaml(text: string, file: string, codePrefix = 'CONFIG'): ParsedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const source = new YamlSource(file, text, doc, lines);
  const toDiagnostic = (severity: 'error' | 'warning') => (e: { code: string; message: string; pos: [number, number] }): Diagnostic => ({
    severity,
    code: severity === 'error' ? `${codePrefix}_YAML_SYNTAX` : `${codePrefix}_YAML_WARNING`,
    message: `YAML ${severity === 'error' ? 'syntax error' : 'warning'}: ${e.message.split('\n')[0] ?? e.message}`,
    remedy:
      SYNTAX_REMEDIES[e.code] ??
      'Fix the YAML at this place. An editor that reads the `# yaml-language-server: $schema=…` line at the top of the playbooks shows such mistakes as you type.',
    location: source.positionOf(skipSpaces(text, e.pos[0])),
    path: '',
  });
  const diagnostics = [...doc.errors.map(toDiagnostic('error')), ...doc.warnings.map(toDiagnostic('warning'))];
  if (doc.errors.length > 0) return { source, diagnostics };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    diagnostics.push({
      severity: 'error',
      code: `${codePrefix}_YAML_SYNTAX`,
      message: `YAML could not be read: ${err instanceof Error ? err.message : String(err)}`,
      remedy: 'Remove the aliases (*name) that expand too much or refer to nothing.',
      location: { file, line: 1, column: 1 },
      path: '',
    });
    return { source, diagnostics };
  }
  return { source, value, diagnostics };
}
