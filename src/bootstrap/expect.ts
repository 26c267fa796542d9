import { DualwanError } from '../core/errors';

/**
 * A small expect engine for a serial console: it waits for what the machine prints, never for a
 * fixed time. Each step names what it waits for, has its own timeout, and fails with an error that
 * quotes the last lines of the screen, so a person sees where the machine was.
 *
 * Console output is cleaned before matching: ANSI escape sequences, other control characters and
 * undecodable bytes (line noise) are dropped, CR LF becomes LF. A match consumes the text up to
 * its end, so the next step only sees newer output.
 */
export interface Pattern<K extends string = string> {
  readonly name: K;
  readonly re: RegExp;
}

export interface ExpectHit<K extends string = string> {
  readonly name: K;
  readonly match: RegExpExecArray;
  /** Cleaned text between the previous match and this one. */
  readonly before: string;
}

export interface ConsoleIo {
  send(text: string): void;
  onData(listener: (text: string) => void): void;
  onClose(listener: (reason: string) => void): void;
}

// CSI (ESC [ … final), OSC (ESC ] … BEL/ST), two-byte escapes, then C0/C1 controls but TAB/LF/CR/BS.
// Control characters are what these expressions are about.
/* eslint-disable no-control-regex */
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x1b/g;
const CONTROL = /[\x00-\x07\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\ufffd]/g;
const CONTROL_BUT_BS = /[\x00-\x07\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\ufffd]/g;
/* eslint-enable no-control-regex */

export function cleanConsoleText(raw: string): string {
  return raw.replace(ANSI, '').replace(CONTROL, '').replace(/\r\n/g, '\n');
}

/** The lines a person would see: CR returns to the line start, BS steps back, LF opens a line. */
export class Screen {
  private lines: string[] = [''];
  private col = 0;
  private readonly maxLines: number;

  constructor(maxLines = 200) {
    this.maxLines = maxLines;
  }

  write(raw: string): void {
    const text = raw.replace(ANSI, '').replace(CONTROL_BUT_BS, (c) => (c === '\b' ? c : ''));
    for (const ch of text) {
      const i = this.lines.length - 1;
      if (ch === '\n') {
        this.lines.push('');
        this.col = 0;
        if (this.lines.length > this.maxLines) this.lines.shift();
      } else if (ch === '\r') {
        this.col = 0;
      } else if (ch === '\b') {
        this.col = Math.max(0, this.col - 1);
      } else {
        const line = this.lines[i]!;
        this.lines[i] = line.slice(0, this.col).padEnd(this.col, ' ') + ch + line.slice(this.col + 1);
        this.col++;
      }
    }
  }

  /** The last `n` lines with text, trailing spaces removed. */
  lastLines(n = 12): string[] {
    const out = this.lines.map((l) => l.trimEnd());
    while (out.length && out[out.length - 1] === '') out.pop();
    return out.slice(-n);
  }
}

export class ExpectError extends DualwanError {
  readonly step: string;
  readonly screen: readonly string[];
  constructor(code: 'CONSOLE_TIMEOUT' | 'CONSOLE_CLOSED' | 'CONSOLE_UNEXPECTED', step: string, detail: string, screen: readonly string[], remedy?: string) {
    const shown = screen.length ? screen.map((l) => `    | ${l}`).join('\n') : '    (nothing on the screen)';
    super(code, `Console step "${step}" ${detail}.\n  last lines on the console:\n${shown}`, { source: 'remote', remedy });
    this.step = step;
    this.screen = screen;
  }
}

export interface ExpectOptions {
  /** Cleaned text kept for matching (older text is dropped; default 256 KiB). */
  readonly maxBuffer?: number;
  /** Every raw chunk, for a transcript (the caller redacts). */
  readonly onOutput?: (raw: string) => void;
  /** Lines quoted in errors (default 12). */
  readonly screenLines?: number;
}

export class Expect {
  readonly screen = new Screen();
  private buffer = '';
  private closedReason: string | undefined;
  private notify: (() => void) | undefined;
  private readonly maxBuffer: number;
  private readonly screenLines: number;

  constructor(
    private readonly io: ConsoleIo,
    private readonly opts: ExpectOptions = {},
  ) {
    this.maxBuffer = opts.maxBuffer ?? 256 * 1024;
    this.screenLines = opts.screenLines ?? 12;
    io.onData((raw) => {
      opts.onOutput?.(raw);
      this.screen.write(raw);
      this.buffer += cleanConsoleText(raw);
      if (this.buffer.length > this.maxBuffer) this.buffer = this.buffer.slice(-this.maxBuffer);
      this.notify?.();
    });
    io.onClose((reason) => {
      this.closedReason = reason;
      this.notify?.();
    });
  }

  send(text: string): void {
    this.io.send(text);
  }

  /** The text not consumed yet (cleaned). */
  pending(): string {
    return this.buffer;
  }

  lastLines(): string[] {
    return this.screen.lastLines(this.screenLines);
  }

  /**
   * Waits until one of the patterns matches the unconsumed output (the earliest match wins),
   * consumes through it and returns which. Rejects after `timeoutMs` or when the console closes.
   */
  expect<K extends string>(step: string, patterns: readonly Pattern<K>[], timeoutMs: number, remedy?: string): Promise<ExpectHit<K>> {
    return new Promise((resolve, reject) => {
      const deadline: { timer?: NodeJS.Timeout } = {};
      const done = () => {
        this.notify = undefined;
        if (deadline.timer) clearTimeout(deadline.timer);
      };
      const attempt = (): boolean => {
        let best: { name: K; match: RegExpExecArray } | undefined;
        for (const p of patterns) {
          const re = new RegExp(p.re.source, p.re.flags.replace('g', ''));
          const m = re.exec(this.buffer);
          if (m && (!best || m.index < best.match.index)) best = { name: p.name, match: m };
        }
        if (best) {
          const end = best.match.index + best.match[0].length;
          const before = this.buffer.slice(0, best.match.index);
          this.buffer = this.buffer.slice(end);
          done();
          resolve({ name: best.name, match: best.match, before });
          return true;
        }
        if (this.closedReason !== undefined) {
          done();
          reject(new ExpectError('CONSOLE_CLOSED', step, `could not finish: the console closed (${this.closedReason}) while waiting for ${patterns.map((p) => p.name).join(' or ')}`, this.lastLines(), remedy));
          return true;
        }
        return false;
      };
      if (attempt()) return;
      this.notify = () => void attempt();
      deadline.timer = setTimeout(() => {
        this.notify = undefined;
        reject(new ExpectError('CONSOLE_TIMEOUT', step, `saw none of ${patterns.map((p) => `"${p.name}"`).join(', ')} within ${Math.round(timeoutMs / 1000)} s`, this.lastLines(), remedy));
      }, timeoutMs);
    });
  }
}
