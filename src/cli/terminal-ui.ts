import { TtyRequiredError, UserAbortError } from '../core/errors';
import type { Answer, Notice, Question, Step, Ui } from '../core/ui';
import { redact } from '../secrets/redact';

export interface TerminalUiOptions {
  /** Answer every question with its default. */
  readonly yes: boolean;
  /** Machine output on stdout: notices go to stderr, progress is plain lines. */
  readonly json: boolean;
  readonly debug: boolean;
  readonly interactive: boolean;
  readonly color: boolean;
}

const paint = (on: boolean, code: number, s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

/**
 * The terminal side of the Ui port: @inquirer/prompts for questions, listr2 for progress. Loaded
 * lazily so `dualwan --help` stays fast. Questions are never asked while listr2 draws.
 */
export class TerminalUi implements Ui {
  constructor(private readonly o: TerminalUiOptions) {}

  notify(n: Notice): void {
    if (n.level === 'debug' && !this.o.debug) return;
    const text = redact(n.text);
    const mark = { info: paint(this.o.color, 36, 'ℹ'), warn: paint(this.o.color, 33, '⚠'), error: paint(this.o.color, 31, '✖'), success: paint(this.o.color, 32, '✔'), debug: '·' }[n.level];
    const out = this.o.json || n.level === 'warn' || n.level === 'error' ? process.stderr : process.stdout;
    out.write(`${mark} ${text}\n`);
  }

  async request<Q extends Question>(q: Q): Promise<Answer<Q>> {
    if (this.o.yes) return q.default as Answer<Q>;
    if (!this.o.interactive) throw new TtyRequiredError(q.message);
    const prompts = await import('@inquirer/prompts');
    try {
      if (q.kind === 'confirm') return (await prompts.confirm({ message: q.message, default: q.default })) as Answer<Q>;
      if (q.kind === 'input') {
        const fn = q.secret ? prompts.password : prompts.input;
        return (await fn({ message: q.message, default: q.default } as never)) as Answer<Q>;
      }
      return (await prompts.select({ message: q.message, default: q.default, choices: q.choices.map((c) => ({ value: c.value, name: c.name, description: c.description })) })) as Answer<Q>;
    } catch (e) {
      if (e instanceof Error && e.name === 'ExitPromptError') throw new UserAbortError();
      throw e;
    }
  }

  async runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    if (this.o.json) {
      for (const s of steps) if (!s.skip) await s.run(ctx, () => undefined);
      return;
    }
    const { Listr } = await import('listr2');
    const list = new Listr(
      steps.map((s) => ({
        title: s.title,
        skip: s.skip ? () => s.skip! : false,
        task: async (_c: unknown, task: { output: string }) => {
          await s.run(ctx, (line) => {
            task.output = redact(line);
          });
        },
      })),
      {
        concurrent: false,
        exitOnError: true,
        renderer: this.o.interactive && !process.env.CI ? 'default' : 'simple',
        fallbackRenderer: 'simple',
        rendererOptions: { collapseSkips: false, showErrorMessage: false },
      } as never,
    );
    await list.run();
  }
}
