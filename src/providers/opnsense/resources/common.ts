import { ApplyStepError, ValidationError } from '../../../core/errors';
import type { PropertyChange } from '../../../core/plan';

/**
 * An OPNsense validation failure during apply, kept word for word: "Unable to <verb> <resource>
 * <name>: <field>: <message>". (The engine wraps any other error as "Unable to <action> <address>".)
 */
export class OpnsenseStepError extends ApplyStepError {
  readonly validation: ValidationError;
  constructor(verb: string, address: string, cause: ValidationError) {
    super(verb, address, cause);
    this.message = cause.message;
    this.validation = cause;
  }
}

/** Runs one write of a change; a validation failure keeps OPNsense's field and message. */
export async function step<T>(verb: string, address: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof ValidationError) throw new OpnsenseStepError(verb, address, e);
    throw e;
  }
}

/** Compares the keys of `desired` only; an absent observed value counts as "". */
export function diffValues(desired: Readonly<Record<string, string>>, observed: Readonly<Record<string, string | undefined>> | undefined, normalise: (k: string, v: string) => string = (_k, v) => v): PropertyChange[] {
  const out: PropertyChange[] = [];
  for (const [k, want] of Object.entries(desired)) {
    const have = observed?.[k];
    if (normalise(k, have ?? '') !== normalise(k, want)) out.push({ path: k, before: have ?? null, after: want });
  }
  return out;
}

/** A comma list compared as a set. */
export function sortedList(v: string): string {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .sort()
    .join(',');
}
