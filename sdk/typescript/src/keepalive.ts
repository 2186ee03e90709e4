// Keeps the lease of a client's agent alive while the client is open.
//
// The server disconnects an agent that sent no heartbeat for its lease
// (`lease_ms`, 30 s by default) and releases its locks. A client acting as
// an agent (an agent's token, or `agentId` with the admin token) sends those
// heartbeats by itself: one at its first request, then every third of the
// lease read from the heartbeat's answer, until `close()`
// (docs/coordination.md, "Leases"). A heartbeat refused for good (the agent
// is not registered, the token is not the agent's or was revoked) ends the
// keepalive quietly; one that gets no answer is tried again. The timer does
// not keep a Node process alive by itself.

import { ForbiddenError, NotFoundError, UnauthenticatedError } from "./errors.js";
import { untraced } from "./tracing.js";
import type { HeldLock } from "./locks.js";
import type { Agent, Lock } from "./types.js";

/** What the keepalive needs of its client. */
export interface KeepaliveClient {
  /** The client's agent (`undefined`: none, e.g. the admin token without `agentId`). */
  resolveAgent(signal: AbortSignal): Promise<string | undefined>;
  heartbeat(agent: string, signal: AbortSignal): Promise<Agent>;
  getLock(ctx: string, name: string, signal: AbortSignal): Promise<Lock>;
}

/** Between attempts while the lease's length is not known yet. */
const FIRST_INTERVAL_MS = 1000;

export class Keepalive {
  agent: string | undefined;
  leaseMs: number | undefined;
  private leaseExpiresAt: number | undefined;
  private started = false;
  stopped = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly abort = new AbortController();
  private readonly locks = new Set<HeldLock>();
  private readonly client: KeepaliveClient;

  constructor(client: KeepaliveClient) {
    this.client = client;
  }

  /** Ms between heartbeats: a third of the lease. */
  get intervalMs(): number {
    return this.leaseMs ? this.leaseMs / 3 : FIRST_INTERVAL_MS;
  }

  /** Starts the heartbeats (once). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(0);
  }

  /** Ends the heartbeats. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort();
    this.locks.clear();
  }

  /** A lock acquired through the client: checked when a heartbeat shows the lease lapsed. */
  hold(lock: HeldLock): void {
    if (!this.stopped) this.locks.add(lock);
  }

  drop(lock: HeldLock): void {
    this.locks.delete(lock);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      // The heartbeats are the client's own: not part of the span that was
      // active where the keepalive started.
      void untraced(() => this.round()).then((next) => {
        if (next === undefined) this.stop();
        else this.schedule(next);
      });
    }, ms);
    // Node: the keepalive alone does not keep the process running.
    (timer as { unref?: () => void }).unref?.();
    this.timer = timer;
  }

  /** One heartbeat; answers the ms until the next, or `undefined` when the keepalive ends. */
  async round(): Promise<number | undefined> {
    if (this.stopped) return undefined;
    const signal = this.abort.signal;
    let agent = this.agent;
    if (agent === undefined) {
      try {
        agent = await this.client.resolveAgent(signal);
      } catch (error) {
        if (this.stopped) return undefined;
        if (error instanceof UnauthenticatedError || error instanceof ForbiddenError) return undefined;
        return this.intervalMs; // no answer: try again
      }
      if (agent === undefined) return undefined; // no agent to keep alive
      this.agent = agent;
    }
    let answer: Agent;
    try {
      answer = await this.client.heartbeat(agent, signal);
    } catch (error) {
      if (this.stopped) return undefined;
      if (error instanceof NotFoundError || error instanceof UnauthenticatedError || error instanceof ForbiddenError) return undefined;
      return Math.min(this.intervalMs, FIRST_INTERVAL_MS);
    }
    // The lease lapsed when this heartbeat came after the expiry the last one
    // announced: the server may have disconnected the agent meanwhile.
    const heartbeatAt = timeOf(answer.last_heartbeat_at);
    const lapsed = this.leaseExpiresAt !== undefined && heartbeatAt !== undefined && heartbeatAt >= this.leaseExpiresAt;
    this.leaseMs = answer.lease_ms > 0 ? answer.lease_ms : undefined;
    this.leaseExpiresAt = timeOf(answer.lease_expires_at);
    if (lapsed) await this.checkLocks(agent, signal);
    return this.intervalMs;
  }

  /** Marks lost each lock held through the client that its acquisition no longer holds. */
  private async checkLocks(agent: string, signal: AbortSignal): Promise<void> {
    for (const lock of [...this.locks]) {
      if (lock.lost) continue;
      let current: Lock | undefined;
      try {
        current = await this.client.getLock(lock.context, lock.name, signal);
      } catch {
        current = undefined; // cannot tell: the lease did lapse
      }
      if (current === undefined || current.holder !== agent || current.lock_id !== lock.lockId) {
        lock.markLost("the agent's lease lapsed: the server released its locks (holder disconnected)");
      }
    }
  }
}

function timeOf(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}
