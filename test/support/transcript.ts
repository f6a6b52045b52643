// Transcript-style protocol tests (STYLE.md; after Prosody's scansion): clients talk to mucmux over
// direct TLS, a FakeUpstream plays the legacy server behind it, and a test reads as a script:
//
//   const t = await transcript({ users: { alice: ["a1", "a2"], bob: ["b1"] } });
//   await t.sends("alice/a1", `<presence to='room@conference.localhost/alice' id='j1'><x xmlns='${MUC}'/></presence>`);
//   await t.upstreamReceives("alice/anchor", `<presence to='room@conference.localhost/alice' id='j1'/>`);
//   await t.upstreamSends("alice/anchor", `<presence from='room@conference.localhost/alice'>…110…</presence>`);
//   await t.receives("alice/a1", `<presence from='room@conference.localhost/alice' id='j1'/>`);
//   await t.receivesNothing("alice/a2");
//
// "Nothing" is shown by ordering round trips, not by waiting (test/support/wait.ts): a client pings the
// server through mucmux and its leg (t.roundTrip), or the server pings an anchor and mucmux answers on it;
// what mucmux was going to write on that path because of earlier stanzas comes before the answer. The
// barrier stanzas are kept out of every log the script reads (fake-upstream.ts BARRIER_ID_PREFIX).
//
// Names: "alice/a1" is alice's session a1 on the client side and its leg on the upstream side;
// "alice/anchor" is alice's anchor connection (the newest one, after a reconnect).
// Expectations are either a predicate or an XML template matched the way scansion matches: the
// element name and namespace must be equal, every attribute the template has must be present with the
// same value (`{scansion:any}` matches any value), its text (if any) must be equal, and its child
// elements must match, in order, a subsequence of the received element's children. Extra attributes
// and children in what was received are allowed; use a predicate to pin down absence.
// `receives` is strict like scansion: the *next* unread stanza must match, unless `{ scan: true }`.
// Client bytes are parsed with mucmux's own StreamParser (canonical elements, SASL restart honoured).
import assert from "node:assert/strict";
import type { Element } from "@xmpp/xml";
import { StreamParser } from "../../src/xml/parser.js";
import { parseStanzas as parseAll, parseStanza as parseOne, STANZA_LIMITS } from "./stanzas.js";
import { serialize } from "../../src/xml/serialize.js";
import { BARRIER_ID_PREFIX, FakeUpstream, type UpstreamConnection } from "./fake-upstream.js";
import { startMucmux, type TestMucmux } from "./mucmux.js";
import { RawClient } from "./raw-client.js";
import { elapse, poll } from "./wait.js";

export const DOMAIN = "localhost";
export const MUC = "http://jabber.org/protocol/muc";
export const MUC_USER = "http://jabber.org/protocol/muc#user";
export const DELAY = "urn:xmpp:delay";
export const SID = "urn:xmpp:sid:0";
export const OCCUPANT_ID = "urn:xmpp:occupant-id:0";
export const HINTS = "urn:xmpp:hints";
export const CARBONS = "urn:xmpp:carbons:2";
export const PING = "urn:xmpp:ping";
export const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
export const DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const ANY = "{scansion:any}";

/** SPEC C3: the anchor's presence goes out this long after the last change (DEBOUNCE_MS in src/stages/muc-fold/presence.ts). */
const PRESENCE_DEBOUNCE_MS = 200;
let barriers = 0;

export type Expect = string | ((el: Element) => boolean);
export interface WaitOptions { timeoutMs?: number; scan?: boolean }

/** Parse XML text (one or more stanzas in the jabber:client namespace) into canonical elements. */
export const parseStanzas = (xmlText: string): Element[] => parseAll(xmlText, "transcript");

export const parseStanza = (xmlText: string): Element => parseOne(xmlText, "transcript");

const ownText = (el: Element) => el.children.filter((c): c is string => typeof c === "string").join("");

/** scansion-like matching of a template against a received element (see the header comment). */
export function matches(expected: Element, actual: Element): boolean {
  if (expected.name !== actual.name || expected.attrs.xmlns !== actual.attrs.xmlns) return false;
  for (const [k, v] of Object.entries(expected.attrs)) {
    if (k === "xmlns") continue;
    if (actual.attrs[k] === undefined || (v !== ANY && actual.attrs[k] !== v)) return false;
  }
  const text = ownText(expected).trim();
  if (text !== "" && ownText(actual).trim() !== text) return false;
  const kids = actual.getChildElements();
  let i = 0;
  for (const want of expected.getChildElements()) {
    while (i < kids.length && !matches(want, kids[i] as Element)) i++;
    if (i === kids.length) return false;
    i++;
  }
  return true;
}

