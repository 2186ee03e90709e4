// Generates src/schema.ts, the TypeScript types of the ctxmesh server's
// OpenAPI document, with openapi-typescript's Node API.
//
// Shared by scripts/generate-types.mjs (which writes the file) and
// test/schema-drift.test.ts (which checks that the file is up to date), so
// that both produce the file the same way.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import openapiTS, { astToString } from "openapi-typescript";

/** The package's directory (sdk/typescript). */
export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Where the generated types live. */
export const SCHEMA_FILE = join(PACKAGE_DIR, "src", "schema.ts");

/** The server binary: $CTXMESH_BIN, else the repository's debug build. */
export function serverBinary() {
  return process.env.CTXMESH_BIN || resolve(PACKAGE_DIR, "..", "..", "target", "debug", "ctxmesh");
}

const HEADER = `// This file is generated from the ctxmesh server's OpenAPI document
// (GET /openapi.json) by openapi-typescript. Do not edit it by hand.
//
// Regenerate it with \`npm run generate\` in sdk/typescript (it starts the
// server binary named by $CTXMESH_BIN, default ../../target/debug/ctxmesh,
// and fetches the document). test/schema-drift.test.ts fails when it is out
// of date.

`;

/**
 * The text of src/schema.ts for an OpenAPI document (its parsed JSON).
 * @param {object} document
 * @returns {Promise<string>}
 */
export async function generateSchemaSource(document) {
  // A copy: openapi-typescript annotates the object it is given.
  const copy = JSON.parse(JSON.stringify(document));
  // The client addresses operations by method and path, and the types are
  // those of the paths and the schemas: operation ids are left out, so that
  // the types do not depend on them (and a document whose ids are not
  // unique, which openapi-typescript refuses, still gives its types).
  for (const item of Object.values(copy.paths ?? {})) {
    for (const operation of Object.values(item ?? {})) {
      if (operation && typeof operation === "object" && "operationId" in operation) delete operation.operationId;
    }
  }
  // An object schema without properties (a free JSON object, like an
  // event's `data`) is `Record<string, unknown>`, not an empty object.
  const ast = await openapiTS(copy, { silent: true, emptyObjectsUnknown: true });
  return HEADER + astToString(ast);
}

/**
 * Fetches a server's OpenAPI document.
 * @param {string} url the server's base URL
 * @returns {Promise<object>}
 */
export async function fetchDocument(url) {
  const answer = await fetch(`${url.replace(/\/$/, "")}/openapi.json`);
  if (!answer.ok) throw new Error(`GET ${url}/openapi.json answered ${answer.status}`);
  return answer.json();
}

/**
 * Runs `ctxmesh serve` on a fresh temporary data directory, calls `fn`
 * with its URL, and stops it.
 * @template T
 * @param {(url: string) => Promise<T>} fn
 * @param {string} [binary]
 * @returns {Promise<T>}
 */
export async function withServer(fn, binary = serverBinary()) {
  const dataDir = mkdtempSync(join(tmpdir(), "ctxmesh-schema-"));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("CTXMESH_")) env[k] = v;
  }
  // A token of its own (so that nothing is generated or saved), and a
  // configuration directory of its own (so that the user's is left alone).
  env.CTXMESH_ADMIN_TOKEN = "cmt_" + randomBytes(32).toString("hex");
  env.XDG_CONFIG_HOME = join(dataDir, "config");
  const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(dataDir, "data")], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    const url = await new Promise((resolvePromise, reject) => {
      const log = [];
      const timer = setTimeout(() => reject(new Error(`${binary} did not start:\n${log.join("\n")}`)), 60_000);
      const onData = (chunk) => {
        for (const line of chunk.toString("utf8").split("\n")) {
          if (!line) continue;
          log.push(line);
          const match = /listening on (http:\/\/\S+)/.exec(line);
          if (match) {
            clearTimeout(timer);
            resolvePromise(match[1].replace(/\/$/, ""));
          }
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`could not run ${binary} (${e.message}): build it with cargo build -p ctxmesh, or set CTXMESH_BIN`));
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${binary} exited (${code ?? signal}):\n${log.join("\n")}`));
      });
    });
    return await fn(url);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}
