#!/usr/bin/python3
"""A controllable slixmpp client for XEP-0198 (stream management) tests: Debian python3-slixmpp 1.8.x and its own
xep_0198 plugin (enable with resume, acks, resumption); run with /usr/bin/python3.

It logs in, the plugin enables SM with resume, it sends initial presence, then reads one JSON command per line on
stdin and prints one JSON event per line on stdout. EOF on stdin is `quit`.

Events (every event is {"event": NAME, ...}; those marked + also carry the plugin's counters, see `status`):
  session_start {jid}                  resource bound (again after a failed resumption: a new session)
  sm_enabled {id, resume, max, location, sm_id}   <enabled/>; sm_id is what the plugin stored for <resume previd>
  resumed {previd} +                   <resumed/>: the plugin resumed the stream (h in last_ack)
  sm_failed {condition} +              <failed/> (to <enable/> or to <resume/>)
  acked {h} +                          every <a h/> from the server, after the plugin processed it
  ack_requested +                      a `request_ack` was written
  sent {count} +                       a `send` burst went through the plugin's outgoing filter (seq counts it);
                                       queued: true while no session is up (it goes out after the resumption)
  message {from, to, type, id, body, delay}   delay: XEP-0203 stamp or null
  message_error {from, id, condition}
  presence {from, type, show, status, codes}  only with --presences
  joined {room, nick, from}            MUC self-presence (status 110) after `join`
  iq {id, type, condition, xml}        the answer to an `iq` command (type result or error; condition: the error's)
  cut {mode} +                         the connection was cut (see below); `disconnected` follows
  released {count}                     sockets held by a silent cut were closed
  reconnecting                         `reconnect` started a new connection
  disconnected {reason} +              the connection is gone
  stream_error {condition, text}
  error {kind, message}                kind: command | failed_auth | connection_failed | not_connected
  quit                                 last line before a normal exit
  status +                             answer to `status`

Counters (the plugin's own attributes): handled = inbound stanzas counted since <enabled/> (the h it acks and sends
in <resume>), seq = outbound stanzas counted since <enable/>, last_ack = the server's last h, unacked = length of
the plugin's unacked queue, sm_id, enabled_in/enabled_out, connected.

Commands:
  {"cmd":"send","to":JID,"body":TEXT,"type":"chat"|"groupchat"|"normal","count":N,"id":PREFIX}
      N messages (default 1); "{i}" in body/id is replaced by 1..N; with id the stanza ids are PREFIX (or
      PREFIX-i when N > 1 and PREFIX has no {i}); answers `sent` once they are written.
  {"cmd":"request_ack"}                an <r/> (after everything queued before it)
  {"cmd":"join","room":BARE,"nick":NICK,"history":0}   MUC join presence (history: maxstanzas; omit for the room's)
  {"cmd":"iq","type":"set"|"get","to":JID,"id":ID,"payload":XML}
      an IQ (through the plugin, so it is counted) carrying the payload element (e.g. an XEP-0357 <enable/>);
      to and id optional; answers `iq` with the result or error (waits up to 10 s; then error kind "command")
  {"cmd":"cut","mode":"abort"|"rst"|"silent"}
      Ends the connection without </stream:stream>, without TLS close_notify and without the plugin knowing
      (the SM state survives for `reconnect`): abort (default) = transport.abort(): the kernel closes the socket
      (FIN); rst = SO_LINGER 0 first: the server gets a TCP RST; silent = the socket is dup()ed and kept open, so the
      server sees nothing at all (a client gone off the network) and keeps writing into it, until `release`.
  {"cmd":"release"}                    closes sockets held by silent cuts
  {"cmd":"reconnect"}                  new connection; after auth the plugin sends <resume previd=sm_id h=handled>
  {"cmd":"status"}                     a `status` event
  {"cmd":"quit"}                       clean close (</stream:stream>, ends the SM session) and exit 0

TLS: with --ca FILE STARTTLS is required (or direct TLS with --direct-tls), verified against FILE and the JID's
domain; without --ca the stream stays plaintext. SASL: PLAIN by default (--mech NAME, or --mech any for slixmpp's
own choice); PLAIN on a plaintext stream is allowed here, the server may refuse it (Prosody does)."""
import argparse
import asyncio
import json
import logging
import os
import socket
import struct
import sys
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0198 import stanza as sm
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
DELAY = "{urn:xmpp:delay}delay"
STANZA_ERR = "urn:ietf:params:xml:ns:xmpp-stanzas"


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


