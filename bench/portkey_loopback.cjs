'use strict';
// Preloaded with `node --require` before Portkey's gateway starts (bench/portkey_env.py).
// Portkey's start script calls `serve({ fetch, port })` without a hostname, so Node would listen on
// every interface; the benchmark keeps all its servers on loopback. A TCP listen that names no host
// gets BENCH_LISTEN_HOST (default 127.0.0.1); a listen that names a host, a path or a handle is
// left alone. Nothing of Portkey's code on disk is changed.
const net = require('node:net');

const HOST = process.env.BENCH_LISTEN_HOST || '127.0.0.1';
const originalListen = net.Server.prototype.listen;

function isPort(value) {
  return typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value));
}

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0];
  if (isPort(first)) {
    const second = args[1];
    if (second === undefined || second === null) {
      args[1] = HOST; // listen(port) or listen(port, undefined, callback)
    } else if (typeof second === 'function' || typeof second === 'number') {
      args.splice(1, 0, HOST); // listen(port, callback) or listen(port, backlog, ...)
    }
  } else if (
    first !== null &&
    typeof first === 'object' &&
    isPort(first.port) &&
    first.host == null &&
    first.path == null
  ) {
    args[0] = { ...first, host: HOST };
  }
  return originalListen.apply(this, args);
};
