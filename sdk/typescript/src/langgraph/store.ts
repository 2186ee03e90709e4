// `CtxmeshStore`: a LangGraph.js long-term memory store kept in a ctxmesh context.
//
// Layout (one context, `langgraph-store` by default), the same as the
// Python SDK's `CtxmeshStore`:
//
// - an item `(namespace, key)` is the entry
//   `<prefix><label>/<label>/.../@<key>`, each label and the key escaped into
//   one key segment (keys.ts); `@` marks the item segment, and never appears
//   in an escaped label;
// - the entry's value is the item's value, as it is, so other agents read,
//   search and receive LangGraph memories like any other entry;
// - bookkeeping lives in the entry's tags, each starting with `lg`:
//   `lgns<hash>` for each prefix of the item's namespace (so that a search is
//   scoped on the server), `lgc<µs>` for its creation time once it differs
//   from the entry's `updated_at` (`lgu<µs>` and `lgttl<ms>`, which the
//   Python store writes for TTLs, are read as it reads them).
//
// The reads of one `batch` see the store as it was before the batch's writes,
// from one snapshot (one read-only transaction); then all its writes are one
// transaction, conditional on the revisions read: they land together or not
// at all, and a concurrent write is never silently undone (the batch reads
// again and retries).

import {
  BaseStore,
  InvalidNamespaceError,
  type GetOperation,
  type Item,
  type ListNamespacesOperation,
  type MatchCondition,
  type Operation,
  type OperationResults,
  type PutOperation,
  type SearchItem,
  type SearchOperation,
} from "@langchain/langgraph-checkpoint";

import { BoundContext, type Connection } from "./context.js";
import { DEFAULT_MAX_TXN_OPS } from "./checkpoint.js";
import { checkPrefix, escape, unescape } from "./keys.js";
import { chunks, dateOfMicros, deepEqual, entriesOf, parseMicros, type Compare, type TxnOp, type WireEntry } from "./wire.js";

/** Tag prefixes of the store's bookkeeping. */
const TAG_NAMESPACE = "lgns";
const TAG_CREATED = "lgc";
const TAG_UPDATED = "lgu";
/** Namespace prefixes tagged per item (ctxmesh allows 64 tags per entry). */
const MAX_NAMESPACE_TAGS = 60;
/** Most hits one ctxmesh search answers. */
const MAX_SEARCH_HITS = 100;
/** Attempts of a batch's writes when other writers keep changing its items. */
const WRITE_ATTEMPTS = 32;
const ITEM_MARK = "@";

/** What a `CtxmeshStore` is made with. */
export interface CtxmeshStoreOptions extends Connection {
  /** The context holding the items; created on first use (default `langgraph-store`). */
  context?: string;
  /** A key prefix under which the items live, so that one context can hold a store next to other entries. */
  prefix?: string;
  /** ctxmesh search mode for `query` searches (`keyword`, `semantic` or `hybrid`; default: the server's). */
  searchMode?: "keyword" | "semantic" | "hybrid";
  /** An entry `kind` given to every item (e.g. `"memory"`), so that agents' `needs` can name LangGraph memories. */
  kind?: string;
  /** The server's `--max-txn-ops` (default 256). */
  maxTxnOps?: number;
}

/**
 * A LangGraph.js `BaseStore` whose items are entries of a ctxmesh context.
 *
 * ```ts
 * const store = new CtxmeshStore({ client, context: "support-memories" });
 * await store.put(["users", "alice"], "prefs", { theme: "dark" });
 * await store.search(["users"], { query: "dark", filter: { theme: "dark" } });
 * ```
 */
export class CtxmeshStore extends BaseStore {
  /** The context holding the items. */
  readonly context: string;
  /** The key prefix (`""` or ending in `/`). */
  readonly prefix: string;
  readonly searchMode: string | undefined;
  readonly kind: string | undefined;
  readonly maxTxnOps: number;
  private readonly mesh: BoundContext;

  constructor(options: CtxmeshStoreOptions = {}) {
    super();
    this.context = options.context ?? "langgraph-store";
    this.prefix = checkPrefix(options.prefix ?? "");
    this.searchMode = options.searchMode;
    this.kind = options.kind;
    this.maxTxnOps = options.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
    if (!Number.isInteger(this.maxTxnOps) || this.maxTxnOps < 4) {
      throw new RangeError(`maxTxnOps is the server's --max-txn-ops, at least 4, not ${String(options.maxTxnOps)}`);
    }
    this.mesh = new BoundContext(options, this.context, { langgraph: "store" });
  }

  /** Closes the client the store made from `url`, `token` and `agentId` (not one it was given). */
  close(): void {
    this.mesh.close();
  }

  // --- keys ------------------------------------------------------------------

