// The context mesh (packages, search, consensus, decisions) and conflicts.

import { describe, expect, it } from "vitest";

import { Client, ConflictPendingError, InvalidArgumentError, InvalidTransitionError } from "../src/index.js";
import { serverWithAdmin } from "./fixture.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
let admin: Client;
serverWithAdmin((s, a) => {
  server = s;
  admin = a;
});

describe("packages and search", () => {
  it("packs an agent's relevant entries within its budget, as JSON and as Markdown", async () => {
    const agent = await server.registerAgent(unique("writer"), { needs: { kinds: ["finding"] }, objective: "write about the market" });
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    await admin.grant(ctx, agent.id, ["read"]);
    await admin.put(ctx, "findings/size", { text: "The EU market is 4.1B$." }, { kind: "finding", priority: "high" });
    await admin.put(ctx, "noise/lunch", "sandwiches", { kind: "note" });

    const pkg = await admin.package(ctx, agent.id, { budget: 4000, explain: true });
    expect(pkg.tokens).toBeLessThanOrEqual(4000);
    expect(pkg.items.map((i) => i.key)).toEqual(["findings/size"]);

    const md = await admin.packageMarkdown(ctx, agent.id, { budget: 4000, encoding: "o200k_base" });
    expect(md.text).toContain("4.1B$");
    expect(md.tokens).toBeGreaterThan(0);
    expect(md.tokens).toBeLessThanOrEqual(4000);

    // The admin acting as no agent names one.
    await expect(admin.package(ctx)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("finds entries by keyword with filters", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    await admin.put(ctx, "findings/size", { text: "market size in europe" }, { kind: "finding", tags: ["market"] });
    await admin.put(ctx, "findings/other", { text: "market of apples" }, { kind: "note" });
    await admin.put(ctx, "other", { text: "nothing relevant" });
    const all = await admin.search(ctx, "market", { mode: "keyword" });
    expect(all.hits.map((h) => h.key).sort()).toEqual(["findings/other", "findings/size"]);
    const filtered = await admin.search(ctx, "market", { mode: "keyword", kind: "finding", tags: ["market"] });
    expect(filtered.hits.map((h) => h.key)).toEqual(["findings/size"]);
    expect(filtered.hits[0]!.entry?.value).toEqual({ text: "market size in europe" });
  });

  it("writes an agreed value by consensus, escalates a split one, and records decisions", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const agreed = await admin.consensus(ctx, "decisions/price", [
      { agent: "a", value: 199, confidence: 0.9 },
      { agent: "b", value: 199, confidence: 0.8 },
      { agent: "c", value: 249, confidence: 0.2 },
    ], { minAgreement: 0.6 });
    expect(agreed.agreed).toBe(true);
    expect((await admin.get(ctx, "decisions/price")).value).toBe(199);

    const split = await admin.consensus(ctx, "decisions/color", [
      { agent: "a", value: "blue", confidence: 0.5 },
      { agent: "b", value: "red", confidence: 0.5 },
    ], { minAgreement: 0.9 });
    expect(split.agreed).toBe(false);
    expect((await admin.listConflicts(ctx)).conflicts).toHaveLength(1);

    const revision = (await admin.getContext(ctx)).revision;
    const decision = await admin.recordDecision(ctx, { ship: "tuesday" }, revision, { key: "decisions/ship" });
    expect(decision.entry.key).toBe("decisions/ship");
    expect(decision.replay).toContain(`at=${revision}`);
  });
});

describe("conflicts", () => {
  it("keeps a stale write aside under the manual policy, and resolves it", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx, { policy: { strategy: "manual" } });
    const first = await admin.put(ctx, "plan", { v: 1 });
    await admin.put(ctx, "plan", { v: 2 }, { ifMatch: first });
    const pending = await admin.put(ctx, "plan", { v: 3 }, { ifMatch: first }).catch((e: unknown) => e);
    expect(pending).toBeInstanceOf(ConflictPendingError);
    const id = (pending as ConflictPendingError).conflictId!;
    expect(id).toBeTruthy();
    expect((await admin.get(ctx, "plan")).value).toEqual({ v: 2 }); // unchanged until resolved

    const listed = await admin.listConflicts(ctx);
    expect(listed.conflicts.map((c) => c.id)).toEqual([id]);
    const record = await admin.getConflict(ctx, id);
    expect((record.current as { value?: unknown } | null | undefined)?.value).toEqual({ v: 2 });

    const resolved = await admin.resolveConflict(ctx, id, { choose: "proposed" });
    expect(resolved.status).toBe("resolved");
    expect((await admin.get(ctx, "plan")).value).toEqual({ v: 3 });
    await expect(admin.resolveConflict(ctx, id, { choose: "current" })).rejects.toBeInstanceOf(InvalidTransitionError);
    expect((await admin.listConflicts(ctx, { status: "all" })).conflicts).toHaveLength(1);
  });

  it("tells when the last-write-wins policy overwrote a stale write", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx, { policy: { strategy: "last-write-wins" } });
    const first = await admin.put(ctx, "plan", { v: 1 });
    await admin.put(ctx, "plan", { v: 2 }, { ifMatch: first });
    const written = await admin.put(ctx, "plan", { v: 3 }, { ifMatch: first });
    expect(written.value).toEqual({ v: 3 });
    expect(written.conflict?.outcome).toBe("overwritten");
    expect(written.conflict?.id).toBeTruthy();
  });
});
