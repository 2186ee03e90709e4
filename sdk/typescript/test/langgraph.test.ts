// CtxmeshSaver against LangGraph's own checkpointer validation suite
// (`@langchain/langgraph-checkpoint-validation`), in full: the default spec
// (put, putWrites, getTuple, list, deleteThread) and the opt-in
// getDeltaChannelHistory spec, every test of them, against a real server.
// Then what the suite does not look at: the key layout other agents read,
// and pending writes kept once under retries.
//
// The suite is written for Vitest's globals (`describe`, `it`, `expect`...);
// this file hands them over before it registers the suite.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
Object.assign(globalThis, { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it });

import { emptyCheckpoint, uuid6 } from "@langchain/langgraph-checkpoint";
import {
  deltaChannelHistoryTests,
  validate,
  type CheckpointSaverTestInitializer,
} from "@langchain/langgraph-checkpoint-validation";

import { Client, NotFoundError } from "../src/index.js";
import { CtxmeshSaver } from "../src/langgraph/index.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
let client: Client;

const initializer: CheckpointSaverTestInitializer<CtxmeshSaver> = {
  checkpointerName: "CtxmeshSaver",
  beforeAllTimeout: 60_000,
  async beforeAll() {
    server = await CtxmeshServer.start();
    client = new Client({ url: server.url, token: server.adminToken, agentId: "validator" });
  },
  async afterAll() {
    await server?.dispose();
  },
  // Each checkpointer gets a context of its own: what one writes, no other reads.
  createCheckpointer() {
    return new CtxmeshSaver({ client, context: unique("lg-validation") });
  },
  async destroyCheckpointer(saver) {
    try {
      await client.deleteContext(saver.context);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  },
};

validate(initializer);
deltaChannelHistoryTests(initializer);

describe("CtxmeshSaver in its context", () => {
  it("keeps checkpoints, channel values and writes under the documented keys", async () => {
    const context = unique("lg-layout");
    const saver = new CtxmeshSaver({ client, context, prefix: "graphs/support" });
    const checkpoint = { ...emptyCheckpoint(), id: uuid6(1), channel_values: { topic: "refunds" }, channel_versions: { topic: 1 } };
    const config = await saver.put(
      { configurable: { thread_id: "ticket/42", checkpoint_ns: "" } },
      checkpoint,
      { source: "input", step: -1, parents: {} },
      { topic: 1 },
    );
    await saver.putWrites(config, [["topic", "billing"]], "task one");

    const keys = (await client.list(context, { prefix: "graphs/support/" })).map((e) => e.key).sort();
    expect(keys).toEqual([
      "graphs/support/blobs/ticket~2F42/~/topic/1",
      expect.stringMatching(/^graphs\/support\/checkpoints\/ticket~2F42\/~\/[0-9a-f]+z$/),
      expect.stringMatching(/^graphs\/support\/writes\/ticket~2F42\/~\/[0-9a-f]+z\/task~20one\/0$/),
    ]);
    const record = (await client.get(context, keys[1]!)).value as Record<string, unknown>;
    expect(record).toMatchObject({
      thread_id: "ticket/42",
      checkpoint_ns: "",
      checkpoint_id: checkpoint.id,
      parent_checkpoint_id: null,
      metadata_json: { source: "input", step: -1, parents: {} },
    });
    const info = await client.getContext(context);
    expect(info.labels).toEqual({ langgraph: "checkpoints" });
  });

  it("keeps a task's first regular writes when the task is retried, and its latest special writes", async () => {
    const saver = new CtxmeshSaver({ client, context: unique("lg-writes") });
    const config = await saver.put(
      { configurable: { thread_id: "t", checkpoint_ns: "" } },
      { ...emptyCheckpoint(), id: uuid6(1) },
      { source: "loop", step: 0, parents: {} },
      {},
    );
    await saver.putWrites(config, [["answer", "first try"]], "task");
    await saver.putWrites(config, [["answer", "second try"], ["more", "new"]], "task");
    await saver.putWrites(config, [["__error__", "boom"]], "task");
    await saver.putWrites(config, [["__error__", "boom again"]], "task");
    const tuple = await saver.getTuple(config);
    expect(tuple?.pendingWrites).toEqual([
      ["task", "__error__", "boom again"],
      ["task", "answer", "first try"],
      ["task", "more", "new"],
    ]);
  });

  it("writes a checkpoint with more new channel values than one transaction holds", async () => {
    const saver = new CtxmeshSaver({ client, context: unique("lg-wide"), maxTxnOps: 8 });
    const values = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`channel${i}`, { i }]));
    const versions = Object.fromEntries(Object.keys(values).map((k) => [k, 1]));
    const config = await saver.put(
      { configurable: { thread_id: "wide", checkpoint_ns: "" } },
      { ...emptyCheckpoint(), id: uuid6(1), channel_values: values, channel_versions: versions },
      { source: "input", step: -1, parents: {} },
      versions,
    );
    const tuple = await saver.getTuple(config);
    expect(tuple?.checkpoint.channel_values).toEqual(values);
  });
});
