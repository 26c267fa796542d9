/**
 * Smoke test of the Linux dual-WAN lab and of the SSH client against a real OpenSSH server:
 * build the lab, reach the router's sshd from the LAN with the host key pinned, read the router's
 * interfaces, show that the LAN cannot reach the internet before the router is configured, show
 * that each ISP NATs (two distinct upstream gateways), and tear down. Root only.
 */
import { connectSsh, HostKeyMismatchError, HostKeyUnknownError, type SshClient } from '../../src/providers/linux/ssh';
import { ipAddrShow, ipRuleAdd, ipRouteReplace, sysctlRead, parseSysctlOutput } from '../../src/providers/linux/commands';
import { ipv4Addresses, parseIpAddr } from '../../src/providers/linux/parse';
import { DualWanLab, listNetns } from '../lab/lab';
import { describeIfRoot, useLab } from '../lab/jest-lab';

describeIfRoot('Linux lab: namespaces, real sshd, isolation (root)', () => {
  const lab = useLab({ maxLifetimeS: 600 });
  let ssh: SshClient | undefined;

  afterAll(async () => {
    await ssh?.close();
  });

  const connect = () => {
    const target = lab().sshTarget();
    return connectSsh({ ...target, sock: lab().sshTransport(), readyTimeoutMs: 20_000 });
  };

  it('builds idempotently: a second up() keeps the same processes and addresses', () => {
    const l = lab();
    const first = JSON.parse(JSON.stringify(l.plan)) as unknown;
    const state = l.up();
    expect(state.plan).toEqual(first);
    expect(l.exists()).toBe(true);
    expect(state.namespaces.router).toBe(`dwlab-${l.id}-router`);
  }, 30_000);

  it('reaches the router sshd from the LAN with the pinned host key, and reads its interfaces', async () => {
    ssh = await connect();
    expect(ssh.hostKeyFingerprint).toBe(lab().sshTarget().hostKey);
    expect(ssh.trustedOnFirstUse).toBe(false);

    const res = await ssh.exec(ipAddrShow());
    expect(res.code).toBe(0);
    const links = parseIpAddr(res.stdout);
    const byName = new Map(links.map((l) => [l.ifname, l]));
    const p = lab().plan;
    expect(ipv4Addresses(byName.get('lan0')!)).toEqual([`${p.lan.near}/${p.lan.prefix}`]);
    expect(ipv4Addresses(byName.get('wan1')!)).toEqual([`${p.wans[0].near}/${p.wans[0].prefix}`]);
    expect(ipv4Addresses(byName.get('wan2')!)).toEqual([`${p.wans[1].near}/${p.wans[1].prefix}`]);
    for (const name of ['lan0', 'wan1', 'wan2']) expect(byName.get(name)!.flags).toContain('UP');

    const forwarding = parseSysctlOutput((await ssh.exec(sysctlRead(['net.ipv4.ip_forward']))).stdout);
    expect(forwarding.get('net.ipv4.ip_forward')).toBe('0');
  }, 30_000);

  it('reports exit codes, keeps hostile arguments intact and writes files over SFTP', async () => {
    const s = ssh!;
    const failed = await s.exec(['ip', 'link', 'show', 'dev', 'no-such-dev']);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/does not exist/);

    const hostile = [`it's`, '$(touch /tmp/pwned)', '`id`', 'a; rm -rf /', '"double"', 'new\nline', ' spaced ', '*', '', '\\'];
    const echoed = await s.exec(['printf', '%s\\0', ...hostile]);
    expect(echoed.code).toBe(0);
    expect(echoed.stdout.split('\0').slice(0, -1)).toEqual(hostile);

    const path = `${lab().dir}/written by test's writeFile.txt`;
    await s.writeFile(path, 'line 1\n$HOME stays literal\n', 0o640);
    expect(await s.readFile(path)).toBe('line 1\n$HOME stays literal\n');
    const mode = await s.exec(['stat', '-c', '%a', path]);
    expect(mode.stdout.trim()).toBe('640');
    expect(await s.readFile(`${lab().dir}/absent`)).toBeUndefined();

    const slow = await s.exec(['sleep', '30'], { timeoutMs: 1_000 });
    expect(slow.timedOut).toBe(true);
    expect(slow.code).toBeNull();
  }, 30_000);

  it('refuses a wrong pinned key and an unpinned one, naming both fingerprints', async () => {
    const target = lab().sshTarget();
    const wrong = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const mismatch = connectSsh({ ...target, hostKey: wrong, sock: lab().sshTransport() });
    await expect(mismatch).rejects.toBeInstanceOf(HostKeyMismatchError);
    await expect(mismatch).rejects.toThrow(target.hostKey);

    const unknown = connectSsh({ ...target, hostKey: undefined, sock: lab().sshTransport() });
    await expect(unknown).rejects.toBeInstanceOf(HostKeyUnknownError);
    await expect(unknown).rejects.toThrow(target.hostKey);

    const tofu = await connectSsh({ ...target, hostKey: undefined, trustOnFirstUse: true, sock: lab().sshTransport() });
    expect(tofu.trustedOnFirstUse).toBe(true);
    expect(tofu.hostKeyFingerprint).toBe(target.hostKey);
    await tofu.close();
  }, 30_000);

  it('isolates: the LAN cannot reach the internet while the router is unconfigured', () => {
    const l = lab();
    const p = l.plan;
    expect(l.ping('lan', p.lan.near)).toBe(true);
    expect(l.ping('lan', p.server, { waitS: 1 })).toBe(false);
    expect(l.ping('lan', p.wans[0].far, { waitS: 1 })).toBe(false);
    // Each ISP reaches the internet, and the internet sees the ISP's own NAT address.
    expect(l.client('isp1', ['tcp', p.server, '80'])).toMatchObject({ ok: true, reply: p.upstreams[0].near });
    expect(l.client('isp2', ['tcp', p.server, '80'])).toMatchObject({ ok: true, reply: p.upstreams[1].near });
  }, 30_000);

  it('gives the router two NATing upstream gateways (per-ISP table and rule, set through SSH)', async () => {
    const s = ssh!;
    const p = lab().plan;
    const wans = [
      { dev: 'wan1', addr: p.wans[0].near, gw: p.wans[0].far, table: 101, nat: p.upstreams[0].near, dns: p.dns[0] },
      { dev: 'wan2', addr: p.wans[1].near, gw: p.wans[1].far, table: 102, nat: p.upstreams[1].near, dns: p.dns[1] },
    ];
    for (const w of wans) {
      expect((await s.exec(ipRouteReplace({ dst: 'default', via: w.gw, dev: w.dev, table: w.table }))).code).toBe(0);
      expect((await s.exec(ipRuleAdd({ priority: 1000 + w.table, from: w.addr, table: w.table }))).code).toBe(0);
    }
    for (const w of wans) {
      // The lab client runs on the router through SSH, bound to one WAN address; the source picks the ISP.
      const whoami = await s.exec([process.execPath, `${__dirname}/../lab/lab-client.js`, 'udp', p.server, '80', '--bind', w.addr], { timeoutMs: 10_000 });
      expect(JSON.parse(whoami.stdout)).toMatchObject({ ok: true, reply: w.nat });
      const dns = await s.exec([process.execPath, `${__dirname}/../lab/lab-client.js`, 'dns', w.dns, 'server.dualwan.test', '--bind', w.addr], { timeoutMs: 10_000 });
      expect(JSON.parse(dns.stdout)).toMatchObject({ ok: true, addresses: [p.server] });
    }
    // Still no forwarding: the LAN stays cut off.
    expect(lab().ping('lan', p.server, { waitS: 1 })).toBe(false);
  }, 30_000);

  it('tears down completely, and a second teardown is harmless', async () => {
    await ssh?.close();
    ssh = undefined;
    const l = lab();
    l.down();
    l.down();
    const left = listNetns().filter((n) => n.startsWith(l.prefix));
    expect(left).toEqual([]);
    expect(new DualWanLab({ id: l.id }).exists()).toBe(false);
  }, 30_000);
});
