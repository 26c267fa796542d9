import * as fs from 'node:fs';
import type { DesiredState } from '../core/desired';
import { CredentialsError } from '../core/errors';
import type { Ui } from '../core/ui';
import { connectProxmox, type ProxmoxConnection } from '../providers/proxmox/provider';
import { loadCredentials } from '../secrets/credentials';
import { ensurePinned } from './trust';

export interface PinnedProxmoxOptions {
  readonly state: DesiredState;
  readonly ui: Ui;
  readonly env: NodeJS.ProcessEnv;
  readonly credentialsFile?: string;
  readonly trustOnFirstUse: boolean;
  /** Why the token is needed, when it is not for the stage itself (shown if the secret is missing). */
  readonly purpose?: string;
}

export interface PinnedProxmox {
  readonly conn: ProxmoxConnection;
  readonly secret: string;
  readonly fingerprint: string;
}

/**
 * The Proxmox API, the one way every flow reaches it: the token secret from the environment or
 * the credentials file, the host's certificate pinned (asked on first contact, or
 * --trust-on-first-use, then recorded in dualwan.yaml), and a connection that sends nothing before
 * the certificate matched.
 */
export async function connectPinnedProxmox(o: PinnedProxmoxOptions): Promise<PinnedProxmox> {
  const t = o.state.proxmox;
  if (!t) throw new CredentialsError('dualwan.yaml has no proxmox section.', 'Add proxmox: {host, node, tokenId} (run `dualwan setup` to write it).');
  const secret = loadCredentials({ env: o.env, file: o.credentialsFile }).require('DUALWAN_PROXMOX_TOKEN_SECRET', `The Proxmox API token ${t.tokenId}${o.purpose ? ` (${o.purpose})` : ''}`);
  const fingerprint = await ensurePinned({
    system: 'Proxmox VE',
    host: t.host,
    port: t.port,
    pinned: t.fingerprint,
    trustOnFirstUse: o.trustOnFirstUse,
    ui: o.ui,
    record: fs.existsSync(o.state.file) ? { file: o.state.file, keyPath: ['proxmox', 'fingerprint'] } : undefined,
    compareWith: 'pvenode cert info',
  });
  return { conn: connectProxmox(o.state, secret, fingerprint), secret, fingerprint };
}
