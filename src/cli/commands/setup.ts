import { renderAccessPointSteps, accessPointSteps } from '../../accesspoint/steps';
import { loadConfigFile } from '../../config/load';
import type { DesiredState } from '../../core/desired';
import { DualwanError, TtyRequiredError } from '../../core/errors';
import { opnsenseStage } from '../../flows/opnsense';
import type { OpnsenseContext } from '../../providers/opnsense/context';
import type { Answer, Notice, Question, Step, Ui } from '../../core/ui';
import type { Choice } from '../../setup/host-facts';
import { loadProgress, saveProgress, stateFileFor } from '../../setup/state-file';
import { DefaultsPrompter, runSetupWizard, SetupInterruptedError, SetupTtyRequiredError, type Prompter, type Validate } from '../../setup/wizard';
import { redact } from '../../secrets/redact';
import type { GlobalOptions } from '../options';
import { terminalUi } from '../session';
import type { TerminalUi } from '../terminal-ui';
import { applyStages } from './plan-apply';

interface SetupOptions extends GlobalOptions {
  readonly config: string;
  readonly yes?: boolean;
  readonly trustOnFirstUse?: boolean;
  readonly host?: string;
  readonly port?: string;
  readonly tokenId?: string;
}

/** Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

const out = (s: string) => process.stdout.write(`${redact(s)}\n`);
const err = (s: string) => process.stderr.write(`${redact(s)}\n`);

function isExitPrompt(e: unknown): boolean {
  return e instanceof Error && (e.name === 'ExitPromptError' || e.name === 'AbortPromptError');
}

/** The wizard's questions in the terminal, with @inquirer/prompts (loaded only when asked). */
class InquirerPrompter implements Prompter {
  readonly interactive = true;
  private async ask<T>(run: (p: typeof import('@inquirer/prompts')) => Promise<T>): Promise<T> {
    const prompts = await import('@inquirer/prompts');
    try {
      return await run(prompts);
    } catch (e) {
      if (isExitPrompt(e)) throw new SetupInterruptedError();
      throw e;
    }
  }
  input(q: { message: string; default?: string; validate?: Validate }): Promise<string> {
    return this.ask((p) => p.input({ message: q.message, default: q.default, validate: q.validate, required: q.default === undefined }));
  }
  password(q: { message: string; validate?: Validate }): Promise<string> {
    return this.ask((p) => p.password({ message: q.message, validate: q.validate }));
  }
  confirm(q: { message: string; default: boolean }): Promise<boolean> {
    return this.ask((p) => p.confirm({ message: q.message, default: q.default }));
  }
  select(q: { message: string; default?: string; choices: readonly Choice[] }): Promise<string> {
    return this.ask((p) =>
      p.select({
        message: q.message,
        default: q.default,
        pageSize: 12,
        choices: q.choices.map((c) => ({ value: c.value, name: c.name, description: c.description, ...(c.disabled ? { disabled: `(${c.disabled})` } : {}) })),
      }),
    );
  }
}

/**
 * The Ui for the apply part of setup: notices and progress from the terminal Ui, questions (the
 * apply confirmation, a new OPNsense certificate) through the same prompter as the wizard, so a
 * Ctrl-C there is an interruption too.
 */
class SetupUi implements Ui {
  constructor(
    private readonly term: TerminalUi,
    private readonly prompter: Prompter,
    private readonly yes: boolean,
  ) {}
  notify(n: Notice): void {
    this.term.notify(n);
  }
  runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    return this.term.runSteps(ctx, steps);
  }
  async request<Q extends Question>(q: Q): Promise<Answer<Q>> {
    if (this.yes || !this.prompter.interactive) {
      if (this.yes) return q.default as Answer<Q>;
      throw new TtyRequiredError(q.message);
    }
    if (q.kind === 'confirm') return (await this.prompter.confirm({ code: q.code, message: q.message, default: q.default })) as Answer<Q>;
    if (q.kind === 'input') {
      const a = q.secret ? await this.prompter.password({ code: q.code, message: q.message }) : await this.prompter.input({ code: q.code, message: q.message, default: q.default });
      return a as Answer<Q>;
    }
    return (await this.prompter.select({ code: q.code, message: q.message, default: q.default, choices: q.choices })) as Answer<Q>;
  }
}

function interruptedMessage(config: string): string {
  const progressFile = stateFileFor(config);
  const p = loadProgress(progressFile);
  if (!p) return 'Interrupted; nothing written.';
  const where = p.written ? `${config} is written and your answers are saved in ${progressFile}` : `your answers are saved in ${progressFile} (${config} is not written yet)`;
  return `Interrupted; ${where}. Run \`dualwan setup --config ${config}\` again to resume: the answers are offered as defaults and what is done is skipped.`;
}

