// CtxmeshStore against a real server: items as entries other agents read,
// creation times kept across updates, search with filters and through
// ctxmesh's search, namespaces, batches (one snapshot, one transaction),
// and concurrent writers that lose nothing.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Client } from "../src/index.js";
import { CtxmeshStore } from "../src/langgraph/index.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
let client: Client;

beforeAll(async () => {
  server = await CtxmeshServer.start();
  client = new Client({ url: server.url, token: server.adminToken, agentId: "memory-keeper" });
});

afterAll(async () => {
  await server?.dispose();
});

function freshStore(options: { context?: string; prefix?: string; kind?: string } = {}): CtxmeshStore {
  return new CtxmeshStore({ client, context: options.context ?? unique("lg-store"), ...options });
}

describe("CtxmeshStore", () => {
  it("puts, gets, updates and deletes an item kept as a plain entry", async () => {
    const store = freshStore({ prefix: "memories", kind: "memory" });
    expect(await store.get(["users", "alice"], "prefs")).toBeNull();

    await store.put(["users", "alice"], "prefs", { theme: "dark" });
    const first = await store.get(["users", "alice"], "prefs");
    expect(first).toMatchObject({ namespace: ["users", "alice"], key: "prefs", value: { theme: "dark" } });
    expect(first!.createdAt).toBeInstanceOf(Date);
    expect(first!.updatedAt.getTime()).toBe(first!.createdAt.getTime());

    const entry = await client.get(store.context, "memories/users/alice/@prefs");
    expect(entry.value).toEqual({ theme: "dark" });
    expect(entry.kind).toBe("memory");
    expect(entry.author).toBe("memory-keeper");

    await new Promise((r) => setTimeout(r, 5));
    await store.put(["users", "alice"], "prefs", { theme: "light" });
    const second = await store.get(["users", "alice"], "prefs");
    expect(second!.value).toEqual({ theme: "light" });
    expect(second!.createdAt.getTime()).toBe(first!.createdAt.getTime());
    expect(second!.updatedAt.getTime()).toBeGreaterThan(first!.updatedAt.getTime());

    await store.delete(["users", "alice"], "prefs");
    expect(await store.get(["users", "alice"], "prefs")).toBeNull();
    expect(await client.getOrNull(store.context, "memories/users/alice/@prefs")).toBeNull();
  });

  it("makes its own client from url, token and agentId", async () => {
    const store = new CtxmeshStore({ url: server.url, token: server.adminToken, agentId: "own-client", context: unique("lg-store") });
    await store.put(["notes"], "n1", { text: "hello" });
    expect((await store.get(["notes"], "n1"))!.value).toEqual({ text: "hello" });
    expect((await client.get(store.context, "notes/@n1")).author).toBe("own-client");
    store.close();
  });

  it("escapes any label and key into one segment each", async () => {
    const store = freshStore();
    const namespace = ["users", "bob smith/ü", "@home"];
    await store.put(namespace, "a/b ~c", { ok: true });
    expect((await store.get(namespace, "a/b ~c"))!.value).toEqual({ ok: true });
    expect((await client.list(store.context, {})).map((e) => e.key)).toEqual(["users/bob~20smith~2F~C3~BC/~40home/@a~2Fb~20~7Ec"]);
    expect(await store.listNamespaces()).toEqual([namespace]);
  });

  it("searches a namespace prefix with filters, newest first, with offset and limit", async () => {
    const store = freshStore();
    await store.put(["docs", "a"], "1", { kind: "note", score: 3, tags: ["x"] });
    await store.put(["docs", "a"], "2", { kind: "todo", score: 5 });
    await store.put(["docs", "b"], "3", { kind: "note", score: 7 });
    await store.put(["other"], "4", { kind: "note", score: 9 });

    const all = await store.search(["docs"]);
    expect(all.map((i) => i.key)).toEqual(["3", "2", "1"]);
    expect(all.every((i) => i.score === undefined)).toBe(true);
    expect((await store.search(["docs"], { filter: { kind: "note" } })).map((i) => i.key)).toEqual(["3", "1"]);
    expect((await store.search(["docs"], { filter: { score: { $gte: 5 } } })).map((i) => i.key)).toEqual(["3", "2"]);
    expect((await store.search(["docs"], { filter: { kind: { $in: ["todo"] } } })).map((i) => i.key)).toEqual(["2"]);
    expect((await store.search(["docs"], { filter: { tags: ["x"] } })).map((i) => i.key)).toEqual(["1"]);
    expect((await store.search([], { filter: { kind: "note" } })).map((i) => i.key)).toEqual(["4", "3", "1"]);
    expect((await store.search(["docs"], { offset: 1, limit: 1 })).map((i) => i.key)).toEqual(["2"]);
    expect((await store.search(["docs", "b"])).map((i) => i.key)).toEqual(["3"]);
  });

  it("searches by query through ctxmesh's search, scoped to the namespace on the server", async () => {
    const store = freshStore();
    await store.put(["kb", "billing"], "refunds", { text: "refunds are issued within five days" });
    await store.put(["kb", "shipping"], "delays", { text: "parcels may be delayed by storms" });
    await store.put(["archive"], "old-refunds", { text: "refunds used to take a month" });

    const hits = await store.search(["kb"], { query: "refunds" });
    expect(hits.map((h) => [h.namespace, h.key])).toEqual([[["kb", "billing"], "refunds"]]);
    expect(typeof hits[0]!.score).toBe("number");
    const everywhere = await store.search([], { query: "refunds" });
    expect(everywhere.map((h) => h.key).sort()).toEqual(["old-refunds", "refunds"]);
    expect(await store.search(["kb"], { query: "refunds", filter: { text: "nothing like it" } })).toEqual([]);
  });

  it("lists namespaces by prefix, suffix, wildcard and depth", async () => {
    const store = freshStore();
    for (const ns of [["a", "b", "c"], ["a", "b", "d"], ["a", "x", "c"], ["z", "c"]]) await store.put(ns, "k", { v: 1 });
    expect(await store.listNamespaces()).toEqual([["a", "b", "c"], ["a", "b", "d"], ["a", "x", "c"], ["z", "c"]]);
    expect(await store.listNamespaces({ prefix: ["a", "b"] })).toEqual([["a", "b", "c"], ["a", "b", "d"]]);
    expect(await store.listNamespaces({ suffix: ["c"] })).toEqual([["a", "b", "c"], ["a", "x", "c"], ["z", "c"]]);
    expect(await store.listNamespaces({ prefix: ["a", "*", "c"] })).toEqual([["a", "b", "c"], ["a", "x", "c"]]);
    expect(await store.listNamespaces({ maxDepth: 1 })).toEqual([["a"], ["z"]]);
    expect(await store.listNamespaces({ limit: 2, offset: 1 })).toEqual([["a", "b", "d"], ["a", "x", "c"]]);
  });

  it("runs a batch's reads on the state before its writes, and its writes as one commit", async () => {
    const store = freshStore();
    await store.put(["team"], "goal", { text: "ship" });
    const before = (await client.history(store.context)).commits.length;
    const results = await store.batch([
      { namespace: ["team"], key: "goal", value: { text: "ship on friday" } },
      { namespace: ["team"], key: "goal" },
      { namespace: ["team"], key: "owner", value: { name: "ana" } },
      { namespacePrefix: ["team"], limit: 10, offset: 0 },
    ]);
    expect(results[0]).toBeUndefined();
    expect((results[1] as unknown as { value: unknown }).value).toEqual({ text: "ship" });
    expect((results[3] as unknown as Array<{ key: string }>).map((i) => i.key)).toEqual(["goal"]);
    const commits = (await client.history(store.context)).commits;
    expect(commits.length).toBe(before + 1);
    expect([...commits[0]!.keys].sort()).toEqual(["team/@goal", "team/@owner"]);
    expect((await store.get(["team"], "goal"))!.value).toEqual({ text: "ship on friday" });
  });

  it("keeps every item that concurrent writers put, and an item's creation time under racing updates", async () => {
    const context = unique("lg-shared");
    const writers = Array.from({ length: 8 }, (_, i) =>
      new CtxmeshStore({ client: new Client({ url: server.url, token: server.adminToken, agentId: `writer-${i}` }), context }),
    );
    await Promise.all(writers.map((store, i) => store.put(["findings"], `f${i}`, { by: i })));
    const found = await writers[0]!.search(["findings"], { limit: 100 });
    expect(found.map((i) => i.key).sort()).toEqual(["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"]);

    // All create one item at once: one of them creates it, the others update
    // it, and its creation time stays the first write's (each writer that
    // read no item and met one retries with it, instead of writing over it
    // as if it were new).
    await Promise.all(writers.map((store, i) => store.put(["shared"], "plan", { step: i })));
    const versions = (await client.entryHistory(context, "shared/@plan")).versions;
    // Every put landed (none was refused or merged away): one version per put.
    expect(versions.length).toBe(writers.length);
    expect(new Set(versions.map((v) => JSON.stringify(v.entry?.value))).size).toBe(writers.length);
    const firstWrite = new Date(versions[versions.length - 1]!.entry!.updated_at).getTime();
    const plan = (await writers[0]!.get(["shared"], "plan"))!;
    expect(plan.createdAt.getTime()).toBe(firstWrite);
    expect(plan.updatedAt.getTime()).toBe(new Date(versions[0]!.entry!.updated_at).getTime());
  });
});
