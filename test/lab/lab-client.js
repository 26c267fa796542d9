'use strict';
/**
 * Client side of the lab services, run inside a namespace with `ip netns exec`. Prints one JSON
 * line and exits 0 on success, 1 on failure; every mode has a deadline (--timeout, ms).
 *
 *   node lab-client.js tcp   <host> <port> [--send TEXT] [--bind ADDR]   first line of the reply
 *   node lab-client.js udp   <host> <port> [--send TEXT] [--bind ADDR]   the reply datagram
 *   node lab-client.js dns   <server> <name> [--bind ADDR]               A records or the rcode
 *   node lab-client.js flows <host> <count>                               tally of whoami answers
 *   node lab-client.js pipe  <host> <port>                                stdin/stdout <-> TCP (ssh transport)
 */
const net = require('node:net');
const dgram = require('node:dgram');
const { randomInt } = require('node:crypto');
const dnsWire = require('./dns-wire.js');

const [mode, a, b, ...rest] = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 && rest[i + 1] !== undefined ? rest[i + 1] : fallback;
};
const timeoutMs = Number(opt('timeout', '3000'));

function done(ok, result) {
  process.stdout.write(`${JSON.stringify({ ok, ...result })}\n`);
  process.exit(ok ? 0 : 1);
}
const deadline = setTimeout(() => done(false, { error: `timeout after ${timeoutMs} ms` }), timeoutMs);

function tcpOnce(host, port, send, bind) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port, localAddress: bind });
    let data = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => (send === undefined ? undefined : sock.write(send)));
    sock.on('data', (chunk) => {
      data += chunk;
      if (send !== undefined && data.length >= send.length) sock.end();
    });
    sock.on('error', (error) => resolve({ error: error.code || error.message }));
    sock.on('close', () => resolve({ reply: data.split('\n')[0] }));
  });
}

function udpOnce(host, port, payload, bind) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', (error) => resolve({ error: error.code || error.message }));
    sock.on('message', (msg) => {
      sock.close();
      resolve({ reply: msg });
    });
    const send = () => sock.send(payload, Number(port), host);
    if (bind) sock.bind({ address: bind }, send);
    else send();
  });
}

async function main() {
  switch (mode) {
    case 'tcp': {
      const r = await tcpOnce(a, Number(b), opt('send', undefined), opt('bind', undefined));
      return done(r.error === undefined, r);
    }
    case 'udp': {
      const r = await udpOnce(a, b, Buffer.from(opt('send', 'ping')), opt('bind', undefined));
      return done(r.error === undefined, r.error ? r : { reply: r.reply.toString('utf8').trim() });
    }
    case 'dns': {
      const id = randomInt(0, 65536);
      const r = await udpOnce(a, 53, dnsWire.buildQuery(id, b), opt('bind', undefined));
      if (r.error) return done(false, r);
      const parsed = dnsWire.parseResponse(r.reply);
      if (!parsed || parsed.id !== id) return done(false, { error: 'malformed or mismatched DNS reply' });
      return done(parsed.rcode === 0, { rcode: parsed.rcode, addresses: parsed.addresses });
    }
    case 'flows': {
      const count = Math.min(Number(b), 5000);
      const tally = {};
      let failed = 0;
      for (let i = 0; i < count; i++) {
        const r = await tcpOnce(a, 80, undefined, undefined);
        if (r.error || !r.reply) failed++;
        else tally[r.reply] = (tally[r.reply] || 0) + 1;
      }
      return done(failed === 0, { tally, failed });
    }
    case 'pipe': {
      clearTimeout(deadline);
      const sock = net.connect({ host: a, port: Number(b) });
      const giveUp = setTimeout(() => sock.destroy(new Error('connect timeout')), timeoutMs);
      sock.on('connect', () => clearTimeout(giveUp));
      process.stdin.pipe(sock);
      sock.pipe(process.stdout);
      sock.on('error', (error) => {
        process.stderr.write(`pipe: ${error.message}\n`);
        process.exit(1);
      });
      sock.on('close', () => process.exit(0));
      process.stdin.on('end', () => sock.end());
      return undefined;
    }
    default:
      return done(false, { error: `unknown mode ${mode}` });
  }
}

main().catch((error) => done(false, { error: String(error) }));
