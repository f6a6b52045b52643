// The namespaces the XML layer itself knows: the stream namespace (RFC 6120 §4.8.5) and the two that
// Namespaces in XML 1.0 binds in every document (§3): `xml` and `xmlns`.

export const NS_STREAMS = "http://etherx.jabber.org/streams";
export const NS_XML = "http://www.w3.org/XML/1998/namespace";
export const NS_XMLNS = "http://www.w3.org/2000/xmlns/";
