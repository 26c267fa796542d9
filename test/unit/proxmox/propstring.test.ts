import { formatPropertyString, parsePropertyString, pciFromPredictableName, subsetMatches } from '../../../src/providers/proxmox/propstring';
import { encodeParams } from '../../../src/providers/proxmox/transport';

describe('property strings', () => {
  it('reads the default key and the net model alias', () => {
    expect(parsePropertyString('hostpci0', 'mapping=wan0,pcie=1')).toEqual({ mapping: 'wan0', pcie: '1' });
    expect(parsePropertyString('hostpci1', '0000:01:00.0,pcie=1')).toEqual({ host: '0000:01:00.0', pcie: '1' });
    expect(parsePropertyString('net0', 'virtio=BC:24:11:5A:3E:01,bridge=vmbr1')).toEqual({ model: 'virtio', macaddr: 'BC:24:11:5A:3E:01', bridge: 'vmbr1' });
    expect(parsePropertyString('net0', 'virtio,bridge=vmbr0')).toEqual({ model: 'virtio', bridge: 'vmbr0' });
    expect(parsePropertyString('memory', '2048')).toEqual({ current: '2048' });
    expect(formatPropertyString('net0', { model: 'virtio', bridge: 'vmbr0' })).toBe('virtio,bridge=vmbr0');
  });

  it('compares only wanted sub-keys, booleans in any spelling', () => {
    expect(subsetMatches({ mapping: 'a', pcie: '1' }, { mapping: 'a', pcie: 'on', rombar: '1' })).toBe(true);
    expect(subsetMatches({ mapping: 'a', pcie: '1' }, { mapping: 'a', pcie: '0' })).toBe(false);
    expect(subsetMatches({ mapping: 'a' }, {})).toBe(false);
  });

  it('maps predictable names to PCI addresses, decimal bus and slot', () => {
    expect(pciFromPredictableName('enp1s0')).toBe('0000:01:00.0');
    expect(pciFromPredictableName('enp10s0f1')).toBe('0000:0a:00.1');
    expect(pciFromPredictableName('enP2p3s0')).toBe('0002:03:00.0');
    expect(pciFromPredictableName('eno1')).toBeUndefined();
    expect(pciFromPredictableName('nic0')).toBeUndefined();
  });

  it('encodes form parameters as Proxmox expects', () => {
    expect(encodeParams({ a: true, b: false, c: ['x', 'y'], d: undefined, e: 3 }).toString()).toBe('a=1&b=0&c=x&c=y&e=3');
  });
});
