import type { DesiredState } from '../../../core/desired';
import type { ProxmoxClient } from '../client';
import type { Discovery } from '../discovery';

export interface ProxmoxContext {
  readonly state: DesiredState;
  readonly client: ProxmoxClient;
  /** Read once before planning; handlers derive desired values (PCI ids, groups) from it. */
  readonly discovery: Discovery;
}
