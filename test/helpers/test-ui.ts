import type { Answer, Notice, Question, Step, Ui } from '../../src/core/ui';
import { TtyRequiredError } from '../../src/core/errors';

/**
 * A recording Ui for tests: notices are kept, questions are answered from a map by code (or by
 * their default when `yes`), steps run in order.
 */
export class TestUi implements Ui {
  readonly notices: Notice[] = [];
  readonly asked: Question[] = [];
  readonly steps: { title: string; skipped?: string }[] = [];

  constructor(private readonly answers: Record<string, boolean | string> = {}, private readonly yes = false) {}

  notify(n: Notice): void {
    this.notices.push(n);
  }

  async request<Q extends Question>(q: Q): Promise<Answer<Q>> {
    this.asked.push(q);
    if (q.code in this.answers) return this.answers[q.code] as Answer<Q>;
    if (this.yes) return q.default as Answer<Q>;
    throw new TtyRequiredError(q.message);
  }

  async runSteps<C>(ctx: C, steps: readonly Step<C>[]): Promise<void> {
    for (const s of steps) {
      this.steps.push({ title: s.title, skipped: s.skip });
      if (!s.skip) await s.run(ctx, () => undefined);
    }
  }

  codes(): string[] {
    return this.notices.map((n) => n.code);
  }
}
