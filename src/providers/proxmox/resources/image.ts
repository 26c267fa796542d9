import { DualwanError } from '../../../core/errors';
import type { ResourceHandler } from '../../../plan/handler';
import type { ProxmoxContext } from './context';
import { imageVolid } from '../naming';
import { announcedSize, humanSize, prepareImage, type ImageCompression, type ImageProgress } from '../image-source';
import type { Storage } from '../schemas';

export interface ImageDesired {
  readonly storage: string;
  /** File name in the storage's `import` content: `.raw`, `.qcow2` or `.vmdk`. */
  readonly filename: string;
  readonly url: string;
  readonly checksum: string;
  readonly checksumAlgorithm: 'sha256' | 'sha512';
  readonly compression?: ImageCompression;
  /** The VM whose boot disk is imported from this image. */
  readonly vmid: number;
  readonly diskKey: string;
}

export type ImageObserved =
  /** The file is on the image storage (Proxmox kept it only after its checksum matched). */
  | { readonly state: 'on-storage'; readonly volid: string; readonly size?: number }
  /** The VM has its boot disk already: the image is not needed (its file may have been removed to free space). */
  | { readonly state: 'on-vm-disk'; readonly vmid: number }
  /** Neither: to be made; the size the download server announces, when it does. */
  | { readonly state: 'absent'; readonly downloadBytes?: number };

/** True for the storage types whose volumes are files (the only ones that can hold `import` content). */
export function isFileStorage(type: string): boolean {
  return ['dir', 'nfs', 'cifs', 'cephfs', 'glusterfs', 'btrfs'].includes(type);
}

/** The remedy for an image storage without `import` content: the exact command for its current content list. */
export function importContentRemedy(st: Pick<Storage, 'storage' | 'type' | 'content'>): string {
  if (!isFileStorage(st.type)) {
    return `Storage '${st.storage}' (type ${st.type}) keeps no files, so it cannot hold the image: set vm.imageStorage to a directory storage such as local.`;
  }
  const content = [...new Set([...st.content.split(',').filter(Boolean), 'import'])].join(',');
  return `Enable the 'import' content type on ${st.storage}, as root on the Proxmox host: pvesm set ${st.storage} --content ${content} (or in the web UI: Datacenter > Storage > ${st.storage} > Edit > Content: add Import). Then run dualwan apply again.`;
}

function importContentMissing(st: Pick<Storage, 'storage' | 'type' | 'content'>): DualwanError {
  return new DualwanError(
    'IMAGE_STORAGE_NO_IMPORT',
    `Storage '${st.storage}' does not accept disk images for import (content: ${st.content || 'none'}); the router VM's disk is imported from there.`,
    { source: 'user', remedy: importContentRemedy(st) },
  );
}

/** One progress line every `step` of the work, so a terminal is not flooded. */
function throttled(report: (line: string) => void): (p: ImageProgress) => void {
  let last = '';
  return (p) => {
    // the key changes at most ~100 times per phase; the line shows where the work is
    const total = p.phase === 'unpack' ? undefined : p.total;
    const key = total ? `${p.phase} ${Math.floor((100 * p.done) / total)}` : `${p.phase} ${Math.floor(p.done / 5e7)}`;
    if (key === last) return;
    last = key;
    const what = p.phase === 'download' ? 'downloading' : p.phase === 'unpack' ? 'unpacking and measuring' : 'uploading to the host';
    report(total ? `${what}: ${Math.floor((100 * p.done) / total)}% of ${humanSize(total)}` : `${what}: ${humanSize(p.done)}`);
  };
}

