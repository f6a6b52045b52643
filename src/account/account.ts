// One account (a bare JID): its sessions, credentials (memory only, SPEC A3), anchor and the IQs mucmux has
// in flight for it. Stages keep their own per-account state in `slots` (each stage its own key), so the
// record knows nothing of rooms or offline flags.
import type { Element } from "@xmpp/xml";
import type { Session } from "../chain/session.js";
import type { Credentials } from "./credentials.js";
import type { Anchor } from "./anchor.js";
import { IqTracker } from "../protocol/iq-tracker.js";

/** How long an IQ mucmux sent on the anchor or to a session waits for its answer. */
const IQ_TIMEOUT_MS = 120_000;
const ANCHOR_IQS = { prefix: "mma", timeoutMs: IQ_TIMEOUT_MS };
const SESSION_IQS = { prefix: "mmq", timeoutMs: IQ_TIMEOUT_MS };

export class Account {
  readonly sessions = new Set<Session>();
  anchor: Anchor | undefined;
  /** IQs sent on the anchor (a session's IQ to a room, SPEC C10; archive reads): answers are taken before any stage sees them. */
  readonly anchorIqs = new IqTracker(ANCHOR_IQS);
  /** IQs an occupant sent to the account, forwarded to one of its sessions (SPEC C11). */
  readonly sessionIqs = new IqTracker(SESSION_IQS);
  /** Per-stage state of this account (a stage's own symbol key). */
  readonly slots = new Map<symbol, unknown>();
  /** The registry dropped this record: nothing may open an anchor for it or keep state in it any more. */
  disposed = false;

  constructor(
    readonly bare: string,
    readonly domain: string,
    /** Undefined while no login of the account gave mucmux a key: then it has no anchor (SPEC A13). */
    public credentials: Credentials | undefined,
  ) {}

  /** The stage's state for this account, created on first use. */
  slot<T>(key: symbol, create: () => T): T {
    let v = this.slots.get(key) as T | undefined;
    if (v === undefined) this.slots.set(key, (v = create()));
    return v;
  }

  /** Send on the anchor; false when it is not online. The server stamps the anchor's JID as `from`. */
  sendViaAnchor(el: Element): boolean {
    delete el.attrs.from;
    return this.anchor?.send(el) ?? false;
  }

  /** Forget the credentials, stop the anchor and fail what is in flight (the record is being dropped). */
  dispose(): void {
    this.disposed = true;
    this.anchor?.close();
    this.anchor = undefined;
    this.credentials = undefined;
    this.anchorIqs.cancelAll();
    this.sessionIqs.cancelAll();
    this.slots.clear();
  }
}