  /** The ctxmesh entry key of the item `(namespace, key)`. */
  keyOf(namespace: string[], key: string): string {
    return `${this.namespacePrefixOf(namespace)}${ITEM_MARK}${escape(key)}`;
  }

  /** The ctxmesh key prefix of every item under `namespacePrefix`. */
  namespacePrefixOf(namespacePrefix: string[]): string {
    return this.prefix + namespacePrefix.map((label) => escape(label) + "/").join("");
  }

  /** `[namespace, key]` of an entry key, or `undefined` for an entry that is not an item. */
  parseKey(entryKey: string): [string[], string] | undefined {
    if (!entryKey.startsWith(this.prefix)) return undefined;
    const segments = entryKey.slice(this.prefix.length).split("/");
    const last = segments.pop()!;
    if (!last.startsWith(ITEM_MARK) || segments.some((s) => s.includes(ITEM_MARK))) return undefined;
    try {
      return [segments.map(unescape), unescape(last.slice(ITEM_MARK.length))];
    } catch {
      return undefined;
    }
  }

  /** The tag every item under `namespacePrefix` carries (when it is shallow enough). */
  async namespaceTag(namespacePrefix: string[]): Promise<string> {
    const joined = [this.prefix, ...namespacePrefix].join("\u0000");
    const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(joined));
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    return TAG_NAMESPACE + hex.slice(0, 24);
  }

  // --- BaseStore ---------------------------------------------------------------

  /** Runs `operations`: reads first, from one snapshot; then all writes at once. */
  async batch<Op extends Operation[]>(operations: Op): Promise<OperationResults<Op>> {
    const ops = operations.map(classify);
    for (const op of ops) {
      if (op.type === "put") {
        if (op.op.namespace.length === 0) throw new InvalidNamespaceError("an item's namespace cannot be empty");
        const value = op.op.value;
        if (value !== null && (typeof value !== "object" || Array.isArray(value))) {
          throw new TypeError(`an item's value is an object, not ${Array.isArray(value) ? "an array" : typeof value}`);
        }
      }
    }

    // Writes: the last one per item wins, as in a map.
    const writes = new Map<string, PutOperation>();
    for (const op of ops) if (op.type === "put") writes.set(this.keyOf(op.op.namespace, op.op.key), op.op);

    // Reads, from one snapshot: single keys and key prefixes.
    const keys: string[] = [];
    const prefixes: string[] = [];
    for (const op of ops) {
      if (op.type === "get") keys.push(this.keyOf(op.op.namespace, op.op.key));
      else if (op.type === "search" && !op.op.query) prefixes.push(this.namespacePrefixOf(op.op.namespacePrefix));
      else if (op.type === "list") prefixes.push(this.namespacePrefixOf(staticPrefix(op.op.matchConditions)));
    }
    for (const [key, op] of writes) if (op.value !== null) keys.push(key);
    const { byKey, byPrefix } = await this.read(keys, prefixes);

    const results: unknown[] = [];
    for (const op of ops) {
      if (op.type === "get") {
        const entry = byKey.get(this.keyOf(op.op.namespace, op.op.key));
        results.push(entry === undefined ? null : this.item(entry));
      } else if (op.type === "search") {
        results.push(await this.searchItems(op.op, byPrefix));
      } else if (op.type === "list") {
        results.push(this.namespaces(op.op, byPrefix.get(this.namespacePrefixOf(staticPrefix(op.op.matchConditions))) ?? []));
      } else {
        results.push(undefined);
      }
    }
    if (writes.size > 0) await this.write(writes, byKey);
    return results as OperationResults<Op>;
  }

  // --- reading ------------------------------------------------------------------

  /** Current entries of `keys` and under `prefixes`, from one snapshot (when they fit one transaction). */
  private async read(
    keys: string[],
    prefixes: string[],
  ): Promise<{ byKey: Map<string, WireEntry>; byPrefix: Map<string, WireEntry[]> }> {
    const uniqueKeys = [...new Set(keys)];
    const uniquePrefixes = [...new Set(prefixes)];
    const gets: TxnOp[] = [
      ...uniqueKeys.map((key) => ({ op: "get" as const, key })),
      ...uniquePrefixes.map((prefix) => ({ op: "get" as const, prefix })),
    ];
    const found: WireEntry[][] = [];
    for (const group of chunks(gets, this.maxTxnOps)) {
      const answer = await this.mesh.txn({ success: group });
      group.forEach((_, n) => found.push(entriesOf(answer, n)));
    }
    const byKey = new Map<string, WireEntry>();
    uniqueKeys.forEach((key, i) => {
      const entry = found[i]?.[0];
      if (entry !== undefined) byKey.set(key, entry);
    });
    const byPrefix = new Map<string, WireEntry[]>();
    uniquePrefixes.forEach((prefix, i) => byPrefix.set(prefix, found[uniqueKeys.length + i] ?? []));
    return { byKey, byPrefix };
  }

  private item(entry: WireEntry): Item {
    const [namespace, key] = this.parseKey(entry.key)!;
    const { createdAt, updatedAt } = times(entry);
    const value = entry.value;
    return {
      namespace,
      key,
      value: value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : { value },
      createdAt,
      updatedAt,
    };
  }

  private async searchItems(op: SearchOperation, byPrefix: Map<string, WireEntry[]>): Promise<SearchItem[]> {
    const depth = op.namespacePrefix.length;
    let candidates: Array<{ entry: WireEntry; score: number | undefined }>;
    if (op.query) {
      const params: { limit: number; tags?: string[]; mode?: string } = { limit: MAX_SEARCH_HITS };
      if (depth <= MAX_NAMESPACE_TAGS) params.tags = [await this.namespaceTag(op.namespacePrefix)];
      if (this.searchMode) params.mode = this.searchMode;
      const hits = await this.mesh.search(op.query, params);
      candidates = hits.map((hit) => ({ entry: hit.entry, score: Number(hit.score) }));
    } else {
      candidates = (byPrefix.get(this.namespacePrefixOf(op.namespacePrefix)) ?? []).map((entry) => ({ entry, score: undefined }));
    }
    const matched: Array<{ item: SearchItem; key: string }> = [];
    for (const { entry, score } of candidates) {
      const parsed = this.parseKey(entry.key);
      if (parsed === undefined || !startsWith(parsed[0], op.namespacePrefix)) continue;
      const item = this.item(entry);
      if (op.filter && !Object.entries(op.filter).every(([k, wanted]) => matches(item.value[k], wanted))) continue;
      matched.push({ item: score === undefined ? { ...item } : { ...item, score }, key: entry.key });
    }
    if (!op.query) {
      matched.sort((a, b) => b.item.updatedAt.getTime() - a.item.updatedAt.getTime() || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    }
    const offset = Math.max(op.offset ?? 0, 0);
    const limit = Math.max(op.limit ?? 10, 0);
    return matched.slice(offset, offset + limit).map((m) => m.item);
  }

  private namespaces(op: ListNamespacesOperation, entries: WireEntry[]): string[][] {
    const found = new Map<string, string[]>();
    for (const entry of entries) {
      const parsed = this.parseKey(entry.key);
      if (parsed === undefined) continue;
      const namespace = parsed[0];
      if (!(op.matchConditions ?? []).every((condition) => namespaceMatches(condition, namespace))) continue;
      const kept = op.maxDepth !== undefined ? namespace.slice(0, op.maxDepth) : namespace;
      found.set(JSON.stringify(kept), kept);
    }
    const ordered = [...found.values()].sort(compareLabels);
    const offset = Math.max(op.offset ?? 0, 0);
    return ordered.slice(offset, offset + Math.max(op.limit ?? 100, 0));
  }

  // --- writing --------------------------------------------------------------------

  /** Applies `writes` in one transaction conditional on the revisions read, keeping each item's creation time. */
  private async write(writes: Map<string, PutOperation>, known: Map<string, WireEntry>): Promise<void> {
    let current = new Map(known);
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const compare: Compare[] = [];
      const success: TxnOp[] = [];
      for (const [key, op] of writes) {
        if (op.value === null) {
          success.push({ op: "delete", key });
          continue;
        }
        const before = current.get(key);
        compare.push({ key, revision: before ? Number(before.revision) : 0 });
        success.push(await this.putOp(key, op, before));
      }
      if (compare.length * 2 + success.length > this.maxTxnOps) {
        // Too many for one transaction: each group is still atomic.
        const size = Math.max(1, Math.floor(this.maxTxnOps / 3));
        for (const group of chunks([...writes], size)) await this.write(new Map(group), current);
        return;
      }
      const answer = await this.mesh.txn({
        compare,
        success,
        // A plain failed comparison (not one for the context's conflict policy to settle): read what changed.
        failure: compare.map((c) => ({ op: "get" as const, key: c.key })),
      });
      if (answer.succeeded) return;
      const fresh = new Map<string, WireEntry>();
      compare.forEach((c, n) => {
        const entry = entriesOf(answer, n)[0];
        if (entry !== undefined) fresh.set(c.key, entry);
      });
      current = new Map([...current].filter(([key]) => !compare.some((c) => c.key === key)));
      for (const [key, entry] of fresh) current.set(key, entry);
    }
    throw new Error(`the store's items kept changing during ${WRITE_ATTEMPTS} attempts to write them: retry the batch`);
  }

  private async putOp(key: string, op: PutOperation, before: WireEntry | undefined): Promise<TxnOp> {
    const namespace = op.namespace;
    const tags: string[] = [];
    for (let depth = 0; depth <= Math.min(namespace.length, MAX_NAMESPACE_TAGS); depth++) {
      tags.push(await this.namespaceTag(namespace.slice(0, depth)));
    }
    if (before !== undefined) {
      const created = tagNumber(before, TAG_CREATED) ?? parseMicros(before.updated_at);
      tags.push(`${TAG_CREATED}${created}`);
    }
    const put: TxnOp = { op: "put", key, value: { ...(op.value ?? {}) }, tags };
    if (this.kind) put.kind = this.kind;
    return put;
  }
}

