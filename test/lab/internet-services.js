'use strict';
/**
 * The "internet" of the lab, run inside the internet namespace:
 *   TCP and UDP `whoami` on <server>:80 — answers with the address it saw (an ISP's NAT address);
 *   TCP and UDP echo on <server>:7;
 *   a DNS responder on each resolver address, port 53, authoritative for the lab zone.
 * ICMP echo is answered by the kernel. One socket per address: Node's dgram cannot choose a
 * reply source (no IP_PKTINFO), and a reply from the wrong source is dropped by the ISP's NAT
 * (shared/research/linux-lab.md §5).
 *
 * Usage: node internet-services.js <config.json>. Writes `readyFile` once every socket listens,
 * exits after `maxLifetimeS` whatever happens, and on SIGTERM.
 */
const fs = require('node:fs');
const net = require('node:net');
const dgram = require('node:dgram');
const dns = require('./dns-wire.js');

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const servers = [];

function log(line) {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

function listenTcp(host, port, onConnection) {
  return new Promise((resolve, reject) => {
    const server = net.createServer(onConnection);
    server.on('error', reject);
    server.listen({ host, port }, () => resolve(server));
    servers.push(server);
  });
}

function bindUdp(host, port, onMessage) {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.on('error', reject);
    socket.on('message', (msg, rinfo) => onMessage(socket, msg, rinfo));
    socket.bind({ address: host, port }, () => resolve(socket));
    servers.push(socket);
  });
}

function answerDns(socket, msg, rinfo) {
  const query = dns.parseQuery(msg);
  if (!query) return; // not even a header: drop
  let reply;
  if (!query.question) {
    reply = dns.buildResponse(query, 1, []);
  } else {
    const known = Object.prototype.hasOwnProperty.call(config.zone, query.question.name) ? config.zone[query.question.name] : undefined;
    if (known === undefined) reply = dns.buildResponse(query, 3, []);
    else reply = dns.buildResponse(query, 0, query.question.type === dns.TYPE_A ? [known] : []);
  }
  socket.send(reply, rinfo.port, rinfo.address);
}

async function main() {
  const s = config.server;
  for (const host of [s, ...(config.stickyServer ? [config.stickyServer] : [])]) {
    await listenTcp(host, 80, (sock) => {
      sock.on('error', () => undefined);
      sock.end(`${sock.remoteAddress}\n`);
    });
  }
  // Long-lived connections: first line says which address the server saw, then everything is echoed.
  await listenTcp(s, 8080, (sock) => {
    sock.on('error', () => undefined);
    sock.write(`${sock.remoteAddress}\n`);
    sock.pipe(sock);
  });
  await listenTcp(s, 7, (sock) => {
    sock.on('error', () => undefined);
    sock.pipe(sock);
  });
  await bindUdp(s, 80, (socket, _msg, rinfo) => socket.send(`${rinfo.address}\n`, rinfo.port, rinfo.address));
  if (config.stickyServer) await bindUdp(config.stickyServer, 80, (socket, _msg, rinfo) => socket.send(`${rinfo.address}\n`, rinfo.port, rinfo.address));
  await bindUdp(s, 7, (socket, msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
  for (const resolver of config.dns) await bindUdp(resolver, 53, answerDns);
  fs.writeFileSync(config.readyFile, `${process.pid}\n`);
  log(`ready: server ${s}, dns ${config.dns.join(' ')}`);
}

const lifetime = setTimeout(() => {
  log(`lifetime of ${config.maxLifetimeS} s reached, exiting`);
  process.exit(0);
}, config.maxLifetimeS * 1000);
lifetime.unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
main().catch((error) => {
  log(`failed: ${error && error.stack ? error.stack : String(error)}`);
  process.exit(1);
});
// Keep the process alive until the lifetime ends even if every server closed.
setInterval(() => undefined, 60_000);
