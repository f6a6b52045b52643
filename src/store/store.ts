// The durable store behind a small interface, so a networked store can implement it later (DESIGN.md).
// Everything but the two lifecycle calls is asynchronous for that reason, even though the embedded
// SQLite store answers synchronously. Keys are lower-cased bare JIDs (account) and room JIDs (room).
import type { ScramHash } from "../sasl/scram.js";
export type { ScramHash } from "../sasl/scram.js";

/**
 * The store cannot be opened safely (mucmux does not start, exit code 1), or a networked store cannot be reached (the
 * call fails; the caller answers with an error). Messages name the file or host:port/database, never a password.
 */
export class StoreError extends Error {
  readonly code = "ERR_MUCMUX_STORE";
}

/** One (account, room) registration as mucmux knows it (SPEC D2–D4). */
export interface RoomRegistration {
  account: string;
  room: string;
  /** The registered room nick (what the client submitted as muc#register_roomnick). */
  nick: string;
  /** OfflineFlag(A,R): the value of `{http://tigase.org/protocol/muc}offline`. */
  offline: boolean;
  /** The upstream registration was created by a form mucmux forwarded (SPEC D4: only then is `<remove/>` forwarded). */
  createdViaMucmux: boolean;
}

/** A room message kept for an account with no online session (SPEC D6b). Times are Unix milliseconds. */
export interface QueuedMessage {
  /** Increasing, never reused: delivery order and the handle to remove it once written. */
  id: number;
  account: string;
  room: string;
  /** The stanza as mucmux's canonical XML, without `to` (set per receiving session). */
  stanza: string;
  receivedAt: number;
  expiresAt: number;
}

export type NewQueuedMessage = Omit<QueuedMessage, "id"> & {
  /**
   * The message's stable id (the room's stanza-id), if it has one: a message whose key is queued for
   * (account, room) already is not queued again, and queuing moves the room's catch-up point to it in the
   * same transaction, so the catch-up after a crash neither loses nor repeats a message (SPEC D7).
   */
  key?: string | undefined;
};

export interface QueueLimits {
  maxPerAccount: number;
  maxPerRoom: number;
}

export type DropReason = "cap_account" | "cap_room" | "ttl";

export interface EnqueueOutcome {
  /** False when a cap of 0 refused the message outright, or it was a duplicate. */
  queued: boolean;
  /** A message with its key is queued for (account, room) already: nothing was stored. */
  duplicate: boolean;
  /** SPEC H3: this replica no longer holds the account's lease (another one queues for it now); nothing was stored. */
  fenced?: boolean;
  /** Messages removed by this call, by reason (the oldest go first when a cap is reached; `ttl` counts any expired ones swept). */
  dropped: Record<DropReason, number>;
}

/**
 * The newest room message the account's anchor is known to have received: its stable id and when, or
 * (`key` undefined) when the registration was saved, if no message with a stable id arrived since.
 */
export interface CatchUpPoint {
  key: string | undefined;
  at: number;
}


/**
 * One account's SCRAM verifier for one hash (RFC 5802 §3): what an XMPP server itself stores. It lets mucmux check a
 * client's proof and recover the ClientKey; it is not password-equivalent (docs/security.md). Shared by every
 * replica once the store is networked: a verifier learned through one is usable through all.
 */
export interface StoredVerifier {
  /** Lower-cased bare JID. */
  account: string;
  hash: ScramHash;
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
  /** learned: derived by mucmux at a login that carried the password; imported: copied from the server's own storage. */
  source: "learned" | "imported";
  /** Salt and iteration count are the upstream's own: a recovered ClientKey authenticates upstream with SCRAM. */
  upstream: boolean;
  /**
   * The password sealed (AES-256-GCM) under a key derived from this verifier's ClientKey, which the store does not
   * hold: opened only at a login that proves the ClientKey. Learned verifiers only; absent when imported.
   */
  sealed: Buffer | undefined;
  updatedAt: number;
}

/**
 * A FAST token mucmux issued (XEP-0484, SPEC A15), stored so that neither the token nor what it unlocks can be read
 * from the store: `hash` = SHA-256 of what the client presents (HMAC(token, "Initiator")), the account's upstream
 * secret sealed under a key derived from that presented value. Shared by every replica once the store is
 * networked: a token issued through one works through all.
 */
export interface FastToken {
  account: string;
  hash: Buffer;
  /** The client's user-agent id (XEP-0388), or "" when it sent none. */
  agent: string;
  /** HMAC(token, "Responder"): the server's proof to the client; it does not log anyone in. */
  responder: Buffer;
  sealed: Buffer;
  expiresAt: number;
  /** The highest `count` the client sent with this token (replay protection), -1 before the first use. */
  count: number;
  createdAt: number;
}

export interface Store {
  /** Cheap liveness check used by /readyz. */
  healthy(): boolean;
  /** Flush and close (SIGTERM drain, SPEC E6). */
  close(): void;

  /** Every registration of one account. */
  registrations(account: string): Promise<RoomRegistration[]>;
  /** Insert or replace the registration of (account, room). */
  saveRegistration(r: RoomRegistration, now: number): Promise<void>;
  deleteRegistration(account: string, room: string): Promise<void>;

