// src/schema.ts is the server's OpenAPI document as types: generated again
// from the test server's document, it must be what the file holds.

import { readFileSync } from "node:fs";

import { afterAll, beforeAll, expect, it } from "vitest";

import { SCHEMA_FILE, fetchDocument, generateSchemaSource } from "../scripts/schema.mjs";
import { CtxmeshServer } from "./server.js";

let server: CtxmeshServer;

beforeAll(async () => {
  server = await CtxmeshServer.start();
});

afterAll(async () => {
  await server?.dispose();
});

it("src/schema.ts is generated from the server's OpenAPI document", async () => {
  const expected = await generateSchemaSource(await fetchDocument(server.url));
  const actual = readFileSync(SCHEMA_FILE, "utf8");
  if (actual !== expected) {
    const a = actual.split("\n");
    const e = expected.split("\n");
    let line = 0;
    while (line < a.length && line < e.length && a[line] === e[line]) line++;
    expect.fail(
      `src/schema.ts is out of date: run npm run generate (first difference at line ${line + 1}:\n` +
        `  file:      ${a[line] ?? "<end>"}\n  generated: ${e[line] ?? "<end>"})`,
    );
  }
});
