'use strict';
// The tests' network rule, enforced: in the machine's own network namespace a test process may
// open TCP connections and send UDP datagrams to loopback only. Everything else (a LAN address
// from a playbook, a public resolver…) is refused as if the peer were down, and logged; the jest
// global teardown fails the run when the log is not empty.
//
// Loaded in every jest worker (jest.config.js setupFiles) and, through NODE_OPTIONS, in the
// binaries the end-to-end tests start (test/helpers/net-guard-env.ts). A process inside a
// network namespace a test created (the Linux lab) is left alone: those namespaces have no link
// to the machine's own, so nothing they send can leave it.
const fs = require('node:fs');
const net = require('node:net');
const dgram = require('node:dgram');

const MARK = Symbol.for('dualwan.test.netGuard');

function inMachineNamespace() {
  try {
    return fs.readlinkSync('/proc/self/ns/net') === fs.readlinkSync('/proc/1/ns/net');
  } catch {
    return true;
  }
}

function isLoopback(host) {
  if (host === undefined || host === null || host === '' || host === 'localhost') return true;
  const h = String(host).replace(/^\[|\]$/g, '').toLowerCase();
  return /^127\./.test(h) || h === '::1' || /^::ffff:127\./.test(h) || h === '0:0:0:0:0:0:0:1';
}

function record(kind, host, port) {
  const line = JSON.stringify({ kind, host: String(host), port: port === undefined ? null : Number(port), pid: process.pid, argv: process.argv.slice(1, 4).join(' '), stack: new Error().stack.split('\n').slice(3, 9).join('\n') });
  const file = process.env.DUALWAN_NET_GUARD_LOG;
  if (file) {
    try {
      fs.appendFileSync(file, `${line}\n`);
    } catch {
      // the log directory is gone: the run is over
    }
  }
}

function refusal(host, port) {
  const e = new Error(`test network guard: refused a connection to ${host}:${port} (tests may reach loopback only)`);
  e.code = 'ECONNREFUSED';
  return e;
}

/** Host and port of the arguments net.Socket#connect accepts (options, [port, host], path, normalized array). */
function target(args) {
  let a = args;
  if (Array.isArray(a[0])) a = a[0];
  const first = a[0];
  if (first && typeof first === 'object') {
    if (first.path !== undefined) return undefined;
    return { host: first.host, port: first.port };
  }
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) return { host: typeof a[1] === 'string' ? a[1] : undefined, port: first };
  return undefined; // a unix socket path
}

function install() {
  if (global[MARK] || !inMachineNamespace()) return;
  global[MARK] = true;

  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function guardedConnect(...args) {
    const t = target(args);
    if (t && !isLoopback(t.host)) {
      record('tcp', t.host, t.port);
      const err = refusal(t.host, t.port);
      process.nextTick(() => this.destroy(err));
      return this;
    }
    return connect.apply(this, args);
  };

  const send = dgram.Socket.prototype.send;
  dgram.Socket.prototype.send = function guardedSend(...args) {
    // send(msg[, offset, length][, port][, address][, callback]): the address is the last string.
    const strings = args.filter((x, i) => i > 0 && typeof x === 'string');
    const address = strings[strings.length - 1];
    const port = args.find((x, i) => i > 0 && typeof x === 'number');
    if (address !== undefined && !isLoopback(address)) {
      record('udp', address, port);
      const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
      const err = refusal(address, port);
      process.nextTick(() => (cb ? cb(err) : this.emit('error', err)));
      return;
    }
    return send.apply(this, args);
  };

  const dconnect = dgram.Socket.prototype.connect;
  dgram.Socket.prototype.connect = function guardedUdpConnect(port, address, cb) {
    if (typeof address === 'string' && !isLoopback(address)) {
      record('udp', address, port);
      const err = refusal(address, port);
      process.nextTick(() => (typeof cb === 'function' ? cb(err) : this.emit('error', err)));
      return;
    }
    return dconnect.call(this, port, address, cb);
  };
}

install();

module.exports = { isLoopback };
