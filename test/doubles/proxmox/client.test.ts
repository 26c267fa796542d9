// The real `proxmox-api` npm client against the double, over TLS that trusts only the double's
// certificate (undici Agent with connect.ca), as the research notes recommend.
import { Agent, fetch as undiciFetch } from 'undici';
import { startProxmoxDouble, type ProxmoxDouble } from './server';

interface ProxmoxEngineCtor {
  new (o: { host: string; port: number; tokenID: string; tokenSecret: string; fetch: (url: string, init: object) => unknown }): object;
}
// The package's typings only ship with its ES module build; load the CommonJS build untyped.
const pm = require('proxmox-api') as { default: (engine: object) => unknown; ProxmoxEngine: ProxmoxEngineCtor };

interface Seg {
  $get(p?: Record<string, unknown>): Promise<unknown>;
  $post(p?: Record<string, unknown>): Promise<unknown>;
}
/** walks the client's path proxy: at(api, 'nodes', '=pve', 'qemu') is api.nodes.$('pve').qemu */
function at(root: unknown, ...parts: string[]): Seg {
  let o = root as Record<string, unknown>;
  for (const p of parts) o = (p.startsWith('=') ? (o.$ as (id: string) => unknown)(p.slice(1)) : o[p]) as Record<string, unknown>;
  return o as unknown as Seg;
}

let d: ProxmoxDouble;
let agent: Agent;
let api: unknown;

beforeAll(async () => {
  d = await startProxmoxDouble({ authFailDelayMs: 0, taskDurationMs: 5 });
  agent = new Agent({ connect: { ca: d.certPem } });
  const engine = new pm.ProxmoxEngine({
    host: d.host,
    port: d.port,
    tokenID: d.tokenId,
    tokenSecret: d.tokenSecret,
    fetch: (url, init) => undiciFetch(url, { ...(init as object), dispatcher: agent }),
  });
  api = pm.default(engine);
});
afterAll(async () => {
  await agent.close();
  await d.close();
});

async function wait(upid: string): Promise<Record<string, unknown>> {
  await d.settle();
  return (await at(api, 'nodes', '=pve', 'tasks', `=${upid}`, 'status').$get()) as Record<string, unknown>;
}

it('proxmox-api parses the double\'s answers (exact content type) and drives a VM through create and start', async () => {
  expect(await at(api, 'version').$get()).toMatchObject({ release: '9.1' });
  const pci = (await at(api, 'nodes', '=pve', 'hardware', 'pci').$get({ verbose: true })) as { id: string; class: string }[];
  expect(pci.filter((x) => x.class.startsWith('0x0200')).map((x) => x.id)).toEqual(['0000:01:00.0', '0000:02:00.0']);

  d.grant(d.tokenId, '/mapping', ['Mapping.Modify', 'Mapping.Use']);
  await at(api, 'cluster', 'mapping', 'pci').$post({ id: 'wan0', map: ['node=pve,path=0000:01:00.0,id=8086:125c,subsystem-id=8086:0000,iommugroup=13'] });

  const vmid = Number(await at(api, 'cluster', 'nextid').$get()); // a string on the wire
  const upid = (await at(api, 'nodes', '=pve', 'qemu').$post({ vmid, name: 'router', machine: 'q35', memory: '2048', onboot: true, hostpci0: 'mapping=wan0,pcie=1', net0: 'virtio,bridge=vmbr0' })) as string;
  expect(await wait(upid)).toMatchObject({ status: 'stopped', exitstatus: 'OK' });
  const startUpid = (await at(api, 'nodes', '=pve', 'qemu', `=${vmid}`, 'status', 'start').$post()) as string;
  expect(await wait(startUpid)).toMatchObject({ exitstatus: 'OK' });
  expect(await at(api, 'nodes', '=pve', 'qemu', `=${vmid}`, 'status', 'current').$get()).toMatchObject({ status: 'running', 'running-machine': 'pc-q35-10.1+pve1' });
});

it('proxmox-api surfaces the 400 and 500 errors with their bodies', async () => {
  const qemu = at(api, 'nodes', '=pve', 'qemu');
  await expect(qemu.$post({ vmid: 99 })).rejects.toThrow(/return Error 400 Parameter verification failed\.: .*value does not look like a valid VM ID/);
  await expect(qemu.$post({ vmid: 150, hostpci0: '0000:01:00.0' })).rejects.toThrow(/return Error 500 only root can set 'hostpci0' config for non-mapped devices/);
});
