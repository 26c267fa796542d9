/**
 * Plan vocabulary shared by every provider. A plan is a value: computed by a pure function,
 * printable, saveable as JSON, executed by `apply` and nothing else.
 */
export type Action = 'create' | 'update' | 'replace' | 'delete' | 'noop';

/** What a change does to the user's connectivity; shown before it happens. */
export type Disruption =
  | 'none'
  | 'restarts-router-vm' // the change is pending until the VM restarts, or restarts it
  | 'starts-router-vm'
  | 'stops-router-vm'
  | 'kills-states' // open connections through the router are dropped
  | 'reloads-firewall'
  | 'drops-management-session' // may cut the path we talk through
  | 'downloads-image'; // long, uses the host's bandwidth

export interface PropertyChange {
  readonly path: string;
  readonly before: unknown;
  readonly after: unknown;
}

export interface Change {
  /** Stable address, `<system>.<kind>/<name>`, e.g. `proxmox.vm/100`. */
  readonly address: string;
  readonly kind: string;
  readonly action: Action;
  readonly properties: readonly PropertyChange[];
  readonly disruption: readonly Disruption[];
  /** Why, in words, when not obvious from the properties. */
  readonly reason?: string;
  /** Addresses this change needs applied first. */
  readonly dependsOn: readonly string[];
  /** Fingerprint of what was observed when planning; `null` when absent. */
  readonly observedFingerprint: string | null;
  /** Handler-private data needed to execute the change (the desired value), JSON-serialisable. */
  readonly desired: unknown;
}

/** Work run once after the changes of a module, e.g. OPNsense `reconfigure`. */
export interface PostAction {
  readonly id: string;
  readonly title: string;
  readonly after: readonly string[];
}

export interface Plan {
  readonly formatVersion: 1;
  readonly tool: string;
  readonly createdAt: string;
  /** SHA-256 of the desired state that produced the plan. */
  readonly desiredHash: string;
  /** Ordered: each change after its dependencies. */
  readonly changes: readonly Change[];
  readonly postActions: readonly PostAction[];
}

export function pendingChanges(plan: Plan): Change[] {
  return plan.changes.filter((c) => c.action !== 'noop');
}

export interface ApplyReport {
  readonly applied: readonly { readonly address: string; readonly action: Action; readonly readBack: unknown }[];
  readonly postActions: readonly string[];
  readonly writeCalls: number;
  readonly durationMs: number;
}
