// README.md's TypeScript blocks run as written, in order, as one module,
// against a fresh server: the tour a user follows works. Only where it
// connects changes (the server's URL, the file holding its admin token, the
// package's name for the source).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { afterAll, beforeAll, expect, it } from "vitest";

import { CtxmeshServer } from "./server.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const README = resolve(HERE, "..", "README.md");
const INDEX = resolve(HERE, "..", "src", "index.ts");

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

it("runs the README's TypeScript blocks in order", async () => {
  const code = blocks(readFileSync(README, "utf8"));
  expect(code.length).toBeGreaterThan(8);
  const tokenFile = join(dir, "admin.token");
  writeFileSync(tokenFile, server.adminToken + "\n");
  // One module: the imports first, then every block's statements.
  const lines = code.join("\n").split("\n");
  const imports = lines.filter((l) => l.startsWith("import "));
  const body = lines.filter((l) => !l.startsWith("import "));
  const source = [...new Set(imports), "", ...body, "", "export const done = true;"]
    .join("\n")
    .replaceAll('"@ctxmesh/client"', JSON.stringify(pathToFileURL(INDEX).href))
    .replaceAll('"ctxmesh-data/admin.token"', JSON.stringify(tokenFile))
    .replaceAll("http://127.0.0.1:7600", server.url);
  const file = join(HERE, `.readme-tour-${process.pid}.ts`);
  writeFileSync(file, source);
  const saved = process.env.CTXMESH_URL;
  process.env.CTXMESH_URL = server.url; // the clients made without a url
  try {
    const tour = (await import(pathToFileURL(file).href)) as { done: boolean; admin: unknown };
    expect(tour.done).toBe(true);
  } finally {
    rmSync(file, { force: true });
    if (saved === undefined) delete process.env.CTXMESH_URL;
    else process.env.CTXMESH_URL = saved;
  }
});
