import type { DesiredState } from '../../core/desired';
import { CredentialsError } from '../../core/errors';
import type { AnyHandler } from '../../plan/engine';
import { ProxmoxClient } from './client';
import { discover, type Discovery } from './discovery';
import { imageHandler } from './resources/image';
import { mappingHandler } from './resources/mapping';
import { vmHandler, vmStateHandler } from './resources/vm';
import { cutoverBridgeHandler } from './resources/cutover';
import type { ProxmoxContext } from './resources/context';
import { ProxmoxTransport } from './transport';

export type { ProxmoxContext } from './resources/context';

/**
 * In dependency order: mappings, the image and (with proxmox.cutover) the cutover bridge before the
 * VM, the VM before its power state. With proxmox.cutover the VM is made without the management NIC;
 * the `cutover` stage (after the OPNsense stage) adds it under a dead-man timer: `cutoverHandler`
 * in resources/cutover.ts.
 */
export function proxmoxHandlers(): AnyHandler<ProxmoxContext>[] {
  return [mappingHandler('pci'), mappingHandler('usb'), imageHandler, cutoverBridgeHandler, vmHandler, vmStateHandler];
}

export interface ProxmoxConnection {
  readonly client: ProxmoxClient;
  readonly transport: ProxmoxTransport;
  close(): Promise<void>;
}

export function connectProxmox(state: DesiredState, secret: string, fingerprint: string, timing?: { sleep?: (ms: number) => Promise<void> }): ProxmoxConnection {
  const t = state.proxmox;
  if (!t) throw new CredentialsError('dualwan.yaml has no proxmox section.', 'Add proxmox: {host, node, tokenId} (run `dualwan setup` to write it).');
  const transport = new ProxmoxTransport({ host: t.host, port: t.port, tokenId: t.tokenId, tokenSecret: secret, fingerprint });
  const client = new ProxmoxClient(transport, t.node, timing);
  return { client, transport, close: () => transport.close() };
}

export async function proxmoxContext(state: DesiredState, client: ProxmoxClient): Promise<{ ctx: ProxmoxContext; discovery: Discovery }> {
  const discovery = await discover(client, state.proxmox!.host);
  return { ctx: { state, client, discovery }, discovery };
}
