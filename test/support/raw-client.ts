// A raw XMPP client over direct TLS for tests that must send exact bytes (bad input, odd flows).
import tls from "node:tls";

export class RawClient {
  text = "";
  /** What each read brought, in order (a TLS record is never split across reads): what left mucmux together. */
  reads: string[] = [];
  closed = false;
  private constructor(readonly socket: tls.TLSSocket) {
    socket.on("data", (d: Buffer) => {
      const s = d.toString("utf8");
      this.text += s;
      this.reads.push(s);
    });
    socket.on("close", () => { this.closed = true; });
    socket.on("error", () => {});
  }

  static connect(port: number, servername = "localhost"): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, servername });
      s.once("secureConnect", () => resolve(new RawClient(s)));
      s.once("error", reject);
    });
  }

  send(data: string | Buffer): void { this.socket.write(data); }

  /** Wait until the received text matches; returns the match. */
  async waitFor(re: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.text.match(re);
      if (m) return m;
      if (Date.now() > end) throw new Error(`timed out waiting for ${re}; received: ${this.text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > end) throw new Error("socket not closed in time");
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  open(domain = "localhost"): void {
    this.send(`<?xml version='1.0'?><stream:stream to='${domain}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`);
  }

  /** Open, authenticate with PLAIN and restart, up to the post-login features (where `<resume/>` or bind goes). */
  async authenticate(user: string, password: string, domain = "localhost"): Promise<void> {
    this.open(domain);
    await this.waitFor(/<mechanism>PLAIN<\/mechanism>/);
    const b64 = Buffer.from(`\0${user}\0${password}`).toString("base64");
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64}</auth>`);
    await this.waitFor(/<success/);
    this.text = "";
    this.open(domain);
    await this.waitFor(/<\/stream:features>/);
  }

  /** Stanzas in what was received since `text` was last reset (what a stream management `h` counts). */
  stanzas(): number {
    return (this.text.match(/<(message|presence|iq)[ >]/g) ?? []).length;
  }

  /** Open, authenticate with PLAIN, restart and bind; returns the bound JID. */
  async login(user: string, password: string, resource = "raw", domain = "localhost"): Promise<string> {
    await this.authenticate(user, password, domain);
    this.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    const m = await this.waitFor(/<jid>([^<]+)<\/jid>/);
    return m[1] as string;
  }

  close(): void { this.socket.destroy(); }
}
