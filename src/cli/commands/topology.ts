/**
 * `dualwan topology`: the picture of dualwan.yaml — upstream modem or phone, WAN devices, the
 * router, the LAN, the access point — drawn from the file alone. Read-only, no network.
 *
 *   dualwan topology [-c dualwan.yaml] [--mermaid]
 */
import { renderTopology, renderTopologyMermaid } from '../../topology/render';
import type { GlobalOptions } from '../options';
import { loadState, terminalUi } from '../session';

export interface TopologyOptions extends GlobalOptions {
  readonly config: string;
  /** A Mermaid flowchart instead of the text picture. */
  readonly mermaid?: boolean;
}

export async function topologyCommand(o: TopologyOptions): Promise<number> {
  // Warnings about the file go to stderr, so the picture on stdout can be piped into a document.
  const state = loadState(o.config, terminalUi({ ...o, json: true }));
  process.stdout.write(o.mermaid ? renderTopologyMermaid(state) : renderTopology(state));
  return 0;
}
