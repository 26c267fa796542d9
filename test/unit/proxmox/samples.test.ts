import * as S from '../../../src/providers/proxmox/schemas';
import { sampleData } from '../../helpers/pve-samples';

/** The client's boundary schemas must accept what real Proxmox sends (recorded samples). */
describe('response schemas parse the recorded Proxmox samples', () => {
  // Rows carry schema names: jest would pretty-print schema objects in titles, which is very slow.
  const schemas: Record<string, import('zod').ZodType> = {
    VersionSchema: S.VersionSchema,
    Pci: S.PciDeviceSchema.array(),
    Usb: S.UsbDeviceSchema.array(),
    Network: S.NetworkIfaceSchema.array(),
    Storages: S.StorageSchema.array(),
    Content: S.StorageContentSchema.array(),
    Permissions: S.PermissionsSchema,
    Vms: S.ClusterVmSchema.array(),
    Mappings: S.MappingSchema.array(),
    VmConfig: S.VmConfigSchema,
    VmStatus: S.VmStatusSchema,
    TaskStatus: S.TaskStatusSchema,
    TaskLog: S.TaskLogSchema,
    Certificates: S.CertificateInfoSchema,
    NextId: S.NextIdSchema,
    Upid: S.UpidSchema,
  };
  const cases: [string, string, number][] = [
    ['version.json', 'VersionSchema', 0],
    ['hardware-pci-n100-2x-i226.json', 'Pci', 0],
    ['hardware-pci-iommu-disabled.json', 'Pci', 0],
    ['hardware-usb-with-tethered-phone.json', 'Usb', 0],
    ['network-n100-default-install.json', 'Network', 0],
    ['storage-list-and-import-content.json', 'Storages', 0],
    ['storage-list-and-import-content.json', 'Content', 1],
    ['access-permissions-token.json', 'Permissions', 0],
    ['cluster-resources-vm.json', 'Vms', 0],
    ['cluster-mapping-pci-and-usb.json', 'Mappings', 0],
    ['cluster-mapping-pci-and-usb.json', 'Mappings', 1],
    ['qemu-config-router.json', 'VmConfig', 0],
    ['qemu-status-current.json', 'VmStatus', 0],
    ['qemu-status-current.json', 'VmStatus', 1],
    ['task-status-ok.json', 'TaskStatus', 0],
    ['task-status-running.json', 'TaskStatus', 0],
    ['task-status-error-q35.json', 'TaskStatus', 0],
    ['task-log-qmcreate-import.json', 'TaskLog', 0],
    ['certificates-info.json', 'Certificates', 0],
    ['cluster-nextid.json', 'NextId', 0],
    ['qemu-create-router-vm.json', 'Upid', 0],
  ];
  it.each(cases)('%s as %s', (file, schema, example) => {
    const r = schemas[schema]!.safeParse(sampleData(file, example));
    if (!r.success) throw new Error(r.error.message);
  });

  it('coerces 0/1 booleans and string numbers', () => {
    expect(S.NextIdSchema.parse('100')).toBe(100);
    expect(S.pveBool.parse(1)).toBe(true);
    expect(S.pveBool.parse(0)).toBe(false);
    expect(S.PciDeviceSchema.safeParse({ id: 'x', class: '0x020000', vendor: '0x8086', device: '0x125c', iommugroup: 'many' }).success).toBe(false);
  });
});
