// AccountRegistry: every account with a bound session or with state some stage still holds (managed rooms).
// Stages reach accounts and anchors through it; what happens to accounts reaches them as events (EventBus).
import type { Element } from "@xmpp/xml";
import type { Session } from "../chain/session.js";
import type { EventBus } from "../chain/events.js";
import type { Credentials } from "./credentials.js";
import type { UpstreamOutcome } from "../stream/upstream.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { Account } from "./account.js";
import { Anchor } from "./anchor.js";
import { bareKey, bareOf } from "./jid.js";

export interface RegistryDeps {
  log: Logger;
  metrics: Metrics;
  events: EventBus;
  connectUpstream(domain: string, credentials: Credentials): Promise<UpstreamOutcome>;
  /** An anchor stanza that no pending IQ took: through the stages (the chain runner's anchor entry). */
  onAnchorStanza(account: Account, el: Element): void;
}

export class AccountRegistry {
  private readonly accounts = new Map<string, Account>();
  private readonly bySession = new WeakMap<Session, Account>();

  constructor(private readonly deps: RegistryDeps) {}

  get size(): number { return this.accounts.size; }
  values(): IterableIterator<Account> { return this.accounts.values(); }
  get(bare: string): Account | undefined { return this.accounts.get(bareKey(bare)); }
  forSession(session: Session): Account | undefined { return this.bySession.get(session); }

  /**
   * A session bound its resource (SPEC A3: the account record now holds the credentials). A relayed login
   * (SPEC A13) brings none: the account keeps what an earlier login gave it, if anything.
   */
  sessionBound(session: Session, creds: Credentials | undefined): void {
    if (!session.jid) return;
    const key = bareKey(session.jid);
    let account = this.accounts.get(key);
    if (!account) {
      const bare = bareOf(session.jid);
      account = new Account(bare, bare.slice(bare.indexOf("@") + 1), creds);
      this.accounts.set(key, account);
    } else if (creds) {
      account.credentials = creds; // the newest successful login wins (password changes)
    }
    account.sessions.add(session);
    this.bySession.set(session, account);
    this.deps.events.emit("session-bound", { account, session });
  }

  /**
   * SPEC G6: at start, the record of an account whose kept anchor opened with the operator's key: its credentials
   * and push registrations, no session. Stages take it from the `account-restored` event (rooms are joined again).
   */
  restore(bare: string, creds: Credentials, push: readonly string[]): Account {
    const key = bareKey(bare);
    let account = this.accounts.get(key);
    if (!account) {
      account = new Account(bare, bare.slice(bare.indexOf("@") + 1), creds);
      this.accounts.set(key, account);
    } else {
      account.credentials = creds;
    }
    this.deps.events.emit("account-restored", { account, push });
    return account;
  }

  sessionClosed(session: Session): void {
    const account = this.bySession.get(session);
    if (!account) return;
    account.sessions.delete(session);
    this.bySession.delete(session);
    this.deps.events.emit("session-closed", { account, session });
    this.dropIfIdle(account);
  }

  /**
   * The account's anchor, opened on first use (SPEC A7: on the account's first MUC join); undefined for a
   * record the registry already dropped (a late timer or a held stanza must not log in with it), and for an
   * account no login gave a key (SPEC A13).
   */
  anchorFor(account: Account): Anchor | undefined {
    if (account.disposed || !account.credentials) return undefined; // SPEC A13: no key, no anchor
    if (account.anchor && account.anchor.state !== "closed") return account.anchor;
    const { events } = this.deps;
    const anchor = new Anchor({
      // Every (re)connect uses the account's current credentials: a session that logged in after a password
      // change brought the new ones (SPEC A3, A9).
      connect: () => account.credentials
        ? this.deps.connectUpstream(account.domain, account.credentials)
        : Promise.resolve({ ok: false, reason: "sasl", condition: "not-authorized", text: undefined, mechanism: "none" }),
      log: this.deps.log.child({ anchor: true }),
      onStanza: (el) => {
        if (account.anchorIqs.take(el)) return; // an answer mucmux was waiting for: never a stage's business
        this.deps.onAnchorStanza(account, el);
      },
      onOnline: (reconnected) => void events.emit("anchor-online", { account, reconnected }),
      onDown: (permanent) => {
        account.anchorIqs.cancelAll(); // their answers can no longer arrive on this stream
        events.emit("anchor-down", { account, permanent });
      },
      opened: () => this.deps.metrics.anchorsOpen.inc(),
      closed: () => this.deps.metrics.anchorsOpen.dec(),
    });
    account.anchor = anchor;
    anchor.start();
    return anchor;
  }

  /** Drop the record (credentials, anchor) once no session and no stage needs it. */
  dropIfIdle(account: Account): void {
    if (account.sessions.size > 0 || this.accounts.get(bareKey(account.bare)) !== account) return;
    if (this.deps.events.emit("account-busy?", { account })) return;
    this.accounts.delete(bareKey(account.bare));
    this.dispose(account);
  }

  /**
   * SPEC H3/H4: another replica owns the account now: its record and anchor go at once (its sessions were ended by
   * the caller). The room sees no leave when the new owner's anchor joined first.
   */
  evict(bare: string): void {
    const account = this.accounts.get(bareKey(bare));
    if (!account) return;
    this.accounts.delete(bareKey(bare));
    this.dispose(account);
  }

  /** SIGTERM: close every anchor. */
  closeAll(): void {
    for (const a of [...this.accounts.values()]) this.dispose(a);
    this.accounts.clear();
  }

  private dispose(account: Account): void {
    this.deps.events.emit("account-disposed", { account });
    account.dispose();
  }
}
