// Real LangGraph.js graphs with CtxmeshSaver and CtxmeshStore: a graph stops
// at an interrupt, the server restarts, a new saver resumes it; its state
// history lists every step; it replays from an earlier checkpoint and forks
// from one without disturbing the original branch. Two graphs of two agents
// share one store, run at once, and each sees the other's memories.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Annotation, Command, END, START, StateGraph, interrupt, type LangGraphRunnableConfig } from "@langchain/langgraph";

import { Client } from "../src/index.js";
import { CtxmeshSaver, CtxmeshStore } from "../src/langgraph/index.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;

beforeAll(async () => {
  server = await CtxmeshServer.start();
});

afterAll(async () => {
  await server?.dispose();
});

function agentClient(agentId: string): Client {
  return new Client({ url: server.url, token: server.adminToken, agentId });
}

const State = Annotation.Root({
  items: Annotation<string[]>({ reducer: (left, right) => left.concat(right), default: () => [] }),
});

function approvalGraph(saver: CtxmeshSaver) {
  return new StateGraph(State)
    .addNode("first", () => ({ items: ["first"] }))
    .addNode("second", (state) => {
      const answer = interrupt({ question: "approve?", seen: [...state.items] });
      return { items: [`second:${String(answer)}`] };
    })
    .addEdge(START, "first")
    .addEdge("first", "second")
    .addEdge("second", END)
    .compile({ checkpointer: saver });
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

describe("a StateGraph checkpointed in ctxmesh", () => {
  it("resumes after a server restart, lists its history, replays and forks", async () => {
    const context = unique("lg-graph");
    const config = { configurable: { thread_id: "order-42" } };

    let graph = approvalGraph(new CtxmeshSaver({ client: agentClient("planner"), context }));
    const stopped = await graph.invoke({ items: ["start"] }, config);
    expect(stopped.items).toEqual(["start", "first"]);
    expect((stopped as { __interrupt__?: Array<{ value: unknown }> }).__interrupt__?.[0]?.value).toEqual({ question: "approve?", seen: ["start", "first"] });
    const beforeRestart = await graph.getState(config);
    expect(beforeRestart.next).toEqual(["second"]);

    // The server goes down and comes back; a new saver and graph (a new
    // worker) pick the thread up where it stopped.
    await server.restart();
    graph = approvalGraph(new CtxmeshSaver({ client: agentClient("approver"), context }));
    const state = await graph.getState(config);
    expect(state.next).toEqual(["second"]);
    expect(state.values.items).toEqual(["start", "first"]);
    expect(state.config.configurable?.checkpoint_id).toBe(beforeRestart.config.configurable?.checkpoint_id);
    expect(state.tasks[0]?.interrupts[0]?.value).toEqual({ question: "approve?", seen: ["start", "first"] });

    const done = await graph.invoke(new Command({ resume: "yes" }), config);
    expect(done.items).toEqual(["start", "first", "second:yes"]);
    const final = await graph.getState(config);
    expect(final.next).toEqual([]);

    // History, newest first: input (-1), before first (0), before second (1), done (2).
    const history = await collect(graph.getStateHistory(config));
    expect(history.map((h) => h.metadata?.step)).toEqual([2, 1, 0, -1]);
    expect(history[0]!.config.configurable?.checkpoint_id).toBe(final.config.configurable?.checkpoint_id);
    const beforeSecond = history.find((h) => h.next.length === 1 && h.next[0] === "second")!;
    expect(beforeSecond.values.items).toEqual(["start", "first"]);

    // Time travel: replaying from "before second" stops at the interrupt again.
    const replayed = await graph.invoke(null, beforeSecond.config);
    expect(replayed.items).toEqual(["start", "first"]);
    const resumedReplay = await graph.invoke(new Command({ resume: "no" }), config);
    expect(resumedReplay.items).toEqual(["start", "first", "second:no"]);

    // A fork: "before second" with other items, resumed on its own branch.
    const fork = await graph.updateState(beforeSecond.config, { items: ["forked"] });
    await graph.invoke(null, fork);
    const forked = await graph.invoke(new Command({ resume: "maybe" }), config);
    expect(forked.items).toEqual(["start", "first", "forked", "second:maybe"]);

    // Every branch stays as it was: the first run's final checkpoint still
    // holds its own values (a fork never overwrites another branch's values).
    const original = await graph.getState(final.config);
    expect(original.values.items).toEqual(["start", "first", "second:yes"]);
    const all = await collect(graph.getStateHistory(config));
    expect(all.length).toBeGreaterThan(history.length);

    // Other agents read the checkpoints as entries, with who wrote them.
    const admin = agentClient("auditor");
    const checkpoints = await admin.list(context, { prefix: "checkpoints/order-42/" });
    expect(checkpoints.length).toBe(all.length);
    expect(new Set(checkpoints.map((e) => e.author))).toEqual(new Set(["planner", "approver"]));
  });
});

describe("a CtxmeshStore shared by two graphs", () => {
  it("keeps what two agents' graphs write at once, and each reads the other's", async () => {
    const context = unique("lg-memories");
    const namespace = ["team", "launch"];

    function researchGraph(agent: string, finding: string) {
      const store = new CtxmeshStore({ client: agentClient(agent), context, kind: "memory" });
      return new StateGraph(State)
        .addNode("remember", async (_state, config: LangGraphRunnableConfig) => {
          await config.store!.put(namespace, agent, { finding, by: agent });
          return { items: [`${agent} remembered`] };
        })
        .addNode("recall", async (_state, config: LangGraphRunnableConfig) => {
          const known = await config.store!.search(namespace, { limit: 10 });
          return { items: known.map((item) => `${item.key}: ${String(item.value.finding)}`).sort() };
        })
        .addEdge(START, "remember")
        .addEdge("remember", "recall")
        .addEdge("recall", END)
        .compile({ store });
    }

    const researcher = researchGraph("researcher", "competitor ships in May");
    const analyst = researchGraph("analyst", "pricing is 20% above market");
    // Both remember before either recalls, whatever the interleaving: run
    // them at once, then once more so that each recalls both.
    await Promise.all([researcher.invoke({ items: [] }), analyst.invoke({ items: [] })]);
    const [fromResearcher, fromAnalyst] = await Promise.all([researcher.invoke({ items: [] }), analyst.invoke({ items: [] })]);
    const both = ["analyst: pricing is 20% above market", "researcher: competitor ships in May"];
    expect(fromResearcher.items).toEqual(["researcher remembered", ...both]);
    expect(fromAnalyst.items).toEqual(["analyst remembered", ...both]);

    // The memories are plain entries of the context, written by each agent.
    const entries = await agentClient("auditor").list(context, { prefix: "team/launch/" });
    expect(entries.map((e) => [e.key, e.author, e.kind])).toEqual([
      ["team/launch/@analyst", "analyst", "memory"],
      ["team/launch/@researcher", "researcher", "memory"],
    ]);
  });
});
