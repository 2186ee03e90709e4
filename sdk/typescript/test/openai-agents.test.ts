// CtxmeshSession with the OpenAI Agents SDK's real Runner, driven by a
// scripted model (the SDK's Model and ModelProvider interfaces answering
// canned responses: no network, no API key), against a real server:
// concurrent runners on one session keep every item in the order appended;
// a handoff between two agents is persisted whole and in order; racing
// popItem callers each get a different item; clearSession empties the
// session for every instance sharing it.

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  Agent,
  Runner,
  Usage,
  type AgentInputItem,
  type AgentOutputItem,
  type Model,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  type StreamEvent,
} from "@openai/agents-core";

import { Client } from "../src/index.js";
import { CtxmeshSession } from "../src/openai-agents/index.js";
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

// --- a scripted model ----------------------------------------------------------

type Script = (request: ModelRequest) => AgentOutputItem[] | Promise<AgentOutputItem[]>;

/** A `Model` that answers each request with what its script returns, and remembers the requests. */
class ScriptedModel implements Model {
  readonly requests: ModelRequest[] = [];
  private responses = 0;
  constructor(private readonly script: Script) {}

  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    this.requests.push(request);
    const output = await this.script(request);
    return { usage: new Usage(), output, responseId: `resp_${++this.responses}` };
  }

  // eslint-disable-next-line require-yield
  async *getStreamedResponse(): AsyncIterable<StreamEvent> {
    throw new Error("the scripted model answers whole responses only: run without stream: true");
  }
}

/** A `ModelProvider` of scripted models by name. */
class ScriptedProvider implements ModelProvider {
  constructor(private readonly models: Record<string, Model>) {}
  getModel(name?: string): Model {
    const model = name === undefined ? undefined : this.models[name];
    if (model === undefined) throw new Error(`no scripted model named ${String(name)}`);
    return model;
  }
}

function say(text: string): AgentOutputItem {
  return { type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text }] };
}

function call(name: string, callId: string): AgentOutputItem {
  return { type: "function_call", callId, name, arguments: "{}", status: "completed" };
}

/** The text of a user or assistant message item. */
function textOf(item: AgentInputItem): string | undefined {
  if (!("role" in item)) return undefined;
  const content = (item as { content: unknown }).content;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((c: { text?: string }) => c.text ?? "").join("");
  return undefined;
}

function lastUserText(request: ModelRequest): string {
  const input = typeof request.input === "string" ? [{ role: "user", content: request.input } as AgentInputItem] : request.input;
  const users = input.filter((item) => "role" in item && item.role === "user");
  return textOf(users[users.length - 1]!) ?? "";
}

/** Resolves once `count` callers have arrived. */
function barrier(count: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return () => {
    if (++arrived >= count) open();
    return opened;
  };
}

/** The session's item entries in key order, read as another agent would. */
async function itemEntries(session: CtxmeshSession) {
  return agentClient("auditor").list(session.context, { prefix: session.itemsPrefix });
}

// --- the tests ---------------------------------------------------------------------

