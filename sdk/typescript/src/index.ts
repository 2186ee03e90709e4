// @ctxmesh/client: the TypeScript client of ctxmesh, the server through
// which AI agents share a versioned context per task.
//
//     import { Client } from "@ctxmesh/client";
//
//     const client = new Client({ url: "http://127.0.0.1:7600", token });
//     await client.update("launch", "stats/visits", (n) => ((n as number | undefined) ?? 0) + 1);
//     for await (const event of client.watch("launch", { after: 0 })) console.log(event.revision, event.key);
//
// Types of every API shape are generated from the server's OpenAPI
// document (`@ctxmesh/client/schema`); framework adapters are at
// `@ctxmesh/client/langgraph` and `@ctxmesh/client/openai-agents`.

export { Client } from "./client.js";
export type {
  AgentSpec,
  ClientOptions,
  ContextSettings,
  CoordListOptions,
  CreateContextOptions,
  EntryMeta,
  EventFilter,
  Fencing,
  HandoffOptions,
  IfMatch,
  ListOptions,
  PageOptions,
  PolicyOptions,
  PutOptions,
  ReadOptions,
  SearchOptions,
  ShapeOptions,
  TxnCompare,
  TxnOp,
  UpdateOptions,
  WriteOptions,
} from "./client.js";
export { DEFAULT_URL, VERSION } from "./http.js";
export type { FetchLike, QueryValue, RequestOptions } from "./http.js";
export { HeldLock } from "./locks.js";
export type { LockOptions } from "./locks.js";
export { ResumeTracker, Watch } from "./watch.js";
export type { WatchOptions } from "./watch.js";
export * from "./errors.js";
export type * from "./types.js";
export type { components, paths } from "./schema.js";
