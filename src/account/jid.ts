// Small JID helpers. Room keys are compared case-insensitively in their bare part (RFC 7622 localpart
// and domain are case-insensitive for the servers mucmux fronts); resources (nicks) are case-sensitive.

export function bareOf(jid: string): string {
  const slash = jid.indexOf("/");
  return slash < 0 ? jid : jid.slice(0, slash);
}

export function resourceOf(jid: string): string | undefined {
  const slash = jid.indexOf("/");
  return slash < 0 ? undefined : jid.slice(slash + 1);
}

/** Map key for a bare JID. */
export function bareKey(jid: string): string {
  return bareOf(jid).toLowerCase();
}
