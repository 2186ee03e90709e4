// Locks with fencing tokens, withLock(), and the keepalive of the agent's
// lease that keeps them.

import { describe, expect, it } from "vitest";

import {
  Client,
  FencedError,
  HeldLock,
  LockLostError,
  LockNotAcquiredError,
  NotHolderError,
} from "../src/index.js";
import { serverWithAdmin } from "./fixture.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
let admin: Client;
const clients: Client[] = [];
serverWithAdmin((s, a) => {
  server = s;
  admin = a;
}, { clients });

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A context shared with `n` new agents, and a client for each. */
async function setup(n: number, spec: Record<string, unknown> = {}, options: { keepalive?: boolean } = {}) {
  const ctx = unique("ctx");
  await admin.createContext(ctx);
  const agents = [];
  for (let i = 0; i < n; i++) agents.push(await server.registerAgent(unique("agent"), spec));
  await admin.grant(ctx, agents.map((a) => a.id), ["read", "write"]);
  const out = agents.map((a) => {
    const client = new Client({ url: server.url, token: a.token, ...options });
    clients.push(client);
    return { id: a.id, client };
  });
  return { ctx, agents: out };
}

describe("locks", () => {
  it("acquires, answers who holds it, refreshes and releases", async () => {
    const { ctx, agents } = await setup(2);
    const [a, b] = agents as [(typeof agents)[0], (typeof agents)[0]];
    const got = await a.client.acquireLock(ctx, "plan/main", { ttlMs: 30_000 });
    expect(got.acquired).toBe(true);
    expect(got.holder).toBe(a.id);
    expect(got.lock_id).toBe(`plan/main:${got.fencing_token}`);

    const busy = await b.client.acquireLock(ctx, "plan/main", { ttlMs: 30_000 });
    expect(busy.acquired).toBe(false);
    expect(busy.holder).toBe(a.id);
    await expect(b.client.releaseLock(ctx, "plan/main")).rejects.toBeInstanceOf(NotHolderError);

    const refreshed = await a.client.refreshLock(ctx, "plan/main", { ttlMs: 60_000 });
    expect(refreshed.fencing_token).toBe(got.fencing_token);
    expect((await a.client.getLock(ctx, "plan/main")).holder).toBe(a.id);
    expect((await a.client.listLocks(ctx)).map((l) => l.name)).toEqual(["plan/main"]);

    await a.client.releaseLock(ctx, "plan/main");
    const next = await b.client.acquireLock(ctx, "plan/main");
    expect(next.acquired).toBe(true);
    expect(next.fencing_token).toBeGreaterThan(got.fencing_token);
  });

  it("waits for a lock another agent releases, and gives up with LockNotAcquiredError", async () => {
    const { ctx, agents } = await setup(2);
    const [a, b] = agents as [(typeof agents)[0], (typeof agents)[0]];
    const held = await a.client.lock(ctx, "l");
    const error = await b.client.lock(ctx, "l", { waitMs: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockNotAcquiredError);
    expect((error as LockNotAcquiredError).lock.holder).toBe(a.id);

    const waiting = b.client.lock(ctx, "l", { waitMs: 20_000 });
    await pause(200);
    await held.release();
    const got = await waiting;
    expect(got.fencingToken).toBeGreaterThan(held.fencingToken);
    await got.release();
  });

  it("refuses the late write of a holder whose lock was taken over, with FencedError, and marks its lock lost", async () => {
    const { ctx, agents } = await setup(2);
    const [a, b] = agents as [(typeof agents)[0], (typeof agents)[0]];
    const stale = await a.client.lock(ctx, "doc", { ttlMs: 300 });
    await a.client.put(ctx, "doc", "a's draft", { fencing: stale });
    // a pauses past its TTL; b takes the lock
    const fresh = await b.client.lock(ctx, "doc", { waitMs: 10_000 });
    expect(fresh.fencingToken).toBeGreaterThan(stale.fencingToken);
    await b.client.put(ctx, "doc", "b's draft", { fencing: fresh });

    const error = await a.client.put(ctx, "doc", "a's late write", { fencing: stale }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FencedError);
    expect((error as FencedError).token).toBe(stale.fencingToken);
    expect((error as FencedError).currentToken).toBe(fresh.fencingToken);
    expect((await admin.get(ctx, "doc")).value).toBe("b's draft");
    expect(stale.lost).toBe(true);
    expect(stale.signal.aborted).toBe(true);
    // the next use of the lost lock says so, without sending
    await expect(a.client.put(ctx, "doc", "again", { fencing: stale })).rejects.toBeInstanceOf(LockLostError);
    await expect(stale.release()).rejects.toBeInstanceOf(LockLostError);

    // the same through a transaction, and a token given as a pair
    await expect(
      a.client.txn(ctx, { success: [{ op: "put", key: "doc", value: "x" }], fencing: ["doc", stale.fencingToken] }),
    ).rejects.toBeInstanceOf(FencedError);
    expect((await admin.get(ctx, "doc")).value).toBe("b's draft");
    await fresh.release();
  });

  it("withLock passes the lock to fn, keeps it refreshed while fn runs, and releases it after", async () => {
    const { ctx, agents } = await setup(2);
    const [a, b] = agents as [(typeof agents)[0], (typeof agents)[0]];
    let seen: HeldLock | undefined;
    const result = await a.client.withLock(
      ctx,
      "plan",
      async (lock) => {
        seen = lock;
        await a.client.put(ctx, "plan", { v: 1 }, { fencing: lock });
        await pause(1500); // five TTLs: held only because it is refreshed
        const now = await b.client.getLock(ctx, "plan");
        expect(now.holder).toBe(a.id);
        expect(now.lock_id).toBe(lock.lockId);
        expect((await b.client.acquireLock(ctx, "plan")).acquired).toBe(false);
        await a.client.put(ctx, "plan", { v: 2 }, { fencing: lock });
        return "done";
      },
      { ttlMs: 300 },
    );
    expect(result).toBe("done");
    expect(seen?.lost).toBe(false);
    expect((await b.client.getLock(ctx, "plan")).holder ?? null).toBeNull();
    expect((await admin.get(ctx, "plan")).value).toEqual({ v: 2 });
  });

  it("withLock releases the lock when fn throws, and passes the error on", async () => {
    const { ctx, agents } = await setup(1);
    const [a] = agents as [(typeof agents)[0]];
    await expect(
      a.client.withLock(ctx, "plan", async () => {
        throw new Error("the work failed");
      }),
    ).rejects.toThrow("the work failed");
    expect((await a.client.getLock(ctx, "plan")).holder ?? null).toBeNull();
  });

  it("withLock throws LockLostError when the lock was lost while fn ran", async () => {
    const { ctx, agents } = await setup(2);
    const [a, b] = agents as [(typeof agents)[0], (typeof agents)[0]];
    const error = await a.client
      .withLock(
        ctx,
        "plan",
        async (lock) => {
          // Another agent takes the lock after its TTL (no refresh here).
          const taken = await b.client.lock(ctx, "plan", { waitMs: 10_000 });
          await expect(a.client.put(ctx, "plan", "late", { fencing: lock })).rejects.toBeInstanceOf(FencedError);
          await taken.release();
          return "unsafe";
        },
        { ttlMs: 300, refresh: false },
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockLostError);
  });
});

describe("the agent's lease", () => {
  it("is kept alive while the client is open, so the agent keeps its lock past its lease", async () => {
    const { ctx, agents } = await setup(1, { lease_ms: 1000 });
    const [a] = agents as [(typeof agents)[0]];
    const held = await a.client.lock(ctx, "l", { ttlMs: 60_000 });
    await pause(3500); // three leases
    expect((await admin.getAgent(a.id)).status).toBe("active");
    expect((await admin.getLock(ctx, "l")).holder).toBe(a.id);
    expect(held.lost).toBe(false);
    await held.release();
  });

  it("lapses once the client is closed, and the server releases the agent's locks", async () => {
    const { ctx, agents } = await setup(1, { lease_ms: 1000 });
    const [a] = agents as [(typeof agents)[0]];
    await a.client.lock(ctx, "l", { ttlMs: 60_000 });
    a.client.close();
    // The sweeper disconnects the agent, then releases each of its locks
    // in the lock's context (docs/coordination.md): both happen.
    const deadline = Date.now() + 20_000;
    while ((await admin.getAgent(a.id)).status !== "disconnected") {
      if (Date.now() > deadline) throw new Error("the agent was never disconnected");
      await pause(100);
    }
    while (((await admin.getLock(ctx, "l")).holder ?? null) !== null) {
      if (Date.now() > deadline) throw new Error("the disconnected agent's lock was never released");
      await pause(100);
    }
  });

  it("marks a held lock lost when a heartbeat shows the lease lapsed and the server released the lock", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const agent = await server.registerAgent(unique("agent"), { lease_ms: 1000 });
    await admin.grant(ctx, agent.id, ["read", "write"]);
    // The agent's heartbeats are held up for three leases, as by a partition.
    let partitioned = false;
    const gated = async (url: string, init: RequestInit) => {
      if (partitioned && url.endsWith("/heartbeat")) await pause(3000);
      return fetch(url, init);
    };
    const client = new Client({ url: server.url, token: agent.token, fetch: gated });
    clients.push(client);
    const held = await client.lock(ctx, "l", { ttlMs: 60_000 });
    await pause(500); // the first heartbeats went through
    partitioned = true;
    const deadline = Date.now() + 20_000;
    while (!held.signal.aborted) {
      if (Date.now() > deadline) throw new Error("the lock was never marked lost");
      await pause(50);
    }
    expect(held.lost).toBe(true);
    expect(held.lostReason).toContain("lease lapsed");
    expect((await admin.getLock(ctx, "l")).holder ?? null).toBeNull();
    await expect(client.put(ctx, "doc", 1, { fencing: held })).rejects.toBeInstanceOf(LockLostError);
    await expect(held.release()).rejects.toBeInstanceOf(LockLostError);
  });

  it("is not kept with keepalive: false", async () => {
    const { ctx, agents } = await setup(1, { lease_ms: 1000 }, { keepalive: false });
    const [a] = agents as [(typeof agents)[0]];
    await a.client.lock(ctx, "l", { ttlMs: 60_000 });
    const deadline = Date.now() + 20_000;
    while ((await admin.getAgent(a.id)).status !== "disconnected") {
      if (Date.now() > deadline) throw new Error("the agent was never disconnected");
      await pause(100);
    }
    // A heartbeat of its own makes it active again.
    expect((await a.client.heartbeat()).status).toBe("active");
  });
});
