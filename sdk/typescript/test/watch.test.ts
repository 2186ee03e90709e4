// Watches: live events over SSE, filters, ending a watch, and resuming
// without a gap or a repeat across a server killed and restarted, a server
// restarted gracefully, and a connection broken in the middle of a revision.

import { describe, expect, it } from "vitest";

import {
  Client,
  ForbiddenError,
  PreconditionFailedError,
  TransportError,
  UnavailableError,
  type Event,
} from "../src/index.js";
import { serverWithAdmin } from "./fixture.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
let admin: Client;
serverWithAdmin((s, a) => {
  server = s;
  admin = a;
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds (what a watch delivers arrives asynchronously). */
async function until(check: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(20);
  }
}

/** Creates `key` once, retrying while the server is away; a 412 means an earlier try was applied. */
async function createOnce(client: Client, ctx: string, key: string, value: unknown): Promise<void> {
  for (;;) {
    try {
      await client.create(ctx, key, value, { timeoutMs: 5000 });
      return;
    } catch (error) {
      if (error instanceof PreconditionFailedError) return;
      if (error instanceof TransportError || error instanceof UnavailableError) {
        await pause(50);
        continue;
      }
      throw error;
    }
  }
}

describe("watch", () => {
  it("delivers the events after `after`, then live ones, and ends on break", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const first = await admin.put(ctx, "a", 1);
    await admin.put(ctx, "b", 2);
    const events: Event[] = [];
    const watch = admin.watch(ctx, { after: first.revision - 1, types: "context.updated" });
    const reading = (async () => {
      for await (const event of watch) {
        events.push(event);
        if (events.length === 4) break;
      }
    })();
    await until(() => events.length === 2, "the replayed events");
    await admin.txn(ctx, { success: [{ op: "put", key: "c", value: 3 }, { op: "put", key: "d", value: 4 }] });
    await reading;
    expect(events.map((e) => e.key)).toEqual(["a", "b", "c", "d"]);
    expect(events[2]!.revision).toBe(events[3]!.revision); // one transaction, one revision
    expect(events[0]!.data).toMatchObject({ change: "created", value: 1 });
    // Every event up to `position` was delivered: the last revision, once a
    // bookmark said it was whole, else the one before it.
    expect([events[3]!.revision - 1, events[3]!.revision]).toContain(watch.position);
    expect(await watch.next()).toEqual({ done: true, value: undefined });
  });

  it("starts from now without `after`, and filters by prefix and priority", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    await admin.put(ctx, "findings/old", 0, { priority: "critical" });
    const events: Event[] = [];
    const watch = admin.watch(ctx, { prefix: "findings/", minPriority: "high" });
    const reading = (async () => {
      for await (const event of watch) {
        events.push(event);
        if (event.key === "findings/last") break;
      }
    })();
    // The watch's start is the context's revision when it first connects: wait for it.
    await until(() => watch.position !== undefined, "the watch to start");
    await admin.put(ctx, "findings/low", 1, { priority: "low" });
    await admin.put(ctx, "notes/high", 2, { priority: "high" });
    await admin.put(ctx, "findings/high", 3, { priority: "high" });
    await admin.put(ctx, "findings/last", 4, { priority: "critical" });
    await reading;
    expect(events.map((e) => e.key)).toEqual(["findings/high", "findings/last"]);
  });

  it("ends when its signal aborts, with its connection closed", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const controller = new AbortController();
    const events: Event[] = [];
    const reading = (async () => {
      for await (const event of admin.watch(ctx, { after: 0, signal: controller.signal })) events.push(event);
    })();
    await until(() => events.length === 1, "context.created");
    controller.abort();
    await reading; // the loop ends: no error, no more events
    await admin.put(ctx, "later", 1);
    expect(events.map((e) => e.type)).toEqual(["context.created"]);
  });

  it("ends after the context is deleted, delivering context.deleted", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const types: string[] = [];
    const reading = (async () => {
      for await (const event of admin.watch(ctx, { after: 0 })) types.push(event.type);
    })();
    await until(() => types.length === 1, "context.created");
    await admin.deleteContext(ctx);
    await reading;
    expect(types).toEqual(["context.created", "context.deleted"]);
  });

  it("throws ForbiddenError to an agent without a grant", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const agent = await server.registerAgent();
    const outsider = new Client({ url: server.url, token: agent.token, keepalive: false });
    const iterator = outsider.watch(ctx, { after: 0 });
    await expect(iterator.next()).rejects.toBeInstanceOf(ForbiddenError);
  });

  it("yields progress bookmarks when asked", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const written = await admin.put(ctx, "a", 1);
    for await (const event of admin.watch(ctx, { after: 0, includeProgress: true })) {
      if (event.type === "progress") {
        expect(event.revision).toBe(written.revision);
        break;
      }
    }
  });
});

