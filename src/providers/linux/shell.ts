/**
 * Building POSIX shell command lines from argument vectors.
 *
 * SSH runs a command as one string that the remote login shell parses, so every argument has to
 * survive that parse unchanged. The only safe way to put an arbitrary string through a POSIX
 * shell is single quotes: inside them no character is special, and a single quote itself is
 * written as `'\''` (close, escaped quote, reopen). Nothing else in this project may build a
 * remote command line: callers hand over an argv array and receive a branded `ShellLine`.
 */
import { DualwanError } from '../../core/errors';

/** A program and its arguments, as `execve` would receive them. */
export type Argv = readonly [program: string, ...args: string[]];

declare const shellLineBrand: unique symbol;
/** A command line produced by this module; plain strings are not accepted where one is needed. */
export type ShellLine = string & { readonly [shellLineBrand]: true };

/** Characters that never need quoting in any POSIX shell context (no globbing, no expansion). */
const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export class ShellArgumentError extends DualwanError {
  constructor(message: string) {
    super('SHELL_ARGUMENT_INVALID', message, { source: 'tool' });
  }
}

/** Quotes one argument so that a POSIX shell reads it back as exactly the same string. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) {
    // A NUL cannot be passed in an argv entry at all; refusing is the only honest answer.
    throw new ShellArgumentError('A command argument contains a NUL byte, which no program can receive.');
  }
  if (arg.length > 0 && PLAIN.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export interface CommandLineOptions {
  /** Environment assignments placed before the program (`LC_ALL=C ip …`). Names are checked. */
  readonly env?: Readonly<Record<string, string>>;
  /** Run through `sudo -n --` (non-interactive: fails instead of asking for a password). */
  readonly sudo?: boolean;
}

/** Turns an argv array into a command line for `sh -c` / an SSH exec request. */
export function commandLine(argv: Argv, options: CommandLineOptions = {}): ShellLine {
  if (argv.length === 0 || argv[0] === '') {
    throw new ShellArgumentError('A command needs a program name.');
  }
  const parts: string[] = [];
  const env = Object.entries(options.env ?? {});
  if (options.sudo) parts.push('sudo', '-n', '--');
  if (env.length > 0) {
    // `env NAME=value prog` rather than a shell prefix, so the assignment also passes through sudo.
    parts.push('env');
    for (const [name, value] of env) {
      if (!ENV_NAME.test(name)) throw new ShellArgumentError(`Not a valid environment variable name: ${JSON.stringify(name)}`);
      parts.push(quoteArg(`${name}=${value}`));
    }
  }
  for (const arg of argv) parts.push(quoteArg(arg));
  return parts.join(' ') as ShellLine;
}

/** Renders an argv for people (logs, dry-run output); same quoting, so it can be pasted into a shell. */
export function displayArgv(argv: readonly string[]): string {
  return argv.map((a) => (a.includes('\0') ? JSON.stringify(a) : quoteArg(a))).join(' ');
}
