import type { Diagnostic } from './diagnostics';
import { formatDiagnostic } from './diagnostics';

export type ErrorSource = 'user' | 'remote' | 'tool';

/**
 * The one error family of the tool. The CLI entry point alone maps these to exit codes and
 * presentation; everything else throws them with a stable code.
 */
export class DualwanError extends Error {
  readonly code: string;
  readonly source: ErrorSource;
  readonly remedy?: string;
  /** Printed softly (no "error:" prefix), e.g. the user said no. */
  readonly soft: boolean;

  constructor(code: string, message: string, opts: { source: ErrorSource; remedy?: string; cause?: unknown; soft?: boolean }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.source = opts.source;
    this.remedy = opts.remedy;
    this.soft = opts.soft ?? false;
  }
}

export class ConfigError extends DualwanError {
  readonly diagnostics: readonly Diagnostic[];
  constructor(file: string, diagnostics: readonly Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super('CONFIG_INVALID', `${file} is not valid (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${errors.map(formatDiagnostic).join('\n')}`, {
      source: 'user',
      remedy: `Fix the places listed above in ${file}, then run the command again. Nothing was changed.`,
    });
    this.diagnostics = diagnostics;
  }
}

/** Preflight found a reason not to touch the host; nothing was written. */
export class PreflightError extends DualwanError {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super('PREFLIGHT_FAILED', `Preflight refused (${errors.length} problem${errors.length === 1 ? '' : 's'}); nothing was written:\n${errors.map(formatDiagnostic).join('\n')}`, {
      source: 'user',
    });
    this.diagnostics = diagnostics;
  }
}

/** A remote API answered with an error. Body excerpts are redacted by the caller. */
export class RemoteApiError extends DualwanError {
  readonly system: 'proxmox' | 'opnsense' | 'ssh';
  readonly method: string;
  readonly path: string;
  readonly status?: number;
  readonly bodyExcerpt?: string;
  /** Per-parameter messages, as Proxmox puts them in `errors`. */
  readonly fieldErrors: Readonly<Record<string, string>>;
  /** True for a network failure or a 5xx that a retry may cure. */
  readonly transient: boolean;

  constructor(init: {
    system: 'proxmox' | 'opnsense' | 'ssh';
    method: string;
    path: string;
    status?: number;
    message: string;
    bodyExcerpt?: string;
    fieldErrors?: Record<string, string>;
    transient?: boolean;
    remedy?: string;
    cause?: unknown;
  }) {
    const status = init.status === undefined ? 'no answer' : `HTTP ${init.status}`;
    super('REMOTE_API_ERROR', `${init.system} ${init.method} ${init.path}: ${status}: ${init.message}`, {
      source: 'remote',
      remedy: init.remedy,
      cause: init.cause,
    });
    this.system = init.system;
    this.method = init.method;
    this.path = init.path;
    this.status = init.status;
    this.bodyExcerpt = init.bodyExcerpt;
    this.fieldErrors = init.fieldErrors ?? {};
    this.transient = init.transient ?? false;
  }
}

/** OPNsense answered HTTP 200 with `{"result":"failed","validations":{…}}`. */
export class ValidationError extends DualwanError {
  readonly validations: Readonly<Record<string, string>>;
  constructor(verb: string, resource: string, name: string, validations: Record<string, string>) {
    const detail = Object.entries(validations)
      .map(([f, m]) => `${f}: ${m}`)
      .join('; ');
    super('REMOTE_VALIDATION_FAILED', `Unable to ${verb} ${resource} ${name}: ${detail}`, { source: 'remote' });
    this.validations = validations;
  }
}

/** A Proxmox task (UPID) ended in error. */
export class TaskError extends DualwanError {
  readonly upid: string;
  readonly exitStatus: string;
  readonly lastLines: readonly string[];
  constructor(upid: string, exitStatus: string, lastLines: readonly string[], what: string) {
    super('PROXMOX_TASK_FAILED', `Proxmox task ${what} failed: ${exitStatus}\n  task: ${upid}\n  last log lines:\n${lastLines.map((l) => `    ${l}`).join('\n')}`, {
      source: 'remote',
    });
    this.upid = upid;
    this.exitStatus = exitStatus;
    this.lastLines = lastLines;
  }
}

export class StalePlanError extends DualwanError {
  constructor(address: string, detail: string) {
    super('PLAN_STALE', `The plan is stale: ${address} changed since it was planned (${detail}). Nothing more was written.`, {
      source: 'user',
      remedy: 'Run `dualwan plan` again to see the current differences, then apply the new plan.',
    });
  }
}

export class TtyRequiredError extends DualwanError {
  constructor(question: string) {
    super('TTY_REQUIRED', `A question needs an answer but there is no terminal: ${question}`, {
      source: 'user',
      remedy: 'Run in a terminal, or pass --yes to accept the defaults (and --trust-on-first-use to pin a new certificate).',
    });
  }
}

export class UserAbortError extends DualwanError {
  constructor(message = 'Stopped at your request; nothing more was changed.') {
    super('USER_ABORT', message, { source: 'user', soft: true });
  }
}

export class CapabilityError extends DualwanError {
  constructor(message: string, remedy: string) {
    super('CAPABILITY_MISSING', message, { source: 'remote', remedy });
  }
}

export class CredentialsError extends DualwanError {
  constructor(message: string, remedy: string) {
    super('CREDENTIALS', message, { source: 'user', remedy });
  }
}

export class TlsPinError extends DualwanError {
  constructor(message: string, remedy: string) {
    super('TLS_PIN', message, { source: 'remote', remedy });
  }
}

/** "Unable to <verb> <resource> <name>: <cause>" around any error raised while applying one change. */
export class ApplyStepError extends DualwanError {
  readonly address: string;
  constructor(verb: string, address: string, cause: unknown) {
    const causeText = cause instanceof Error ? cause.message : String(cause);
    super('APPLY_STEP_FAILED', `Unable to ${verb} ${address}: ${causeText}`, {
      source: cause instanceof DualwanError ? cause.source : 'tool',
      remedy: cause instanceof DualwanError ? cause.remedy : undefined,
      cause,
    });
    this.address = address;
  }
}
