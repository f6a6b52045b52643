// One IQ tracker (like xmpp.js's iq caller): an IQ sent on mucmux's behalf gets a fresh id, and its answer
// (result or error) settles a promise; timeouts and cancellation reject it. Used for IQs on an anchor (a
// session's IQ to a room, archive reads, discovery), IQs toward sessions (an occupant's IQ to the account)
// and IQs on a session's own leg. A query that answers with a stream of messages (XEP-0313 archive results,
// matched by `queryid`, or by the queried JID when the query has none) has them handed to its `collect`,
// so they never go anywhere else.
import { randomBytes } from "node:crypto";
import type { Element } from "@xmpp/xml";
import { LRUCache } from "lru-cache";

export class IqError extends Error {
  constructor(readonly condition: "timeout" | "not-sent" | "cancelled", message: string) {
    super(message);
  }
}

export interface IqRequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Messages that belong to this query's answer (archive results). */
  collect?: ((el: Element) => void) | undefined;
}

interface Entry {
  resolve(el: Element): void;
  reject(err: IqError): void;
  timer: NodeJS.Timeout;
  to: string;
  /** The query's own queryid on the wire (fresh, mucmux's), and the one the requester chose (restored on results). */
  queryId: string | undefined;
  askedQueryId: string | undefined;
  collect: ((el: Element) => void) | undefined;
}

/** Namespaces of XEP-0313 (its versions): `<result queryid>` inside a message. */
const MAM = /^urn:xmpp:mam:[0-9]+$/;

export class IqTracker {
  private readonly pending = new Map<string, Entry>();
  private readonly byQuery = new Map<string, string>();
  /**
   * Ids that timed out lately: an answer that arrives after all is taken (and dropped), never passed on. Made at
   * the first timeout: an LRUCache allocates its arrays up front, and every account has two trackers (in a burst of
   * logins they filled the young generation, and each scavenge had to copy them).
   */
  private late: LRUCache<string, true> | undefined;

  constructor(private readonly opts: { prefix: string; timeoutMs: number }) {}

  get size(): number {
    return this.pending.size;
  }

  /**
   * Send `iq` with a fresh id through `send` (false: could not be sent). Resolves with the answer; rejects
   * with IqError on timeout, cancellation or when it could not be sent. `iq.attrs.id` is changed.
   */
  request(iq: Element, send: (iq: Element) => boolean, o: IqRequestOptions = {}): Promise<Element> {
    const id = `${this.opts.prefix}${randomBytes(6).toString("hex")}`;
    iq.attrs.id = id;
    // A collecting query gets a queryid of mucmux's own: two requesters that chose the same one (two devices
    // of one client) each get their own results; theirs is put back on the results they receive.
    const query = o.collect ? queryOf(iq) : undefined;
    const askedQueryId = query?.attrs.queryid;
    const queryId = query ? `${id}q` : undefined;
    if (query) query.attrs.queryid = queryId as string;
    return new Promise<Element>((resolve, reject) => {
      if (o.signal?.aborted) return reject(new IqError("cancelled", "cancelled"));
      const settle = () => {
        clearTimeout(entry.timer);
        this.pending.delete(id);
        if (queryId !== undefined && this.byQuery.get(queryId) === id) this.byQuery.delete(queryId);
        o.signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => { settle(); reject(new IqError("cancelled", "cancelled")); };
      const entry: Entry = {
        resolve: (el) => { settle(); resolve(el); },
        reject: (err) => { settle(); reject(err); },
        timer: setTimeout(() => {
          (this.late ??= new LRUCache<string, true>({ max: 256 })).set(id, true);
          entry.reject(new IqError("timeout", "no answer in time"));
        }, o.timeoutMs ?? this.opts.timeoutMs),
        to: (iq.attrs.to ?? "").toLowerCase(),
        queryId,
        askedQueryId,
        collect: o.collect,
      };
      entry.timer.unref();
      o.signal?.addEventListener("abort", onAbort);
      this.pending.set(id, entry);
      if (queryId !== undefined) this.byQuery.set(queryId, id);
      let sent = false;
      try {
        sent = send(iq);
      } finally {
        if (!sent) entry.reject(new IqError("not-sent", "could not be sent"));
      }
    });
  }

  /**
   * An incoming stanza: true when the tracker took it (the answer to a pending IQ, or a message that
   * belongs to a pending query's answer). Answers must come from where the IQ went.
   */
  take(el: Element): boolean {
    if (el.name === "iq") {
      const type = el.attrs.type;
      if (type !== "result" && type !== "error") return false;
      const id = el.attrs.id;
      const entry = id === undefined ? undefined : this.pending.get(id);
      if (!entry || !sameJid(el.attrs.from, entry.to)) return id !== undefined && this.late !== undefined && this.late.delete(id);
      entry.resolve(el);
      return true;
    }
    if (el.name !== "message" || this.pending.size === 0) return false;
    const result = resultOf(el);
    if (!result) return false;
    const entry = this.collectorFor(result.attrs.queryid, el.attrs.from);
    if (!entry?.collect) return false;
    if (entry.askedQueryId === undefined) delete result.attrs.queryid;
    else result.attrs.queryid = entry.askedQueryId;
    entry.collect(el);
    return true;
  }

  /** Reject what is pending toward `jid` (that session is gone: its answers cannot come any more). */
  cancelTo(jid: string): void {
    const to = jid.toLowerCase();
    for (const e of [...this.pending.values()]) if (e.to === to) e.reject(new IqError("cancelled", "the recipient is gone"));
  }

  /** Reject everything pending (the stream it was sent on is gone). */
  cancelAll(): void {
    for (const e of [...this.pending.values()]) e.reject(new IqError("cancelled", "cancelled"));
  }

  private collectorFor(queryId: string | undefined, from: string | undefined): Entry | undefined {
    if (queryId !== undefined) {
      const id = this.byQuery.get(queryId);
      const entry = id === undefined ? undefined : this.pending.get(id);
      return entry && sameJid(from, entry.to) ? entry : undefined;
    }
    // Results without queryid (a server that does not echo it): they belong to the oldest collecting query
    // to the same JID.
    for (const e of this.pending.values()) if (e.collect && sameJid(from, e.to)) return e;
    return undefined;
  }
}

/** An archive `<result>` child of a message (XEP-0313 §4.2), if any. */
export function resultOf(el: Element): Element | undefined {
  for (const c of el.children) if (typeof c !== "string" && c.name === "result" && MAM.test(c.attrs.xmlns ?? "")) return c;
  return undefined;
}

/** Is this IQ an archive query (XEP-0313 `<query>`, any version)? Its answer includes result messages. */
export function isArchiveQuery(iq: Element): boolean {
  return MAM.test(queryOf(iq)?.attrs.xmlns ?? "");
}

/** The `<query>` child of an IQ, if any. */
function queryOf(iq: Element): Element | undefined {
  for (const c of iq.children) if (typeof c !== "string" && c.name === "query") return c;
  return undefined;
}

/** The answer's `from` against where the IQ went: an IQ to the account's own bare JID (or none) is answered without a from, or from it. */
function sameJid(from: string | undefined, to: string): boolean {
  if (to === "") return true;
  if (from === undefined) return false;
  return from.toLowerCase() === to;
}
