import { EventEmitter } from 'node:events';

/**
 * Stands in for `process` where a drill installs its signal handlers: signals are emitted on it
 * by the test, and `kill` (how a handler lets the signal end the process) is recorded, not sent.
 */
export class FakeProcess extends EventEmitter {
  readonly pid = 4242;
  readonly killed: string[] = [];
  kill(_pid: number, signal?: string | number): true {
    this.killed.push(String(signal));
    return true;
  }
}
