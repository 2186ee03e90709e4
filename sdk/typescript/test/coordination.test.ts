// Agents, handoffs, tasks, messages and inboxes, grants and policies.

import { describe, expect, it } from "vitest";

import {
  AlreadyExistsError,
  Client,
  ForbiddenError,
  InvalidArgumentError,
  InvalidTransitionError,
  NotFoundError,
  UnauthenticatedError,
  type Event,
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

function connect(token: string): Client {
  const client = new Client({ url: server.url, token });
  clients.push(client);
  return client;
}

describe("agents", () => {
  it("registers, reads, lists, updates and unregisters an agent", async () => {
    const id = unique("researcher");
    const registered = await admin.registerAgent(id, {
      name: "Researcher",
      capabilities: { custom: ["search"] },
      needs: { kinds: ["objective"], tags: ["market"] },
      objective: "find market data for the launch",
      tokenBudget: 6000,
      trust: "medium",
      leaseMs: 60_000,
      labels: { team: "growth" },
    });
    expect(registered.id).toBe(id);
    expect(registered.token).toMatch(/^\S+$/);
    expect(registered.token_budget).toBe(6000);
    expect(registered.lease_ms).toBe(60_000);
    await expect(admin.registerAgent(id)).rejects.toBeInstanceOf(AlreadyExistsError);
    await expect(admin.registerAgent(unique("bad"), { tokenBudget: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);

    expect((await admin.getAgent(id)).objective).toBe("find market data for the launch");
    const found: string[] = [];
    for await (const agent of admin.iterAgents({ capability: "search", pageSize: 1 })) found.push(agent.id);
    expect(found).toContain(id);

    const updated = await admin.updateAgent(id, { objective: "write the post", status: "inactive" });
    expect(updated.objective).toBe("write the post");
    expect(updated.status).toBe("inactive");

    const me = connect(registered.token);
    expect(await me.whoami()).toEqual({ agent: id, admin: false });
    const beat = await me.heartbeat(); // the agent is its token's
    expect(beat.id).toBe(id);
    expect(Date.parse(beat.lease_expires_at!)).toBeGreaterThan(Date.now() + 30_000);

    const feed = await admin.agentEvents({ after: 0, limit: 1000 });
    expect(feed.events.some((e) => e.type === "agent.registered" && JSON.stringify(e).includes(id))).toBe(true);

    await admin.deleteAgent(id);
    await expect(admin.getAgent(id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it("rotates and revokes an agent's token", async () => {
    const agent = await server.registerAgent();
    const me = connect(agent.token);
    const rotated = await me.rotateToken();
    expect(rotated.token).not.toBe(agent.token);
    await expect(me.whoami()).rejects.toBeInstanceOf(UnauthenticatedError);
    const renewed = connect(rotated.token);
    expect((await renewed.whoami()).agent).toBe(agent.id);
    await admin.revokeToken(agent.id);
    await expect(renewed.whoami()).rejects.toBeInstanceOf(UnauthenticatedError);
  });

  it("acts as another agent with asAgent", async () => {
    const agent = await server.registerAgent();
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const as = admin.asAgent(agent.id);
    clients.push(as);
    expect(await as.whoami()).toEqual({ agent: agent.id, admin: true });
    expect((await as.put(ctx, "k", 1)).author).toBe(agent.id);
  });

  it("streams the agents feed", async () => {
    const after = (await admin.agentEvents({ after: 0, limit: 1000 })).next_after;
    const watch = admin.watchAgents({ after });
    const ids: string[] = [];
    const a = unique("feed");
    const reading = (async () => {
      for await (const event of watch) {
        ids.push(JSON.stringify(event));
        if (event.type === "agent.unregistered") break;
      }
    })();
    await admin.registerAgent(a);
    await admin.deleteAgent(a);
    await reading;
    expect(ids).toHaveLength(2);
    expect(ids.every((e) => e.includes(a))).toBe(true);
  });
});

describe("handoffs", () => {
  it("goes requested, accepted, completed, reaching the target's inbox", async () => {
    const researcher = await server.registerAgent(unique("researcher"));
    const writer = await server.registerAgent(unique("writer"), { needs: { kinds: ["finding"] } });
    const ctx = unique("launch");
    const r = connect(researcher.token);
    const w = connect(writer.token);
    await r.createContext(ctx);
    await r.grant(ctx, [writer.id], ["read", "write"]);
    await r.put(ctx, "findings/size", { eu: "4.1B$" }, { kind: "finding" });

    const h = await r.requestHandoff(writer.id, ctx, {
      keys: ["findings/*"],
      userIntent: "a launch post for developers",
      conversationHistory: [{ role: "user", content: "..." }],
      extractedEntities: { product: "ctxmesh" },
      note: "sources are in findings/",
    });
    expect(h.status).toBe("requested");
    expect(h.source).toBe(researcher.id);
    expect(h.target).toBe(writer.id);

    const inbox = await w.inbox();
    const item = inbox.events.find((e: Event) => e.type === "handoff.requested");
    expect((item?.data as { handoff: { id: string } }).handoff.id).toBe(h.id);

    await expect(r.acceptHandoff(h.id)).rejects.toBeInstanceOf(ForbiddenError); // only the target
    await expect(w.completeHandoff(h.id)).rejects.toBeInstanceOf(InvalidTransitionError); // not accepted yet
    expect((await w.acceptHandoff(h.id)).status).toBe("accepted");
    const pkg = await w.handoffPackage(h.id, { budget: 4000 });
    expect(pkg.items.map((i) => i.key)).toEqual(["findings/size"]);
    expect((await w.completeHandoff(h.id, { post: "..." })).status).toBe("completed");

    const done = await r.getHandoff(h.id);
    expect(done.status).toBe("completed");
    expect(done.outcome).toEqual({ post: "..." });
    expect((await r.listHandoffs({ context: ctx, status: "completed" })).handoffs.map((x) => x.id)).toEqual([h.id]);
    // the source's inbox has the steps after the request
    const steps: string[] = [];
    for await (const e of r.iterInbox(undefined, { pageSize: 1 })) steps.push(e.type);
    expect(steps).toEqual(["handoff.accepted", "handoff.completed"]);
  });
});

describe("tasks and messages", () => {
  it("assigns and completes a task, by its assignee only, once", async () => {
    const boss = await server.registerAgent();
    const worker = await server.registerAgent();
    const ctx = unique("ctx");
    const b = connect(boss.token);
    const w = connect(worker.token);
    await b.createContext(ctx);
    await b.grant(ctx, [worker.id], ["read", "write"]);
    const task = await b.assignTask(ctx, worker.id, "draft", { input: { words: 300 }, priority: "high" });
    expect(task.status).toBe("assigned");
    expect(task.assignee).toBe(worker.id);
    expect((await b.listContextTasks(ctx)).tasks.map((t) => t.id)).toEqual([task.id]);
    expect((await w.listTasks({ agent: worker.id, status: "assigned" })).tasks.map((t) => t.id)).toEqual([task.id]);
    await expect(w.listTasks()).rejects.toBeInstanceOf(ForbiddenError); // by agent or by context
    await expect(b.completeTask(task.id, "mine")).rejects.toBeInstanceOf(ForbiddenError);
    const done = await w.completeTask(task.id, { text: "..." });
    expect(done.status).toBe("completed");
    expect((await w.getTask(task.id)).output).toEqual({ text: "..." });
    await expect(w.completeTask(task.id)).rejects.toBeInstanceOf(InvalidTransitionError);
    const assignerInbox = await b.inbox(undefined, { after: 0 });
    expect(assignerInbox.events.map((e) => e.type)).toContain("task.completed");
  });

  it("sends messages to inboxes and to a context's log, and watches an inbox", async () => {
    const agent = await server.registerAgent();
    const me = connect(agent.token);
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const items: Event[] = [];
    const watch = me.watchInbox(undefined, { after: 0 });
    const reading = (async () => {
      for await (const item of watch) {
        items.push(item);
        if (items.length === 2) break;
      }
    })();
    await admin.sendMessage({ stop: true }, { agents: [agent.id], priority: "critical", topic: "halt" });
    const logged = await admin.sendMessage("review please", { context: ctx, agents: [agent.id], priority: "high" });
    await reading;
    expect(items.map((i) => i.seq)).toEqual([1, 2]);
    expect(items[0]!.data).toEqual({ topic: "halt", body: { stop: true } });
    expect(items[0]!.priority).toBe("critical");
    expect(items[1]!.context).toBe(ctx);
    const events = await admin.events(ctx, { types: "message" });
    expect(events.events.map((e) => e.revision)).toEqual([logged.revision]);
    await expect(admin.sendMessage("x", { agents: [unique("ghost")] })).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("access control", () => {
  it("refuses an agent without a grant with ForbiddenError, until it is granted, then after the revocation", async () => {
    const agent = await server.registerAgent();
    const me = connect(agent.token);
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    await admin.put(ctx, "secret", 1);

    const refused = await me.get(ctx, "secret").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ForbiddenError);
    expect((refused as ForbiddenError).status).toBe(403);
    await expect(me.put(ctx, "mine", 1)).rejects.toBeInstanceOf(ForbiddenError);

    const grants = await admin.grant(ctx, agent.id, ["read"], { expiresAt: new Date(Date.now() + 3_600_000) });
    expect(grants.map((g) => g.agent)).toEqual([agent.id]);
    expect((await me.get(ctx, "secret")).value).toBe(1);
    await expect(me.put(ctx, "mine", 1)).rejects.toBeInstanceOf(ForbiddenError); // read only
    expect((await me.shared()).map((g) => g.context)).toContain(ctx);
    expect((await admin.listGrants(ctx)).map((g) => g.agent)).toContain(agent.id);

    await admin.revoke(ctx, agent.id);
    await expect(me.get(ctx, "secret")).rejects.toBeInstanceOf(ForbiddenError);

    // Access decisions reach the audit log a fraction of a second after they are made.
    const deadline = Date.now() + 10_000;
    let records = (await admin.audit({ agent: agent.id, context: ctx, allowed: false })).records;
    while (records.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      records = (await admin.audit({ agent: agent.id, context: ctx, allowed: false })).records;
    }
    expect(records.length).toBeGreaterThan(0);
    expect(records.every((r) => r.agent === agent.id && !r.allowed)).toBe(true);
    await expect(me.audit()).rejects.toBeInstanceOf(ForbiddenError);
  });

  it("adds, lists and deletes policies that deny what a grant allows", async () => {
    const agent = await server.registerAgent(unique("intern"));
    const me = connect(agent.token);
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    await admin.grant(ctx, agent.id, ["read"]);
    await admin.put(ctx, "hr/salaries", { a: 1 });
    await admin.put(ctx, "public/plan", { b: 2 });
    const id = unique("no-hr");
    const rules = await admin.addPolicy(id, "deny", { agents: agent.id, keys: "hr/**", permissions: ["read"] });
    expect(rules.map((r) => r.id)).toContain(id);
    expect((await admin.listPolicies()).map((r) => r.id)).toContain(id);
    expect((await me.list(ctx)).map((e) => e.key)).toEqual(["public/plan"]);
    await admin.deletePolicy(id);
    expect((await me.list(ctx)).map((e) => e.key)).toEqual(["hr/salaries", "public/plan"]);
    await expect(me.listPolicies()).rejects.toBeInstanceOf(ForbiddenError);
  });
});
