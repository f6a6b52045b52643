// Namespaces of the XEPs more than one stage speaks (stages never import each other; they share this).
export const DELAY = "urn:xmpp:delay"; // XEP-0203
export const HINTS = "urn:xmpp:hints"; // XEP-0334
export const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"; // RFC 6120 §8.3
export const DISCO_INFO = "http://jabber.org/protocol/disco#info"; // XEP-0030
