import type { DesiredState } from '../core/desired';
import { ConfigError } from '../core/errors';
import { formatDiagnostic } from '../core/diagnostics';
import type { Ui } from '../core/ui';
import { loadConfigFile } from '../config/load';
import { TerminalUi } from './terminal-ui';
import type { GlobalOptions } from './options';

export function terminalUi(o: GlobalOptions & { yes?: boolean; json?: boolean }): TerminalUi {
  const interactive = !!process.stdin.isTTY && !!process.stdout.isTTY;
  return new TerminalUi({ yes: !!o.yes, json: !!o.json, debug: o.debug, interactive, color: interactive && !process.env.NO_COLOR });
}

/** Reads and checks dualwan.yaml; any error stops the run before anything is contacted. */
export function loadState(file: string, ui?: Ui): DesiredState {
  const { state, diagnostics } = loadConfigFile(file);
  if (!state || diagnostics.some((d) => d.severity === 'error')) throw new ConfigError(file, diagnostics);
  for (const d of diagnostics) ui?.notify({ code: d.code, level: 'warn', text: formatDiagnostic(d), data: d });
  return state;
}
