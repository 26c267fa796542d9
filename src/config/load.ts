/**
 * dualwan.yaml → DesiredState, with every problem as a positioned diagnostic:
 * parse (YAML, positions kept) → secret scan → schema (zod) → normalise → named rules.
 * Never throws for a user's mistake; `assertValidConfig` is the one place that turns error
 * diagnostics into a ConfigError.
 */
import * as fs from 'node:fs';
import type { DesiredState } from '../core/desired';
import type { Diagnostic } from '../core/diagnostics';
import { hasErrors } from '../core/diagnostics';
import { ConfigError } from '../core/errors';
import { issuesToDiagnostics } from './issues';
import { buildJsonSchema } from './json-schema';
import { normalizeConfig } from './normalize';
import { runRules } from './rules';
import { WrittenConfigSchema } from './schema';
import { findSecrets } from './secrets';
import { parseYaml } from './source';
import { defaultTemplatesDir, loadVmTemplate, type TemplateLookup } from './templates';

export interface LoadOptions {
  /** Where VM templates are read from; default: the package's own vm-templates/. */
  readonly templatesDir?: string;
}

export interface LoadResult {
  /** The resolved state; present only when no diagnostic is an error. */
  readonly state?: DesiredState;
  /** Errors and warnings, ordered by position in the file. */
  readonly diagnostics: readonly Diagnostic[];
}

/** The file's own findings first, by line and column; then those in other files (VM templates). */
function byPosition(file: string) {
  return (a: Diagnostic, b: Diagnostic): number => {
    const fa = a.location === undefined || a.location.file === file ? '' : a.location.file;
    const fb = b.location === undefined || b.location.file === file ? '' : b.location.file;
    if (fa !== fb) return fa < fb ? -1 : 1;
    return (a.location?.line ?? 0) - (b.location?.line ?? 0) || (a.location?.column ?? 0) - (b.location?.column ?? 0);
  };
}

/** Validate and resolve the text of a dualwan.yaml. `file` is used in positions and in the state. */
export function loadConfigText(text: string, file: string, opts: LoadOptions = {}): LoadResult {
  const parsed = parseYaml(text, file);
  const diagnostics: Diagnostic[] = [...parsed.diagnostics];
  const { source, value } = parsed;
  if (!source || hasErrors(diagnostics)) return { diagnostics };

  if (value === null || value === undefined) {
    diagnostics.push({
      severity: 'error',
      code: 'CONFIG_EMPTY',
      message: `${file} is empty.`,
      remedy: 'Run `dualwan setup` to write it, or start from one of the playbooks/ shipped with dualwan.',
      location: { file, line: 1, column: 1 },
      path: '',
    });
    return { diagnostics };
  }

  const secrets = findSecrets(source);
  diagnostics.push(...secrets.diagnostics);

  const result = WrittenConfigSchema.safeParse(value);
  if (!result.success) {
    const reported = secrets.paths;
    const issues = result.error.issues.filter((i) => !reported.has(i.path.map(String).join('.')));
    diagnostics.push(...issuesToDiagnostics(issues, { source, data: value, schema: buildJsonSchema(), alreadyReported: reported }));
    return { diagnostics: diagnostics.sort(byPosition(file)) };
  }
  const written = result.data;

  let template: TemplateLookup | undefined;
  if (written.backend === 'opnsense-vm' && written.vm) {
    template = loadVmTemplate(written.vm.template, opts.templatesDir ?? defaultTemplatesDir());
  }
  const locate = (path: readonly (string | number)[], o?: { key?: boolean }) => source.locate(path, o);
  const state = normalizeConfig(written, {
    file,
    ...(template?.status === 'found' ? { template: template.template } : {}),
    locate,
  });
  diagnostics.push(...runRules({ state, written, ...(template ? { template } : {}), locate }));
  diagnostics.sort(byPosition(file));
  return hasErrors(diagnostics) ? { diagnostics } : { state, diagnostics };
}

/** Read and validate a dualwan.yaml. A missing or unreadable file is a diagnostic, not a throw. */
export function loadConfigFile(path: string, opts: LoadOptions = {}): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return {
        diagnostics: [
          {
            severity: 'error',
            code: 'CONFIG_FILE_NOT_FOUND',
            message: `${path} does not exist.`,
            path: '',
            remedy: 'Run `dualwan setup` to create it, or name an existing file.',
          },
        ],
      };
    }
    return {
      diagnostics: [
        {
          severity: 'error',
          code: 'CONFIG_FILE_UNREADABLE',
          path: '',
          message: `${path} could not be read: ${err instanceof Error ? err.message : String(err)}.`,
          remedy: code === 'EISDIR' ? 'Name the dualwan.yaml file, not its folder.' : 'Check that the file exists and that you may read it.',
        },
      ],
    };
  }
  return loadConfigText(text, path, opts);
}

/** The state, or a ConfigError carrying every diagnostic when any of them is an error. */
export function assertValidConfig(result: LoadResult, file: string): DesiredState {
  if (result.state && !hasErrors(result.diagnostics)) return result.state;
  throw new ConfigError(file, result.diagnostics);
}
