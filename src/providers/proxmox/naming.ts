/** Names dualwan gives the things it creates, so it recognises them later. */
export const OWNER_TAG = 'dualwan';

export function mappingId(uplinkName: string): string {
  return `dualwan-${uplinkName}`;
}

/** The router VM's boot image in the image storage's `import` content (the VM disk is imported from it). */
export function imageVolid(storage: string, filename: string): string {
  return `${storage}:import/${filename}`;
}

export function isOwnedVm(tags: string | undefined): boolean {
  return (tags ?? '').split(/[;, ]+/).includes(OWNER_TAG);
}
