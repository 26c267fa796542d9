'use strict';
/**
 * The little of the DNS wire format (RFC 1035 §4) the lab needs: one question, A records.
 * Shared by the lab's responder and its client. Every read is bounds-checked; anything odd is
 * reported as `undefined` so the responder can answer FORMERR instead of crashing.
 */

const TYPE_A = 1;
const CLASS_IN = 1;

function encodeName(name) {
  const labels = name.replace(/\.$/, '').split('.');
  const parts = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`bad DNS label in ${name}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Reads a name at `offset`, following compression pointers (at most 16 hops). */
function readName(buf, offset) {
  const labels = [];
  let pos = offset;
  let end;
  for (let hops = 0; hops < 16; hops++) {
    if (pos >= buf.length) return undefined;
    const len = buf[pos];
    if (len === 0) {
      return { name: labels.join('.').toLowerCase(), next: end ?? pos + 1 };
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) return undefined;
      if (end === undefined) end = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1];
      continue;
    }
    if (len > 63 || pos + 1 + len > buf.length) return undefined;
    labels.push(buf.toString('ascii', pos + 1, pos + 1 + len));
    pos += 1 + len;
    hops--; // plain labels are bounded by the buffer, only pointers count as hops
    if (labels.length > 127) return undefined;
  }
  return undefined;
}

function buildQuery(id, name) {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(TYPE_A, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(name), tail]);
}

function parseQuery(buf) {
  if (buf.length < 12) return undefined;
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  if (buf.readUInt16BE(4) !== 1) return { id, flags, question: undefined };
  const q = readName(buf, 12);
  if (!q || q.next + 4 > buf.length) return { id, flags, question: undefined };
  return {
    id,
    flags,
    question: { name: q.name, type: buf.readUInt16BE(q.next), klass: buf.readUInt16BE(q.next + 2), raw: buf.subarray(12, q.next + 4) },
  };
}

/** rcode 0 with `addresses`, 3 NXDOMAIN, 1 FORMERR. */
function buildResponse(query, rcode, addresses) {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  header.writeUInt16BE(0x8000 | 0x0400 | (query.flags & 0x0100) | (rcode & 0xf), 2); // QR AA RD rcode
  header.writeUInt16BE(query.question ? 1 : 0, 4);
  header.writeUInt16BE(addresses.length, 6);
  const answers = addresses.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((octet, i) => rr.writeUInt8(Number(octet), 12 + i));
    return rr;
  });
  return Buffer.concat([header, query.question ? query.question.raw : Buffer.alloc(0), ...answers]);
}

function parseResponse(buf) {
  if (buf.length < 12) return undefined;
  const id = buf.readUInt16BE(0);
  const rcode = buf.readUInt16BE(2) & 0xf;
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let pos = 12;
  for (let i = 0; i < qd; i++) {
    const q = readName(buf, pos);
    if (!q) return undefined;
    pos = q.next + 4;
  }
  const addresses = [];
  for (let i = 0; i < an && i < 64; i++) {
    const n = readName(buf, pos);
    if (!n || n.next + 10 > buf.length) return undefined;
    const type = buf.readUInt16BE(n.next);
    const rdlength = buf.readUInt16BE(n.next + 8);
    const rdata = n.next + 10;
    if (rdata + rdlength > buf.length) return undefined;
    if (type === TYPE_A && rdlength === 4) addresses.push(Array.from(buf.subarray(rdata, rdata + 4)).join('.'));
    pos = rdata + rdlength;
  }
  return { id, rcode, addresses };
}

module.exports = { TYPE_A, CLASS_IN, buildQuery, parseQuery, buildResponse, parseResponse };
