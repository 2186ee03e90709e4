// Contexts and entries against a real server: CRUD, preconditions,
// update() under contention, transactions, history, events paging, and the
// client's defaults.

import { describe, expect, it } from "vitest";

import {
  AlreadyExistsError,
  Client,
  NotFoundError,
  PreconditionFailedError,
  UpdateConflictError,
  type Entry,
} from "../src/index.js";
import { serverWithAdmin } from "./fixture.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
let admin: Client;
serverWithAdmin((s, a) => {
  server = s;
  admin = a;
});

async function context(): Promise<string> {
  const id = unique("ctx");
  await admin.createContext(id);
  return id;
}

describe("contexts", () => {
  it("creates, reads, updates, lists and deletes a context", async () => {
    const id = unique("ctx");
    const created = await admin.createContext(id, { labels: { team: "growth" }, policy: { strategy: "reject" } });
    expect(created.id).toBe(id);
    expect(created.labels).toEqual({ team: "growth" });
    await expect(admin.createContext(id)).rejects.toBeInstanceOf(AlreadyExistsError);

    const updated = await admin.updateContext(id, { labels: { team: "docs" } });
    expect(updated.labels).toEqual({ team: "docs" });
    expect((await admin.getContext(id)).labels).toEqual({ team: "docs" });

    const ids: string[] = [];
    for await (const c of admin.iterContexts({ pageSize: 1 })) ids.push(c.id);
    expect(ids).toContain(id);
    expect(new Set(ids).size).toBe(ids.length);

    await admin.deleteContext(id);
    await expect(admin.getContext(id)).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("entries", () => {
  it("puts, gets, patches and deletes an entry with its metadata", async () => {
    const ctx = await context();
    const entry = await admin.put(ctx, "findings/market-size", { eu: "4.1B$" }, {
      kind: "finding",
      tags: ["market"],
      confidence: 0.8,
      priority: "high",
      dependsOn: ["brief"],
      relevance: { writer: 0.9 },
    });
    expect(entry.key).toBe("findings/market-size");
    expect(entry.version).toBe(1);
    expect(entry.kind).toBe("finding");
    expect(entry.tags).toEqual(["market"]);
    expect(entry.confidence).toBe(0.8);
    expect(entry.priority).toBe("high");
    expect(entry.depends_on).toEqual(["brief"]);
    expect(entry.relevance).toEqual({ writer: 0.9 });

    const read = await admin.get(ctx, "findings/market-size");
    expect(read.value).toEqual({ eu: "4.1B$" });
    expect(read.revision).toBe(entry.revision);

    const merged = await admin.mergePatch(ctx, "findings/market-size", { us: "9B$" });
    expect(merged.value).toEqual({ eu: "4.1B$", us: "9B$" });
    expect(merged.kind).toBe("finding"); // metadata kept
    const patched = await admin.jsonPatch(ctx, "findings/market-size", [{ op: "remove", path: "/eu" }]);
    expect(patched.value).toEqual({ us: "9B$" });
    expect(patched.version).toBe(3);

    // time travel
    expect((await admin.get(ctx, "findings/market-size", { at: entry.revision })).value).toEqual({ eu: "4.1B$" });

    const deleted = await admin.delete(ctx, "findings/market-size");
    expect(deleted.key).toBe("findings/market-size");
    expect(deleted.revision).toBe(patched.revision + 1);
    await expect(admin.get(ctx, "findings/market-size")).rejects.toBeInstanceOf(NotFoundError);
    expect(await admin.getOrNull(ctx, "findings/market-size")).toBeNull();
    await expect(admin.delete(ctx, "findings/market-size")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("reads and writes a key ending in history as itself", async () => {
    const ctx = await context();
    await admin.put(ctx, "conversation/history", ["hello"]);
    expect((await admin.get(ctx, "conversation/history")).value).toEqual(["hello"]);
    expect((await admin.entryHistory(ctx, "conversation/history")).versions).toHaveLength(1);
  });

  it("refuses a stale If-Match with PreconditionFailedError carrying the current entry, and changes nothing", async () => {
    const ctx = await context();
    const first = await admin.put(ctx, "plan", { owner: "a" });
    const second = await admin.put(ctx, "plan", { owner: "b" }, { ifMatch: first });
    expect(second.version).toBe(2);

    const error = await admin.put(ctx, "plan", { owner: "c" }, { ifMatch: first.revision }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PreconditionFailedError);
    const failed = error as PreconditionFailedError;
    expect(failed.status).toBe(412);
    expect(failed.code).toBe("precondition_failed");
    expect(failed.current?.value).toEqual({ owner: "b" });
    expect(failed.currentRevision).toBe(second.revision);
    expect((await admin.get(ctx, "plan")).value).toEqual({ owner: "b" });

    // If-Match: * writes only an existing entry
    await expect(admin.put(ctx, "nothing", 1, { ifMatch: "*" })).rejects.toBeInstanceOf(PreconditionFailedError);
    expect((await admin.put(ctx, "plan", { owner: "d" }, { ifMatch: "*" })).value).toEqual({ owner: "d" });
  });

  it("creates only when absent with ifNoneMatch and create()", async () => {
    const ctx = await context();
    const created = await admin.create(ctx, "draft", { text: "" });
    expect(created.version).toBe(1);
    await expect(admin.create(ctx, "draft", { text: "again" })).rejects.toBeInstanceOf(PreconditionFailedError);
    await expect(admin.put(ctx, "draft", { text: "again" }, { ifNoneMatch: true })).rejects.toBeInstanceOf(PreconditionFailedError);
    expect((await admin.get(ctx, "draft")).value).toEqual({ text: "" });
  });

  it("checks values at the edge before sending", async () => {
    const ctx = await context();
    await expect(admin.put(ctx, "bad", new Map([["a", 1]]))).rejects.toThrow(TypeError);
    await expect(admin.put(ctx, "bad", { n: Number.NaN })).rejects.toThrow(/value\["n"\] is NaN/);
    await expect(admin.put(ctx, "bad", 1, { tags: "market" as unknown as string[] })).rejects.toThrow(/pass \["market"\]/);
    expect(await admin.getOrNull(ctx, "bad")).toBeNull();
  });

  it("lists every page of one snapshot, and iterates entries", async () => {
    const ctx = await context();
    for (let i = 0; i < 7; i++) await admin.put(ctx, `notes/${i}`, i);
    await admin.put(ctx, "other", 0);

    const all = await admin.list(ctx, { prefix: "notes/", pageSize: 2 });
    expect(all.map((e) => e.key)).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `notes/${i}`));

    const first = await admin.listPage(ctx, { prefix: "notes/", limit: 3 });
    expect(first.entries).toHaveLength(3);
    expect(first.next_cursor).toBeTruthy();
    // A write after the first page is not in the later pages: they read its snapshot.
    await admin.put(ctx, "notes/9", 9);
    const rest = await admin.listPage(ctx, { prefix: "notes/", limit: 100, cursor: first.next_cursor! });
    expect(rest.entries.map((e) => e.key)).toEqual(["notes/3", "notes/4", "notes/5", "notes/6"]);

    const keys: string[] = [];
    for await (const entry of admin.iterEntries(ctx, { pageSize: 3 })) keys.push(entry.key);
    expect(keys).toHaveLength(9);

    const asOf = await admin.list(ctx, { prefix: "notes/", at: first.revision });
    expect(asOf).toHaveLength(7);

    const doc = await admin.document(ctx);
    expect((doc.document as Record<string, unknown>).notes).toMatchObject({ "0": 0, "9": 9 });
  });

  it("runs a transaction's success branch when its comparisons hold, and its failure branch otherwise", async () => {
    const ctx = await context();
    const plan = await admin.put(ctx, "plan", { steps: 1 });
    await admin.put(ctx, "scratch/a", 1);
    await admin.put(ctx, "scratch/b", 2);

    const ok = await admin.txn(ctx, {
      compare: [{ key: "plan", revision: plan.revision }, { key: "lock/owner", exists: false }],
      success: [
        { op: "put", key: "plan", value: { steps: 2 }, kind: "decision" },
        { op: "delete_prefix", prefix: "scratch/" },
      ],
      failure: [{ op: "get", key: "plan" }],
    });
    expect(ok.succeeded).toBe(true);
    expect((await admin.get(ctx, "plan")).value).toEqual({ steps: 2 });
    expect(await admin.list(ctx, { prefix: "scratch/" })).toEqual([]);
    expect(ok.revision).toBe((await admin.getContext(ctx)).revision); // one revision for the whole transaction

    const stale = await admin.txn(ctx, {
      compare: [{ key: "plan", revision: plan.revision }],
      success: [{ op: "put", key: "plan", value: { steps: 99 } }],
      failure: [{ op: "get", key: "plan" }],
    });
    expect(stale.succeeded).toBe(false);
    expect(JSON.stringify(stale.results)).toContain('"steps":2');
    expect((await admin.get(ctx, "plan")).value).toEqual({ steps: 2 });
  });
});

describe("update()", () => {
  it("creates with undefined, then modifies the value read, keeping metadata", async () => {
    const ctx = await context();
    const seen: unknown[] = [];
    const created = await admin.update(ctx, "stats/visits", (n: number | undefined) => {
      seen.push(n);
      return (n ?? 0) + 1;
    });
    expect(created.value).toBe(1);
    await admin.put(ctx, "plan", { owner: "a" }, { kind: "decision", tags: ["plan"], priority: "high" });
    const updated = await admin.update(ctx, "plan", (plan: Record<string, unknown> | undefined) => {
      plan!.reviewed = true; // a copy: the entry read is not changed
      return plan;
    });
    expect(seen).toEqual([undefined]);
    expect(updated.value).toEqual({ owner: "a", reviewed: true });
    expect(updated.kind).toBe("decision");
    expect(updated.tags).toEqual(["plan"]);
    expect(updated.priority).toBe("high");
    const retagged = await admin.update(ctx, "plan", (p) => p, { tags: ["done"] });
    expect(retagged.tags).toEqual(["done"]);
    expect(retagged.kind).toBe("decision");
  });

  it("loses no increment of 2 clients x 20 concurrent updates", async () => {
    const ctx = await context();
    const agents = await Promise.all([server.registerAgent(), server.registerAgent()]);
    await admin.grant(ctx, agents.map((a) => a.id), ["read", "write"]);
    const clients = agents.map((a) => new Client({ url: server.url, token: a.token }));
    try {
      await Promise.all(
        clients.flatMap((c) =>
          Array.from({ length: 20 }, () => c.update(ctx, "counter", (n: number | undefined) => (n ?? 0) + 1, { retries: 200 })),
        ),
      );
    } finally {
      for (const c of clients) c.close();
    }
    const final = await admin.get(ctx, "counter");
    expect(final.value).toBe(40);
    expect(final.version).toBe(40);
    expect(Object.values(final.vclock as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(40);
  });

  it("retries with the newer value after a 412 and gives up with UpdateConflictError", async () => {
    const ctx = await context();
    await admin.put(ctx, "hot", 0);
    let calls = 0;
    const entry = await admin.update(ctx, "hot", async (n: number | undefined) => {
      calls += 1;
      if (calls === 1) await admin.put(ctx, "hot", 100); // someone else writes first
      return (n ?? 0) + 1;
    });
    expect(calls).toBe(2);
    expect(entry.value).toBe(101);

    let beaten = 0;
    const error = await admin
      .update(ctx, "hot", async (n: number | undefined) => {
        beaten += 1;
        await admin.put(ctx, "hot", 1000 + beaten);
        return (n ?? 0) + 1;
      }, { retries: 3 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpdateConflictError);
    expect(error).toBeInstanceOf(PreconditionFailedError);
    expect(beaten).toBe(4);
    expect((await admin.get(ctx, "hot")).value).toBe(1004);
  });
});

describe("rememberReads", () => {
  it("makes a put after a get carry the revision read", async () => {
    const ctx = await context();
    const careful = new Client({ url: server.url, token: server.adminToken, rememberReads: true });
    try {
      await admin.put(ctx, "plan", { owner: "a" });
      const plan = await careful.get(ctx, "plan");
      await admin.put(ctx, "plan", { owner: "admin" }); // another client writes meanwhile
      const error = await careful.put(ctx, "plan", { ...(plan.value as object), steps: 3 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PreconditionFailedError);
      expect((error as Error).message).toContain("this client last read");
      expect((await admin.get(ctx, "plan")).value).toEqual({ owner: "admin" });
      const again = await careful.get(ctx, "plan");
      expect((await careful.put(ctx, "plan", { ...(again.value as object), steps: 3 })).value).toEqual({ owner: "admin", steps: 3 });
      // read as missing: written only if still missing
      expect(await careful.getOrNull(ctx, "fresh")).toBeNull();
      await admin.put(ctx, "fresh", 1);
      await expect(careful.put(ctx, "fresh", 2)).rejects.toBeInstanceOf(PreconditionFailedError);
      expect((await careful.put(ctx, "fresh", 2, { force: true })).value).toBe(2);
      // a client without it writes blindly
      expect((await admin.put(ctx, "fresh", 3)).value).toBe(3);
    } finally {
      careful.close();
    }
  });
});

describe("history", () => {
  it("reads commits, versions and diffs, rolls back and forks", async () => {
    const ctx = await context();
    const v1 = await admin.put(ctx, "plan", { steps: 1 });
    const v2 = await admin.put(ctx, "plan", { steps: 2 });
    await admin.put(ctx, "extra", true);

    const versions = (await admin.entryHistory(ctx, "plan")).versions;
    expect(versions.map((v) => v.revision)).toEqual([v2.revision, v1.revision]); // newest first

    const commits = (await admin.history(ctx, { limit: 2 })).commits;
    expect(commits).toHaveLength(2);
    expect(commits[0]!.keys).toEqual(["extra"]);
    expect(commits[1]!.kind).toBe("put");

    const diff = await admin.diff(ctx, v1.revision);
    const changes = Object.fromEntries(diff.changes.map((c) => [c.key, c.change]));
    expect(changes).toEqual({ plan: "modified", extra: "added" });

    const rolled = await admin.rollback(ctx, v1.revision);
    expect(rolled.restored_from).toBe(v1.revision);
    expect((await admin.get(ctx, "plan")).value).toEqual({ steps: 1 });
    expect(await admin.getOrNull(ctx, "extra")).toBeNull();
    expect((await admin.get(ctx, "plan", { at: v2.revision })).value).toEqual({ steps: 2 }); // history kept

    const forkId = unique("fork");
    const fork = await admin.fork(ctx, forkId, { at: v2.revision });
    expect(fork.id).toBe(forkId);
    expect((await admin.get(forkId, "plan")).value).toEqual({ steps: 2 });
  });

  it("pages through events in order, every event once", async () => {
    const ctx = await context();
    const written: Entry[] = [];
    for (let i = 0; i < 9; i++) written.push(await admin.put(ctx, `k/${i}`, i));
    const page = await admin.events(ctx, { after: 0, limit: 4, types: ["context.updated"] });
    expect(page.events.length).toBeLessThanOrEqual(4);
    expect(page.more).toBe(true);

    const revisions: number[] = [];
    for await (const event of admin.iterEvents(ctx, { after: 0, pageSize: 2, types: "context.updated" })) {
      expect(event.type).toBe("context.updated");
      revisions.push(event.revision);
    }
    expect(revisions).toEqual(written.map((e) => e.revision));

    const filtered: string[] = [];
    for await (const event of admin.iterEvents(ctx, { after: written[4]!.revision, prefix: "k/" })) filtered.push(event.key ?? "");
    expect(filtered).toEqual(["k/5", "k/6", "k/7", "k/8"]);
  });
});

describe("settings", () => {
  it("takes the URL, token and agent from CTXMESH_URL, CTXMESH_TOKEN and CTXMESH_AGENT", async () => {
    const saved = { ...process.env };
    const agent = await server.registerAgent();
    process.env.CTXMESH_URL = server.url + "/";
    process.env.CTXMESH_TOKEN = `  ${server.adminToken}\n`;
    process.env.CTXMESH_AGENT = agent.id;
    try {
      const client = new Client({ keepalive: false });
      expect(client.url).toBe(server.url);
      expect(client.agentId).toBe(agent.id);
      expect(await client.whoami()).toEqual({ agent: agent.id, admin: true });
      client.close();
      // explicit options win over the environment
      const other = new Client({ url: server.url, token: agent.token, agentId: undefined, keepalive: false });
      expect((await other.whoami()).admin).toBe(false);
      other.close();
    } finally {
      for (const name of ["CTXMESH_URL", "CTXMESH_TOKEN", "CTXMESH_AGENT"]) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
  });

  it("defaults to http://127.0.0.1:7600 and sends the bearer token and X-Agent-Id through the fetch given", async () => {
    const saved = process.env.CTXMESH_URL;
    delete process.env.CTXMESH_URL;
    const seen: { url: string; headers: Record<string, string> }[] = [];
    const fake = async (url: string, init: RequestInit) => {
      seen.push({ url, headers: init.headers as Record<string, string> });
      return new Response(JSON.stringify({ agent: "writer", admin: true }), { status: 200, headers: { "content-type": "application/json" } });
    };
    try {
      const client = new Client({ token: "cmt_secret", agentId: "writer", fetch: fake, keepalive: false });
      await client.whoami();
      expect(seen[0]!.url).toBe("http://127.0.0.1:7600/v1/whoami");
      expect(seen[0]!.headers.authorization).toBe("Bearer cmt_secret");
      expect(seen[0]!.headers["x-agent-id"]).toBe("writer");
      expect(seen[0]!.url).not.toContain("cmt_secret");
    } finally {
      if (saved !== undefined) process.env.CTXMESH_URL = saved;
    }
  });

  it("answers the operations endpoints", async () => {
    expect(await admin.healthz()).toEqual({ status: "ok" });
    expect(await admin.readyz()).toEqual({ status: "ready" });
    expect((await admin.openapi()).openapi).toMatch(/^3\./);
    expect(await admin.metrics()).toContain("ctxmesh_http_request_duration_seconds");
  });
});
