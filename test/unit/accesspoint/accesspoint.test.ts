import { evaluateAccessPoint, parsePing, runAccessPointChecks, type LanObservations, type LanProbe } from '../../../src/accesspoint/checks';
import { encodeDiscover, parseOffer, type DhcpOffer } from '../../../src/accesspoint/dhcp';
import { accessPointSteps, apAddressProblems, renderAccessPointSteps } from '../../../src/accesspoint/steps';
import type { DesiredState } from '../../../src/core/desired';
import { playbookState } from '../bootstrap/seed-fixtures';

const state = (model?: string, address = '192.168.10.2'): Pick<DesiredState, 'lan' | 'accessPoint'> => {
  const s = playbookState();
  return { lan: s.lan, accessPoint: { vendor: 'tp-link', address, ...(model ? { model } : {}) } };
};

const ROUTER_OFFER: DhcpOffer = { server: '192.168.10.1', offered: '192.168.10.100', router: '192.168.10.1', subnetMask: '255.255.255.0', dns: ['192.168.10.1'] };
const TPLINK_OFFER: DhcpOffer = { server: '192.168.10.2', offered: '192.168.0.100', router: '192.168.0.1', subnetMask: '255.255.255.0', dns: ['192.168.0.1'] };
const good: LanObservations = { apAnswers: true, dhcpOffers: [ROUTER_OFFER], hops: ['192.168.10.1', '192.168.1.1', '100.64.0.1'], outTarget: '1.1.1.1' };

describe('access-point steps', () => {
  it('a model with Operation Mode gets that method, with the real addresses filled in', () => {
    const s = accessPointSteps(state('Archer C6'));
    expect(s.method).toBe('operation-mode');
    const text = renderAccessPointSteps(s);
    expect(text).toContain('Static: 192.168.10.2, subnet mask 255.255.255.0, gateway 192.168.10.1, DNS 192.168.10.1');
    expect(text).toContain("outside the router's DHCP pool 192.168.10.100–192.168.10.249");
    expect(text).toContain('DHCP Server');
    expect(text).not.toContain('The manual method');
  });

  it('the TL-WR840N (no Operation Mode, TP-Link FAQ 2420) gets the manual method: DHCP off, static address, LAN port', () => {
    const s = accessPointSteps(state('TL-WR840N v6'));
    expect(s.method).toBe('manual');
    const text = renderAccessPointSteps(s);
    expect(text).toMatch(/switch the DHCP server off/);
    expect(text).toContain('set the IP address to 192.168.10.2 and the subnet mask to 255.255.255.0');
    expect(text).toContain("into one of the TL-WR840N v6's LAN ports (1–4), not its WAN/Internet port");
    expect(text).toContain('FAQ 2420');
  });

  it('an unknown model gets both ways, and the answer to "does it have Operation Mode" picks one', () => {
    expect(accessPointSteps(state()).method).toBe('ask');
    expect(accessPointSteps(state()).sections.map((x) => x.title)).toEqual(['Before you start', 'If its web UI has "Operation Mode": switch to Access Point', 'If it has no "Operation Mode": the manual method', 'Afterwards']);
    expect(accessPointSteps(state(), { hasOperationMode: false }).method).toBe('manual');
  });

  it('flags an address inside the DHCP pool, outside the LAN, or the router\'s own', () => {
    expect(apAddressProblems(state(undefined, '192.168.10.150')).map((p) => p.code)).toEqual(['AP_IN_DHCP_POOL']);
    expect(apAddressProblems(state(undefined, '192.168.0.1')).map((p) => p.code)).toEqual(['AP_OUTSIDE_LAN']);
    expect(apAddressProblems(state(undefined, '192.168.10.1')).map((p) => p.code)).toEqual(['AP_IS_ROUTER']);
    expect(apAddressProblems(state())).toEqual([]);
  });
});

