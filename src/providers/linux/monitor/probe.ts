/**
 * ICMP probes that leave through one WAN: each probe is one `ping -c 1` from the WAN's own address
 * (`-I <address>`). The address selects the WAN's routing table through the `from <address>` rule,
 * so the echo request leaves through that WAN's gateway whatever the main table says, including
 * while the WAN is out of the default route (that is how a dead line is seen to come back).
 *
 * Node has no raw sockets; a forked `ping` costs a few milliseconds (shared/research/linux-lab.md
 * caveats), nothing against probe intervals of 250 ms and more. The reply time is when ping prints
 * its reply line, not when it exits. Concurrency is bounded: beyond `maxInFlight` a probe is not
 * sent and simply goes unanswered (the decision logic counts it lost, which is the honest reading
 * of a router too busy to probe).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { isIpv4 } from '../commands';

export interface ProbeOrder {
  readonly seq: number;
  /** The WAN's own address (source of the echo request). */
  readonly source: string;
  readonly target: string;
  /** Keep listening this long, ms. */
  readonly listenMs: number;
}

export interface Prober {
  /** Sends one probe; `onReply` is called at most once, with the time the reply was read. */
  send(order: ProbeOrder, onReply: (at: number) => void): void;
  readonly inFlight: number;
  /** Stops every probe still running. */
  close(): void;
}

export interface PingProberOptions {
  readonly pingPath?: string;
  readonly maxInFlight?: number;
  /** ICMP payload bytes (`ping -s`); 0: a probe and its reply are 56 IP bytes (decision.ts probeWireBytes). */
  readonly payloadBytes?: number;
  readonly now?: () => number;
  /** Called when a probe could not be sent (no address yet, too many in flight, spawn failure). */
  readonly onSkip?: (order: ProbeOrder, why: string) => void;
  /** Called when ping itself failed (exit 2: e.g. the source address is gone after a new lease). */
  readonly onError?: (order: ProbeOrder) => void;
}

const REPLY_RE = /bytes from [0-9.]+: icmp_seq=\d+/;

export class PingProber implements Prober {
  private readonly running = new Set<ChildProcess>();
  private readonly pingPath: string;
  private readonly maxInFlight: number;
  private readonly payload: number;
  private readonly now: () => number;
  private readonly onSkip: (order: ProbeOrder, why: string) => void;
  private readonly onError: (order: ProbeOrder) => void;

  constructor(options: PingProberOptions = {}) {
    this.pingPath = options.pingPath ?? 'ping';
    this.maxInFlight = options.maxInFlight ?? 32;
    this.payload = options.payloadBytes ?? 0;
    this.now = options.now ?? Date.now;
    this.onSkip = options.onSkip ?? (() => undefined);
    this.onError = options.onError ?? (() => undefined);
  }

  get inFlight(): number {
    return this.running.size;
  }

  send(order: ProbeOrder, onReply: (at: number) => void): void {
    if (!isIpv4(order.source) || !isIpv4(order.target)) {
      this.onSkip(order, 'no usable source or target address');
      return;
    }
    if (this.running.size >= this.maxInFlight) {
      this.onSkip(order, `${this.running.size} probes already in flight`);
      return;
    }
    const waitS = Math.max(1, Math.ceil(order.listenMs / 1000));
    const child = spawn(this.pingPath, ['-n', '-c', '1', '-s', String(this.payload), '-W', String(waitS), '-I', order.source, order.target], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    this.running.add(child);
    let answered = false;
    let buffer = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), order.listenMs + 250);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      if (answered) return;
      buffer += chunk;
      if (REPLY_RE.test(buffer)) {
        answered = true;
        onReply(this.now());
      }
      if (buffer.length > 4096) buffer = buffer.slice(-1024);
    });
    const done = () => {
      clearTimeout(timer);
      this.running.delete(child);
    };
    child.on('error', (e) => {
      done();
      this.onSkip(order, `could not run ${this.pingPath}: ${e.message}`);
    });
    child.on('close', (code) => {
      done();
      if (code === 2 && !answered) this.onError(order);
    });
  }

  close(): void {
    for (const c of this.running) c.kill('SIGKILL');
    this.running.clear();
  }
}