class SmClient(slixmpp.ClientXMPP):
    def __init__(self, a):
        mech = {"unencrypted_plain": True}
        if a.mech.lower() != "any":
            mech["use_mech"] = a.mech
        super().__init__(a.jid, a.password, plugin_config={
            "feature_mechanisms": mech,
            "xep_0198": {"allow_resume": not a.no_resume, "window": a.window},
        })
        self.a = a
        self.held = []  # sockets kept open by silent cuts
        self.stop = asyncio.get_event_loop().create_future()
        if a.ca:
            self.ca_certs = a.ca
        self.whitespace_keepalive = False  # no unsolicited bytes: the tests count what goes over the wire
        self.register_plugin("xep_0198")
        self.sm = self.plugin["xep_0198"]
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("sm_enabled", self.on_enabled)
        self.add_event_handler("session_resumed", self.on_resumed)
        self.add_event_handler("sm_failed", self.on_failed)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_message_error)
        self.add_event_handler("presence", self.on_presence)
        self.add_event_handler("disconnected", lambda reason: emit("disconnected", reason=str(reason) if reason else None, **self.counters()))
        self.add_event_handler("failed_all_auth", self.on_failed_auth)
        self.add_event_handler("connection_failed", lambda e: emit("error", kind="connection_failed", message=str(e)))
        self.add_event_handler("stream_error", lambda e: emit("stream_error", condition=e["condition"], text=e["text"]))
        # After the plugin's own <a/> handler (registered first, both run): the counters already include this ack.
        self.register_handler(Callback("slix_sm ack", MatchXPath(sm.Ack.tag_name()),
                                       lambda ack: emit("acked", h=ack["h"], **self.counters()), instream=True))

    def counters(self):
        p = self.sm
        return {"handled": p.handled, "seq": p.seq, "last_ack": p.last_ack, "unacked": len(p.unacked_queue),
                "sm_id": p.sm_id, "enabled_in": p.enabled_in, "enabled_out": p.enabled_out,
                "connected": self.transport is not None}

    def start_connection(self):
        a = self.a
        self.connect(address=(a.host, a.port), use_ssl=a.direct_tls,
                     force_starttls=bool(a.ca) and not a.direct_tls, disable_starttls=not a.ca)

    # --- events ---------------------------------------------------------------------------------------------------
    def on_start(self, _):
        emit("session_start", jid=str(self.boundjid))
        if not self.a.no_presence:
            self.send_presence()

    def on_enabled(self, s):
        emit("sm_enabled", id=s["id"] or None, resume=s["resume"], max=s["max"] or None,
             location=s["location"] or None, sm_id=self.sm.sm_id)

    def on_resumed(self, _):
        # The plugin passes the last re-sent stanza, not <resumed/>; its h is in last_ack by now.
        emit("resumed", previd=self.sm.sm_id, **self.counters())

    def on_failed(self, s):
        cond = next((child.tag.split("}")[-1] for child in s.xml if child.tag.startswith(f"{{{STANZA_ERR}}}")), None)
        emit("sm_failed", condition=cond, **self.counters())

    def on_failed_auth(self, _):
        emit("error", kind="failed_auth", message="no SASL mechanism succeeded")
        if not self.stop.done():
            self.stop.set_result(1)

    def on_message(self, msg):
        delay = msg.xml.find(DELAY)
        emit("message", **{"from": str(msg["from"]), "to": str(msg["to"]), "type": msg["type"], "id": msg["id"] or None,
                           "body": msg["body"], "delay": delay.get("stamp") if delay is not None else None})

    def on_message_error(self, msg):
        emit("message_error", **{"from": str(msg["from"]), "id": msg["id"] or None, "condition": msg["error"]["condition"]})

    def on_presence(self, pres):
        x = pres.xml.find(f"{{{MUC_USER}}}x")
        codes = [int(s.get("code", 0)) for s in x.findall(f"{{{MUC_USER}}}status")] if x is not None else []
        if 110 in codes and pres["type"] != "unavailable":
            emit("joined", room=str(pres["from"].bare), nick=pres["from"].resource, **{"from": str(pres["from"])})
        if self.a.presences:
            emit("presence", **{"from": str(pres["from"]), "type": pres["type"], "show": pres["show"] or None,
                                "status": pres["status"] or None, "codes": codes})

    # --- commands -------------------------------------------------------------------------------------------------
    async def flushed(self):
        """Everything queued so far went through the filters (the plugin counted it) and was written."""
        if self.transport is not None and self._session_started:
            await asyncio.wait_for(self.waiting_queue.join(), 10)

    async def command(self, c):
        name = c.get("cmd")
        if name == "send":
            n = int(c.get("count", 1))
            body, idp = str(c.get("body", "")), c.get("id")
            for i in range(1, n + 1):
                m = self.make_message(mto=c["to"], mbody=body.replace("{i}", str(i)), mtype=c.get("type", "chat"))
                if idp:
                    m["id"] = idp.replace("{i}", str(i)) if "{i}" in idp else (f"{idp}-{i}" if n > 1 else idp)
                m.send()
            queued = not (self.transport is not None and self._session_started)
            await self.flushed()
            emit("sent", count=n, queued=queued, **self.counters())
        elif name == "request_ack":
            if self.transport is None:
                return emit("error", kind="not_connected", message="request_ack: no connection")
            await self.flushed()
            self.sm.request_ack()
            emit("ack_requested", **self.counters())
        elif name == "join":
            p = self.make_presence(pto=f"{c['room']}/{c['nick']}")
            x = ET.SubElement(p.xml, f"{{{MUC}}}x")
            if c.get("history") is not None:
                ET.SubElement(x, f"{{{MUC}}}history", maxstanzas=str(int(c["history"])))
            p.send()
            await self.flushed()
        elif name == "iq":
            iq = self.make_iq(ito=c.get("to"), itype=c.get("type", "set"))
            if c.get("id"):
                iq["id"] = c["id"]
            iq.append(ET.fromstring(c["payload"]))
            try:
                r = await iq.send(timeout=10)
                emit("iq", id=r["id"], type=r["type"], condition=None, xml=str(r))
            except IqError as e:
                emit("iq", id=e.iq["id"], type="error", condition=e.iq["error"]["condition"], xml=str(e.iq))
            except IqTimeout:
                emit("error", kind="command", message=f"iq {iq['id']}: no answer within 10 s")
        elif name == "cut":
            self.cut(c.get("mode", "abort"))
        elif name == "release":
            for s in self.held:
                s.close()
            emit("released", count=len(self.held))
            self.held = []
        elif name == "reconnect":
            if self.transport is not None:
                return emit("error", kind="command", message="reconnect: still connected (cut first)")
            self.start_connection()
            emit("reconnecting")
        elif name == "status":
            emit("status", **self.counters())
        elif name == "quit":
            if not self.stop.done():
                self.stop.set_result(0)
        else:
            emit("error", kind="command", message=f"unknown command {name!r}")

    def cut(self, mode):
        t = self.transport
        if t is None:
            return emit("error", kind="not_connected", message="cut: no connection")
        if mode not in ("abort", "rst", "silent"):
            return emit("error", kind="command", message=f"cut: unknown mode {mode!r}")
        raw = t.get_extra_info("socket")  # the TCP socket, also under the TLS transport
        if mode == "rst":
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "silent":
            # A second descriptor keeps the connection open in the kernel when asyncio closes its own: no FIN, no RST.
            self.held.append(socket.socket(fileno=os.dup(raw.fileno())))
        emit("cut", mode=mode, **self.counters())
        # Not self.abort() / disconnect(): those call transport.close() first (a TLS close_notify, a flush) and
        # disconnect() sends </stream:stream>. transport.abort() drops the write buffer and closes the socket;
        # connection_lost() follows, and the plugin (end_session_on_disconnect is False once SM is enabled) keeps
        # sm_id, handled and seq for <resume/>.
        t.abort()


