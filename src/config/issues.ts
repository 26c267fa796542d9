/**
 * Turns zod issues into diagnostics that point at the place in the YAML file: the value for a
 * wrong value, the key itself for an unknown key, the enclosing map for a missing key.
 */
import type { z } from 'zod';
import type { Diagnostic } from '../core/diagnostics';
import { keysAt, schemaAt, type JsonSchemaNode } from './json-schema';
import { pathToString, type Path, type YamlSource } from './source';

type Issue = z.core.$ZodIssue;

export interface IssueContext {
  readonly source: YamlSource;
  /** The data zod saw. */
  readonly data: unknown;
  /** The JSON Schema of the same zod schema, for descriptions and known keys. */
  readonly schema: JsonSchemaNode;
  /** Paths ("a.b") already reported by another check; their unknown-key issues are dropped. */
  readonly alreadyReported?: ReadonlySet<string>;
  /**
   * When set, every diagnostic gets this code and the message is prefixed (used for VM template
   * files, whose problems are not the user's config).
   */
  readonly fixedCode?: string;
  readonly messagePrefix?: string;
}

function valueAt(data: unknown, path: Path): unknown {
  let value = data;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string, unknown>)[String(segment)];
  }
  return value;
}

function describeValue(value: unknown): string {
  if (value === null) return 'empty (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value === 'number' ? 'the number' : typeof value === 'boolean' ? 'the boolean' : typeof value} ${String(value)}`;
}

