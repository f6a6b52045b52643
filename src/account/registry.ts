// AccountRegistry: every account with a bound session or managed rooms. Stages reach accounts and
// anchors only through it; they extend it through handler registries, never by importing each other.
import type { Element } from "@xmpp/xml";
import type { Link } from "../stream/link.js";
import type { Credentials } from "../stream/link-deps.js";
import type { UpstreamOutcome } from "../stream/upstream.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { Account } from "./account.js";
import { Anchor } from "./anchor.js";
import { bareKey, bareOf } from "./jid.js";

export interface AnchorHandlers {
  onStanza(account: Account, el: Element): void;
  onOnline(account: Account, reconnected: boolean): void;
  onDown(account: Account, permanent: boolean): void;
  onSessionClosed(account: Account, link: Link): void;
}

export interface RegistryDeps {
  log: Logger;
  metrics: Metrics;
  connectUpstream(domain: string, username: string, password: string): Promise<UpstreamOutcome>;
}

export class AccountRegistry {
  private readonly accounts = new Map<string, Account>();
  private readonly bySession = new WeakMap<Link, Account>();
  private readonly handlers: AnchorHandlers[] = [];
  private readonly keepers: ((account: Account, roomJid: string) => boolean)[] = [];
  private readonly unjoined: ((account: Account, roomJid: string, el: Element) => void)[] = [];
  private readonly removals: ((account: Account, roomJid: string, codes: ReadonlySet<string>, destroyed: boolean) => void)[] = [];
  private readonly bound: ((account: Account, link: Link) => void)[] = [];
  private joiner: ((account: Account, roomJid: string, nick: string) => void) | undefined;
  private releaser: ((account: Account, roomJid: string) => void) | undefined;

  constructor(private readonly deps: RegistryDeps) {}

  /** Stages register here for anchor traffic and session departures. */
  addHandlers(h: AnchorHandlers): void {
    this.handlers.push(h);
  }

  /**
   * A stage that wants rooms kept joined while no session is in them registers here (SPEC C5: the
   * offline flag keeps a room).
   */
  addKeeper(fn: (account: Account, roomJid: string) => boolean): void {
    this.keepers.push(fn);
  }

  isKept(account: Account, roomJid: string): boolean {
    return this.keepers.some((k) => k(account, roomJid));
  }

  /** Told when the account was removed from a room (SPEC C7), with the status codes and whether it was destroyed. */
  addRemovalHandler(fn: (account: Account, roomJid: string, codes: ReadonlySet<string>, destroyed: boolean) => void): void {
    this.removals.push(fn);
  }

  roomRemoved(account: Account, roomJid: string, codes: ReadonlySet<string>, destroyed: boolean): void {
    for (const fn of this.removals) fn(account, roomJid, codes, destroyed);
  }

  /**
   * The MUC stage provides a way to join a room for the account with no session in it (kept, SPEC D7);
   * other stages call `keepRoomJoined` without importing the MUC stage.
   */
  provideRoomJoiner(fn: (account: Account, roomJid: string, nick: string) => void): void {
    this.joiner = fn;
  }

  keepRoomJoined(account: Account, roomJid: string, nick: string): boolean {
    if (!this.joiner) return false;
    this.joiner(account, roomJid, nick);
    return true;
  }

  /**
   * A keeper's reason to keep a room went away (the offline flag was cleared, SPEC C5): the MUC stage
   * treats the room like one whose last session departed (it lingers, then the anchor leaves).
   */
  provideKeepReleaser(fn: (account: Account, roomJid: string) => void): void {
    this.releaser = fn;
  }

  keepReleased(account: Account, roomJid: string): void {
    this.releaser?.(account, roomJid);
  }

  /** Told when a session of an account bound its resource (SPEC D7: re-join kept rooms at the next login). */
  addSessionBoundHandler(fn: (account: Account, link: Link) => void): void {
    this.bound.push(fn);
  }

  /** Room messages that reached the anchor while no session of the account was in the room (SPEC D). */
  addUnjoinedHandler(fn: (account: Account, roomJid: string, el: Element) => void): void {
    this.unjoined.push(fn);
  }

  unjoinedMessage(account: Account, roomJid: string, el: Element): void {
    for (const fn of this.unjoined) fn(account, roomJid, el);
  }

  get size(): number { return this.accounts.size; }
  values(): IterableIterator<Account> { return this.accounts.values(); }
  get(bare: string): Account | undefined { return this.accounts.get(bareKey(bare)); }
  forSession(link: Link): Account | undefined { return this.bySession.get(link); }

  /** A session bound its resource (SPEC A3: the account record now holds the credentials). */
  sessionBound(link: Link, creds: Credentials): void {
    if (!link.jid) return;
    const key = bareKey(link.jid);
    let account = this.accounts.get(key);
    if (!account) {
      const bare = bareOf(link.jid);
      account = new Account(bare, bare.slice(bare.indexOf("@") + 1), creds);
      this.accounts.set(key, account);
    } else {
      account.credentials = creds; // the newest successful login wins (password changes)
    }
    account.sessions.add(link);
    this.bySession.set(link, account);
    for (const fn of this.bound) fn(account, link);
  }

  sessionClosed(link: Link): void {
    const account = this.bySession.get(link);
    if (!account) return;
    account.sessions.delete(link);
    this.bySession.delete(link);
    for (const h of this.handlers) h.onSessionClosed(account, link);
    this.dropIfIdle(account);
  }

  /** The account's anchor, opened on first use (SPEC A7: on the account's first MUC join). */
  anchorFor(account: Account): Anchor {
    if (account.anchor && account.anchor.state !== "closed") return account.anchor;
    const { username, password } = account.credentials;
    const anchor = new Anchor({
      connect: () => this.deps.connectUpstream(account.domain, username, password),
      log: this.deps.log.child({ anchor: true }),
      onStanza: (el) => { for (const h of this.handlers) h.onStanza(account, el); },
      onOnline: (re) => { for (const h of this.handlers) h.onOnline(account, re); },
      onDown: (permanent) => { for (const h of this.handlers) h.onDown(account, permanent); },
      opened: () => this.deps.metrics.anchorsOpen.inc(),
      closed: () => this.deps.metrics.anchorsOpen.dec(),
    });
    account.anchor = anchor;
    anchor.start();
    return anchor;
  }

  /** Drop the record (credentials, anchor) once nothing needs it. */
  dropIfIdle(account: Account): void {
    if (!account.idle || this.accounts.get(bareKey(account.bare)) !== account) return;
    this.accounts.delete(bareKey(account.bare));
    account.dispose();
  }

  /** SIGTERM: close every anchor. */
  closeAll(): void {
    for (const a of this.accounts.values()) a.dispose();
    this.accounts.clear();
  }
}
