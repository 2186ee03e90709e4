// The client over https: servers with certificates from a private CA made
// here with the openssl command. Node trusts a private CA through
// NODE_EXTRA_CA_CERTS, which it reads at start-up, so the clients that
// trust it run in a child `node` over the built package (`npm run build`);
// the refusals are seen in this process too, which trusts no test CA.

import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { Client, TransportError } from "../src/index.js";
import { CtxmeshServer, unique } from "./server.js";

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), "..", "dist", "index.js");

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: "pipe" });
}

/** A self-signed CA: its key and certificate files. */
function makeCa(dir: string, name: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  openssl(
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", `/CN=${name}`, "-keyout", key, "-out", cert,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  );
  return { key, cert };
}

/** A server certificate for `san` (e.g. `DNS:localhost,IP:127.0.0.1`) signed by `ca`. */
function issue(dir: string, name: string, ca: { key: string; cert: string }, san: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=ctxmesh", "-keyout", key, "-out", csr);
  openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert);
  return { key, cert };
}

/** What a child `node` running `script` (an ES module) with `env` printed, or its error output. */
function runNode(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
    child.on("exit", (code) => resolvePromise({ code, out, err }));
  });
}

// A client's round trip: a context, a watch, a write seen on the watch and
// read back. It prints the value and the event, or the error's class and
// message.
const ROUND_TRIP = `
import { Client } from ${JSON.stringify(pathToFileURL(DIST).href)};
const client = new Client({ url: process.env.CTXMESH_URL, token: process.env.CTXMESH_TOKEN, keepalive: false });
const ctx = process.env.CTX;
try {
  await client.createContext(ctx);
  const watch = client.watch(ctx, { after: 0, types: "context.updated" });
  await client.put(ctx, "greeting", { over: "tls" });
  const entry = await client.get(ctx, "greeting");
  let seen;
  for await (const event of watch) {
    seen = { type: event.type, key: event.key, revision: event.revision };
    break;
  }
  console.log(JSON.stringify({ value: entry.value, revision: entry.revision, seen }));
} catch (error) {
  console.log(JSON.stringify({ error: error.name, message: error.message }));
}
`;

let dir: string;
let ca: { key: string; cert: string };
let otherCa: { key: string; cert: string };
let server: CtxmeshServer;

beforeAll(async () => {
  try {
    execFileSync("openssl", ["version"], { stdio: "pipe" });
  } catch {
    throw new Error("the openssl command is needed to make the test CA (apt-get install openssl)");
  }
  if (!existsSync(DIST)) throw new Error(`${DIST} does not exist: run \`npm run build\` first (scripts/test does)`);
  dir = mkdtempSync(join(tmpdir(), "ctxmesh-ts-tls-"));
  ca = makeCa(dir, "test-ca");
  otherCa = makeCa(dir, "other-ca");
  const leaf = issue(dir, "server", ca, "DNS:localhost,IP:127.0.0.1");
  server = await CtxmeshServer.start({ args: ["--tls-cert", leaf.cert, "--tls-key", leaf.key], ca: readFileSync(ca.cert, "utf8") });
});

afterAll(async () => {
  await server?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the client over https", () => {
  it("reads, writes and watches with the CA in NODE_EXTRA_CA_CERTS", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ctx = unique("tls-ts");
    const { code, out, err } = await runNode(ROUND_TRIP, {
      NODE_EXTRA_CA_CERTS: ca.cert,
      CTXMESH_URL: server.url,
      CTXMESH_TOKEN: server.adminToken,
      CTX: ctx,
    });
    expect(code, err).toBe(0);
    const result = JSON.parse(out) as { value: unknown; revision: number; seen: unknown; error?: string; message?: string };
    expect(result.error, result.message).toBeUndefined();
    expect(result.value).toEqual({ over: "tls" });
    expect(result.seen).toEqual({ type: "context.updated", key: "greeting", revision: result.revision });
  });

  it("refuses a server whose CA it does not trust, saying what to do", async () => {
    // This process trusts no test CA.
    const client = new Client({ url: server.url, token: server.adminToken, keepalive: false });
    const error = await client.readyz().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TransportError);
    const message = (error as TransportError).message;
    expect(message).toContain("GET /readyz");
    expect(message).toMatch(/\((UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE): /);
    expect(message).toContain("NODE_EXTRA_CA_CERTS");
    expect(message).not.toContain(server.adminToken);
    expect((error as TransportError).details.tls).toMatch(/^(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/);

    // A watch does not reconnect forever into the same refusal: it ends
    // with it.
    const watch = client.watch(unique("tls-watch"), { after: 0 });
    let timer: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        (async () => {
          for await (const event of watch) return event;
          return "ended without an error";
        })().catch((e: unknown) => e),
        new Promise((r) => (timer = setTimeout(() => r("still reconnecting after 20 s"), 20_000))),
      ]);
      expect(outcome).toBeInstanceOf(TransportError);
      expect((outcome as TransportError).details.tls).toBe((error as TransportError).details.tls);
      expect((outcome as TransportError).message).toContain("NODE_EXTRA_CA_CERTS");
    } finally {
      clearTimeout(timer);
      watch.close();
    }

    // Another CA than the one that signed the server's certificate: the
    // same refusal.
    const ctx = unique("tls-wrong-ca");
    const { out } = await runNode(ROUND_TRIP, {
      NODE_EXTRA_CA_CERTS: otherCa.cert,
      CTXMESH_URL: server.url,
      CTXMESH_TOKEN: server.adminToken,
      CTX: ctx,
    });
    const result = JSON.parse(out) as { error?: string; message?: string };
    expect(result.error).toBe("TransportError");
    expect(result.message).toContain("NODE_EXTRA_CA_CERTS");
    expect(result.message).not.toContain(server.adminToken);
  });

  it("refuses a certificate for another host name", async () => {
    const leaf = issue(dir, "elsewhere", ca, "DNS:elsewhere.example.com");
    const elsewhere = await CtxmeshServer.start({
      args: ["--tls-cert", leaf.cert, "--tls-key", leaf.key],
      ca: readFileSync(ca.cert, "utf8"),
    });
    try {
      const { out } = await runNode(ROUND_TRIP, {
        NODE_EXTRA_CA_CERTS: ca.cert,
        CTXMESH_URL: elsewhere.url,
        CTXMESH_TOKEN: elsewhere.adminToken,
        CTX: unique("tls-host"),
      });
      const result = JSON.parse(out) as { error?: string; message?: string };
      expect(result.error).toBe("TransportError");
      expect(result.message).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
      expect(result.message).toContain("does not name this host");
    } finally {
      await elsewhere.dispose();
    }
  });
});