const EXPECTED_WORDS: Record<string, string> = {
  object: 'a map of keys',
  array: 'a list',
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

/** Edit distance, to suggest the key the user probably meant. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i += 1) {
    const row = [i];
    for (let j = 1; j <= y.length; j += 1) {
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[y.length] ?? Math.max(x.length, y.length);
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const score = distance(word, c);
    if (score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function where(path: Path): string {
  return path.length === 0 ? 'the top level' : pathToString(path);
}

export function issuesToDiagnostics(issues: readonly Issue[], ctx: IssueContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const issue of issues) out.push(...issueToDiagnostics(issue, ctx));
  if (ctx.fixedCode || ctx.messagePrefix) {
    return out.map((d) => ({ ...d, code: ctx.fixedCode ?? d.code, message: `${ctx.messagePrefix ?? ''}${d.message}` }));
  }
  return out;
}

function expectation(ctx: IssueContext, path: Path): string {
  const node = schemaAt(ctx.schema, path, ctx.data);
  const description = node?.description;
  return description ? `Expected: ${description}` : 'See docs/config.md for the allowed values.';
}

function issueToDiagnostics(issue: Issue, ctx: IssueContext): Diagnostic[] {
  const path = issue.path.filter((s): s is string | number => typeof s === 'string' || typeof s === 'number');
  const pathText = pathToString(path);
  const value = valueAt(ctx.data, path);
  const base = (code: string, message: string, remedy: string, location = ctx.source.locate(path)): Diagnostic => ({
    severity: 'error',
    code,
    message,
    remedy,
    location,
    path: pathText,
  });

  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = keysAt(ctx.schema, path, ctx.data);
      return issue.keys
        .filter((key) => !ctx.alreadyReported?.has(pathToString([...path, key])))
        .map((key) => {
          const keyPath = [...path, key];
          const guess = closest(key, known);
          const list = known.length > 0 ? `Keys allowed here: ${known.join(', ')}.` : 'No keys are allowed here.';
          return {
            severity: 'error' as const,
            code: 'CONFIG_UNKNOWN_KEY',
            message: `Unknown key "${key}" in ${where(path)}.`,
            remedy: guess ? `Did you mean "${guess}"? ${list}` : `Remove it or fix its spelling. ${list}`,
            location: ctx.source.locate(keyPath, { key: true }),
            path: pathToString(keyPath),
          };
        });
    }
    case 'invalid_type': {
      const parent = valueAt(ctx.data, path.slice(0, -1));
      const missing = value === undefined && path.length > 0 && typeof parent === 'object' && parent !== null && !Array.isArray(parent);
      const key = String(path[path.length - 1] ?? '');
      if (missing) {
        return [
          base(
            'CONFIG_MISSING_KEY',
            `Missing required key "${key}" in ${where(path.slice(0, -1))}.`,
            `Add "${key}:" here. ${expectation(ctx, path)}`,
            ctx.source.locateParent(path),
          ),
        ];
      }
      const expected = EXPECTED_WORDS[issue.expected] ?? issue.expected;
      const written = ctx.source.sourceText(path);
      const quoteHint =
        issue.expected === 'string' && (typeof value === 'number' || typeof value === 'boolean') && written
          ? ` Quote the value so YAML keeps it as text: ${key}: "${written}".`
          : '';
      return [base('CONFIG_WRONG_TYPE', `${pathText || 'The file'} must be ${expected}, not ${describeValue(value)}.`, `${expectation(ctx, path)}${quoteHint}`)];
    }
    case 'invalid_value': {
      const choices = issue.values.map((v) => JSON.stringify(v)).join(', ');
      if (pathText === 'version') {
        return [
          base(
            'CONFIG_UNSUPPORTED_VERSION',
            `version ${JSON.stringify(value)} is not supported; this dualwan reads version 1.`,
            'Write "version: 1". A file written by a newer dualwan needs that newer dualwan.',
          ),
        ];
      }
      return [
        base(
          'CONFIG_INVALID_CHOICE',
          `${pathText} is ${describeValue(value)}; it must be ${issue.values.length === 1 ? choices : `one of ${choices}`}.`,
          expectation(ctx, path),
        ),
      ];
    }
    case 'invalid_union': {
      if (issue.discriminator !== undefined && 'options' in issue && issue.options) {
        const choices = issue.options.map((v) => JSON.stringify(v)).join(', ');
        if (value === undefined) {
          return [
            base(
              'CONFIG_MISSING_KEY',
              `Missing required key "${issue.discriminator}" in ${where(path.slice(0, -1))}.`,
              `Add "${issue.discriminator}:" with one of ${choices}. ${expectation(ctx, path.slice(0, -1))}`,
              ctx.source.locateParent(path),
            ),
          ];
        }
        return [base('CONFIG_INVALID_CHOICE', `${pathText} is ${describeValue(value)}; it must be one of ${choices}.`, expectation(ctx, path.slice(0, -1)))];
      }
      return [base('CONFIG_INVALID_VALUE', `${pathText}: ${issue.message}`, expectation(ctx, path))];
    }
    case 'invalid_format':
      return [base('CONFIG_INVALID_FORMAT', `${pathText} ${JSON.stringify(value)} ${issue.message}.`, expectation(ctx, path))];
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const limit = Number(small ? issue.minimum : issue.maximum);
      let message: string;
      if (issue.origin === 'array') {
        const count = Array.isArray(value) ? value.length : 0;
        message = `${pathText} has ${count} item${count === 1 ? '' : 's'}; it needs ${small ? 'at least' : 'at most'} ${limit}.`;
      } else if (issue.origin === 'string') {
        message = `${pathText} is ${small ? 'too short' : 'too long'}; it needs ${small ? 'at least' : 'at most'} ${limit} characters.`;
      } else {
        const bound = small ? (issue.inclusive === false ? 'more than' : 'at least') : issue.inclusive === false ? 'less than' : 'at most';
        message = `${pathText} is ${String(value)}; it must be ${bound} ${limit}.`;
      }
      return [base('CONFIG_OUT_OF_RANGE', message, expectation(ctx, path))];
    }
    default:
      return [base('CONFIG_INVALID_VALUE', `${pathText || 'The file'}: ${issue.message}${/[.!?]$/.test(issue.message) ? '' : '.'}`, expectation(ctx, path))];
  }
}
