/**
 * Waits for a condition without a fixed sleep: checks it every `everyMs`, bounded in time (and so
 * in count); throws `<what>: not within <ms> ms` when it does not hold by then.
 */
export async function until(pred: () => boolean | Promise<boolean>, ms = 5_000, what = 'condition', everyMs = 50): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