/**
 * The router VM's boot image on the host's image storage, as `<storage>:import/<name>.raw`, for
 * the VM disk's `import-from`. Made by dualwan on the machine it runs on (image-source.ts):
 * download, pinned checksum, unpack, upload with the unpacked image's SHA-256, which Proxmox checks
 * before it keeps the file. A file under that name is taken as done (a failed upload leaves none;
 * the name carries the release). Once the VM has its disk, the image is not needed any more.
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
        value: {
          storage: vm.imageStorage,
          filename: img.filename,
          url: img.url,
          checksum: img.checksum,
          checksumAlgorithm: img.checksumAlgorithm,
          ...(img.compression ? { compression: img.compression } : {}),
          vmid: vm.vmid,
          diskKey: 'scsi0',
        },
      },
    ];
  },
  async observe(ctx, desired) {
    const out = [];
    for (const d of desired) {
      const v = d.value;
      const volid = imageVolid(v.storage, v.filename);
      const storage = (await ctx.client.storages()).find((s) => s.storage === v.storage);
      // a storage without import content cannot list it (preflight says what to do)
      const hit = storage?.content.split(',').includes('import') ? (await ctx.client.storageContent(v.storage, 'import')).find((c) => c.volid === volid) : undefined;
      if (hit) {
        out.push({ address: d.address, value: { state: 'on-storage' as const, volid, ...(hit.size !== undefined ? { size: hit.size } : {}) } });
        continue;
      }
      if ((await ctx.client.vmResources()).some((r) => r.vmid === v.vmid)) {
        const conf = await ctx.client.vmConfig(v.vmid);
        if (typeof conf[v.diskKey] === 'string') {
          out.push({ address: d.address, value: { state: 'on-vm-disk' as const, vmid: v.vmid } });
          continue;
        }
      }
      const downloadBytes = await announcedSize(v.url);
      out.push({ address: d.address, value: { state: 'absent' as const, ...(downloadBytes ? { downloadBytes } : {}) } });
    }
    return out;
  },
  diff(desired, observed) {
    if (observed && observed.state !== 'absent') return { action: 'noop', properties: [], disruption: [] };
    const size = observed?.downloadBytes;
    return {
      action: 'create',
      properties: [
        { path: 'source', before: null, after: desired.url },
        { path: desired.checksumAlgorithm, before: null, after: desired.checksum },
        { path: 'download', before: null, after: size ? humanSize(size) : 'size not announced by the server' },
        { path: 'volume', before: null, after: imageVolid(desired.storage, desired.filename) },
      ],
      disruption: ['downloads-image'],
      reason:
        `interrupts nothing, but takes a while: dualwan downloads the image here${size ? ` (${humanSize(size)})` : ''}, checks its ${desired.checksumAlgorithm}` +
        `${desired.compression ? `, unpacks it (${desired.compression})` : ''} and uploads it to ${desired.storage}, where the VM disk is imported from it`,
    };
  },
  async apply(ctx, change, _observed, report = () => undefined) {
    const d = change.desired;
    const volid = imageVolid(d.storage, d.filename);
    const storageNow = async () => (await ctx.client.storages()).find((s) => s.storage === d.storage);
    const before = await storageNow();
    // the upload would be refused only after gigabytes were sent: check first
    if (before && !before.content.split(',').includes('import')) throw importContentMissing(before);
    const progress = throttled(report);
    const image = await prepareImage({ url: d.url, checksum: d.checksum, checksumAlgorithm: d.checksumAlgorithm, ...(d.compression ? { compression: d.compression } : {}) }, { progress });
    try {
      const st = await storageNow();
      if (st?.avail !== undefined && st.avail < image.size) {
        throw new DualwanError('IMAGE_STORAGE_FULL', `Storage '${d.storage}' has ${humanSize(st.avail)} free; the unpacked image needs ${humanSize(image.size)}.`, {
          source: 'user',
          remedy: `Free space on ${d.storage} (and in /var/tmp of the host, where Proxmox receives uploads), or choose another vm.imageStorage.`,
        });
      }
      report(`uploading ${humanSize(image.size)} to ${volid}`);
      await ctx.client.uploadStream(
        d.storage,
        'import',
        d.filename,
        {
          size: image.size,
          sha256: image.sha256,
          open: async function* () {
            let done = 0;
            for await (const chunk of image.open()) {
              done += chunk.length;
              progress({ phase: 'upload', done, total: image.size });
              yield chunk;
            }
          },
        },
        { what: `upload of ${d.filename}` },
      );
    } finally {
      image.dispose();
    }
    const back = await this.observe(ctx, [{ address: change.address, value: d, dependsOn: [] }]);
    const got = back[0]?.value;
    if (!got || got.state === 'absent') throw new Error(`the upload task finished but ${volid} is not on the storage`);
    return got;
  },
};