describe("CtxmeshSession with the Agents SDK's Runner", () => {
  it("keeps every item of two runners running at once on one session, in the order appended", async () => {
    const context = unique("agents");
    const sessionId = unique("conversation");
    const bothCalled = barrier(2);
    // Each model waits for the other, so that both runs have read the
    // history and are under way before either saves its turn.
    const scripted = (name: string) =>
      new ScriptedModel(async (request) => {
        await bothCalled();
        return [say(`${name} heard: ${lastUserText(request)}`)];
      });
    const runners = ["alpha", "beta"].map((name) => ({
      name,
      runner: new Runner({ modelProvider: new ScriptedProvider({ [name]: scripted(name) }), tracingDisabled: true }),
      agent: new Agent({ name, instructions: `you are ${name}`, model: name }),
      session: new CtxmeshSession({ client: agentClient(name), context, sessionId }),
    }));

    const results = await Promise.all(
      runners.map(({ name, runner, agent, session }) => runner.run(agent, `question for ${name}`, { session })),
    );
    expect(results.map((r) => r.finalOutput)).toEqual(["alpha heard: question for alpha", "beta heard: question for beta"]);

    const items = await new CtxmeshSession({ client: agentClient("reader"), context, sessionId }).getItems();
    const texts = items.map(textOf);
    expect([...texts].sort()).toEqual([
      "alpha heard: question for alpha",
      "beta heard: question for beta",
      "question for alpha",
      "question for beta",
    ]);
    for (const name of ["alpha", "beta"]) {
      expect(texts.indexOf(`question for ${name}`)).toBeLessThan(texts.indexOf(`${name} heard: question for ${name}`));
    }

    // The order of the items is the order in which their appends committed.
    const entries = await itemEntries(runners[0]!.session);
    expect(entries.map((e) => e.value)).toEqual(items);
    const revisions = entries.map((e) => e.created_revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(new Set(entries.map((e) => e.author))).toEqual(new Set(["alpha", "beta"]));
  });

  it("loses no append of many concurrent writers, and keeps each append's items together", async () => {
    const context = unique("agents");
    const sessionId = unique("conversation");
    const writers = Array.from({ length: 12 }, (_, w) => new CtxmeshSession({ client: agentClient(`writer-${w}`), context, sessionId }));
    await Promise.all(
      writers.map((session, w) =>
        session.addItems([0, 1, 2].map((i): AgentInputItem => ({ role: "user", content: `writer ${w} item ${i}` }))),
      ),
    );
    const items = await writers[0]!.getItems();
    expect(items.length).toBe(36);
    for (let start = 0; start < items.length; start += 3) {
      const writer = /^writer (\d+) item 0$/.exec(textOf(items[start]!)!)?.[1];
      expect(writer).toBeDefined();
      expect(items.slice(start, start + 3).map(textOf)).toEqual([0, 1, 2].map((i) => `writer ${writer} item ${i}`));
    }
    const revisions = (await itemEntries(writers[0]!)).map((e) => e.created_revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(await writers[5]!.getItems(4)).toEqual(items.slice(-4));
    expect(await writers[5]!.getItems(100)).toEqual(items);
  });

  it("persists a run with a handoff between two agents, whole and in order, and the next turn reads it back", async () => {
    const context = unique("agents");
    const sessionId = unique("ticket");
    const triageModel = new ScriptedModel(() => [call("transfer_to_billing", "call_handoff_1")]);
    const billingModel = new ScriptedModel((request) => [say(`billing: refund issued (${lastUserText(request)})`)]);
    const runner = new Runner({
      modelProvider: new ScriptedProvider({ triage: triageModel, billing: billingModel }),
      tracingDisabled: true,
    });
    const billing = new Agent({ name: "billing", instructions: "you settle billing questions", model: "billing" });
    const triage = Agent.create({ name: "triage", instructions: "you route questions", model: "triage", handoffs: [billing] });

    const session = new CtxmeshSession({ client: agentClient("support-desk"), context, sessionId });
    const result = await runner.run(triage, "I was charged twice", { session });
    expect(result.lastAgent?.name).toBe("billing");
    expect(result.finalOutput).toBe("billing: refund issued (I was charged twice)");

    const stored = await new CtxmeshSession({ client: agentClient("reader"), context, sessionId }).getItems();
    expect(stored.map((item) => item.type ?? "message")).toEqual(["message", "function_call", "function_call_result", "message"]);
    expect(stored[0]).toMatchObject({ role: "user", content: "I was charged twice" });
    expect(stored[1]).toMatchObject({ type: "function_call", name: "transfer_to_billing", callId: "call_handoff_1" });
    expect(stored[2]).toMatchObject({ type: "function_call_result", callId: "call_handoff_1", name: "transfer_to_billing" });
    expect(textOf(stored[3]!)).toBe("billing: refund issued (I was charged twice)");
    expect(stored).toEqual(result.history);

    // The next turn, in another process (a new session object), runs on the
    // conversation as ctxmesh holds it.
    const next = await runner.run(billing, "thanks, and the second charge?", {
      session: new CtxmeshSession({ client: agentClient("support-desk-2"), context, sessionId }),
    });
    expect(next.finalOutput).toBe("billing: refund issued (thanks, and the second charge?)");
    const seen = billingModel.requests[1]!.input as AgentInputItem[];
    expect(seen.slice(0, 4).map((item) => item.type ?? "message")).toEqual(["message", "function_call", "function_call_result", "message"]);
    expect(textOf(seen[0]!)).toBe("I was charged twice");
    expect((await session.getItems()).length).toBe(6);
  });
});

describe("CtxmeshSession on its own", () => {
  it("gives each racing popItem caller a different item, each item to exactly one caller", async () => {
    const context = unique("agents");
    const sessionId = unique("stack");
    const owner = new CtxmeshSession({ client: agentClient("owner"), context, sessionId });
    const pushed = Array.from({ length: 20 }, (_, i): AgentInputItem => ({ role: "user", content: `item ${i}` }));
    await owner.addItems(pushed);

    const poppers = Array.from({ length: 30 }, (_, p) => new CtxmeshSession({ client: agentClient(`popper-${p}`), context, sessionId }));
    const popped = await Promise.all(poppers.map((session) => session.popItem()));
    const got = popped.filter((item): item is AgentInputItem => item !== undefined);
    expect(got.length).toBe(20);
    expect(popped.filter((item) => item === undefined).length).toBe(10);
    expect(got.map(textOf).sort()).toEqual(pushed.map(textOf).sort());
    expect(await owner.getItems()).toEqual([]);
    expect(await owner.popItem()).toBeUndefined();
    expect(await itemEntries(owner)).toEqual([]);

    // One caller pops the most recent item first.
    await owner.addItems(pushed.slice(0, 3));
    expect(textOf((await owner.popItem())!)).toBe("item 2");
    expect(textOf((await poppers[0]!.popItem())!)).toBe("item 1");
    expect((await owner.getItems()).map(textOf)).toEqual(["item 0"]);
  });

  it("keeps appends and pops racing each other consistent", async () => {
    const context = unique("agents");
    const sessionId = unique("mixed");
    const sessions = Array.from({ length: 10 }, (_, i) => new CtxmeshSession({ client: agentClient(`agent-${i}`), context, sessionId }));
    await sessions[0]!.addItems([{ role: "user", content: "seed" }]);
    const outcomes = await Promise.all(
      sessions.map(async (session, i) => {
        await session.addItems([{ role: "user", content: `a${i}` }]);
        return session.popItem();
      }),
    );
    const popped = outcomes.map((item) => textOf(item!));
    expect(new Set(popped).size).toBe(10);
    const left = (await sessions[0]!.getItems()).map(textOf);
    expect(left.length).toBe(1);
    expect([...popped, ...left].sort()).toEqual(["seed", ...sessions.map((_, i) => `a${i}`)].sort());
  });

  it("appends more items than one transaction holds, all of them in order", async () => {
    const context = unique("agents");
    const many = Array.from({ length: 300 }, (_, i): AgentInputItem => ({ role: "user", content: `line ${i}` }));
    const session = new CtxmeshSession({ client: agentClient("bulk"), context, sessionId: unique("bulk") });
    await session.addItems(many);
    expect(await session.getItems()).toEqual(many);
    const commits = (await agentClient("auditor").history(context, { limit: 10 })).commits;
    // 126 items a transaction by default: three appends.
    expect(commits.slice(0, 3).map((c) => c.keys.length)).toEqual([300 - 2 * 126 + 1, 127, 127]);

    const big = "x".repeat(40_000);
    const small = new CtxmeshSession({ client: agentClient("bulk"), context, sessionId: unique("bytes"), maxTxnBytes: 100_000 });
    await small.addItems([0, 1, 2, 3, 4].map((i): AgentInputItem => ({ role: "user", content: `${i}${big}` })));
    expect((await small.getItems()).map((item) => textOf(item)!.slice(0, 1))).toEqual(["0", "1", "2", "3", "4"]);
    expect(await small.getItems(2)).toEqual((await small.getItems()).slice(3));
  });

  it("sends a live event per appended and per popped item, in order", async () => {
    const session = new CtxmeshSession({ client: agentClient("talker"), context: unique("agents"), sessionId: unique("live") });
    const watch = await session.watch();
    const seen: Array<[string | undefined, unknown, unknown]> = [];
    const watching = (async () => {
      for await (const event of watch) {
        const data = event.data as { change?: unknown; value?: unknown };
        seen.push([event.key ?? undefined, data.change, data.value]);
        if (seen.length === 4) break;
      }
    })();
    await session.addItems([{ role: "user", content: "hello" }, { role: "user", content: "again" }]);
    await session.addItems([{ role: "user", content: "third" }]);
    await session.popItem();
    await watching;
    expect(seen).toEqual([
      [session.itemKey(0), "created", { role: "user", content: "hello" }],
      [session.itemKey(1), "created", { role: "user", content: "again" }],
      [session.itemKey(2), "created", { role: "user", content: "third" }],
      [session.itemKey(2), "deleted", undefined],
    ]);
  });

  it("clears the session for every instance sharing it, which then goes on from the start", async () => {
    const context = unique("agents");
    const sessionId = unique("cleared");
    const first = new CtxmeshSession({ client: agentClient("first"), context, sessionId });
    const second = new CtxmeshSession({ client: agentClient("second"), context, sessionId });
    await first.addItems([{ role: "user", content: "one" }, { role: "user", content: "two" }]);
    await second.addItems([{ role: "user", content: "three" }]);
    expect((await first.getItems()).map(textOf)).toEqual(["one", "two", "three"]);

    await first.clearSession();
    expect(await second.getItems()).toEqual([]);
    expect(await agentClient("auditor").list(context, { prefix: first.keyPrefix })).toEqual([]);

    // `second` last saw three items; it appends after the clear all the same.
    await second.addItems([{ role: "user", content: "after" }]);
    expect((await first.getItems()).map(textOf)).toEqual(["after"]);
    expect((await itemEntries(first)).map((e) => e.key)).toEqual([first.itemKey(0)]);
    expect(await first.getSessionId()).toBe(sessionId);

    // Another session of the same context is untouched by either.
    const other = new CtxmeshSession({ client: agentClient("other"), context, sessionId: `${sessionId}-other` });
    await other.addItems([{ role: "user", content: "elsewhere" }]);
    await first.clearSession();
    expect((await other.getItems()).map(textOf)).toEqual(["elsewhere"]);
  });
});
