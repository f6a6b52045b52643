// SPEC A14: channel binding data on the server side of a client's TLS connection, checked against OpenSSL's
// own command line tools (s_client's keying material exporter, x509 fingerprints) over real loopback TLS,
// and against the test client's independent client-side computation (test/support/scram-client.ts).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import tls from "node:tls";
import {
  CHANNEL_BINDING_TYPES, channelBindingData, channelBindingTypes, endPointHash, EXPORTER_LABEL, tlsServerEndPoint,
} from "../../../src/sasl/channel-binding.js";
import { testCertificate } from "../../support/certs.js";
import { run } from "../../support/proc.js";
import { clientChannelBinding } from "../../support/scram-client.js";

const derOf = (pem: string) => new X509Certificate(pem).raw;

/** What the server side saw on one connection, taken in its secureConnection handler. */
interface ServerView {
  protocol: string | null;
  exporter: Buffer | undefined;
  endPoint: Buffer | undefined;
  types: string[];
  /** Exported with no context at all (what `openssl s_client -keymatexport` does) and with an empty one. */
  noContext: Buffer;
  emptyContext: Buffer;
}

/**
 * A TLS server that records the first connection's ServerView and closes it, and one client run against
 * it; resolves with both (bounded: the client's own timeout, then the server's connection event).
 */
async function oneConnection<T>(
  serverOpts: tls.TlsOptions, client: (port: number) => Promise<T>,
): Promise<{ server: ServerView; client: T }> {
  const server = tls.createServer(serverOpts);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const seen = new Promise<ServerView>((resolve) => server.once("secureConnection", (s: tls.TLSSocket) => {
    resolve({
      protocol: s.getProtocol(),
      exporter: channelBindingData(s, "tls-exporter"),
      endPoint: channelBindingData(s, "tls-server-end-point"),
      types: channelBindingTypes(s),
      // no context argument at all (Node then tells OpenSSL use_context=0); @types/node insists on one
      noContext: Reflect.apply(s.exportKeyingMaterial, s, [32, EXPORTER_LABEL]) as Buffer,
      emptyContext: s.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)),
    });
    s.end(); // lets s_client (stdin never closed) finish
  }));
  try {
    const clientResult = await client(port);
    return { server: await seen, client: clientResult };
  } finally {
    server.close();
  }
}

/** `openssl s_client` with the RFC 9266 exporter; returns the keying material it printed. */
async function opensslExporter(port: number, version: "-tls1_3" | "-tls1_2"): Promise<Buffer> {
  const { stdout } = await run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, version,
    "-keymatexport", EXPORTER_LABEL, "-keymatexportlen", "32"], { timeoutMs: 15_000 });
  const hex = /Keying material: ([0-9A-F]+)/i.exec(stdout)?.[1];
  assert.ok(hex, `no keying material in s_client's output:\n${stdout}`);
  return Buffer.from(hex, "hex");
}

/** `openssl x509 -fingerprint -<hash>` of a PEM file: the hash of its DER. */
async function fingerprint(certFile: string, hash: string): Promise<Buffer> {
  const { stdout } = await run("openssl", ["x509", "-in", certFile, "-noout", "-fingerprint", `-${hash}`]);
  const hex = /Fingerprint=([0-9A-F:]+)/i.exec(stdout)?.[1];
  assert.ok(hex, `no fingerprint in: ${stdout}`);
  return Buffer.from(hex.replace(/:/g, ""), "hex");
}

/** A client handshake with node:tls that stays open until the server closes; returns the client socket's view. */
function nodeClient(port: number, opts: tls.ConnectionOptions = {}): Promise<{ exporter: Buffer; endPoint: Buffer }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, ...opts }, () => {
      resolve({ exporter: clientChannelBinding(s, "tls-exporter"), endPoint: clientChannelBinding(s, "tls-server-end-point") });
      s.on("end", () => s.destroy());
    });
    s.once("error", reject);
  });
}

