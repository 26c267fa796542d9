// Public entry point of the Proxmox VE API test double (see BEHAVIOR.md).
export { startProxmoxDouble, DEFAULT_TOKEN_ID, DEFAULT_TOKEN_SECRET } from './server';
export type { ProxmoxDouble, ProxmoxDoubleOptions, TokenSpec, RequestRecord, ContractViolation, InventoryOverrides, RemoteFile } from './server';
export { validateRequest, matchRoute } from './schema';
export type { ValidationResult, PveVersion, Params } from './schema';
export { remoteFileDigest, DEFAULT_REMOTE_FILES } from './state';