function predicate(expect: Expect): { test: (el: Element) => boolean; label: string } {
  if (typeof expect !== "string") return { test: expect, label: expect.toString().slice(0, 300) };
  const tpl = parseStanza(expect);
  return { test: (el) => matches(tpl, el), label: serialize(tpl) };
}

const safe = (test: (el: Element) => boolean) => (el: Element) => {
  try {
    return test(el);
  } catch {
    return false;
  }
};

export const show = (el: Element): string => serialize(el);
const list = (els: Element[]) => (els.length ? els.map((e) => `    ${show(e).slice(0, 600)}`).join("\n") : "    (nothing)");

/** An ordered stanza log with a read cursor: the common part of both sides of a transcript. */
interface Log { readonly all: Element[]; cursor: number; readonly broken?: string | undefined }

async function take(who: string, get: () => Log | undefined, expect: Expect, opts: WaitOptions, fallbackMs: number): Promise<Element> {
  const { test, label } = predicate(expect);
  const ok = safe(test);
  const timeoutMs = opts.timeoutMs ?? fallbackMs;
  const found: { el?: Element } = {};
  await poll(() => {
    const log = get();
    if (log?.broken) assert.fail(`${who}: ${log.broken}`);
    if (!log) return false;
    const unread = log.all.slice(log.cursor);
    // strict (scansion): the next unread stanza must match; with scan: the first matching one, passing over the others
    const at = opts.scan ? unread.findIndex(ok) : unread.length > 0 && ok(unread[0] as Element) ? 0 : -1;
    if (at >= 0) {
      log.cursor += at + 1;
      found.el = unread[at] as Element;
      return true;
    }
    if (!opts.scan && unread.length > 0) assert.fail(`${who} received something else.\n  expected: ${label}\n  unread:\n${list(unread)}`);
    return false;
  }, timeoutMs, 5);
  if (found.el) return found.el;
  const log = get();
  return assert.fail(`${who} received nothing matching within ${timeoutMs} ms.\n  expected: ${label}\n` +
    `  unread:\n${list(log ? log.all.slice(log.cursor) : [])}${log ? "" : "\n  (no such connection)"}`);
}

/** Nothing (matching `expect`, if given) is unread in `log`. */
function nothingUnread(who: string, log: Log | undefined, expect: Expect | undefined): void {
  if (!log) return;
  if (log.broken) assert.fail(`${who}: ${log.broken}`);
  const unread = log.all.slice(log.cursor);
  if (expect === undefined) {
    assert.equal(unread.length, 0, `${who} should have received nothing, got:\n${list(unread)}`);
    return;
  }
  const { test, label } = predicate(expect);
  const hits = unread.filter(safe(test));
  assert.equal(hits.length, 0, `${who} should have received nothing matching ${label}, got:\n${list(hits)}`);
}

/** One client session through mucmux (direct TLS), its received stanzas parsed as they arrive. */
class ClientSession implements Log {
  readonly all: Element[] = [];
  cursor = 0;
  jid = "";
  broken: string | undefined;
  /** Ids of the answers to this session's round trips (never in `all`). */
  readonly barriers = new Set<string>();
  private readonly parser: StreamParser;

