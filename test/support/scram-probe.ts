// A minimal SCRAM client over plain TCP (servers started with tls: false) that reports what the server said in
// its server-first message: the salt and the iteration count it uses for an account. With a password it finishes
// the login and checks the server's signature; without one it aborts after the server-first message.
// Its own RFC 5802 arithmetic, independent of src/.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import net from "node:net";

export type ProbeMechanism = "SCRAM-SHA-1" | "SCRAM-SHA-256" | "SCRAM-SHA-512";

export interface ProbeResult {
  /** Mechanisms the server offered. */
  offered: string[];
  salt: Buffer;
  iterations: number;
  /** With a password: the server said success and its signature was right. */
  success?: boolean;
}

const ALGO: Record<ProbeMechanism, "sha1" | "sha256" | "sha512"> = { "SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512" };

export async function scramProbe(port: number, domain: string, mech: ProbeMechanism, user: string, password?: string): Promise<ProbeResult> {
  const sock = net.connect(port, "127.0.0.1");
  let text = "";
  let waiter: (() => void) | undefined;
  let failed: Error | undefined;
  sock.on("data", (d: Buffer) => { text += d.toString("utf8"); waiter?.(); });
  sock.on("error", (e) => { failed = e; waiter?.(); });
  sock.on("close", () => { failed ??= new Error(`server closed the stream; received: ${text.slice(-500)}`); waiter?.(); });
  const next = async (re: RegExp): Promise<RegExpExecArray> => {
    const deadline = setTimeout(() => { failed ??= new Error(`no ${re} within 10 s; received: ${text.slice(-500)}`); waiter?.(); }, 10_000);
    try {
      for (;;) {
        const m = re.exec(text);
        if (m) { text = text.slice(m.index + m[0].length); return m; }
        if (failed) throw failed;
        await new Promise<void>((resolve) => (waiter = resolve));
      }
    } finally {
      clearTimeout(deadline);
    }
  };
  try {
    sock.write(`<?xml version='1.0'?><stream:stream to='${domain}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
    const offered = [...(await next(/<mechanisms[^>]*>([\s\S]*?)<\/mechanisms>/))[1]!.matchAll(/<mechanism>([^<]+)<\/mechanism>/g)].map((m) => m[1]!);
    const clientFirstBare = `n=${user},r=${randomBytes(12).toString("base64")}`;
    sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='${mech}'>${Buffer.from(`n,,${clientFirstBare}`).toString("base64")}</auth>`);
    const answer = await next(/<challenge[^>]*>([^<]*)<\/challenge>|<failure[^>]*>([\s\S]*?)<\/failure>/);
    if (answer[1] === undefined) throw new Error(`${mech} refused at once: ${answer[2]}`);
    const serverFirst = Buffer.from(answer[1], "base64").toString("utf8");
    const attrs = new Map(serverFirst.split(",").map((a) => [a.slice(0, 1), a.slice(2)]));
    const salt = Buffer.from(attrs.get("s") ?? "", "base64");
    const iterations = Number(attrs.get("i"));
    if (password === undefined) {
      sock.write("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
      return { offered, salt, iterations };
    }
    const h = ALGO[mech];
    const salted = pbkdf2Sync(password, salt, iterations, createHash(h).digest().length, h);
    const clientKey = createHmac(h, salted).update("Client Key").digest();
    const storedKey = createHash(h).update(clientKey).digest();
    const withoutProof = `c=biws,r=${attrs.get("r")}`;
    const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = createHmac(h, storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ (signature[i] as number)));
    sock.write(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(`${withoutProof},p=${proof.toString("base64")}`).toString("base64")}</response>`);
    const outcome = await next(/<success[^>]*?(?:\/>|>([^<]*)<\/success>)|<failure[^>]*>([\s\S]*?)<\/failure>/);
    if (outcome[0].startsWith("<failure")) return { offered, salt, iterations, success: false };
    const serverKey = createHmac(h, salted).update("Server Key").digest();
    const expected = createHmac(h, serverKey).update(authMessage).digest("base64");
    return { offered, salt, iterations, success: Buffer.from(outcome[1] ?? "", "base64").toString("utf8") === `v=${expected}` };
  } finally {
    sock.destroy();
  }
}