type Classified =
  | { type: "get"; op: GetOperation }
  | { type: "search"; op: SearchOperation }
  | { type: "put"; op: PutOperation }
  | { type: "list"; op: ListNamespacesOperation };

/** Which operation `op` is (BaseStore's operations are told apart by their fields). */
function classify(op: Operation): Classified {
  if ("namespacePrefix" in op) return { type: "search", op };
  if ("value" in op) return { type: "put", op };
  if ("namespace" in op && "key" in op) return { type: "get", op };
  if ("limit" in op || "matchConditions" in op || "maxDepth" in op) return { type: "list", op: op as ListNamespacesOperation };
  throw new TypeError(`unknown store operation ${JSON.stringify(op)}: use a get, search, put or list-namespaces operation`);
}

function tagNumber(entry: WireEntry, prefix: string): number | undefined {
  for (const tag of entry.tags ?? []) {
    const rest = tag.slice(prefix.length);
    if (tag.startsWith(prefix) && /^\d+$/.test(rest)) return Number(rest);
  }
  return undefined;
}

/** An item's creation and update times: from its tags, else the entry's `updated_at`. */
function times(entry: WireEntry): { createdAt: Date; updatedAt: Date } {
  const at = parseMicros(entry.updated_at);
  return {
    createdAt: dateOfMicros(tagNumber(entry, TAG_CREATED) ?? at),
    updatedAt: dateOfMicros(tagNumber(entry, TAG_UPDATED) ?? at),
  };
}