  constructor(readonly raw: RawClient) {
    this.parser = new StreamParser({
      onStreamOpen: () => {},
      onElement: (el) => {
        // RFC 6120 §6.4.6: after <success/> the next bytes belong to a new stream.
        if (el.name === "success" && el.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-sasl") this.parser.reset();
        if (el.name === "iq" && el.attrs.id?.startsWith(BARRIER_ID_PREFIX)) return void this.barriers.add(el.attrs.id);
        this.all.push(el);
      },
      onStreamClose: () => {},
      onError: (e) => { this.broken = `the stream from mucmux is not well-formed: ${e.condition} ${e.message}`; },
    }, STANZA_LIMITS);
    raw.socket.on("data", (d: Buffer) => this.parser.write(d));
  }

  async login(user: string, resource: string, timeoutMs: number): Promise<void> {
    const who = `${user}/${resource} (login)`;
    this.raw.open(DOMAIN);
    await take(who, () => this, (el) => el.name === "stream:features", { scan: true }, timeoutMs);
    const b64 = Buffer.from(`\0${user}\0${user}pw`).toString("base64");
    this.raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64}</auth>`);
    await take(who, () => this, (el) => el.name === "success", {}, timeoutMs);
    this.raw.open(DOMAIN);
    await take(who, () => this, (el) => el.name === "stream:features", { scan: true }, timeoutMs);
    this.raw.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    const bound = await take(who, () => this, (el) => el.name === "iq" && el.attrs.id === "bind1", { scan: true }, timeoutMs);
    this.jid = bound.getChild("bind")?.getChildText("jid") ?? "";
    assert.ok(this.jid, `${who}: no JID bound: ${show(bound)}`);
  }
}

/** An upstream connection seen as a Log: its cursor starts after the bind request. */
class UpstreamView implements Log {
  cursor: number;
  constructor(readonly conn: UpstreamConnection) { this.cursor = conn.boundAt; }
  get all(): Element[] { return this.conn.received; }
}

export interface TranscriptOptions {
  /** Accounts and the resources of their sessions, all logged in (in this order) before the script. */
  users: Record<string, string[]>;
  /** Config sections merged over the test config (e.g. { muc: { lingerSeconds: 2 } }). */
  extra?: Record<string, Record<string, unknown>>;
  /** Default time a `receives` waits (ms). */
  timeoutMs?: number;
}

export class Transcript {
  private readonly views = new Map<UpstreamConnection, UpstreamView>();
  private constructor(
    readonly mux: TestMucmux,
    readonly upstream: FakeUpstream,
    private readonly sessions: Map<string, ClientSession>,
    private readonly timeoutMs: number,
  ) {}

  static async start(opts: TranscriptOptions): Promise<Transcript> {
    const upstream = await FakeUpstream.start();
    const mux = await startMucmux({
      upstreamPort: upstream.port,
      // The scripted server answers no service discovery: the MUC service is configured (muc.services).
      extra: { drain: { timeoutSeconds: 3 }, ...opts.extra, muc: { services: ["conference.localhost"], ...opts.extra?.muc } },
    });
    const sessions = new Map<string, ClientSession>();
    const t = new Transcript(mux, upstream, sessions, opts.timeoutMs ?? 3000);
    try {
      for (const [user, resources] of Object.entries(opts.users)) {
        for (const resource of resources) {
          const s = new ClientSession(await RawClient.connect(mux.directPort));
          sessions.set(`${user}/${resource}`, s);
          await s.login(user, resource, 5000);
          s.cursor = s.all.length;
        }
      }
    } catch (e) {
      await t.close();
      throw e;
    }
    return t;
  }

  private session(who: string): ClientSession {
    const s = this.sessions.get(who);
    if (!s) throw new Error(`transcript: no client session ${who}`);
    return s;
  }

  /** The newest upstream connection called `who` ("alice/a1" leg, "alice/anchor"), if bound yet. */
  connection(who: string): UpstreamConnection | undefined {
    const [user = "", resource = ""] = who.split("/");
    return this.upstream.find(user, resource);
  }

  private view(who: string): UpstreamView | undefined {
    const conn = this.connection(who);
    if (!conn) return undefined;
    let v = this.views.get(conn);
    if (!v) this.views.set(conn, (v = new UpstreamView(conn)));
    return v;
  }

  /** Full JID: "alice/a1" → the session's, "alice/anchor" → the anchor's, "alice" → bare. */
  jid(who: string): string {
    if (!who.includes("/")) return `${who}@${DOMAIN}`;
    const s = this.sessions.get(who);
    if (s) return s.jid;
    const c = this.connection(who);
    if (c?.jid) return c.jid;
    throw new Error(`transcript: no JID for ${who} (yet)`);
  }

  // ---- client side ----------------------------------------------------------------------------

  /** The client writes these bytes (checked to be well-formed first, to catch typos in the script). */
  async sends(who: string, xmlText: string): Promise<void> {
    parseStanzas(xmlText);
    this.session(who).raw.send(xmlText);
  }

  receives(who: string, expect: Expect, opts: WaitOptions = {}): Promise<Element> {
    return take(`${who} (client)`, () => this.session(who), expect, opts, this.timeoutMs);
  }

  /** Everything unread up to and including the first stanza matching `until`. */
  async collect(who: string, until: Expect, timeoutMs = this.timeoutMs): Promise<Element[]> {
    const s = this.session(who);
    const start = s.cursor;
    await take(`${who} (client)`, () => s, until, { scan: true, timeoutMs }, timeoutMs);
    return s.all.slice(start, s.cursor);
  }

  /** Everything unread now (consumed). */
  unread(who: string): Element[] {
    const s = this.session(who);
    const out = s.all.slice(s.cursor);
    s.cursor = s.all.length;
    return out;
  }

  /**
   * Ordering round trip of client session `who`: it pings the server, through mucmux and its own leg.
   * Whatever mucmux was going to write to the session, or on its leg, because of stanzas the script wrote
   * before (on any connection) comes before the answer. (Nothing more arrives once the session is gone.)
   */
  async roundTrip(who: string): Promise<void> {
    const s = this.session(who);
    if (s.raw.closed) return;
    const id = `${BARRIER_ID_PREFIX}${++barriers}`;
    s.raw.send(`<iq type='get' id='${id}' to='${DOMAIN}'><ping xmlns='${PING}'/></iq>`);
    const answered = await poll(() => s.barriers.has(id) || s.broken !== undefined || s.raw.closed, this.timeoutMs, 2);
    if (s.broken) assert.fail(`${who} (client): ${s.broken}`);
    if (!answered) assert.fail(`${who} (client): no answer to the round trip ${id} within ${this.timeoutMs} ms`);
  }

  /** After a round trip (roundTrip), nothing (matching `expect`, if given) may be unread. */
  async receivesNothing(who: string, expect?: Expect): Promise<void> {
    await this.roundTrip(who);
    nothingUnread(`${who} (client)`, this.session(who), expect);
  }

  /** The client goes away without closing its stream (an implicit departure, SPEC C5). */
  async disconnects(who: string): Promise<void> {
    const s = this.session(who);
    s.raw.close();
    await s.raw.waitClosed(2000);
  }

  // ---- upstream side --------------------------------------------------------------------------

  upstreamReceives(who: string, expect: Expect, opts: WaitOptions = {}): Promise<Element> {
    return take(`${who} (upstream)`, () => this.view(who), expect, opts, this.timeoutMs);
  }

  /** Ordering round trip on an anchor: the server pings it, mucmux answers on it (SPEC A8). */
  private async anchorRoundTrip(who: string): Promise<void> {
    const conn = this.connection(who);
    if (!conn || conn.closed) return; // nothing more can arrive on it
    const id = `${BARRIER_ID_PREFIX}${++barriers}`;
    conn.send(`<iq type='get' from='${DOMAIN}' id='${id}'${conn.jid ? ` to='${conn.jid}'` : ""}><ping xmlns='${PING}'/></iq>`);
    if (!(await poll(() => conn.barriers.has(id) || conn.closed, this.timeoutMs, 2))) {
      assert.fail(`${who} (upstream): no answer to the round trip ${id} within ${this.timeoutMs} ms`);
    }
  }

  /**
   * Everything mucmux was going to write on upstream connection `who` has arrived. A session's leg: the
   * session's round trip. An anchor: a round trip; then SPEC C3's presence debounce runs out (the anchor's
   * presence goes out only on a change, so a timer that decides to send nothing has no event: this time is
   * the behaviour under test); then another round trip.
   */
  async upstreamSettles(who: string): Promise<void> {
    if (this.sessions.has(who)) return this.roundTrip(who);
    await this.anchorRoundTrip(who);
    await elapse(PRESENCE_DEBOUNCE_MS + 5, "SPEC C3: a presence change goes out on the anchor once the debounce has run out");
    await this.anchorRoundTrip(who);
  }

  /** Once upstream connection `who` has settled (upstreamSettles), nothing (matching `expect`, if given) may be unread. */
  async upstreamReceivesNothing(who: string, expect?: Expect): Promise<void> {
    await this.upstreamSettles(who);
    nothingUnread(`${who} (upstream)`, this.view(who), expect);
  }

  /** Everything the connection received after its bind request (read or not). */
  upstreamLog(who: string): Element[] {
    const v = this.view(who);
    return v ? v.all.slice(v.conn.boundAt) : [];
  }

  /** The server writes these stanzas on `who`'s connection, `to` defaulting to its bound JID. */
  async upstreamSends(who: string, xmlText: string): Promise<void> {
    if (!(await poll(() => this.connection(who) !== undefined, this.timeoutMs, 5))) assert.fail(`${who} (upstream): no such connection`);
    const conn = this.connection(who) as UpstreamConnection;
    const to = conn.jid ?? "";
    conn.send(parseStanzas(xmlText).map((el) => {
      el.attrs.to ??= to;
      return serialize(el);
    }).join(""));
  }

  /** The server closes `who`'s connection ("stream": with </stream:stream>; "reset": TCP only). */
  upstreamCloses(who: string, how: "stream" | "reset" = "stream"): void {
    const conn = this.connection(who);
    assert.ok(conn, `${who} (upstream): no such connection`);
    conn.close(how);
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) s.raw.close();
    await this.mux.stop().catch(() => undefined);
    await this.upstream.stop();
  }
}

export function transcript(opts: TranscriptOptions): Promise<Transcript> {
  return Transcript.start(opts);
}

// ---- small readers for assertions -------------------------------------------------------------

export function codesOf(el: Element): string[] {
  return (el.getChild("x", MUC_USER)?.getChildren("status") ?? []).map((s) => s.attrs.code ?? "");
}

export const bareOf = (jid: string | undefined) => (jid ?? "").split("/")[0]?.toLowerCase() ?? "";

/** Is this stanza addressed to the room or one of its occupants? */
export const toRoom = (room: string) => (el: Element) => bareOf(el.attrs.to) === room.toLowerCase();

// ---- room scripting helpers -------------------------------------------------------------------

export const ROOM = "room@conference.localhost";

/** A MUC join (XEP-0045 §7.2.2) as a client writes it; `inner` goes into `<x xmlns=muc>`. */
export function joinXml(room: string, nick: string, id: string, inner = "", presenceChildren = ""): string {
  return `<presence to='${room}/${nick}' id='${id}'>${presenceChildren}<x xmlns='${MUC}'>${inner}</x></presence>`;
}

/** The room's self-presence for the anchor (XEP-0045 §7.2.3), as the fake room sends it. */
export function selfPresenceXml(o: { room: string; nick: string; jid: string; codes?: string[]; id?: string; extra?: string; affiliation?: string; role?: string }): string {
  const codes = (o.codes ?? ["110"]).map((c) => `<status code='${c}'/>`).join("");
  return `<presence from='${o.room}/${o.nick}'${o.id ? ` id='${o.id}'` : ""}><x xmlns='${MUC_USER}'>` +
    `<item affiliation='${o.affiliation ?? "member"}' role='${o.role ?? "participant"}' jid='${o.jid}'/>${codes}</x>${o.extra ?? ""}</presence>`;
}

export function occupantXml(room: string, nick: string, affiliation = "member", extra = ""): string {
  return `<presence from='${room}/${nick}'><x xmlns='${MUC_USER}'><item affiliation='${affiliation}' role='participant'/></x>${extra}</presence>`;
}

export function subjectXml(room: string, subject: string): string {
  return `<message type='groupchat' from='${room}'>${subject === "" ? "<subject/>" : `<subject>${subject}</subject>`}</message>`;
}

export const isSubject = (el: Element) => el.name === "message" && !!el.getChild("subject") && !el.getChild("body");

/**
 * Setup step: `who` is the account's first session to join `room`; the anchor's join goes upstream and
 * the fake room accepts it with `burst` (occupant presences, history), the self-presence and the subject.
 * Returns everything `who` received for the join, up to the subject.
 */
export async function firstJoin(t: Transcript, who: string, o: { room?: string; nick: string; id: string; burst?: string; subject?: string; selfExtra?: string; joinChildren?: string }): Promise<Element[]> {
  const room = o.room ?? ROOM;
  const anchor = `${who.split("/")[0] ?? ""}/anchor`;
  await t.sends(who, joinXml(room, o.nick, o.id, "", o.joinChildren));
  await t.upstreamReceives(anchor, `<presence to='${room}/${o.nick}'><x xmlns='${MUC}'/></presence>`, { scan: true });
  await t.upstreamSends(anchor, (o.burst ?? "") +
    selfPresenceXml({ room, nick: o.nick, jid: t.jid(anchor), id: o.id, extra: o.selfExtra ?? "" }) + subjectXml(room, o.subject ?? "Welcome"));
  return t.collect(who, isSubject);
}

/** Run a script against a fresh mucmux and fake upstream; always torn down. */
export async function withTranscript(opts: TranscriptOptions, script: (t: Transcript) => Promise<void>): Promise<void> {
  const t = await transcript(opts);
  try {
    await script(t);
  } finally {
    await t.close();
  }
}
