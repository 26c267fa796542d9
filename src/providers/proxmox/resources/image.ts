import type { ResourceHandler } from '../../../plan/handler';
import type { ProxmoxContext } from './context';
import { imageVolid } from '../naming';

export interface ImageDesired {
  readonly storage: string;
  readonly filename: string;
  readonly url: string;
  readonly checksum: string;
  readonly checksumAlgorithm: string;
  readonly compression?: string;
}
export interface ImageObserved {
  readonly volid: string;
  readonly size?: number;
}

/**
 * The OPNsense image, downloaded by the host itself (`download-url`, content iso — Proxmox
 * decompresses only for that content type) with the published checksum verified by Proxmox before
 * the file is kept. A file already present under the same name is taken as done: the API cannot
 * re-hash it, and Proxmox never keeps a download whose checksum failed.
 */
export const imageHandler: ResourceHandler<ProxmoxContext, ImageDesired, ImageObserved> = {
  kind: 'proxmox.image',
  desired(ctx) {
    const vm = ctx.state.vm;
    if (!vm) return [];
    const img = vm.image;
    return [
      {
        address: `proxmox.image/${imageVolid(vm.imageStorage, img.filename)}`,
        dependsOn: [],
        value: { storage: vm.imageStorage, filename: img.filename, url: img.url, checksum: img.checksum, checksumAlgorithm: img.checksumAlgorithm, compression: img.compression },
      },
    ];
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      const list = await ctx.client.storageContent(d.value.storage, 'iso');
      const volid = imageVolid(d.value.storage, d.value.filename);
      const hit = list.find((c) => c.volid === volid);
      if (hit) out.push({ address: d.address, value: { volid, size: hit.size } });
    }
    return out;
  },
  diff(desired, observed) {
    if (observed) return { action: 'noop', properties: [], disruption: [] };
    return {
      action: 'create',
      properties: [
        { path: 'url', before: null, after: desired.url },
        { path: desired.checksumAlgorithm, before: null, after: desired.checksum },
      ],
      disruption: ['downloads-image'],
      reason: `the host downloads the image${desired.compression ? ` and unpacks it (${desired.compression})` : ''}, then verifies its ${desired.checksumAlgorithm}`,
    };
  },
  async apply(ctx, change) {
    const d = change.desired;
    await ctx.client.downloadUrl(
      d.storage,
      {
        content: 'iso',
        filename: d.filename,
        url: d.url,
        checksum: d.checksum,
        'checksum-algorithm': d.checksumAlgorithm,
        ...(d.compression ? { compression: d.compression } : {}),
        'verify-certificates': 1,
      },
      { what: `download of ${d.filename}` },
    );
    const back = await this.observe(ctx, [{ address: change.address, value: d, dependsOn: [] }]);
    if (!back[0]) throw new Error(`the download task finished but ${imageVolid(d.storage, d.filename)} is not on the storage`);
    return back[0].value;
  },
};
