import type { DesiredState } from '../../../core/desired';
import type { ProxmoxClient } from '../client';
import type { Discovery } from '../discovery';
import type { CutoverIo } from './cutover';

export interface ProxmoxContext {
  readonly state: DesiredState;
  /**
   * The API client. The cutover replaces it with a client of the host's new address once the old
   * path is gone, so the handlers after it keep working.
   */
  client: ProxmoxClient;
  /** Read once before planning; handlers derive desired values (PCI ids, groups) from it. */
  readonly discovery: Discovery;
  /** SSH and the new-path API for the lockout-safe cutover (only with proxmox.cutover). */
  readonly cutover?: CutoverIo;
}
