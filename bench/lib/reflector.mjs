// A minimal, fast stand-in for an XMPP server, for the relay-saturation and relay-sm scenarios only: plain TCP, SASL PLAIN
// accepting any password, resource binding, and then each <message/> is written, byte for byte, to the bound
// session its `to` names. It exists so that the process in front of it (mucmux, or the TLS byte pipe that is
// the floor) is the bottleneck: Prosody costs ~37 µs per stanza here, three times mucmux, so with Prosody
// behind it mucmux never gets near one busy core. No XML parser: it trusts its input (loopback, the
// benchmark's own clients), which is fine for a load generator and never acceptable for a server.
// XEP-0198, minimally and only for the relay-sm scenario (the relay's upstream leg): <sm/> is offered after auth,
// <enable/> is answered with a resumable <enabled/>, stanzas read are counted for <a h/>, and one <r/> is kept
// outstanding toward a session while stanzas go to it, as a server requests acks. Nothing is kept for a resume.
// Run as a child process: `node bench/lib/reflector.mjs` prints `port=N` and serves until SIGTERM.
import { Buffer } from "node:buffer";
import net from "node:net";

const DOMAIN = "localhost";
const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const header = (id) =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' ` +
  `id='${id}' from='${DOMAIN}' version='1.0' xml:lang='en'>`;
const FEATURES_AUTH = `<stream:features><mechanisms xmlns='${SASL}'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`;
const SM = "urn:xmpp:sm:3";
const FEATURES_BIND = `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='${SM}'/></stream:features>`;

/** Bound sessions by full JID. */
const sessions = new Map();
/** Sessions that have output queued in this read (flushed once per read: one write per socket). */
const dirty = new Set();
let nextId = 0;

function attr(tag, name) {
  const m = new RegExp(`\\s${name}=(['"])([^'"]*)\\1`).exec(tag);
  return m ? m[2] : undefined;
}

function flush() {
  for (const s of dirty) {
    if (s.sm && s.smUnasked && !s.smAsked) {
      s.out.push(`<r xmlns='${SM}'/>`);
      s.smAsked = true;
      s.smUnasked = false;
    }
    s.socket.write(s.out.length === 1 ? s.out[0] : s.out.join(""));
    s.out = [];
  }
  dirty.clear();
}

function queue(s, text) {
  s.out.push(text);
  dirty.add(s);
}

/** A stanza to `s`: counted toward the next <r/> when `s` enabled stream management. */
function queueStanza(s, text) {
  queue(s, text);
  if (s.sm) s.smUnasked = true;
}

/** Serves one connection; returns nothing, lives on the socket's events. */
function serve(socket) {
  socket.setNoDelay(true);
  // sm: <enable/> seen; smIn: stanzas read since; smAsked: an <r/> is out; smUnasked: stanzas sent since the last <r/>.
  const s = { socket, out: [], phase: "header1", user: "", jid: "", buf: "", sm: false, smIn: 0, smAsked: false, smUnasked: false };
  socket.on("error", () => {});
  socket.on("close", () => { if (s.jid && sessions.get(s.jid) === s) sessions.delete(s.jid); });
  socket.on("data", (chunk) => {
    s.buf += chunk.toString("latin1"); // bytes in, the same bytes out
    step(s);
    flush();
  });
}

function step(s) {
  for (;;) {
    const b = s.buf;
    if (s.phase === "routing") return route(s);
    if (s.phase === "header1" || s.phase === "header2") {
      const start = b.indexOf("<stream:stream");
      const end = start < 0 ? -1 : b.indexOf(">", start);
      if (end < 0) return;
      s.buf = b.slice(end + 1);
      queue(s, header(`r${++nextId}`) + (s.phase === "header1" ? FEATURES_AUTH : FEATURES_BIND));
      s.phase = s.phase === "header1" ? "auth" : "bind";
      continue;
    }
    if (s.phase === "auth") {
      const end = b.indexOf("</auth>");
      if (end < 0) return;
      const payload = Buffer.from(b.slice(b.indexOf(">", b.indexOf("<auth")) + 1, end), "base64").toString("utf8");
      s.user = payload.split("\0")[1] ?? "";
      s.buf = b.slice(end + 7);
      queue(s, `<success xmlns='${SASL}'/>`);
      s.phase = "header2";
      continue;
    }
    if (s.phase === "bind") {
      const end = b.indexOf("</iq>");
      if (end < 0) return;
      const iq = b.slice(0, end + 5);
      const resource = /<resource>([^<]*)<\/resource>/.exec(iq)?.[1] || `r${++nextId}`;
      s.jid = `${s.user}@${DOMAIN}/${resource}`;
      sessions.set(s.jid, s);
      queue(s, `<iq type='result' id='${attr(iq, "id") ?? ""}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${s.jid}</jid></bind></iq>`);
      s.buf = b.slice(end + 5);
      s.phase = "routing";
      continue;
    }
    return;
  }
}

/** After bind: messages go to the session named by `to`; IQs get an empty result; the rest is dropped. */
function route(s) {
  const b = s.buf;
  let pos = 0;
  for (;;) {
    const lt = b.indexOf("<", pos);
    if (lt < 0) { pos = b.length; break; }
    const gt = b.indexOf(">", lt);
    if (gt < 0) { pos = lt; break; }
    const startTag = b.slice(lt, gt + 1);
    if (startTag.startsWith("</stream:stream")) { s.socket.end("</stream:stream>"); pos = b.length; break; }
    const name = /^<([a-z]+)/.exec(startTag)?.[1] ?? "";
    let end;
    if (startTag.endsWith("/>")) end = gt + 1;
    else {
      const close = b.indexOf(`</${name}>`, gt);
      if (close < 0) { pos = lt; break; }
      end = close + name.length + 3;
    }
    if (name === "message") {
      if (s.sm) s.smIn++;
      const dest = sessions.get(attr(startTag, "to") ?? "");
      if (dest) queueStanza(dest, b.slice(lt, end));
    } else if (name === "iq") {
      if (s.sm) s.smIn++;
      const type = attr(startTag, "type");
      if (type === "get" || type === "set") queueStanza(s, `<iq type='result' id='${attr(startTag, "id") ?? ""}' to='${s.jid}'/>`);
    } else if (name === "presence") {
      if (s.sm) s.smIn++;
    } else if (name === "enable" && !s.sm) {
      s.sm = true;
      queue(s, `<enabled xmlns='${SM}' id='sm${++nextId}' resume='true' max='300'/>`);
    } else if (name === "r" && s.sm) {
      queue(s, `<a xmlns='${SM}' h='${s.smIn % 2 ** 32}'/>`);
    } else if (name === "a") {
      s.smAsked = false;
    }
    pos = end;
  }
  s.buf = b.slice(pos);
}

const server = net.createServer({ noDelay: true }, serve);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`port=${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