describe("watch across restarts", () => {
  /**
   * Watches a context while a writer creates 60 keys, one revision each,
   * retrying while the server is away; `restart` runs twice mid-stream.
   * Every revision written is delivered once, in order.
   */
  async function resumesAcross(restart: () => Promise<void>): Promise<void> {
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const start = (await admin.getContext(ctx)).revision;
    const total = 60;

    const watcher = new Client({ url: server.url, token: server.adminToken });
    const writer = new Client({ url: server.url, token: server.adminToken });
    const revisions: number[] = [];
    const keys: string[] = [];
    const watch = watcher.watch(ctx, { after: start, backoffMs: 20, maxBackoffMs: 500 });
    const reading = (async () => {
      for await (const event of watch) {
        revisions.push(event.revision);
        keys.push(event.key ?? "");
        if (keys.length === total) break;
      }
    })();
    let written = 0;
    const writing = (async () => {
      for (let i = 0; i < total; i++) {
        await createOnce(writer, ctx, `k/${String(i).padStart(3, "0")}`, i);
        written = i + 1;
        await pause(10);
      }
    })();
    try {
      await until(() => revisions.length >= 15, "events before the first restart");
      await restart(); // while the writer goes on
      await until(() => revisions.length >= 35 && written >= 35, "events after the first restart");
      await restart();
      await writing;
      // Every event written arrives soon after; a watch that lost one would
      // wait for ever: compare what came instead.
      await until(() => revisions.length >= total, "every event written", 15_000).catch(() => undefined);
      watch.close();
      await reading;
    } finally {
      watch.close();
      watcher.close();
      writer.close();
    }
    const expected = Array.from({ length: total }, (_, i) => start + 1 + i);
    expect(revisions).toEqual(expected);
    expect(keys).toEqual(Array.from({ length: total }, (_, i) => `k/${String(i).padStart(3, "0")}`));
    // The log agrees: the same revisions, each once.
    const logged: number[] = [];
    for await (const event of admin.iterEvents(ctx, { after: start })) logged.push(event.revision);
    expect(logged).toEqual(expected);
  }

  it("resumes across a server killed (SIGKILL) and restarted mid-stream without a gap or a repeat", async () => {
    await resumesAcross(async () => {
      await server.restart({ kill: true });
    });
  });

  it("resumes across a server restarted gracefully (it ends the stream with `unavailable`) without a gap or a repeat", async () => {
    await resumesAcross(async () => {
      await server.restart();
    });
  });

  it("resumes an inbox watch across a restart without a gap or a repeat", async () => {
    const agent = await server.registerAgent();
    const ctx = unique("ctx");
    await admin.createContext(ctx);
    const me = new Client({ url: server.url, token: agent.token });
    const seqs: number[] = [];
    const topics: string[] = [];
    const watch = me.watchInbox(undefined, { after: 0, backoffMs: 20, maxBackoffMs: 500 });
    const reading = (async () => {
      for await (const item of watch) {
        seqs.push(item.seq ?? -1);
        topics.push(String((item.data as { topic?: string }).topic));
        if (topics.length === 10) break;
      }
    })();
    try {
      for (let i = 0; i < 5; i++) await admin.sendMessage({ i }, { agents: [agent.id], topic: `t${i}` });
      await until(() => topics.length === 5, "the first messages");
      await server.restart({ kill: true });
      for (let i = 5; i < 10; i++) {
        for (;;) {
          try {
            await admin.sendMessage({ i }, { agents: [agent.id], topic: `t${i}` });
            break;
          } catch (error) {
            if (!(error instanceof TransportError)) throw error;
            await pause(50);
          }
        }
      }
      await reading;
    } finally {
      watch.close();
      me.close();
    }
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(topics).toEqual(["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"]);
  });
});

