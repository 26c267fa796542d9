import * as fs from 'node:fs';
import type { DesiredState } from '../core/desired';
import { ConfigError } from '../core/errors';
import { loadConfigFile } from '../config/load';
import { ensurePinned } from '../flows/trust';
import { loadCredentials } from '../secrets/credentials';
import { connectProxmox, type ProxmoxConnection } from '../providers/proxmox/provider';
import type { Ui } from '../core/ui';
import { TerminalUi } from './terminal-ui';
import type { GlobalOptions } from './options';

export function terminalUi(o: GlobalOptions & { yes?: boolean; json?: boolean }): TerminalUi {
  const interactive = !!process.stdin.isTTY && !!process.stdout.isTTY;
  return new TerminalUi({ yes: !!o.yes, json: !!o.json, debug: o.debug, interactive, color: interactive && !process.env.NO_COLOR });
}

/** Reads and checks dualwan.yaml; any error stops the run before anything is contacted. */
export function loadState(file: string): DesiredState {
  const { state, diagnostics } = loadConfigFile(file);
  if (!state || diagnostics.some((d) => d.severity === 'error')) throw new ConfigError(file, diagnostics);
  return state;
}

/** Credentials, certificate pin, connection: everything needed before the first API call. */
export async function openProxmox(state: DesiredState, o: GlobalOptions & { trustOnFirstUse?: boolean }, ui: Ui, env: NodeJS.ProcessEnv = process.env): Promise<ProxmoxConnection> {
  const creds = loadCredentials({ env, file: o.credentials });
  const secret = creds.require('DUALWAN_PROXMOX_TOKEN_SECRET', `The Proxmox API token ${state.proxmox?.tokenId ?? ''}`);
  const t = state.proxmox!;
  const fingerprint = await ensurePinned({
    system: 'Proxmox VE',
    host: t.host,
    port: t.port,
    pinned: t.fingerprint,
    trustOnFirstUse: !!o.trustOnFirstUse,
    ui,
    record: fs.existsSync(state.file) ? { file: state.file, keyPath: ['proxmox', 'fingerprint'] } : undefined,
    compareWith: 'pvenode cert info',
  });
  return connectProxmox(state, secret, fingerprint);
}
