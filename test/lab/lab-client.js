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
 *   node lab-client.js udpseries <host> <port> [--interval MS] [--duration MS] [--wait MS]
 *        a new UDP socket (so a new conntrack entry and a new route decision) every interval; the
 *        whoami reply of each, or none. Ends at --duration or on SIGTERM, printing every probe.
 *   node lab-client.js longtcp <host> <port> [--want ADDR] [--interval MS] [--duration MS]
 *        one long-lived TCP connection (to the whoami-echo service, which first names the address
 *        it saw; --want retries until the connection leaves through that ISP), one line every
 *        interval; reports echoes, the longest stall and how it ended. Ends at --duration or SIGTERM.
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
    case 'udpseries': {
      clearTimeout(deadline);
      const interval = Number(opt('interval', '20'));
      const duration = Number(opt('duration', '10000'));
      const wait = Number(opt('wait', '1000'));
      const start = Date.now();
      const via = [];
      const probes = [];
      const open = new Set();
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        for (const sock of open) sock.close();
        // A probe still waiting for its answer when we stop is not a lost one: leave it out.
        const settled = probes.filter(([t, rtt]) => rtt >= 0 || Date.now() - start - t >= wait);
        process.stdout.write(`${JSON.stringify({ ok: true, start, interval, via, probes: settled })}\n`);
        process.exit(0);
      };
      process.on('SIGTERM', finish);
      process.on('SIGINT', finish);
      const fire = () => {
        const entry = [Date.now() - start, -1, -1];
        probes.push(entry);
        const sock = dgram.createSocket('udp4');
        open.add(sock);
        const close = () => {
          if (open.delete(sock)) sock.close();
        };
        const t = setTimeout(close, wait);
        sock.on('error', () => {
          clearTimeout(t);
          close();
        });
        sock.on('message', (msg) => {
          const who = msg.toString('utf8').trim();
          let i = via.indexOf(who);
          if (i < 0) i = via.push(who) - 1;
          entry[1] = Date.now() - start - entry[0];
          entry[2] = i;
          clearTimeout(t);
          close();
        });
        sock.send('?', Number(b), a);
      };
      const timer = setInterval(() => {
        if (Date.now() - start >= duration) {
          clearInterval(timer);
          setTimeout(finish, wait);
          return;
        }
        fire();
      }, interval);
      return undefined;
    }
    case 'longtcp': {
      clearTimeout(deadline);
      const want = opt('want', undefined);
      const interval = Number(opt('interval', '100'));
      const duration = Number(opt('duration', '30000'));
      const result = { ok: false, via: null, attempts: 0, start: 0, sent: 0, echoed: 0, lastEchoAt: 0, maxGapMs: 0, error: null, errorAt: 0, closedAt: 0 };
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        result.ok = result.via !== null && result.error === null && result.closedAt === 0;
        if (result.ok) result.maxGapMs = Math.max(result.maxGapMs, Date.now() - result.lastEchoAt);
        process.stdout.write(`${JSON.stringify(result)}\n`);
        process.exit(0);
      };
      process.on('SIGTERM', finish);
      process.on('SIGINT', finish);
      setTimeout(finish, duration);
      const connect = () =>
        new Promise((resolve) => {
          const sock = net.connect({ host: a, port: Number(b) });
          sock.setEncoding('utf8');
          let first = '';
          const onData = (chunk) => {
            first += chunk;
            const nl = first.indexOf('\n');
            if (nl < 0) return;
            sock.removeListener('data', onData);
            resolve({ sock, who: first.slice(0, nl) });
          };
          sock.on('data', onData);
          sock.on('error', () => resolve({ sock, who: null }));
          setTimeout(() => resolve({ sock, who: null }), 2000);
        });
      let conn;
      for (let i = 0; i < 60; i++) {
        result.attempts = i + 1;
        conn = await connect();
        if (conn.who !== null && (want === undefined || conn.who === want)) break;
        conn.sock.destroy();
        conn = undefined;
      }
      if (!conn) {
        result.error = 'no connection through the wanted ISP';
        return finish();
      }
      result.via = conn.who;
      result.start = Date.now();
      result.lastEchoAt = result.start;
      const sock = conn.sock;
      sock.on('data', (chunk) => {
        const lines = chunk.split('\n').length - 1;
        if (lines <= 0) return;
        const now = Date.now();
        result.maxGapMs = Math.max(result.maxGapMs, now - result.lastEchoAt);
        result.lastEchoAt = now;
        result.echoed += lines;
      });
      sock.on('error', (error) => {
        if (result.error === null) {
          result.error = error.code || error.message;
          result.errorAt = Date.now();
        }
      });
      sock.on('close', () => {
        result.closedAt = Date.now();
      });
      const tick = setInterval(() => {
        if (sock.destroyed) return clearInterval(tick);
        result.sent += 1;
        sock.write(`line ${result.sent}\n`);
      }, interval);
      return undefined;
    }
    default:
      return done(false, { error: `unknown mode ${mode}` });
  }
}

main().catch((error) => done(false, { error: String(error) }));
