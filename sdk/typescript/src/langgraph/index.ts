// `@ctxmesh/client/langgraph`: LangGraph.js adapters kept in ctxmesh.
//
// - `CtxmeshSaver` is a LangGraph `BaseCheckpointSaver`: graphs persist their
//   state in a ctxmesh context, resume after a restart, and travel back to
//   any earlier checkpoint.
// - `CtxmeshStore` is a LangGraph `BaseStore`: namespaced items, filters,
//   search through ctxmesh's search.
//
// Both need `@langchain/langgraph-checkpoint` (and `@langchain/core`), which
// this entry point alone imports: a program that does not use LangGraph
// does not load them. The key layout of each is described in its module and
// in the package's README.

export { CtxmeshSaver, DEFAULT_MAX_TXN_OPS, type CtxmeshSaverOptions } from "./checkpoint.js";
export { CtxmeshStore, type CtxmeshStoreOptions } from "./store.js";
export type { Connection } from "./context.js";
