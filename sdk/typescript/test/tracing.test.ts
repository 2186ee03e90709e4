// W3C trace context: a request made while an OpenTelemetry span is active
// carries it, as seen on the wire by a recording proxy in front of the
// server; outside a span, none.

import { createServer, request, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

import { ROOT_CONTEXT, context, createTraceState, propagation, trace, type Span } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Client, type Event } from "../src/index.js";
import { serverWithAdmin } from "./fixture.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
serverWithAdmin((s) => {
  server = s;
});

// What an application's OpenTelemetry setup registers (NodeSDK does the same).
const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer("ctxmesh-tests");

interface Sent {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

/** A proxy in front of the server that records each request's method, path and headers. */
let proxy: { url: string; sent: Sent[]; close: () => Promise<void> };

beforeAll(async () => {
  const sent: Sent[] = [];
  const upstream = () => new URL(server.url);
  const http = createServer((req, res) => {
    sent.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers });
    const target = upstream();
    const out = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((ready) => http.listen(0, "127.0.0.1", ready));
  const { port } = http.address() as AddressInfo;
  proxy = {
    url: `http://127.0.0.1:${port}`,
    sent,
    close: () =>
      new Promise<void>((done) => {
        http.closeAllConnections();
        http.close(() => done());
      }),
  };
});

afterAll(async () => {
  await proxy.close();
  await provider.shutdown();
  context.disable();
  propagation.disable();
});

/** The requests recorded from now on, while `fn` runs. */
async function recorded(fn: () => Promise<void>): Promise<Sent[]> {
  const start = proxy.sent.length;
  await fn();
  return proxy.sent.slice(start);
}

/** The `traceparent` of a request that continues `span`'s trace as its child. */
function childOf(span: ReadableSpan | Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, "0")}`;
}

function finished(name: string): ReadableSpan {
  const spans = exporter.getFinishedSpans().filter((s) => s.name === name);
  expect(spans).toHaveLength(1);
  return spans[0]!;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("trace context", () => {
  it("is sent with each request made inside a span, and not outside one", async () => {
    const client = new Client({ url: proxy.url, token: server.adminToken, keepalive: false });
    const ctx = unique("traced");
    const inside = await recorded(() =>
      tracer.startActiveSpan("plan step", async (span) => {
        await client.createContext(ctx);
        await client.put(ctx, "brief", { goal: "ship" });
        span.end();
      }),
    );
    const outside = await recorded(async () => {
      await client.get(ctx, "brief");
    });
    client.close();

    const span = finished("plan step");
    expect(span.spanContext().traceFlags & 1).toBe(1); // sampled
    expect(inside.map((r) => [r.method, r.path])).toEqual([
      ["POST", "/v1/contexts"],
      ["PUT", `/v1/contexts/${ctx}/entries/brief`],
    ]);
    for (const r of inside) expect(r.headers.traceparent).toBe(childOf(span));
    expect(outside.map((r) => [r.method, r.path])).toEqual([["GET", `/v1/contexts/${ctx}/entries/brief`]]);
    expect(outside[0]!.headers.traceparent).toBeUndefined();
    expect(outside[0]!.headers.tracestate).toBeUndefined();
  });

  it("continues a remote parent's trace, with its tracestate", async () => {
    const client = new Client({ url: proxy.url, token: server.adminToken, keepalive: false });
    const parent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: 1,
      isRemote: true,
      traceState: createTraceState("vendor=opaque"),
    });
    const sent = await recorded(() =>
      tracer.startActiveSpan("child", {}, parent, async (span) => {
        await client.listContexts();
        span.end();
      }),
    );
    client.close();
    const span = finished("child");
    expect(span.spanContext().traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers.traceparent).toBe(childOf(span));
    expect(sent[0]!.headers.tracestate).toBe("vendor=opaque");
  });

  it("leaves a traceparent header the caller set alone", async () => {
    const mine = "00-11111111111111111111111111111111-2222222222222222-01";
    const client = new Client({ url: proxy.url, token: server.adminToken, keepalive: false, headers: { TraceParent: mine } });
    const sent = await recorded(() =>
      tracer.startActiveSpan("outer", async (span) => {
        await client.listContexts();
        span.end();
      }),
    );
    client.close();
    expect(sent.map((r) => r.headers.traceparent)).toEqual([mine]);
  });

  it("is sent with a watch's stream", async () => {
    const client = new Client({ url: proxy.url, token: server.adminToken, keepalive: false });
    const ctx = unique("traced-watch");
    await client.createContext(ctx);
    const written = await client.put(ctx, "brief", { goal: "ship" });
    let event: Event | undefined;
    const sent = await recorded(() =>
      tracer.startActiveSpan("watching", async (span) => {
        const watch = client.watch(ctx, { after: written.revision - 1 });
        for await (const e of watch) {
          event = e;
          break;
        }
        span.end();
      }),
    );
    client.close();
    expect(event).toMatchObject({ type: "context.updated", key: "brief", revision: written.revision });
    const streams = sent.filter((r) => r.method === "GET" && r.path.startsWith(`/v1/contexts/${ctx}/watch`));
    expect(streams).toHaveLength(1);
    expect(streams[0]!.headers.accept).toBe("text/event-stream");
    expect(streams[0]!.headers.traceparent).toBe(childOf(finished("watching")));
  });

  it("is not sent with the keepalive's heartbeats, which belong to no caller's span", async () => {
    const agent = await server.registerAgent(unique("traced-agent"));
    const client = new Client({ url: proxy.url, token: agent.token, agentId: agent.id });
    const heartbeat = `/v1/agents/${agent.id}/heartbeat`;
    const start = proxy.sent.length;
    // The first request starts the keepalive, inside the span.
    await tracer.startActiveSpan("agent step", async (span) => {
      await client.listContexts();
      span.end();
    });
    const deadline = Date.now() + 30_000;
    while (!proxy.sent.slice(start).some((r) => r.path === heartbeat)) {
      if (Date.now() > deadline) throw new Error("no heartbeat was sent");
      await pause(20);
    }
    client.close();
    const sent = proxy.sent.slice(start);
    const listed = sent.filter((r) => r.method === "GET" && r.path === "/v1/contexts");
    expect(listed.map((r) => r.headers.traceparent)).toEqual([childOf(finished("agent step"))]);
    // The heartbeats, and whatever else the keepalive asked, carry none.
    const own = sent.filter((r) => r.path !== "/v1/contexts");
    expect(own.filter((r) => r.path === heartbeat).length).toBeGreaterThan(0);
    for (const r of own) expect(r.headers.traceparent, `${r.method} ${r.path}`).toBeUndefined();
  });
});