function startsWith(namespace: string[], prefix: string[]): boolean {
  return prefix.length <= namespace.length && prefix.every((label, i) => namespace[i] === label);
}

/** The labels every namespace matching `conditions` starts with. */
function staticPrefix(conditions: MatchCondition[] | undefined): string[] {
  for (const condition of conditions ?? []) {
    if (condition.matchType === "prefix") {
      const labels: string[] = [];
      for (const label of condition.path) {
        if (label === "*") break;
        labels.push(label);
      }
      return labels;
    }
  }
  return [];
}

function namespaceMatches(condition: MatchCondition, namespace: string[]): boolean {
  const path = condition.path;
  if (namespace.length < path.length) return false;
  if (condition.matchType === "prefix") return path.every((label, i) => label === "*" || namespace[i] === label);
  if (condition.matchType === "suffix") {
    const offset = namespace.length - path.length;
    return path.every((label, i) => label === "*" || namespace[offset + i] === label);
  }
  throw new TypeError(`unsupported namespace match type ${JSON.stringify(condition.matchType)}: use prefix or suffix`);
}

function compareLabels(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return a.length - b.length;
}

const OPERATORS = new Set(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"]);

/**
 * Whether an item's field `value` satisfies the filter `wanted`: plain values
 * compare for equality (objects and arrays structurally);
 * `{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte"|"$in"|"$nin": x}` with an operator.
 */
export function matches(value: unknown, wanted: unknown): boolean {
  if (wanted !== null && typeof wanted === "object" && !Array.isArray(wanted)) {
    const entries = Object.entries(wanted as Record<string, unknown>);
    if (entries.length > 0 && entries.every(([k]) => OPERATORS.has(k))) {
      return entries.every(([operator, operand]) => apply(value, operator, operand));
    }
  }
  return deepEqual(value, wanted);
}

function apply(value: unknown, operator: string, operand: unknown): boolean {
  switch (operator) {
    case "$eq":
      return deepEqual(value, operand);
    case "$ne":
      return !deepEqual(value, operand);
    case "$in":
      return Array.isArray(operand) && operand.some((x) => deepEqual(value, x));
    case "$nin":
      return !Array.isArray(operand) || !operand.some((x) => deepEqual(value, x));
    default: {
      if (value === null || value === undefined || typeof value === "boolean" || typeof operand === "boolean") return false;
      let a: number | string;
      let b: number | string;
      if (typeof value === "string" && typeof operand === "string") {
        a = value;
        b = operand;
      } else {
        a = Number(value);
        b = Number(operand);
        if (Number.isNaN(a) || Number.isNaN(b)) return false;
      }
      if (operator === "$gt") return a > b;
      if (operator === "$gte") return a >= b;
      if (operator === "$lt") return a < b;
      return a <= b;
    }
  }
}
