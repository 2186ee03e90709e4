// README.md's TypeScript blocks run as written, in order, as one module,
// against a fresh server: the tour a user follows works. Only where it
// connects changes (the server's URL, the file holding its admin token, the
// package's names for the sources). The same for the TypeScript block of
// the repository README's tour.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { afterAll, beforeAll, expect, it } from "vitest";

import { CtxmeshServer } from "./server.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const README = resolve(HERE, "..", "README.md");
const TOUR_README = resolve(HERE, "..", "..", "..", "README.md");
/** The package's entry points, as the sources the tests import. */
const ENTRY_POINTS: Record<string, string> = {
  "@ctxmesh/client": resolve(HERE, "..", "src", "index.ts"),
  "@ctxmesh/client/langgraph": resolve(HERE, "..", "src", "langgraph", "index.ts"),
  "@ctxmesh/client/openai-agents": resolve(HERE, "..", "src", "openai-agents", "index.ts"),
};

let server: CtxmeshServer;
let dir: string;

beforeAll(async () => {
  server = await CtxmeshServer.start();
  dir = mkdtempSync(join(tmpdir(), "ctxmesh-readme-"));
});

afterAll(async () => {
  await server?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The README's ```ts blocks, in order. */
function blocks(text: string): string[] {
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** Runs `code` (the blocks of a README) as one module against the test server. */
async function runBlocks(code: string[], name: string): Promise<void> {
  const tokenFile = join(dir, "admin.token");
  writeFileSync(tokenFile, server.adminToken + "\n");
  // One module: the imports first, then every block's statements.
  const lines = code.join("\n").split("\n");
  const imports = lines.filter((l) => l.startsWith("import "));
  const body = lines.filter((l) => !l.startsWith("import "));
  let source = [...new Set(imports), "", ...body, "", "export const done = true;"].join("\n");
  for (const [entry, path] of Object.entries(ENTRY_POINTS)) {
    source = source.replaceAll(JSON.stringify(entry), JSON.stringify(pathToFileURL(path).href));
  }
  source = source
    .replaceAll('"ctxmesh-data/admin.token"', JSON.stringify(tokenFile))
    .replaceAll("http://127.0.0.1:7600", server.url);
  const file = join(HERE, `.readme-${name}-${process.pid}.ts`);
  writeFileSync(file, source);
  const saved = process.env.CTXMESH_URL;
  process.env.CTXMESH_URL = server.url; // the clients made without a url
  try {
    const tour = (await import(pathToFileURL(file).href)) as { done: boolean };
    expect(tour.done).toBe(true);
  } finally {
    rmSync(file, { force: true });
    if (saved === undefined) delete process.env.CTXMESH_URL;
    else process.env.CTXMESH_URL = saved;
  }
}

it("runs the README's TypeScript blocks in order", async () => {
  const code = blocks(readFileSync(README, "utf8"));
  expect(code.length).toBeGreaterThan(8);
  await runBlocks(code, "sdk");
});

it("runs the TypeScript block of the repository README's tour", async () => {
  const text = readFileSync(TOUR_README, "utf8");
  const tour = text.slice(text.indexOf("## A five-minute tour"), text.indexOf("\n## ", text.indexOf("## A five-minute tour") + 1));
  const code = blocks(tour);
  expect(code.length).toBe(1);
  // The tour's shell steps made the context before this block.
  const answer = await fetch(`${server.url}/v1/contexts`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ id: "launch-plan" }),
  });
  expect(answer.status).toBe(201);
  await runBlocks(code, "tour");
});