async def commands(x):
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not x.stop.done():
        line = await reader.readline()
        if not line:
            break  # EOF: the parent is gone
        if not line.strip():
            continue
        try:
            c = json.loads(line)
            await x.command(c)
        except Exception as e:  # noqa: BLE001 — report and go on
            emit("error", kind="command", message=f"{line.decode(errors='replace').strip()}: {e!r}")
    if not x.stop.done():
        x.stop.set_result(0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", help="CA file to trust; enables TLS (STARTTLS unless --direct-tls)")
    p.add_argument("--direct-tls", action="store_true", help="direct TLS (xmpps) instead of STARTTLS; needs --ca")
    p.add_argument("--mech", default="PLAIN", help="the only SASL mechanism to use (default PLAIN; 'any': slixmpp picks)")
    p.add_argument("--window", type=int, default=5,
                   help="the plugin's ack window: an <r/> after every N stanzas sent (default 5; 0: only on request_ack)")
    p.add_argument("--no-resume", action="store_true", help="enable SM without resume='true'")
    p.add_argument("--no-presence", action="store_true", help="no initial presence after session_start")
    p.add_argument("--presences", action="store_true", help="print a presence event for every presence received")
    p.add_argument("--lifetime", type=float, default=600, help="exit after this many seconds whatever happens (default 600)")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log (every stanza) on stderr")
    a = p.parse_args()
    if a.direct_tls and not a.ca:
        p.error("--direct-tls needs --ca")
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # "Task was destroyed" noise at exit

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    x = SmClient(a)
    x.start_connection()
    reading = loop.create_task(commands(x))
    code = 1
    try:
        code = loop.run_until_complete(asyncio.wait_for(asyncio.shield(x.stop), a.lifetime))
    except asyncio.TimeoutError:
        emit("error", kind="command", message=f"lifetime of {a.lifetime}s reached")
    reading.cancel()
    for s in x.held:
        s.close()
    if x.transport is not None:
        try:
            loop.run_until_complete(asyncio.wait_for(x.disconnect(wait=2.0), 3))
        except Exception:  # noqa: BLE001
            pass
    emit("quit", code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
