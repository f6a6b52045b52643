/** Rules that span several keys; zod runs them only once every key has the right type. */
import { z } from "zod";

/** The keys these rules read (the schema's shape satisfies it; no import back into schema.ts). */
interface Checked {
  tls: { cert?: string | undefined; key?: string | undefined };
  limits: { maxStanzaBytes: number; maxUnauthedStanzaBytes: number };
  domains: readonly string[];
  listeners: readonly { host: string; port: number }[];
  store: { url?: string | undefined };
  cluster: { cert?: string | undefined; key?: string | undefined; ca?: string | undefined };
}

export function crossChecks(config: Checked, ctx: z.RefinementCtx): void {
  const { cert, key } = config.tls;
  if (cert !== undefined && key === undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["tls", "key"], message: "is required when tls.cert is set (both or neither)" });
  }
  if (key !== undefined && cert === undefined) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["tls", "cert"], message: "is required when tls.key is set (both or neither)" });
  }

  // SPEC H2: replicas sharing PostgreSQL hand sessions to each other over mutually authenticated TLS only.
  if (config.store.url !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(config.store.url)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["store", "url"], message: "must be a postgres:// or postgresql:// URL" });
    }
    for (const k of ["cert", "key", "ca"] as const) {
      if (config.cluster[k] === undefined) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["cluster", k], message: "is required when store.url is set (the replicas' internal link is mutual TLS)" });
      }
    }
  }

  const { maxStanzaBytes, maxUnauthedStanzaBytes } = config.limits;
  if (maxUnauthedStanzaBytes > maxStanzaBytes) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ["limits", "maxUnauthedStanzaBytes"],
      message: `must not exceed limits.maxStanzaBytes (${maxStanzaBytes})`,
    });
  }

  const seenDomains = new Map<string, number>();
  config.domains.forEach((name, i) => {
    const first = seenDomains.get(name);
    if (first !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["domains", i], message: `duplicates domains[${first}]` });
    }
    seenDomains.set(name, i);
  });

  // Two listeners on one address would fail at bind time with a less helpful EADDRINUSE; port 0 is exempt.
  const seenListeners = new Map<string, number>();
  config.listeners.forEach((l, i) => {
    if (l.port === 0) return;
    const addr = `${l.host}:${l.port}`;
    const first = seenListeners.get(addr);
    if (first !== undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["listeners", i], message: `duplicates listeners[${first}] (${addr})` });
    }
    seenListeners.set(addr, i);
  });
}
