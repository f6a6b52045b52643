// Preloaded into mucmux children (`MUCMUX_BENCH_NODE_ARGS="--import ./bench/tools/tls-nodelay.mjs"`): every TLS socket
// that node:tls connects or accepts gets TCP_NODELAY, as mucmux's c2s listener and upstream connections have it.
// An experiment on the internal link of several replicas (src/cluster/internal.ts), whose sockets keep Nagle's
// algorithm: does it show in cluster-hop's latency? mucmux's code is unchanged.
import tls from "node:tls";

const connect = tls.connect;
tls.connect = function (...args) {
  const s = connect.apply(this, args);
  s.setNoDelay(true);
  return s;
};
const createServer = tls.createServer;
tls.createServer = function (options, listener) {
  if (typeof options === "function") return createServer.call(this, { noDelay: true }, options);
  return createServer.call(this, { ...options, noDelay: true }, listener);
};