  /** Queue a message, sweeping expired ones and enforcing both caps in one transaction. */
  enqueue(m: NewQueuedMessage, limits: QueueLimits, now: number): Promise<EnqueueOutcome>;
  /** Unexpired messages of an account with id > afterId, oldest first, at most `limit`. */
  pending(account: string, now: number, afterId: number, limit: number): Promise<QueuedMessage[]>;
  /** Delete delivered messages (SPEC D6b: only after they were written to the client). */
  remove(ids: readonly number[]): Promise<void>;
  /** Delete every expired message; returns how many. */
  expire(now: number): Promise<number>;
  /** Unexpired queued messages, all accounts (a gauge read at scrape time). */
  queueDepth(now: number): Promise<number>;

  /** The account's anchor received the room message with stable id `key` at `at` (the newest so far). */
  markSeen(account: string, room: string, key: string, at: number): Promise<void>;
  /** Where a catch-up from the room's archive starts (undefined without a registration). */
  catchUpFrom(account: string, room: string): Promise<CatchUpPoint | undefined>;

  /** Every SCRAM verifier of one account (lower-cased bare JID). */
  verifiers(account: string): Promise<StoredVerifier[]>;
  /** Insert or replace the verifiers of their (account, hash), in one transaction (one commit for a batch). */
  saveVerifiers(vs: readonly StoredVerifier[]): Promise<void>;
  /** Forget the account's verifier for `hash`, or all of its verifiers; returns how many were removed. */
  deleteVerifiers(account: string, hash?: ScramHash): Promise<number>;

  /** The unexpired FAST token of `account` whose hash is `hash`. */
  fastToken(account: string, hash: Buffer, now: number): Promise<FastToken | undefined>;
  /** Store a new token; expired ones of the account go, and of one (account, agent) only the newest `keep` stay. */
  saveFastToken(t: FastToken, keep: number, now: number): Promise<void>;
  /** Record the `count` a client used a token with; false when that count is not above the last one (a replay). */
  useFastToken(account: string, hash: Buffer, count: number): Promise<boolean>;
  /** Forget one token, or all of the account's. */
  deleteFastTokens(account: string, hash?: Buffer): Promise<number>;
  /** SPEC G6: every kept anchor (sealed; only the operator's key opens them). */
  keptAnchors(): Promise<{ account: string; sealed: Buffer }[]>;
  saveKeptAnchor(account: string, sealed: Buffer, now: number): Promise<void>;
  deleteKeptAnchor(account: string): Promise<void>;
}

/**
 * One account's ownership (SPEC H1): the replica that serves all of the account's sessions and runs its anchor. Kept
 * in the shared store (PostgreSQL) so every replica agrees; expiry is measured on the store's clock, never a
 * replica's, so clock skew between replicas cannot make two owners.
 */
export interface Lease {
  account: string;
  /** The owning replica's id (cluster.replicaId). */
  owner: string;
  /** Fencing token: a new, larger value at every change of owner (never at a renewal). */
  token: number;
  /** Milliseconds until expiry on the store's clock at the time of the read; <= 0: expired (anyone may take it). */
  expiresInMs: number;
}

/** A replica as it announced itself: where the others reach its internal listener (SPEC H2). */
export interface ReplicaInfo {
  id: string;
  /** host:port of its internal mTLS listener. */
  address: string;
  /** Milliseconds since its last heartbeat, on the store's clock. */
  seenMsAgo: number;
}

/** The fencing check the store applies for one account: the lease this replica believes it holds. */
export type Fence = (account: string) => { owner: string; token: number } | undefined;

/**
 * Leases (SPEC H1–H4): only a networked store shared by replicas has them. Every call is one statement or one
 * transaction; nothing here waits on another replica.
 */
export interface LeaseStore {
  /** Insert or refresh this replica's announcement. */
  heartbeat(id: string, address: string): Promise<void>;
  /** A replica's announcement, if any (the caller judges `seenMsAgo`). */
  replica(id: string): Promise<ReplicaInfo | undefined>;
  /** Remove this replica's announcement (SIGTERM, after its leases are released). */
  retire(id: string): Promise<void>;
  /** The account's lease, whoever holds it; undefined when the account was never leased. */
  lease(account: string): Promise<Lease | undefined>;
  /**
   * Take the account's lease for `owner` for `ttlMs` when nobody holds it, it expired, or `owner` holds it already
   * (then it is only extended; the token stays). Returns the lease as it is after the call: its `owner` says who
   * holds it. Two replicas racing for one account: exactly one wins (one statement).
   */
  acquire(account: string, owner: string, ttlMs: number): Promise<Lease>;
  /** Extend the leases `owner` still holds with these tokens; returns the accounts of `held` it no longer holds. */
  renew(owner: string, held: ReadonlyMap<string, number>, ttlMs: number): Promise<string[]>;
  /** Expire these leases now (only where `owner` still holds them with these tokens) so another replica may take them. */
  release(owner: string, held: ReadonlyMap<string, number>): Promise<void>;
  /** Accounts with a kept anchor (SPEC G6) whose lease is expired or absent: a live replica adopts them. */
  orphanedKeptAnchors(): Promise<string[]>;
  /** Tell the other replicas that leases were released (PostgreSQL NOTIFY); a hint, they poll as well. */
  notifyReleased(): Promise<void>;
  /** Called when another replica released leases; returns the unsubscribe function. */
  onReleased(listener: () => void): () => void;
}