describe("resuming inside a revision", () => {
  /**
   * A fetch that serves scripted SSE bodies, one per connection (a body
   * with `hold` stays open after its text, silent), and records each
   * connection's position. Past the scripts, connections stay open.
   */
  function scripted(bodies: (string | { text: string; hold: true })[]) {
    const asked: { after: string | null; lastEventId: string | undefined }[] = [];
    const fake = async (url: string, init: RequestInit) => {
      const headers = init.headers as Record<string, string>;
      if (!url.includes("/watch")) return new Response("{}", { status: 404 });
      asked.push({ after: new URL(url).searchParams.get("after"), lastEventId: headers["last-event-id"] });
      const body = bodies.shift() ?? { text: "", hold: true };
      if (typeof body === "string") return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          if (body.text) controller.enqueue(new TextEncoder().encode(body.text));
          init.signal?.addEventListener("abort", () => controller.error(new Error("aborted")));
        },
      });
      return new Response(stream, { status: 200, headers: { "content-type": "text/event-stream" } });
    };
    return { fake, asked };
  }

  const frame = (revision: number, key: string) =>
    `id: ${revision}\nevent: context.updated\ndata: ${JSON.stringify({ type: "context.updated", context: "c", revision, key })}\n\n`;

  it("drops the events of the broken revision it already delivered, and misses none", async () => {
    // Connection 1 breaks after 2 of the 3 events of revision 6.
    const { fake, asked } = scripted([
      frame(5, "a") + frame(6, "b1") + frame(6, "b2"),
      frame(6, "b1") + frame(6, "b2") + frame(6, "b3") + frame(7, "c"),
    ]);
    const client = new Client({ url: "http://ctxmesh.test", token: "cmt_x", fetch: fake, keepalive: false });
    const keys: string[] = [];
    for await (const event of client.watch("c", { after: 4, backoffMs: 1 })) {
      keys.push(`${event.revision}:${event.key}`);
      if (keys.length === 5) break;
    }
    expect(keys).toEqual(["5:a", "6:b1", "6:b2", "6:b3", "7:c"]);
    expect(asked.map((a) => a.after)).toEqual(["4", "5"]);
    expect(asked.map((a) => a.lastEventId)).toEqual(["4", "5"]);
  });

  it("resumes from a bookmark that covers the last event", async () => {
    const { fake, asked } = scripted([
      frame(5, "a") + `id: 9\nevent: progress\ndata: {"type":"progress","context":"c","revision":9}\n\n`,
      frame(10, "d"),
    ]);
    const client = new Client({ url: "http://ctxmesh.test", token: "cmt_x", fetch: fake, keepalive: false });
    const keys: string[] = [];
    const watch = client.watch("c", { after: 4, backoffMs: 1 });
    for await (const event of watch) {
      keys.push(`${event.revision}:${event.key}`);
      if (keys.length === 2) break;
    }
    expect(keys).toEqual(["5:a", "10:d"]);
    expect(asked.map((a) => a.after)).toEqual(["4", "9"]);
    // No bookmark says revision 10 is whole: a watch started from the
    // position would deliver its events again, none lost.
    expect(watch.position).toBe(9);
  });

  it("replaces a connection silent for readTimeoutMs, resuming where it was", async () => {
    const bookmark = `id: 5\nevent: progress\ndata: {"type":"progress","context":"c","revision":5}\n\n`;
    const { fake, asked } = scripted([{ text: frame(5, "a") + bookmark, hold: true }, frame(6, "b")]);
    const client = new Client({ url: "http://ctxmesh.test", token: "cmt_x", fetch: fake, keepalive: false });
    const keys: string[] = [];
    for await (const event of client.watch("c", { after: 4, backoffMs: 1, readTimeoutMs: 200 })) {
      keys.push(`${event.revision}:${event.key}`);
      if (keys.length === 2) break;
    }
    expect(keys).toEqual(["5:a", "6:b"]);
    expect(asked.map((a) => a.after)).toEqual(["4", "5"]);
  });
});
