import type { DesiredState } from '../../core/desired';
import type { Ui } from '../../core/ui';
import type { Capabilities } from './capabilities';
import type { OpnsenseClient } from './client';
import type { Layout } from './layout';
import type { RevertTimer } from './revert-timer';

export interface OpnsenseContext {
  readonly system: 'opnsense';
  readonly state: DesiredState;
  readonly client: OpnsenseClient;
  /** dualwan.yaml in OPNsense's names: identifiers, devices, gateway and group names. */
  readonly layout: Layout;
  /** Read once, when the stage opens. */
  readonly caps: Capabilities;
  readonly ui: Ui;
  readonly sleep: (ms: number) => Promise<void>;
  /**
   * How long to keep retrying a rule whose gateway group OPNsense does not list yet: configd caches
   * "interface gateways list" for 20 s (actions_interface.conf, cache_ttl), so a group stored a
   * moment ago can be refused as an unknown gateway.
   */
  readonly gatewayListWaitMs: number;
  /** The safety net of an apply (backup.ts). */
  readonly backup: {
    readonly dir?: string;
    readonly revertAttempts: number;
    readonly revertBackoffMs: number;
    /** After the apply, how long and how many times a fresh connection is tried (flows/opnsense.ts reReach). */
    readonly reachWithinMs?: number;
    readonly reachAttempts?: number;
  };
  /** The dead-man timer on OPNsense that restores the backup unless disarmed (revert-timer.ts); absent: none, reason unknown. */
  readonly revertTimer?: RevertTimer;
}

export function isOpnsenseContext(v: unknown): v is OpnsenseContext {
  return !!v && typeof v === 'object' && (v as { system?: unknown }).system === 'opnsense';
}
