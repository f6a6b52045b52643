// generateSelfSigned: a certificate that node:crypto parses, verifies and uses in a real handshake.
import { describe, it } from "node:test";
import { strict as assert } from "node:assert";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { createSecureContext } from "node:tls";
import { generateSelfSigned } from "../../../src/net/tls/index.js";
import { echo, sniEchoServer, tlsClient } from "./helpers.js";

describe("generateSelfSigned", () => {
  const names = ["chat.example.test", "example.test", "*.muc.example.test"];
  const { cert, key } = generateSelfSigned({ names, days: 30 });
  const x509 = new X509Certificate(cert);

  it("returns PEM", () => {
    assert.match(cert, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{1,64}\n)+-----END CERTIFICATE-----\n$/);
    assert.match(key, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(createPrivateKey(key).asymmetricKeyDetails?.namedCurve, "prime256v1");
  });

  it("is issued by and to the first name, with every name as a DNS SAN", () => {
    assert.equal(x509.subject, "CN=chat.example.test");
    assert.equal(x509.issuer, "CN=chat.example.test");
    assert.equal(x509.subjectAltName, "DNS:chat.example.test, DNS:example.test, DNS:*.muc.example.test");
    assert.equal(x509.checkHost("room.muc.example.test"), "*.muc.example.test");
    assert.equal(x509.checkHost("other.test"), undefined);
  });

  it("matches its key and verifies with its own public key", () => {
    assert.ok(x509.checkPrivateKey(createPrivateKey(key)));
    assert.ok(x509.verify(x509.publicKey));
    const other = new X509Certificate(generateSelfSigned({ names: ["x.test"] }).cert);
    assert.equal(x509.verify(other.publicKey), false);
    assert.equal(x509.checkPrivateKey(createPrivateKey(generateSelfSigned({ names: ["x.test"] }).key)), false);
  });

  it("is valid from an hour ago for the given number of days", () => {
    const from = Date.parse(x509.validFrom);
    const to = Date.parse(x509.validTo);
    const now = Date.now();
    assert.ok(Math.abs(from - (now - 3600_000)) < 5000, `validFrom ${x509.validFrom}`);
    assert.ok(Math.abs(to - (now + 30 * 86400_000)) < 5000, `validTo ${x509.validTo}`);
    const defaultDays = new X509Certificate(generateSelfSigned({ names: ["x.test"] }).cert);
    assert.ok(Math.abs(Date.parse(defaultDays.validTo) - (now + 365 * 86400_000)) < 5000);
  });

  it("is a CA certificate with a positive random serial", () => {
    assert.equal(x509.ca, true);
    assert.match(x509.serialNumber, /^[4-7][0-9A-F]{31}$/);
    assert.notEqual(x509.serialNumber, new X509Certificate(generateSelfSigned({ names }).cert).serialNumber);
  });

  it("serves a TLS handshake that verifies against it as the only CA", async () => {
    const context = createSecureContext({ cert, key });
    const server = await sniEchoServer(() => context);
    try {
      const socket = await tlsClient(server.port, cert, "example.test");
      assert.equal(socket.authorized, true);
      assert.equal(await echo(socket, "hello"), "hello");
      socket.destroy();
      await assert.rejects(tlsClient(server.port, cert, "other.test"), /does not match certificate's altnames/);
      const stranger = generateSelfSigned({ names: ["example.test"] }).cert;
      await assert.rejects(tlsClient(server.port, stranger, "example.test"), /self[- ]signed certificate/);
    } finally {
      await server.close();
    }
  });

  it("rejects bad input", () => {
    assert.throws(() => generateSelfSigned({ names: [] }), /at least one name/);
    assert.throws(() => generateSelfSigned({ names: ["bad name"] }), /'bad name' is not a DNS name/);
    assert.throws(() => generateSelfSigned({ names: ["ok.test"], days: 0 }), /days must be a positive integer/);
  });
});
