// Errors keyed on the API's code, and the token kept out of every error.

import { inspect } from "node:util";

import { describe, expect, it } from "vitest";

import {
  Client,
  CtxmeshError,
  InvalidIdError,
  InvalidKeyError,
  InvalidPatchError,
  NotFoundError,
  RateLimitedError,
  SchemaViolationError,
  TooLargeError,
  TransportError,
  UnauthenticatedError,
  UnavailableError,
  errorClasses,
} from "../src/index.js";
import { serverWithAdmin } from "./fixture.js";
import { CtxmeshServer, unique } from "./server.js";

let server: CtxmeshServer;
let admin: Client;
serverWithAdmin((s, a) => {
  server = s;
  admin = a;
}, { server: { args: ["--max-value-bytes", "1024"] } });

/** Everything an error shows: its message, its inspection (with its cause), its JSON, its stack. */
function shown(error: unknown): string {
  return [String(error), inspect(error, { depth: 10, showHidden: true }), JSON.stringify(error), (error as Error).stack ?? ""].join("\n");
}

describe("errors", () => {
  it("has a class for every error code the server documents", async () => {
    const doc = (await admin.openapi()) as { components: { schemas: { ErrorCode: { enum: string[] } } } };
    const codes = doc.components.schemas.ErrorCode.enum;
    expect(codes.length).toBeGreaterThan(20);
    for (const code of codes) {
      const cls = errorClasses[code];
      expect(cls, code).toBeDefined();
      const error = new cls!(code, "m");
      expect(error).toBeInstanceOf(CtxmeshError);
      expect(error.code).toBe(code);
    }
  });

  it("throws the class of the answer's code, with its status, message and details", async () => {
    const ctx = unique("ctx");
    await admin.createContext(ctx, { schemas: { "profile/*": { type: "object", required: ["name"] } } });
    const missing = await admin.get(ctx, "nothing").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as NotFoundError).status).toBe(404);
    expect((missing as NotFoundError).code).toBe("not_found");
    expect((missing as NotFoundError).reason).not.toBe("");

    await expect(admin.getContext("-bad id-")).rejects.toBeInstanceOf(InvalidIdError);
    await expect(admin.put(ctx, "bad key!", 1)).rejects.toBeInstanceOf(InvalidKeyError);
    await admin.put(ctx, "doc", { a: 1 });
    await expect(admin.jsonPatch(ctx, "doc", [{ op: "test", path: "/a", value: 2 }])).rejects.toBeInstanceOf(InvalidPatchError);

    const violation = await admin.put(ctx, "profile/alice", { age: 3 }).catch((e: unknown) => e);
    expect(violation).toBeInstanceOf(SchemaViolationError);
    expect((violation as SchemaViolationError).status).toBe(422);
    expect(typeof (violation as SchemaViolationError).pointer).toBe("string");

    const large = await admin.put(ctx, "big", "x".repeat(2000)).catch((e: unknown) => e);
    expect(large).toBeInstanceOf(TooLargeError);
    expect((large as TooLargeError).limit).toBe(1024);
    expect((large as TooLargeError).actual).toBeGreaterThan(1024);
  });

  it("keeps the token out of an unauthenticated error and of the client", async () => {
    const token = "cmt_" + "s3cr3t".repeat(8);
    const client = new Client({ url: server.url, token, keepalive: false });
    const error = await client.listContexts().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnauthenticatedError);
    expect((error as UnauthenticatedError).status).toBe(401);
    expect(shown(error)).not.toContain(token);
    expect(shown(error)).not.toContain("s3cr3t");
    expect(inspect(client, { showHidden: true, depth: 10 })).not.toContain("s3cr3t");
    expect(String(client)).not.toContain("s3cr3t");
    expect(JSON.stringify(client)).not.toContain("s3cr3t");
  });

  it("throws TransportError without the token when no server answers", async () => {
    const token = "cmt_" + "h1dden".repeat(8);
    // A port nothing listens on: the test server's, once stopped.
    const gone = await CtxmeshServer.start();
    const url = gone.url;
    await gone.dispose();
    const client = new Client({ url, token, keepalive: false });
    const error = await client.healthz().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).status).toBe(0);
    expect((error as TransportError).message).toContain("GET /healthz");
    expect(shown(error)).not.toContain("h1dden");
  });

  it("throws TransportError when a request times out", async () => {
    const hang = (_url: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(new Error("aborted"))));
    const client = new Client({ url: "http://ctxmesh.test", token: "cmt_x", fetch: hang, timeoutMs: 50, keepalive: false });
    const error = await client.healthz().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect((error as Error).message).toContain("timed out after 50 ms");
  });

  it("rejects with the caller's abort reason when its signal aborts", async () => {
    const hang = (_url: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(new Error("aborted"))));
    const client = new Client({ url: "http://ctxmesh.test", token: "cmt_x", fetch: hang, keepalive: false });
    const controller = new AbortController();
    const pending = client.getContext("c", { signal: controller.signal });
    controller.abort(new Error("stop"));
    await expect(pending).rejects.toThrow("stop");
  });

  it("maps an unknown code to CtxmeshError, and reads Retry-After", async () => {
    const answers: Response[] = [
      new Response(JSON.stringify({ error: { code: "brand_new", message: "a newer server", details: { x: 1 } } }), { status: 418 }),
      new Response(JSON.stringify({ error: { code: "rate_limited", message: "slow down", details: {} } }), { status: 429, headers: { "retry-after": "2" } }),
      new Response("<html>bad gateway</html>", { status: 502, headers: { "x-request-id": "req-7" } }),
    ];
    const client = new Client({ url: "http://ctxmesh.test", token: "cmt_x", fetch: async () => answers.shift()!, keepalive: false });

    const unknown = await client.healthz().catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(CtxmeshError);
    expect((unknown as CtxmeshError).constructor).toBe(CtxmeshError);
    expect((unknown as CtxmeshError).code).toBe("brand_new");
    expect((unknown as CtxmeshError).details).toEqual({ x: 1 });

    const limited = await client.healthz().catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect((limited as RateLimitedError).retryAfterMs).toBe(2000);

    const proxy = await client.healthz().catch((e: unknown) => e);
    expect(proxy).toBeInstanceOf(UnavailableError); // no ctxmesh body: by status
    expect((proxy as UnavailableError).requestId).toBe("req-7");
  });

  it("refuses a token with whitespace inside without showing it", () => {
    expect(() => new Client({ token: "cmt_abc def" })).toThrow(/not shown/);
    try {
      new Client({ token: "cmt_abc def" });
    } catch (error) {
      expect(String(error)).not.toContain("cmt_abc");
    }
  });
});