describe("SPEC A14: channel binding data (server side)", () => {
  const cert = testCertificate();
  const tls13 = { cert: cert.cert, key: cert.key, minVersion: "TLSv1.3", maxVersion: "TLSv1.3" } as const;
  const tls12 = { cert: cert.cert, key: cert.key, minVersion: "TLSv1.2", maxVersion: "TLSv1.2" } as const;

  it("tls-exporter on TLS 1.3 equals the keying material `openssl s_client -keymatexport` computes (RFC 9266)", async () => {
    const { server, client } = await oneConnection(tls13, (port) => opensslExporter(port, "-tls1_3"));
    assert.equal(server.protocol, "TLSv1.3");
    assert.equal(server.exporter?.length, 32);
    assert.equal(server.exporter?.toString("hex"), client.toString("hex"));
    // RFC 8446 §7.5: in TLS 1.3 no context and an empty context export the same value
    assert.deepEqual(server.noContext, server.emptyContext);
    assert.deepEqual(server.types, [...CHANNEL_BINDING_TYPES]);
  });

  it("on TLS 1.2 tls-exporter is undefined and not offered; tls-server-end-point is", async () => {
    const { server, client } = await oneConnection(tls12, (port) => opensslExporter(port, "-tls1_2"));
    assert.equal(server.protocol, "TLSv1.2");
    assert.equal(server.exporter, undefined);
    assert.deepEqual(server.types, ["tls-server-end-point"]);
    assert.deepEqual(server.endPoint, await fingerprint(cert.certFile, "sha256"));
    // Why the module passes an explicit empty context: in TLS 1.2 (RFC 5705 §4) "no context", which is what
    // s_client exports, differs from the empty context RFC 9266 specifies.
    assert.deepEqual(client, server.noContext);
    assert.notDeepEqual(server.emptyContext, server.noContext);
  });

  it("tls-server-end-point is the SHA-256 of the served test certificate (ecdsa-with-SHA256), as `openssl x509 -fingerprint -sha256`", async () => {
    const { server } = await oneConnection(tls13, (port) => nodeClient(port));
    assert.deepEqual(server.endPoint, await fingerprint(cert.certFile, "sha256"));
    assert.equal(endPointHash(derOf(cert.cert)), "sha256");
  });

  it("the test client's own computation (client socket, peer certificate) agrees with the server's, both types", async () => {
    const { server, client } = await oneConnection(tls13, (port) => nodeClient(port));
    assert.deepEqual(client.exporter, server.exporter);
    assert.deepEqual(client.endPoint, server.endPoint);
  });

  describe("the hash follows the certificate's signature algorithm (RFC 5929 §4.1)", () => {
    let dir = "";
    before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), "mucmux-cb-")); });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** A self-signed certificate made by openssl; returns its PEM file and DER. */
    async function make(name: string, keyArgs: string[], signArgs: string[]): Promise<{ certFile: string; keyFile: string; der: Buffer }> {
      const certFile = path.join(dir, `${name}.pem`);
      const keyFile = path.join(dir, `${name}.key`);
      await run("openssl", ["req", "-x509", "-newkey", ...keyArgs, "-nodes", "-days", "1", "-subj", "/CN=localhost",
        ...signArgs, "-keyout", keyFile, "-out", certFile], { timeoutMs: 20_000 });
      return { certFile, keyFile, der: derOf(fs.readFileSync(certFile, "utf8")) };
    }
    const P256 = ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    const cases: { name: string; key: string[]; sign: string[]; expected: string }[] = [
      { name: "ecdsa-with-SHA384", key: P256, sign: ["-sha384"], expected: "sha384" },
      { name: "ecdsa-with-SHA512", key: P256, sign: ["-sha512"], expected: "sha512" },
      { name: "ecdsa-with-SHA1 (SHA-1 becomes SHA-256)", key: P256, sign: ["-sha1"], expected: "sha256" },
      { name: "RSASSA-PSS with SHA-384 (hash from its parameters)", key: ["rsa:2048"], sign: ["-sha384", "-sigopt", "rsa_padding_mode:pss"], expected: "sha384" },
    ];
    for (const c of cases) {
      it(`${c.name}: ${c.expected}, as \`openssl x509 -fingerprint -${c.expected}\``, async () => {
        const made = await make(c.name.split(" ")[0] as string, c.key, c.sign);
        assert.equal(endPointHash(made.der), c.expected);
        assert.deepEqual(tlsServerEndPoint(made.der), await fingerprint(made.certFile, c.expected));
      });
    }

    it("Ed25519 (no single hash function): undefined, and not offered on a connection that serves it", async () => {
      const made = await make("ed25519", ["ed25519"], []);
      assert.equal(tlsServerEndPoint(made.der), undefined);
      const served = { ...tls13, cert: fs.readFileSync(made.certFile), key: fs.readFileSync(made.keyFile) };
      const { server } = await oneConnection(served, (port) => new Promise<void>((resolve, reject) => {
        const s = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => { resolve(); s.on("end", () => s.destroy()); });
        s.once("error", reject);
      }));
      assert.equal(server.endPoint, undefined);
      assert.deepEqual(server.types, ["tls-exporter"]);
    });

    it("a served SHA-512 certificate: the server hashes the certificate it served, and the client agrees", async () => {
      const made = await make("served-sha512", P256, ["-sha512"]);
      const served = { ...tls13, cert: fs.readFileSync(made.certFile), key: fs.readFileSync(made.keyFile) };
      const { server, client } = await oneConnection(served, (port) => nodeClient(port));
      assert.deepEqual(server.endPoint, await fingerprint(made.certFile, "sha512"));
      assert.deepEqual(client.endPoint, server.endPoint);
    });
  });

  it("an unreadable certificate has no tls-server-end-point (no throw)", () => {
    const der = derOf(cert.cert);
    for (const bad of [Buffer.alloc(0), Buffer.from("3080", "hex"), der.subarray(0, 40), Buffer.from("0403010203", "hex")]) {
      assert.equal(tlsServerEndPoint(bad), undefined, bad.toString("hex"));
    }
  });
});
