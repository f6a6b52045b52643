// The floor a relay cannot beat: a TLS-terminating byte pipe with no XML at all. It accepts direct TLS (same
// certificate, same TLS versions and suites as mucmux's defaults) and pipes the decrypted bytes, unchanged, to a
// plain TCP upstream and back. Used as the comparison column of the relay-saturation scenario.
// `node bench/lib/tls-pipe.mjs CERT KEY UPSTREAM_PORT` prints `port=N` and serves until SIGTERM.
import fs from "node:fs";
import net from "node:net";
import tls from "node:tls";

const [certFile, keyFile, upstreamPort] = process.argv.slice(2);
if (!certFile || !keyFile || !upstreamPort) throw new Error("usage: tls-pipe.mjs CERT KEY UPSTREAM_PORT");
const server = tls.createServer(
  { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), minVersion: "TLSv1.2", ALPNProtocols: ["xmpp-client"] },
  (client) => {
    client.setNoDelay(true);
    const up = net.connect({ host: "127.0.0.1", port: Number(upstreamPort), noDelay: true });
    client.pipe(up);
    up.pipe(client);
    const done = () => { client.destroy(); up.destroy(); };
    client.on("error", done).on("close", done);
    up.on("error", done).on("close", done);
  },
);
server.listen(0, "127.0.0.1", () => process.stdout.write(`port=${server.address().port}\n`));
process.on("SIGTERM", () => process.exit(0));
