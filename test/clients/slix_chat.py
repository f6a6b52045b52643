#!/usr/bin/python3
"""Log in with slixmpp (Debian python3-slixmpp 1.8.3; run with /usr/bin/python3), send presence and one chat
message, optionally wait for a chat message with a given body. Prints JSON lines on stdout:
  {"event":"session_start"} {"event":"sent",...} {"event":"message","from":...,"body":...} {"event":"done","ok":...}
Exit 0 on success, 1 on failure or timeout.
TLS: without --ca the stream stays plaintext (STARTTLS disabled); with --ca FILE it uses STARTTLS (required)
or, with --direct-tls, direct TLS, verifying the server against FILE and the JID's domain."""
import argparse
import asyncio
import json
import logging
import sys

import slixmpp


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class Chat(slixmpp.ClientXMPP):
    def __init__(self, a, done):
        # --mech: offer the server exactly one SASL mechanism choice, as a client pinned to it would.
        super().__init__(a.jid, a.password, plugin_config={"feature_mechanisms": {"use_mech": a.mech}} if a.mech else None)
        self.a, self.done = a, done
        if a.ca:
            self.ca_certs = a.ca
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", lambda *_: self.finish(False, "failed_auth"))
        self.add_event_handler("connection_failed", lambda e: self.finish(False, f"connection_failed: {e}"))
        self.add_event_handler("disconnected", lambda *_: self.finish(False, "disconnected"))

    def finish(self, ok, reason=None):
        if not self.done.done():
            emit("done", ok=ok, **({"reason": reason} if reason else {}))
            self.done.set_result(ok)

    async def on_start(self, _):
        emit("session_start", jid=str(self.boundjid))
        self.send_presence()
        self.send_message(mto=self.a.to, mbody=self.a.body, mtype="chat")
        emit("sent", to=self.a.to, body=self.a.body)
        if self.a.expect is None:
            self.finish(True)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        emit("message", **{"from": str(msg["from"]), "body": msg["body"]})
        if self.a.expect is not None and msg["body"] == self.a.expect:
            self.finish(True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--ca", help="CA file to trust; enables TLS (STARTTLS unless --direct-tls)")
    p.add_argument("--expect", help="wait for a chat message with this body")
    p.add_argument("--direct-tls", action="store_true", help="direct TLS (xmpps) instead of STARTTLS; needs --ca")
    p.add_argument("--mech", help="use only this SASL mechanism (e.g. SCRAM-SHA-256); failed_auth if not offered")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole exchange (default 10)")
    a = p.parse_args()
    if a.direct_tls and not a.ca:
        p.error("--direct-tls needs --ca")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # "Task was destroyed" noise at exit

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    done = loop.create_future()
    xmpp = Chat(a, done)
    xmpp.connect(address=(a.host, a.port), use_ssl=a.direct_tls,
                 force_starttls=bool(a.ca) and not a.direct_tls, disable_starttls=not a.ca)
    try:
        ok = loop.run_until_complete(asyncio.wait_for(done, a.timeout))
    except asyncio.TimeoutError:
        emit("done", ok=False, reason=f"timeout after {a.timeout}s")
        ok = False
    xmpp.disconnect(wait=2.0)
    try:
        loop.run_until_complete(asyncio.wait_for(xmpp.disconnected, 3))
    except Exception:
        pass
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
