// Held locks: acquisition with server-side waiting, background refresh,
// fencing tokens for the writes made under them, and a lock lost while held
// that says so.
//
// A lock is *lost* when it turns out not to be held by this acquisition any
// more: a refresh or the release is refused (`not_holder`), a write fenced
// with it is refused (`fenced`), or the client's keepalive finds that the
// agent's lease lapsed and another acquisition (or none) holds the lock.
// `lost` and `lostReason` say so, `signal` is aborted, and the next use of
// the lock (`refresh()`, `release()`, a write with `fencing: lock`) throws
// `LockLostError` (docs/coordination.md, "Leases").

import { DisconnectedError, LockLostError, LockNotAcquiredError, NotFoundError, NotHolderError } from "./errors.js";
import type { RequestOptions } from "./http.js";
import type { Keepalive } from "./keepalive.js";
import type { Lock, LockAnswer } from "./types.js";

/** What a held lock needs of its client. */
export interface LockClient {
  acquireLock(ctx: string, name: string, options: { ttlMs: number; waitMs: number } & RequestOptions): Promise<LockAnswer>;
  refreshLock(ctx: string, name: string, options: { ttlMs: number; lockId?: string | undefined }): Promise<Lock>;
  releaseLock(ctx: string, name: string, options: { lockId?: string | undefined }): Promise<Lock>;
}

/** How a lock is held. */
export interface LockOptions extends RequestOptions {
  /** How long the lock lives without a refresh (default 30000 ms). */
  ttlMs?: number;
  /** How long to wait for a lock another agent holds (default 10000 ms; 0: do not wait); `LockNotAcquiredError` when it stays held. */
  waitMs?: number;
  /** Refresh the lock in the background, every third of its TTL, while it is held. */
  refresh?: boolean;
}

/**
 * A lock this client holds (from `client.lock()` or `client.withLock()`).
 * Pass it as `fencing` to the writes made under it: once another agent took
 * the lock, such a late write is refused (`FencedError`) instead of
 * overwriting.
 */
export class HeldLock {
  readonly context: string;
  readonly name: string;
  readonly ttlMs: number;
  /** The lock as last acquired or refreshed. */
  lock: Lock;
  /** Set when the lock turned out not to be held by this acquisition any more. */
  lost = false;
  /** Why the lock was lost. */
  lostReason: string | undefined;
  private readonly lostController = new AbortController();
  private readonly client: LockClient;
  private readonly keepalive: Keepalive | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private released = false;

  constructor(client: LockClient, keepalive: Keepalive | undefined, ctx: string, name: string, ttlMs: number, lock: Lock) {
    this.client = client;
    this.keepalive = keepalive;
    this.context = ctx;
    this.name = name;
    this.ttlMs = ttlMs;
    this.lock = lock;
    keepalive?.hold(this);
  }

  /** Aborted when the lock is lost (its `reason` is the `LockLostError`): pass it to the work done under the lock. */
  get signal(): AbortSignal {
    return this.lostController.signal;
  }

  /** The fencing token of this acquisition (grows with every acquisition of the lock). */
  get fencingToken(): number {
    return this.lock.fencing_token;
  }

  /** `<name>:<token>`: names this acquisition. */
  get lockId(): string {
    return this.lock.lock_id ?? `${this.name}:${this.lock.fencing_token}`;
  }

  /** The `X-Fencing-Token` value for writes under this lock (`LockLostError` once lost). */
  get fence(): string {
    this.checkHeld();
    return `${this.name}=${this.fencingToken}`;
  }

  /** The header to send with writes under this lock (for other HTTP clients). */
  get headers(): Record<string, string> {
    return { "X-Fencing-Token": this.fence };
  }

  /** Throws `LockLostError` when the lock is known to be lost. */
  checkHeld(): void {
    if (this.lost) throw this.lostError();
  }

  /** Marks the lock lost (idempotent). */
  markLost(reason: string): void {
    if (this.lost) return;
    this.lost = true;
    this.lostReason = reason;
    this.stopRefreshing();
    this.lostController.abort(this.lostError());
  }

  /** Extends the lock's TTL now (`LockLostError` when it was lost). */
  async refresh(ttlMs?: number): Promise<Lock> {
    this.checkHeld();
    try {
      this.lock = await this.client.refreshLock(this.context, this.name, { ttlMs: ttlMs ?? this.ttlMs, lockId: this.lockId });
    } catch (error) {
      if (error instanceof NotHolderError || error instanceof NotFoundError) {
        this.markLost("a refresh was refused: the lock is not held by this acquisition any more");
        throw this.lostError();
      }
      throw error;
    }
    return this.lock;
  }

  /** Releases the lock (`LockLostError` when it was lost meanwhile; it is forgotten either way). */
  async release(): Promise<void> {
    this.stopRefreshing();
    if (this.released) return;
    this.released = true;
    this.keepalive?.drop(this);
    if (!this.lost) {
      try {
        await this.client.releaseLock(this.context, this.name, { lockId: this.lockId });
        return;
      } catch (error) {
        if (!(error instanceof NotHolderError || error instanceof NotFoundError)) throw error;
        this.markLost("the release was refused: the lock was not held by this acquisition any more");
      }
    }
    throw this.lostError();
  }

  /** Refreshes the lock every third of its TTL until it is released or lost. */
  startRefreshing(): void {
    if (this.refreshTimer !== undefined || this.lost || this.released) return;
    const interval = Math.max(50, this.ttlMs / 3);
    const tick = () => {
      this.refreshTimer = setTimeout(() => {
        this.refresh().then(
          () => {
            if (this.refreshTimer !== undefined) tick();
          },
          () => {
            // Lost: refreshing ends (the lock says so). Otherwise a
            // transient failure: the next round tries again.
            if (!this.lost && this.refreshTimer !== undefined) tick();
          },
        );
      }, interval);
      (this.refreshTimer as { unref?: () => void }).unref?.();
    };
    tick();
  }

  stopRefreshing(): void {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  private lostError(): LockLostError {
    return new LockLostError(this.context, this.name, this.lostReason ?? "it is not held any more");
  }
}

/**
 * Asks for the lock until it is granted or `waitMs` passed (the server waits
 * up to a minute each time). A disconnected agent (its lease lapsed before
 * the keepalive renewed it) sends a heartbeat and tries again, once.
 */
export async function acquireHeld(
  client: LockClient,
  keepalive: Keepalive | undefined,
  ctx: string,
  name: string,
  options: LockOptions,
): Promise<HeldLock> {
  const ttlMs = options.ttlMs ?? 30_000;
  const waitMs = options.waitMs ?? 10_000;
  const deadline = Date.now() + waitMs;
  let revived = false;
  for (;;) {
    const left = Math.max(0, Math.round(deadline - Date.now()));
    let answer: LockAnswer;
    try {
      answer = await client.acquireLock(ctx, name, {
        ttlMs,
        waitMs: Math.min(left, 60_000),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      });
    } catch (error) {
      if (!(error instanceof DisconnectedError) || revived || keepalive === undefined || keepalive.stopped) throw error;
      revived = true;
      await keepalive.round();
      continue;
    }
    if (answer.acquired) {
      const { acquired: _acquired, ...lock } = answer;
      const held = new HeldLock(client, keepalive, ctx, name, ttlMs, lock as Lock);
      if (options.refresh) held.startRefreshing();
      return held;
    }
    if (Date.now() >= deadline) {
      const { acquired: _acquired, ...lock } = answer;
      throw new LockNotAcquiredError(lock as Lock);
    }
  }
}