/** The OPNsense failover drill (`dualwan verify`'s), with a short hold: exit 3 when failover did not behave. */
async function shortDrill(state: DesiredState, ui: Ui, o: SetupOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const { renderOpnsenseVerifyReport, runOpnsenseVerify } = require('../../verify/opnsense') as typeof import('../../verify/opnsense');
  const session = await opnsenseStage().open({ state, ui, trustOnFirstUse: !!o.trustOnFirstUse, credentialsFile: o.credentials, env, earlier: [] });
  try {
    const ctx = session.ctx as OpnsenseContext;
    const report = await runOpnsenseVerify({ client: ctx.client, state, layout: ctx.layout, ui, method: 'block', holdMs: 3_000 });
    out(`\n${renderOpnsenseVerifyReport(report)}`);
    return report.behaved ? 0 : 3;
  } finally {
    await session.close();
  }
}

export async function setupCommand(o: SetupOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const interactive = !!process.stdin.isTTY && !!process.stdout.isTTY;
  if (!interactive && !o.yes) throw new SetupTtyRequiredError(o.config);
  const term = terminalUi({ ...o, json: false });
  const prompter: Prompter = o.yes ? new DefaultsPrompter(o.config) : new InquirerPrompter();
  const ui = new SetupUi(term, prompter, !!o.yes);

  // Ctrl-C outside a question (while the host is asked, or during the apply): same message, 130.
  const onSigint = () => {
    err(`\n${interruptedMessage(o.config)}`);
    process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', onSigint);
  try {
    const port = o.port === undefined ? undefined : Number(o.port);
    if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
      throw new DualwanError('SETUP_BAD_OPTION', `--port ${o.port} is not a port number.`, { source: 'user', remedy: 'Give the Proxmox VE API port, 1–65535 (Proxmox uses 8006).' });
    }
    const result = await runSetupWizard({
      configFile: o.config,
      prompter,
      ui,
      env,
      credentialsFile: o.credentials,
      trustOnFirstUse: !!o.trustOnFirstUse,
      given: { host: o.host, port, tokenId: o.tokenId },
    });
    for (const w of result.reused ? result.warnings : []) term.notify({ code: w.code, level: 'warn', text: `${w.message}\n  remedy: ${w.remedy}` });

    out(`\nThe plan for ${o.config}:`);
    const run = await applyStages({ config: o.config, ui, env, yes: o.yes, trustOnFirstUse: o.trustOnFirstUse, credentials: o.credentials });
    const progress = loadProgress(result.progressFile) ?? result.progress;
    progress.applied = run.deferred.length === 0;
    saveProgress(result.progressFile, progress);
    if (run.deferred.length) {
      term.notify({
        code: 'SETUP_DEFERRED',
        level: 'warn',
        text: `Not finished: ${run.deferred.map((d) => `${d.stage} (${d.reason})`).join('; ')}. Run \`dualwan setup --config ${o.config}\` again once it is up; what is done is skipped.`,
      });
    } else {
      term.notify({ code: 'SETUP_APPLIED', level: 'success', text: `The router matches ${o.config}.` });
    }

    // The TP-Link steps, with the addresses of the file as it is now (pins recorded by apply included).
    const now = loadConfigFile(o.config).state ?? result.state;
    if (now.accessPoint) out(`\n${renderAccessPointSteps(accessPointSteps(now))}`);

    // A short failover drill, offered (never run unasked: new connections use the backup while it
    // lasts). With --yes, or when a stage is still pending, the commands are printed instead.
    let code = 0;
    if (now.backend === 'opnsense-vm' && !run.deferred.length && !o.yes && prompter.interactive) {
      const go = await prompter.confirm({
        code: 'SETUP_VERIFY',
        message: "Run a short failover drill now? It blocks the ISP's monitor probes until OPNsense switches to the backup, holds 3 s, then restores (about a minute).",
        default: true,
      });
      if (go) {
        // The drill restores the WAN on Ctrl-C itself: setup's own handler must not exit first.
        process.off('SIGINT', onSigint);
        code = await shortDrill(now, ui, o, env);
      }
    }
    out(
      `\nOnce the TP-Link is an access point: the failover drill with\n  dualwan verify --config ${o.config}\n` +
        `and the whole setup, read-only, with\n  dualwan doctor --config ${o.config}`,
    );
    return code;
  } catch (e) {
    if (e instanceof SetupInterruptedError || isExitPrompt(e)) {
      err(`\n${interruptedMessage(o.config)}`);
      return EXIT_INTERRUPTED;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
