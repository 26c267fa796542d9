/**
 * The port through which the core talks to a person. The terminal implementation lives in
 * src/cli; tests use a recording one. The core never prints or prompts by itself.
 */
export type NotifyLevel = 'info' | 'warn' | 'error' | 'success' | 'debug';

export interface Notice {
  /** Stable code, e.g. APPLY_PLAN, PREFLIGHT_OK. */
  readonly code: string;
  readonly level: NotifyLevel;
  readonly text: string;
  /** Machine-readable payload for --json renderers. */
  readonly data?: unknown;
}

export type Question =
  | { readonly code: string; readonly kind: 'confirm'; readonly message: string; readonly default: boolean }
  | { readonly code: string; readonly kind: 'input'; readonly message: string; readonly default: string; readonly secret?: boolean }
  | {
      readonly code: string;
      readonly kind: 'select';
      readonly message: string;
      readonly default: string;
      readonly choices: readonly { readonly value: string; readonly name: string; readonly description?: string }[];
    };

export type Answer<Q extends Question> = Q extends { kind: 'confirm' } ? boolean : string;

/** A unit of long work, shown as progress by the terminal (listr2) and as lines elsewhere. */
export interface Step<C> {
  readonly title: string;
  /** When set, the step is shown as skipped with this reason. */
  readonly skip?: string;
  run(ctx: C, report: (output: string) => void): Promise<void>;
}

export interface Ui {
  notify(notice: Notice): void;
  request<Q extends Question>(question: Q): Promise<Answer<Q>>;
  /** Runs steps in order with progress output; stops at the first failure and rethrows it. */
  runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void>;
}
