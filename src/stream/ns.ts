// Namespaces used across the stream layer.
export const NS = {
  client: "jabber:client",
  stream: "http://etherx.jabber.org/streams",
  streams: "urn:ietf:params:xml:ns:xmpp-streams",
  tls: "urn:ietf:params:xml:ns:xmpp-tls",
  sasl: "urn:ietf:params:xml:ns:xmpp-sasl",
  bind: "urn:ietf:params:xml:ns:xmpp-bind",
  session: "urn:ietf:params:xml:ns:xmpp-session",
  stanzas: "urn:ietf:params:xml:ns:xmpp-stanzas",
  csi: "urn:xmpp:csi:0",
  limits: "urn:xmpp:stream-limits:0",
  sasl2: "urn:xmpp:sasl:2",
  bind2: "urn:xmpp:bind:0",
  fast: "urn:xmpp:fast:0",
  carbons: "urn:xmpp:carbons:2",
  sm: "urn:xmpp:sm:3",
} as const;