describe('access-point checks on recorded observations', () => {
  it('all pass on a LAN with the AP bridged and the router alone serving DHCP', () => {
    expect(evaluateAccessPoint(state('Archer C6'), good).map((r) => [r.id, r.status])).toEqual([
      ['ap-address', 'pass'],
      ['single-dhcp', 'pass'],
      ['no-double-nat', 'pass'],
    ]);
  });

  it('a second DHCP server fails and names the device and the switch to turn off', () => {
    const r = evaluateAccessPoint(state('Archer C6'), { ...good, dhcpOffers: [ROUTER_OFFER, TPLINK_OFFER] }).find((x) => x.id === 'single-dhcp')!;
    expect(r.status).toBe('fail');
    expect(r.message).toBe(
      '2 DHCP servers answer on the LAN: 192.168.10.1 (offers 192.168.10.100 with gateway 192.168.10.1); 192.168.10.2 (offers 192.168.0.100 with gateway 192.168.0.1, outside the LAN 192.168.10.0/24). Only the router (192.168.10.1) may.',
    );
    expect(r.change).toMatch(/^Switch off the DHCP server of the device at 192\.168\.10\.2 — that is the Archer C6: DHCP → DHCP Settings → Disable/);
  });

  it('double NAT fails: the first hop is the TP-Link, the router second', () => {
    const r = evaluateAccessPoint(state('Archer C6'), { ...good, hops: ['192.168.0.1', '192.168.10.1', '192.168.1.1'] }).find((x) => x.id === 'no-double-nat')!;
    expect(r.status).toBe('fail');
    expect(r.message).toBe('Traffic to 1.1.1.1 passes 192.168.0.1 before the router 192.168.10.1: a second router translates addresses on the way out (double NAT).');
    expect(r.change).toMatch(/Switch it to Access Point mode/);
  });

  it('an AP that does not answer fails with what to set; missing DHCP fails; unavailable probes are skipped with the reason', () => {
    const res = evaluateAccessPoint(state('Archer C6'), { apAnswers: false, dhcpOffers: [], hops: { error: 'ping: socket: Operation not permitted' }, outTarget: '1.1.1.1' });
    expect(res.map((r) => r.status)).toEqual(['fail', 'fail', 'skipped']);
    expect(res[0]!.change).toMatch(/static LAN address 192\.168\.10\.2/);
    expect(evaluateAccessPoint(state(), { ...good, dhcpOffers: { error: 'listening on UDP port 68 needs root (or CAP_NET_BIND_SERVICE)' } })[1]).toMatchObject({ status: 'skipped', change: expect.stringMatching(/as root/) });
  });

  it('observes through a probe: AP ping, offers, hops by TTL until the target answers', async () => {
    const asked: string[] = [];
    const probe: LanProbe = {
      async ping(a, ttl) {
        asked.push(`${a}/${ttl ?? '-'}`);
        if (!ttl) return { reply: a === '192.168.10.2' };
        return ttl === 1 ? { reply: false, exceededFrom: '192.168.10.1' } : ttl === 2 ? { reply: false, exceededFrom: '192.168.1.1' } : { reply: true };
      },
      dhcpOffers: async () => [ROUTER_OFFER],
    };
    const res = await runAccessPointChecks(state(), probe, { outTarget: '198.51.100.1', maxHops: 5 });
    expect(res.every((r) => r.status === 'pass')).toBe(true);
    expect(asked).toEqual(['192.168.10.2/-', '198.51.100.1/1', '198.51.100.1/2', '198.51.100.1/3']);
  });
});

describe('wire formats', () => {
  it('reads iputils and FreeBSD ping output', () => {
    expect(parsePing('PING 1.1.1.1 (1.1.1.1) 56(84) bytes of data.\nFrom 192.168.0.1 icmp_seq=1 Time to live exceeded\n', '1.1.1.1')).toEqual({ reply: false, exceededFrom: '192.168.0.1' });
    expect(parsePing('64 bytes from 192.168.10.2: icmp_seq=1 ttl=64 time=0.31 ms\n', '192.168.10.2')).toEqual({ reply: true });
    expect(parsePing('PING 1.1.1.1 (1.1.1.1): 56 data bytes\n36 bytes from 192.168.10.1: Time to live exceeded\n', '1.1.1.1')).toEqual({ reply: false, exceededFrom: '192.168.10.1' });
    expect(parsePing('1 packets transmitted, 0 received, 100% packet loss', '192.168.10.2')).toEqual({ reply: false });
  });

  it('builds a DHCPDISCOVER and reads an OFFER for the same transaction only', () => {
    const mac = Buffer.from([2, 1, 2, 3, 4, 5]);
    const d = encodeDiscover(0xdeadbeef, mac);
    expect([d[0], d.readUInt32BE(4), d.readUInt16BE(10), d.subarray(28, 34).equals(mac), d[240], d[242]]).toEqual([1, 0xdeadbeef, 0x8000, true, 53, 1]);
    const offer = Buffer.from(d);
    offer[0] = 2;
    Buffer.from([192, 168, 10, 100]).copy(offer, 16);
    const opts = Buffer.from([53, 1, 2, 54, 4, 192, 168, 10, 1, 3, 4, 192, 168, 10, 1, 1, 4, 255, 255, 255, 0, 6, 8, 192, 168, 10, 1, 9, 9, 9, 9, 255]);
    const packet = Buffer.concat([offer.subarray(0, 240), opts]);
    expect(parseOffer(packet, 0xdeadbeef)).toEqual({ server: '192.168.10.1', offered: '192.168.10.100', router: '192.168.10.1', subnetMask: '255.255.255.0', dns: ['192.168.10.1', '9.9.9.9'] });
    expect(parseOffer(packet, 0x12345678)).toBeUndefined();
    expect(parseOffer(d, 0xdeadbeef)).toBeUndefined(); // a request, not an offer
  });
});
