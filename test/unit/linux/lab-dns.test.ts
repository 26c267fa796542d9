// The lab's DNS responder speaks just enough RFC 1035; check it against hand-made packets.
const dns = require('../../lab/dns-wire.js') as {
  buildQuery(id: number, name: string): Buffer;
  parseQuery(buf: Buffer): { id: number; flags: number; question?: { name: string; type: number; klass: number; raw: Buffer } } | undefined;
  buildResponse(query: NonNullable<ReturnType<typeof dns.parseQuery>>, rcode: number, addresses: string[]): Buffer;
  parseResponse(buf: Buffer): { id: number; rcode: number; addresses: string[] } | undefined;
};

describe('lab DNS wire format', () => {
  it('round-trips a query and an A answer', () => {
    const q = dns.parseQuery(dns.buildQuery(0x1234, 'Server.DualWAN.test'));
    expect(q).toMatchObject({ id: 0x1234, question: { name: 'server.dualwan.test', type: 1, klass: 1 } });
    const answer = dns.parseResponse(dns.buildResponse(q!, 0, ['203.0.113.10']));
    expect(answer).toEqual({ id: 0x1234, rcode: 0, addresses: ['203.0.113.10'] });
    expect(dns.parseResponse(dns.buildResponse(q!, 3, []))).toEqual({ id: 0x1234, rcode: 3, addresses: [] });
  });

  it('survives malformed packets', () => {
    expect(dns.parseQuery(Buffer.alloc(5))).toBeUndefined();
    const loop = Buffer.from(dns.buildQuery(1, 'a.test'));
    loop[12] = 0xc0;
    loop[13] = 12; // a name that points at itself
    expect(dns.parseQuery(loop)?.question).toBeUndefined();
    const truncated = dns.buildQuery(2, 'example.test').subarray(0, 16);
    expect(dns.parseQuery(truncated)?.question).toBeUndefined();
    expect(dns.parseResponse(Buffer.from([0, 1, 0x81, 0x80, 0, 0, 0, 5, 0, 0, 0, 0]))).toBeUndefined();
    expect(() => dns.buildQuery(3, `${'x'.repeat(64)}.test`)).toThrow();
  });
});
