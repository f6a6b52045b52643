// What the offline stage's parts share: dependencies, the per-account state (the flags cached from the
// store) and the process-wide bookkeeping of queued messages in flight.
import { LRUCache } from "lru-cache";
import type { AccountRegistry } from "../../account/registry.js";
import type { EventBus } from "../../chain/events.js";
import type { Views } from "../../chain/views.js";
import type { Account } from "../../account/account.js";
import type { Config } from "../../config/index.js";
import type { Metrics } from "../../metrics/metrics.js";
import type { Logger } from "../../log.js";
import type { RoomRegistration, Store } from "../../store/store.js";
import { bareKey } from "../../account/jid.js";

export interface OfflineDeps {
  config: Config;
  metrics: Metrics;
  log: Logger;
  accounts: AccountRegistry;
  events: EventBus;
  /** The rooms the account manages and the MUC services, read-only. */
  views: Views;
  /** The store once the app has opened it. */
  store(): Store | undefined;
}

/** Offline state of one account record (it lives as long as the Account object). */
export class AccountOffline {
  /** The account's registrations by room key; valid once `loaded`. */
  readonly flags = new Map<string, RoomRegistration>();
  loaded = false;
  loading: Promise<boolean> | undefined;
  /** Rooms the account was removed from with 307/321/322: no re-join at its next login (SPEC C7). */
  readonly noRejoin = new Set<string>();
  /** Rooms whose last registration GET said `<registered/>`: a registration that predates mucmux's form (SPEC D4). */
  readonly preRegistered = new Set<string>();
  private recentIds: LRUCache<string, true> | undefined;
  /**
   * Stable ids (room stanza-ids) handled lately by this stage: a message fetched twice is handled once. Made at its
   * first use: an LRUCache allocates its arrays up front, and most accounts never need it (in a burst of logins
   * they filled the young generation, and each scavenge had to copy them).
   */
  get recent(): LRUCache<string, true> {
    return (this.recentIds ??= new LRUCache<string, true>({ max: 1000 }));
  }
  /** Newest stable id each flagged room's anchor received, not yet written to the store (batched). */
  readonly pendingMarks = new Map<string, { key: string; at: number }>();
  markTimer: NodeJS.Timeout | undefined;
  /** An archive catch-up is running: the catch-up point must not move before it ends. */
  catchingUp = 0;
  private tail: Promise<unknown> = Promise.resolve();

  /** Run `fn` after every earlier task of this account, so that message order survives the awaits. */
  serial(fn: () => Promise<void>): Promise<void> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

export interface OfflineContext extends OfflineDeps {
  state(account: Account): AccountOffline;
  /** Queued message ids written (or being written) to a session and not yet removed from the store. */
  readonly claimed: Set<number>;
  /** Delivered ids whose removal failed (store read-only): retried, never delivered twice by this process. */
  readonly unremoved: Set<number>;
  /** Written ids waiting for one batched removal. */
  readonly toRemove: number[];
  /**
   * A room message with this stable id reached sessions without being queued (fanned out to joined
   * sessions, or delivered live): the room's catch-up point moves to it (batched; set by archive.ts).
   */
  noteSeen(account: Account, room: string, key: string): void;
}

export function createContext(deps: OfflineDeps): OfflineContext {
  const states = new WeakMap<Account, AccountOffline>();
  return {
    ...deps,
    claimed: new Set(),
    unremoved: new Set(),
    toRemove: [],
    noteSeen: () => {},
    state(account) {
      let s = states.get(account);
      if (!s) states.set(account, (s = new AccountOffline()));
      return s;
    },
  };
}

export const accountKey = (account: Account): string => bareKey(account.bare);

/** Load the account's registrations once (retried on the next call after a store error). */
export function ensureLoaded(ctx: OfflineContext, account: Account): Promise<boolean> {
  const st = ctx.state(account);
  if (st.loaded) return Promise.resolve(true);
  const store = ctx.store();
  if (!store) return Promise.resolve(false);
  st.loading ??= store.registrations(accountKey(account)).then(
    (rows) => {
      for (const r of rows) if (!st.flags.has(r.room)) st.flags.set(r.room, r);
      st.loaded = true;
      return true;
    },
    () => {
      st.loading = undefined; // counted and logged by the instrumented store
      return false;
    },
  );
  return st.loading;
}

/** Store a registration, then cache it; false when the store refused (nothing changes then). */
export async function saveRegistration(ctx: OfflineContext, account: Account, reg: RoomRegistration): Promise<boolean> {
  const store = ctx.store();
  if (!store) return false;
  try {
    await (reg.offline || reg.createdViaMucmux ? store.saveRegistration(reg, Date.now()) : store.deleteRegistration(reg.account, reg.room));
  } catch {
    return false;
  }
  if (reg.offline || reg.createdViaMucmux) ctx.state(account).flags.set(reg.room, reg);
  else ctx.state(account).flags.delete(reg.room);
  ctx.metrics.offlineFlagChanges.inc({ value: reg.offline ? "on" : "off" });
  ctx.events.emit("offline-flags", { account, any: [...ctx.state(account).flags.values()].some((r) => r.offline) });
  return true;
}

/** Forget a registration entirely (`<remove/>`, ban, destruction). */
export async function dropRegistration(ctx: OfflineContext, account: Account, room: string): Promise<boolean> {
  const reg = ctx.state(account).flags.get(room);
  return saveRegistration(ctx, account, { account: accountKey(account), room, nick: reg?.nick ?? "", offline: false, createdViaMucmux: false });
}
