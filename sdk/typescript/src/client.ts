// The ctxmesh client: every operation of the HTTP API (docs/api.md), over
// `fetch`, with the helpers of more than one request written once here:
// paging, `update()` (read-modify-write retried on 412), watches that
// resume by themselves, held locks with fencing tokens, and the keepalive
// of the agent's lease.

import {
  FencedError,
  NotFoundError,
  PreconditionFailedError,
  UpdateConflictError,
} from "./errors.js";
import {
  DEFAULT_URL,
  Transport,
  checkNotPending,
  cleanAgentId,
  cleanToken,
  env,
  seg,
  type Call,
  type FetchLike,
  type QueryValue,
  type RequestOptions,
} from "./http.js";
import { Keepalive } from "./keepalive.js";
import { HeldLock, acquireHeld, type LockOptions } from "./locks.js";
import type {
  Agent,
  AgentList,
  AgentWithToken,
  AuditPage,
  CommitList,
  Compaction,
  Conflict,
  ConflictList,
  ConsensusOutcome,
  Context,
  ContextList,
  DecisionRecord,
  Deleted,
  Diff,
  Document,
  Entry,
  EntryHistory,
  EntryList,
  Event,
  EventList,
  Grant,
  Handoff,
  HandoffList,
  Identity,
  Lock,
  LockAnswer,
  MarkdownPackage,
  NewToken,
  Package,
  PolicyRule,
  RollbackResponse,
  SearchResults,
  StreamPage,
  Task,
  TaskList,
  TxnResponse,
  WrittenEntry,
} from "./types.js";
import type { components } from "./schema.js";
import { checkJson, copyJson, given, int, num, strList, timestamp } from "./values.js";
import { Watch, sleep, type WatchOptions } from "./watch.js";

type Schemas = components["schemas"];

/** How a client connects. */
export interface ClientOptions {
  /** The server (default: `$CTXMESH_URL` in Node, else http://127.0.0.1:7600). */
  url?: string;
  /** A bearer token, the admin's or an agent's (default: `$CTXMESH_TOKEN` in Node). Never shown in errors. */
  token?: string;
  /**
   * The agent this client acts as, sent as `X-Agent-Id` (default:
   * `$CTXMESH_AGENT` in Node). With an agent's token the server knows the
   * agent already; with the admin token it names the agent the admin acts for.
   */
  agentId?: string;
  /** Ms for each request (default 30000; watches are timed by their silence instead). */
  timeoutMs?: number;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchLike;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
  /**
   * Keep the agent's lease alive while the client is open (default `true`):
   * a heartbeat at the first request, then every third of the lease, until
   * `close()`. Only a client acting as an agent has a lease to keep.
   */
  keepalive?: boolean;
  /**
   * Remember the revision at which this client last saw each entry (read by
   * `get`/`getOrNull`, or written), and send it as `If-Match` with a later
   * `put`, `mergePatch`, `jsonPatch` or `delete` of that entry that has no
   * precondition of its own (`If-None-Match: *` for an entry read as
   * missing), as an ORM does with a version column. Off by default: a
   * client's memory is shared by all the code using it.
   */
  rememberReads?: boolean;
}

/** A fencing token for a write: a held lock, a lock as answered, `[name, token]` or `"name=token"`. */
export type Fencing = HeldLock | Pick<Lock, "name" | "fencing_token"> | readonly [string, number] | string;

/** A transaction's comparison: one target (`revision`, `version`, `exists`, `value` or `vclock`) of one key, and an `op`. */
export type TxnCompare = Omit<Schemas["Compare"], "value"> & { value?: unknown };

/** A transaction's operation: `put` (with the entry's metadata), `patch`, `delete`, `delete_prefix` or `get`. */
export type TxnOp = Schemas["Op"];

/** A precondition on an entry's revision: a revision, an entry read (its revision), or `"*"` (it exists). */
export type IfMatch = number | string | Pick<Entry, "revision">;

/** An entry's metadata, as a write takes it (a PUT replaces it all). */
export interface EntryMeta {
  kind?: string;
  tags?: string[];
  /** 0..1. */
  confidence?: number;
  priority?: Schemas["Priority"];
  dependsOn?: string[];
  /** Agent id → 0..1. */
  relevance?: Record<string, number>;
  expiresAt?: Date | string;
  ttlMs?: number;
  confidential?: boolean;
  /** The version vector the write is based on (a causal precondition). */
  vclock?: Record<string, number>;
}

/** Preconditions and fencing of a write. */
export interface WriteOptions extends RequestOptions {
  /** Write only if the entry is still at this revision (or `"*"`: only if it exists). */
  ifMatch?: IfMatch;
  /** Create only if the entry does not exist. */
  ifNoneMatch?: boolean;
  /** A blind write: ignore the revision remembered from a read (`rememberReads`). */
  force?: boolean;
  /** Refused with `FencedError` once a newer token of that lock was issued. */
  fencing?: Fencing;
}

export interface PutOptions extends WriteOptions, EntryMeta {}

export interface ReadOptions extends RequestOptions {
  /** As of this revision. */
  at?: number;
  /** As of this time. */
  asOf?: Date | string;
}

export interface ListOptions extends ReadOptions {
  /** Only keys starting with this (a plain string prefix). */
  prefix?: string;
  /** Entries per request. */
  pageSize?: number;
}

export interface UpdateOptions extends RequestOptions, EntryMeta {
  /** How many times to run `fn` again after a 412 (default 16). */
  retries?: number;
  fencing?: Fencing;
}

export interface EventFilter {
  /** Only these event types. */
  types?: string | string[];
  /** Only events whose key starts with this (events without a key pass). */
  prefix?: string;
  /** Only events of at least this priority. */
  minPriority?: "low" | "normal" | "high" | "critical";
}

export interface ContextSettings {
  /** The conflict policy: `{strategy, on_field_conflict, arrays, require_precondition, overrides}`. */
  policy?: Schemas["Policy"];
  /** Key pattern → the JSON Schema its values must satisfy. */
  schemas?: Record<string, Record<string, unknown>>;
  retention?: Schemas["Retention"];
  labels?: Record<string, string>;
  /** Relevance weights, thresholds, recency half-life, workflow (docs/mesh.md). */
  mesh?: Partial<Schemas["MeshSettings"]>;
}

export interface CreateContextOptions extends ContextSettings, RequestOptions {
  /** Create a child of this context, with `inherit` / `override` / `isolate`. */
  parent?: string;
  inherit?: string[];
  /** Key → value replacing (or adding to) what the child inherits. */
  override?: Record<string, unknown>;
  isolate?: string[];
}

export interface AgentSpec {
  name?: string;
  capabilities?: Schemas["Capabilities"];
  /** Kinds, tags and key patterns the agent consumes (`exclude`: never). */
  needs?: Schemas["ContextMap"];
  produces?: Schemas["ContextMap"];
  objective?: string;
  tokenBudget?: number;
  trust?: Schemas["Trust"];
  leaseMs?: number;
  labels?: Record<string, string>;
}

export interface PageOptions extends RequestOptions {
  limit?: number;
  cursor?: string;
}

export interface ShapeOptions extends RequestOptions {
  /** Tokens (default: the agent's `token_budget`). */
  budget?: number;
  /** `cl100k_base` (default) or `o200k_base`. */
  encoding?: string;
  compress?: boolean;
  at?: number;
}

export interface HandoffOptions extends RequestOptions {
  revision?: number;
  keys?: string[];
  package?: unknown;
  session?: string;
  userIntent?: string;
  conversationHistory?: unknown[];
  extractedEntities?: Record<string, unknown>;
  deadlineMs?: number;
  note?: string;
}

export interface CoordListOptions extends PageOptions {
  context?: string;
  agent?: string;
  status?: string;
}

export interface PolicyOptions extends RequestOptions {
  /** A pattern of context ids (default `*`). */
  contexts?: string;
  /** A pattern of agent ids (default `*`). */
  agents?: string;
  minTrust?: Schemas["Trust"];
  maxTrust?: Schemas["Trust"];
  permissions?: Schemas["Permission"][];
  keys?: string;
  tags?: string[];
  description?: string;
}

export interface SearchOptions extends RequestOptions {
  mode?: "keyword" | "semantic" | "hybrid";
  limit?: number;
  kind?: string;
  tags?: string[];
  author?: string;
  since?: Date | string;
  until?: Date | string;
}

/** A client made by `asAgent` shares its parent's settings (the token among them) without exposing them. */
const DERIVED_FROM = Symbol("derivedFrom");
interface DerivedOptions extends ClientOptions {
  [DERIVED_FROM]?: Transport;
}

/** The default agent is the client's: its `agentId`, else its token's (asked of the server once). */
type AgentArg = string | undefined;

/**
 * A client of a ctxmesh server.
 *
 * ```ts
 * const client = new Client({ url: "http://127.0.0.1:7600", token });
 * await client.update("launch", "stats/visits", (n) => ((n as number | undefined) ?? 0) + 1);
 * ```
 *
 * Close it with `close()` when done: it stops the keepalive of the agent's lease.
 */
export class Client {
  /** The server's base URL. */
  readonly url: string;
  /** The agent this client names in `X-Agent-Id`, if any. */
  readonly agentId: string | undefined;
  /** Ms for each request. */
  readonly timeoutMs: number;
  private readonly transport: Transport;
  private readonly keepalive: Keepalive | undefined;
  private readonly keepaliveOn: boolean;
  private readonly reads: ReadMemory | undefined;
  private identity: Promise<Identity> | undefined;
  private closed = false;

  constructor(options: ClientOptions = {}) {
    const transport = (options as DerivedOptions)[DERIVED_FROM];
    if (transport) {
      this.transport = transport;
    } else {
      const url = (options.url ?? env("CTXMESH_URL") ?? DEFAULT_URL).trim().replace(/\/+$/, "");
      const token = options.token !== undefined ? cleanToken(options.token) : envToken();
      const agentId = options.agentId !== undefined ? cleanAgentId(options.agentId) : optionalAgent(env("CTXMESH_AGENT"));
      const fetchImpl = options.fetch ?? (globalThis.fetch?.bind(globalThis) as FetchLike | undefined);
      if (!fetchImpl) throw new TypeError("no fetch: pass one as the fetch option");
      this.transport = new Transport({
        url,
        token,
        agentId,
        timeoutMs: options.timeoutMs ?? 30_000,
        headers: { ...(options.headers ?? {}) },
        fetch: fetchImpl,
      });
    }
    this.url = this.transport.url;
    this.agentId = this.transport.agentId;
    this.timeoutMs = this.transport.timeoutMs;
    this.keepaliveOn = options.keepalive ?? true;
    this.reads = options.rememberReads ? new ReadMemory() : undefined;
    const actsAsAgent = this.agentId !== undefined || this.transport.hasToken;
    this.keepalive =
      this.keepaliveOn && actsAsAgent
        ? new Keepalive({
            resolveAgent: async (signal) => this.agentOrUndefined(signal),
            heartbeat: (agent, signal) => this.send<Agent>({ method: "POST", path: `/v1/agents/${seg(agent)}/heartbeat` }, { signal }),
            getLock: (ctx, name, signal) => this.getLock(ctx, name, { signal }),
          })
        : undefined;
  }

  /** Shows the URL and the agent, never the token. */
  toString(): string {
    return `Client(${this.url}${this.agentId ? `, agentId=${this.agentId}` : ""})`;
  }

  /** A client acting as `agentId` (with `token`, or this client's), with the same settings. */
  asAgent(agentId: string, token?: string): Client {
    const options: DerivedOptions = {
      keepalive: this.keepaliveOn,
      rememberReads: this.reads !== undefined,
      [DERIVED_FROM]: this.transport.derive(agentId, token),
    };
    return new Client(options);
  }

  /** Stops the keepalive of the agent's lease (and the refresh of locks held through `withLock`). */
  close(): void {
    this.closed = true;
    this.keepalive?.stop();
  }

  /** Whether `close()` was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  // --- plumbing --------------------------------------------------------------

  private begin(): void {
    if (!this.closed) this.keepalive?.start();
  }

  /** Sends a request and answers its JSON. */
  private async send<T>(call: Call, options: RequestOptions = {}): Promise<T> {
    this.begin();
    return (await this.transport.json<T>(call, options)).data;
  }

  /**
   * Sends any request to the API and answers the decoded JSON (`undefined`
   * when empty). `path` starts with `/`, e.g. `/v1/contexts`.
   */
  async request<T = unknown>(
    method: string,
    path: string,
    options: RequestOptions & { query?: Record<string, QueryValue>; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const { query, body, headers, ...rest } = options;
    return this.send<T>({ method, path, query, body: body === undefined ? undefined : checkJson(body, "body"), headers }, rest);
  }

  /** The client's agent: `agent`, else its `agentId`, else its token's (asked of the server once). */
  async resolveAgent(agent?: string, options: RequestOptions = {}): Promise<string> {
    const name = agent ?? (await this.agentOrUndefined(options.signal));
    if (!name) throw new TypeError("name the agent, or create the client with agentId or an agent's token");
    return name;
  }

  private async agentOrUndefined(signal?: AbortSignal): Promise<string | undefined> {
    if (this.agentId) return this.agentId;
    if (!this.transport.hasToken) return undefined;
    if (!this.identity) {
      this.identity = this.send<Identity>({ method: "GET", path: "/v1/whoami" }, signal ? { signal } : {});
      this.identity.catch(() => {
        this.identity = undefined;
      });
    }
    const identity = await this.identity;
    return identity.admin ? undefined : identity.agent;
  }

  // --- operations --------------------------------------------------------------

  /** `GET /healthz`: `{status: "ok"}` while the server runs. */
  async healthz(options?: RequestOptions): Promise<{ status: string }> {
    return this.transport.json<{ status: string }>({ method: "GET", path: "/healthz" }, options).then((a) => a.data);
  }

  /** `GET /readyz`: `{status: "ready"}` when the store answers (else `UnavailableError`). */
  async readyz(options?: RequestOptions): Promise<{ status: string }> {
    return this.transport.json<{ status: string }>({ method: "GET", path: "/readyz" }, options).then((a) => a.data);
  }

  /** The server's OpenAPI document. */
  async openapi(options?: RequestOptions): Promise<Record<string, unknown>> {
    return this.transport.json<Record<string, unknown>>({ method: "GET", path: "/openapi.json" }, options).then((a) => a.data);
  }

  /** The Prometheus metrics text. */
  async metrics(options?: RequestOptions): Promise<string> {
    return this.transport.text({ method: "GET", path: "/metrics" }, options).then((a) => a.data);
  }

  // --- contexts --------------------------------------------------------------

  /** Creates a context (`AlreadyExistsError` when the id is taken); `parent` with `inherit`/`override`/`isolate` makes a child. */
  async createContext(id: string, options: CreateContextOptions = {}): Promise<Context> {
    const { policy, schemas, retention, labels, mesh, parent, inherit, override, isolate, ...rest } = options;
    const body: Schemas["NewContext"] = {
      id,
      ...given({
        policy: policy && checkJson(policy, "policy"),
        schemas: schemas && checkJson(schemas, "schemas"),
        retention: retention && checkJson(retention, "retention"),
        labels: labels && checkJson(labels, "labels"),
        // The server fills in what a partial `mesh` leaves out.
        mesh: mesh && (checkJson(mesh, "mesh") as Schemas["MeshSettings"]),
        parent,
        inherit: strList(inherit, "inherit"),
        // Any JSON values (the document says objects).
        override: override && (checkJson(override, "override") as Schemas["NewContext"]["override"]),
        isolate: strList(isolate, "isolate"),
      }),
    };
    return this.send<Context>({ method: "POST", path: "/v1/contexts", body }, rest);
  }

  /** One page of the contexts the caller may read (see `iterContexts`). */
  async listContexts(options: PageOptions = {}): Promise<ContextList> {
    const { limit, cursor, ...rest } = options;
    return this.send<ContextList>({ method: "GET", path: "/v1/contexts", query: { limit, cursor } }, rest);
  }

  /** Every context the caller may read, page by page. */
  async *iterContexts(options: RequestOptions & { pageSize?: number } = {}): AsyncGenerator<Context> {
    const { pageSize, ...rest } = options;
    let cursor: string | undefined;
    for (;;) {
      const page = await this.listContexts({ ...rest, limit: pageSize, cursor });
      yield* page.contexts;
      if (!page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }

  /** A context's settings and counters (its current `revision`...). */
  async getContext(ctx: string, options?: RequestOptions): Promise<Context> {
    return this.send<Context>({ method: "GET", path: `/v1/contexts/${seg(ctx)}` }, options);
  }

  /** Replaces the given settings of a context (each one given is replaced whole). */
  async updateContext(ctx: string, settings: ContextSettings & RequestOptions): Promise<Context> {
    const { policy, schemas, retention, labels, mesh, ...rest } = settings;
    const body: Schemas["ContextPatch"] = given({ policy, schemas, retention, labels, mesh: mesh as Schemas["MeshSettings"] | undefined });
    return this.send<Context>({ method: "PATCH", path: `/v1/contexts/${seg(ctx)}`, body: checkJson(body, "settings") }, rest);
  }

  /** Deletes a context with its entries, history and events. */
  async deleteContext(ctx: string, options?: RequestOptions): Promise<void> {
    await this.send<unknown>({ method: "DELETE", path: `/v1/contexts/${seg(ctx)}` }, options);
  }

  /** Applies the context's retention policy now; answers what was compacted. */
  async compact(ctx: string, options?: RequestOptions): Promise<Compaction> {
    return this.send<Compaction>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/compact` }, options);
  }

  // --- entries ---------------------------------------------------------------

  /** One entry, now, as of revision `at`, or as of time `asOf` (`NotFoundError` when absent). */
  async get(ctx: string, key: string, options: ReadOptions = {}): Promise<Entry> {
    const { at, asOf, ...rest } = options;
    const entry = await this.send<Entry>({ method: "GET", path: entryPath(ctx, key), query: { at, as_of: timestamp(asOf, "asOf") } }, rest);
    if (at === undefined && asOf === undefined) this.reads?.saw(ctx, key, entry.revision);
    return entry;
  }

  /** The entry, or `null` when it does not exist. */
  async getOrNull(ctx: string, key: string, options: ReadOptions = {}): Promise<Entry | null> {
    try {
      return await this.get(ctx, key, options);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      if (options.at === undefined && options.asOf === undefined) this.reads?.saw(ctx, key, undefined);
      return null;
    }
  }

  /**
   * Creates or replaces an entry (its value and all its metadata).
   *
   * `ifMatch` writes only if the entry is still at that revision (a stale
   * one throws `PreconditionFailedError` with `.current` under the default
   * `reject` policy); `ifNoneMatch` creates only if absent; `fencing`
   * (a held lock) makes a late write of a holder that lost its lock fail
   * with `FencedError`. The answer's `conflict` tells when the context's
   * policy settled a stale write; a write kept aside (`manual` policy)
   * throws `ConflictPendingError`.
   */
  async put(ctx: string, key: string, value: unknown, options: PutOptions = {}): Promise<WrittenEntry> {
    const body: Schemas["EntryWrite"] = { value: checkJson(value, "value"), ...entryMeta(options) };
    return this.write(ctx, key, options, false, (headers) => ({ method: "PUT", path: entryPath(ctx, key), body, headers }));
  }

  /** Creates an entry only if it does not exist (`PreconditionFailedError` otherwise). */
  async create(ctx: string, key: string, value: unknown, options: Omit<PutOptions, "ifMatch" | "ifNoneMatch"> = {}): Promise<WrittenEntry> {
    return this.put(ctx, key, value, { ...options, ifNoneMatch: true });
  }

  /** Applies a JSON Merge Patch (RFC 7386) to an entry's value; metadata is kept. */
  async mergePatch(ctx: string, key: string, patch: Record<string, unknown>, options: WriteOptions = {}): Promise<WrittenEntry> {
    const body = checkJson(patch, "patch");
    return this.write(ctx, key, options, false, (headers) => ({
      method: "PATCH",
      path: entryPath(ctx, key),
      body,
      contentType: "application/merge-patch+json",
      headers,
    }));
  }

  /** Applies a JSON Patch (RFC 6902) to an entry's value; metadata is kept. */
  async jsonPatch(ctx: string, key: string, operations: Record<string, unknown>[], options: WriteOptions = {}): Promise<WrittenEntry> {
    if (!Array.isArray(operations)) throw new TypeError("operations takes an array of JSON Patch operations");
    const body = checkJson(operations, "operations");
    return this.write(ctx, key, options, false, (headers) => ({
      method: "PATCH",
      path: entryPath(ctx, key),
      body,
      contentType: "application/json-patch+json",
      headers,
    }));
  }

  /** Deletes an entry (`NotFoundError` when absent); answers the deleting revision. */
  async delete(ctx: string, key: string, options: WriteOptions = {}): Promise<Deleted> {
    return this.write(ctx, key, options, true, (headers) => ({ method: "DELETE", path: entryPath(ctx, key), headers }));
  }

  /** One write of one entry, with its preconditions and fencing; remembered when `rememberReads`. */
  private async write<T>(ctx: string, key: string, options: WriteOptions, deletes: boolean, build: (headers: Record<string, string>) => Call): Promise<T & { conflict?: { outcome: string; id: string } }> {
    const { ifMatch, ifNoneMatch, force, fencing, signal, timeoutMs } = options;
    if (fencing instanceof HeldLock) fencing.checkHeld();
    let implied: number | typeof ABSENT | undefined;
    let match = ifMatch;
    let noneMatch = ifNoneMatch ?? false;
    if (match === undefined && !noneMatch && !force && this.reads) {
      implied = this.reads.seen(ctx, key);
      if (implied === ABSENT) noneMatch = true;
      else if (implied !== undefined) match = implied;
    }
    const headers = writeHeaders(match, noneMatch, fencing);
    this.begin();
    let answer;
    try {
      answer = await this.transport.json<T>(build(headers), given({ signal, timeoutMs }));
    } catch (error) {
      if (error instanceof FencedError && fencing instanceof HeldLock) {
        fencing.markLost("a newer holder of the lock was issued a token (the write was fenced)");
      }
      if (error instanceof PreconditionFailedError && implied !== undefined) {
        const seen = implied === ABSENT ? "missing" : `at revision ${implied}`;
        throw new PreconditionFailedError(
          error.code,
          `${error.reason}; this client last read ${JSON.stringify(key)} ${seen}, and it changed since: read it again before writing, use update(), or pass force: true to overwrite`,
          { status: error.status, details: error.details, headers: error.headers },
        );
      }
      throw error;
    }
    checkNotPending(answer);
    const data = answer.data as T & { revision?: number; conflict?: { outcome: string; id: string } };
    if (deletes) this.reads?.saw(ctx, key, undefined);
    else if (typeof data.revision === "number") this.reads?.saw(ctx, key, data.revision);
    const conflict = answer.headers.get("x-conflict");
    if (conflict && !deletes) {
      const [outcome = "", rest = ""] = conflict.split(";", 2);
      const id = rest.trim().replace(/^id=/, "");
      data.conflict = { outcome: outcome.trim(), id };
    }
    return data;
  }

  /** One page of entries (see `list` and `iterEntries` for all of them). */
  async listPage(ctx: string, options: ReadOptions & { prefix?: string; limit?: number; cursor?: string } = {}): Promise<EntryList> {
    const { prefix, at, asOf, limit, cursor, ...rest } = options;
    const query = { prefix, at, as_of: timestamp(asOf, "asOf"), limit, cursor };
    return this.send<EntryList>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/entries`, query }, rest);
  }

  /** Every entry (under `prefix`), following cursors; all pages read the first page's snapshot. */
  async *iterEntries(ctx: string, options: ListOptions = {}): AsyncGenerator<Entry> {
    const { pageSize, ...rest } = options;
    let page = await this.listPage(ctx, { ...rest, limit: pageSize });
    for (;;) {
      yield* page.entries;
      if (!page.next_cursor) return;
      page = await this.listPage(ctx, { prefix: rest.prefix, limit: pageSize, cursor: page.next_cursor, ...signalOf(rest) });
    }
  }

  /** All entries (under `prefix`), optionally as of a revision or time, every page fetched. */
  async list(ctx: string, options: ListOptions = {}): Promise<Entry[]> {
    const out: Entry[] = [];
    for await (const entry of this.iterEntries(ctx, options)) out.push(entry);
    return out;
  }

  /**
   * Runs a transaction: if every comparison holds, `success`, else
   * `failure`. Comparisons and operations are the API's JSON objects, e.g.
   * `{key: "a", revision: 7}` and `{op: "put", key: "a", value: 1}`. A failed
   * comparison is not an error: `succeeded` is `false`.
   */
  async txn(
    ctx: string,
    request: {
      compare?: TxnCompare[];
      success?: TxnOp[];
      failure?: TxnOp[];
      fencing?: Fencing;
    } & RequestOptions,
  ): Promise<TxnResponse> {
    const { compare, success, failure, fencing, ...rest } = request;
    if (fencing instanceof HeldLock) fencing.checkHeld();
    const body = {
      compare: checkJson(compare ?? [], "compare"),
      success: checkJson(success ?? [], "success"),
      failure: checkJson(failure ?? [], "failure"),
    };
    const headers = writeHeaders(undefined, false, fencing);
    return this.send<TxnResponse>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/txn`, body, headers }, rest).catch((error: unknown) => {
      if (error instanceof FencedError && fencing instanceof HeldLock) fencing.markLost("a newer holder of the lock was issued a token (the write was fenced)");
      throw error;
    });
  }

  /** The entries as one nested JSON document (keys split on `/`). */
  async document(ctx: string, options: ReadOptions & { prefix?: string } = {}): Promise<Document> {
    const { prefix, at, asOf, ...rest } = options;
    return this.send<Document>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/document`, query: { prefix, at, as_of: timestamp(asOf, "asOf") } }, rest);
  }

  /**
   * Read-modify-write an entry without losing concurrent writes.
   *
   * Reads the entry, calls `fn` with a copy of its value (`undefined` when
   * the entry does not exist), and writes the result with `If-Match`
   * (`If-None-Match: *` for a new entry). When another write came first
   * (412), `fn` runs again on the newer value, up to `retries` times (default
   * 16), with a short randomized backoff. The entry's metadata (kind, tags,
   * priority...) is kept; options (`kind`, `tags`...) replace fields of it.
   * Answers the entry as written; throws `UpdateConflictError` when the
   * entry kept changing through all the retries.
   */
  async update<V = unknown>(ctx: string, key: string, fn: (value: V | undefined) => unknown, options: UpdateOptions = {}): Promise<WrittenEntry> {
    const { retries = 16, fencing, signal, timeoutMs } = options;
    const request = given({ signal, timeoutMs });
    if (fencing instanceof HeldLock) fencing.checkHeld();
    let current = await this.getOrNull(ctx, key, request);
    for (let attempt = 0; ; ) {
      const value = await fn(current === null ? undefined : (copyJson(current.value) as V));
      const meta = { ...carriedMeta(current), ...entryMeta(options) };
      try {
        const written =
          current === null
            ? await this.put(ctx, key, value, { ...request, ...metaOptions(meta), ifNoneMatch: true, ...(fencing ? { fencing } : {}) })
            : await this.put(ctx, key, value, { ...request, ...metaOptions(meta), ifMatch: current.revision, ...(fencing ? { fencing } : {}) });
        return written;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        attempt += 1;
        if (attempt > retries) {
          throw new UpdateConflictError("precondition_failed", `${JSON.stringify(key)} kept changing: gave up after ${retries} retries`, {
            status: error.status,
            details: error.details,
            headers: error.headers,
          });
        }
        current = error.current ?? (await this.getOrNull(ctx, key, request));
        if (current) this.reads?.saw(ctx, key, current.revision);
        if (!(await sleep(Math.random() * Math.min(200, 5 * 2 ** Math.min(attempt, 8)), signal))) throw abortError(signal);
      }
    }
  }

  // --- history ---------------------------------------------------------------

  /** Versions of one entry, newest first (continue with `before: next_before`). */
  async entryHistory(ctx: string, key: string, options: RequestOptions & { before?: number; limit?: number } = {}): Promise<EntryHistory> {
    const { before, limit, ...rest } = options;
    return this.send<EntryHistory>({ method: "GET", path: `${entryPath(ctx, key)}/history`, query: { before, limit } }, rest);
  }

  /** Commits of a context, newest first: revision, author, time, kind, keys. */
  async history(ctx: string, options: RequestOptions & { before?: number; limit?: number } = {}): Promise<CommitList> {
    const { before, limit, ...rest } = options;
    return this.send<CommitList>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/history`, query: { before, limit } }, rest);
  }

  /** Changes between two revisions (`to` defaults to the current one; 0 is the empty state). */
  async diff(ctx: string, from: number, to?: number, options?: RequestOptions): Promise<Diff> {
    return this.send<Diff>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/diff`, query: { from, to } }, options);
  }

  /** Writes the state of revision `to` as a new revision (history is kept). */
  async rollback(ctx: string, to: number, options?: RequestOptions): Promise<RollbackResponse> {
    return this.send<RollbackResponse>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/rollback`, body: { to: int(to, "to")! } satisfies Schemas["RollbackRequest"] }, options);
  }

  /** A new context `newId` holding this one's entries as of `at` (default: now). */
  async fork(ctx: string, newId: string, options: RequestOptions & { at?: number } = {}): Promise<Context> {
    const { at, ...rest } = options;
    return this.send<Context>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/fork`, body: { id: newId, ...given({ at: int(at, "at") }) } satisfies Schemas["ForkRequest"] }, rest);
  }

  /** One page of a context's event log after revision `after` (see `iterEvents`). */
  async events(ctx: string, options: EventFilter & RequestOptions & { after?: number; limit?: number } = {}): Promise<EventList> {
    const { after = 0, types, prefix, minPriority, limit, ...rest } = options;
    const query = { after, types: typesParam(types), prefix, min_priority: minPriority, limit };
    return this.send<EventList>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/events`, query }, rest);
  }

  /** Every logged event after `after`, oldest first, page by page (no waiting for new ones: see `watch`). */
  async *iterEvents(ctx: string, options: EventFilter & RequestOptions & { after?: number; pageSize?: number } = {}): AsyncGenerator<Event> {
    const { pageSize, ...rest } = options;
    let after = rest.after ?? 0;
    for (;;) {
      const page = await this.events(ctx, { ...rest, after, limit: pageSize });
      yield* page.events;
      if (!page.more || page.last_revision <= after) return;
      after = page.last_revision;
    }
  }

  // --- watches ---------------------------------------------------------------

  /**
   * Watches a context's events (SSE), resuming by itself after disconnects
   * and server restarts, each event once and none missing.
   *
   * Without `after`, it delivers what happens from now on (from the
   * context's revision when the watch starts); `after: R` replays everything
   * after revision `R` first. End it with `break` in `for await`, `close()`,
   * or the `signal`.
   */
  watch(ctx: string, options: WatchOptions & EventFilter & { after?: number; order?: "revision" | "priority" } = {}): Watch {
    const { after, types, prefix, minPriority, order, ...watchOptions } = options;
    const query = { types: typesParam(types), prefix, min_priority: minPriority, order };
    return new Watch(
      {
        kind: "context",
        after,
        order,
        start: after === undefined ? async (signal) => (await this.getContext(ctx, { signal })).revision : undefined,
        connect: (position, signal) => this.stream(`/v1/contexts/${seg(ctx)}/watch`, query, position, signal),
      },
      watchOptions,
    );
  }

  /**
   * Watches an agent's inbox (default: this client's agent), resuming by
   * itself. Positions are the inbox's sequence numbers (`event.seq`);
   * without `after` the watch starts at the inbox's current end.
   */
  watchInbox(agent?: AgentArg, options: WatchOptions & EventFilter & { after?: number } = {}): Watch {
    const { after, types, prefix, minPriority, ...watchOptions } = options;
    const query = { types: typesParam(types), prefix, min_priority: minPriority };
    return new Watch(
      {
        kind: "stream",
        after,
        connect: async (position, signal) => {
          const name = await this.resolveAgent(agent, { signal });
          return this.stream(`/v1/agents/${seg(name)}/inbox/watch`, query, position, signal);
        },
      },
      watchOptions,
    );
  }

  /** Watches the agents feed (registrations, disconnections, unregistrations) after `after` (its sequence; default 0). */
  watchAgents(options: WatchOptions & { after?: number } = {}): Watch {
    const { after = 0, ...watchOptions } = options;
    return new Watch({ kind: "stream", after, connect: (position, signal) => this.stream("/v1/agents/watch", {}, position, signal) }, watchOptions);
  }

  /** One connection of a watch, resuming after `after` (`undefined`: from now). */
  private async stream(path: string, query: Record<string, QueryValue>, after: number | undefined, signal: AbortSignal): Promise<Response> {
    this.begin();
    const headers: Record<string, string> = { accept: "text/event-stream" };
    const params = { ...query };
    if (after !== undefined) {
      params.after = after;
      headers["last-event-id"] = String(after);
    }
    const { response } = await this.transport.open({ method: "GET", path, query: params, headers }, { signal, stream: true });
    return response;
  }

  /** Sends a priority message to a context's log, to agents' inboxes, or both. */
  async sendMessage(body: unknown, options: RequestOptions & { context?: string; agents?: string[]; priority?: string; topic?: string } = {}): Promise<Event> {
    const { context, agents, priority, topic, ...rest } = options;
    const payload = { ...given({ context, agents: strList(agents, "agents"), priority, topic }), body: checkJson(body, "body") };
    return this.send<Event>({ method: "POST", path: "/v1/messages", body: payload }, rest);
  }

  // --- agents ------------------------------------------------------------------

  /** Registers an agent (admin only); the answer carries its token, this once. */
  async registerAgent(id: string, spec: AgentSpec & RequestOptions = {}): Promise<AgentWithToken> {
    const { signal, timeoutMs, ...fields } = spec;
    return this.send<AgentWithToken>({ method: "POST", path: "/v1/agents", body: { id, ...agentBody(fields) } satisfies Schemas["AgentSpec"] }, given({ signal, timeoutMs }));
  }

  /** One page of registered agents (see `iterAgents`). */
  async listAgents(options: PageOptions & { status?: string; capability?: string } = {}): Promise<AgentList> {
    const { status, capability, limit, cursor, ...rest } = options;
    return this.send<AgentList>({ method: "GET", path: "/v1/agents", query: { status, capability, limit, cursor } }, rest);
  }

  /** Every registered agent (optionally by status or capability). */
  async *iterAgents(options: RequestOptions & { status?: string; capability?: string; pageSize?: number } = {}): AsyncGenerator<Agent> {
    const { pageSize, ...rest } = options;
    let cursor: string | undefined;
    for (;;) {
      const page = await this.listAgents({ ...rest, limit: pageSize, cursor });
      yield* page.agents;
      if (!page.next_cursor) return;
      cursor = page.next_cursor;
    }
  }

  /** A registered agent. */
  async getAgent(id: string, options?: RequestOptions): Promise<Agent> {
    return this.send<Agent>({ method: "GET", path: `/v1/agents/${seg(id)}` }, options);
  }

  /** Replaces the given fields of an agent (the agent itself or the admin; `trust`: admin). */
  async updateAgent(id: string, patch: AgentSpec & RequestOptions & { status?: "active" | "inactive" }): Promise<Agent> {
    const { signal, timeoutMs, status, ...fields } = patch;
    const body: Schemas["AgentPatch"] = { ...agentBody(fields), ...given({ status }) };
    return this.send<Agent>({ method: "PATCH", path: `/v1/agents/${seg(id)}`, body }, given({ signal, timeoutMs }));
  }

  /** Unregisters an agent: its locks are released and its token ends. */
  async deleteAgent(id: string, options?: RequestOptions): Promise<void> {
    await this.send<unknown>({ method: "DELETE", path: `/v1/agents/${seg(id)}` }, options);
  }

  /** Who this client is to the server: the agent of its token (or the one it names), and whether it is admin. */
  async whoami(options?: RequestOptions): Promise<Identity> {
    return this.send<Identity>({ method: "GET", path: "/v1/whoami" }, options);
  }

  /** Renews an agent's lease (default: this client's agent). */
  async heartbeat(agent?: AgentArg, options?: RequestOptions): Promise<Agent> {
    const name = await this.resolveAgent(agent, options);
    return this.send<Agent>({ method: "POST", path: `/v1/agents/${seg(name)}/heartbeat` }, options);
  }

  /** Issues a new token for an agent (default: this client's); the old one stops working at once. */
  async rotateToken(agent?: AgentArg, options?: RequestOptions): Promise<NewToken> {
    const name = await this.resolveAgent(agent, options);
    return this.send<NewToken>({ method: "POST", path: `/v1/agents/${seg(name)}/token` }, options);
  }

  /** Revokes an agent's token (default: this client's). */
  async revokeToken(agent?: AgentArg, options?: RequestOptions): Promise<void> {
    const name = await this.resolveAgent(agent, options);
    await this.send<unknown>({ method: "DELETE", path: `/v1/agents/${seg(name)}/token` }, options);
  }

  /** One page of an agent's inbox after sequence `after` (default agent: this client's). */
  async inbox(agent?: AgentArg, options: RequestOptions & { after?: number; limit?: number } = {}): Promise<StreamPage> {
    const { after = 0, limit, ...rest } = options;
    const name = await this.resolveAgent(agent, rest);
    return this.send<StreamPage>({ method: "GET", path: `/v1/agents/${seg(name)}/inbox`, query: { after, limit } }, rest);
  }

  /** Every item of an agent's inbox after `after`, page by page. */
  async *iterInbox(agent?: AgentArg, options: RequestOptions & { after?: number; pageSize?: number } = {}): AsyncGenerator<Event> {
    const { pageSize, ...rest } = options;
    let after = rest.after ?? 0;
    for (;;) {
      const page = await this.inbox(agent, { ...rest, after, limit: pageSize });
      yield* page.events;
      if (page.events.length === 0 || page.next_after <= after) return;
      after = page.next_after;
    }
  }

  /** One page of the agents feed (registrations, disconnections, unregistrations). */
  async agentEvents(options: RequestOptions & { after?: number; limit?: number } = {}): Promise<StreamPage> {
    const { after = 0, limit, ...rest } = options;
    return this.send<StreamPage>({ method: "GET", path: "/v1/agents/events", query: { after, limit } }, rest);
  }

  // --- locks -------------------------------------------------------------------

  /**
   * Tries once to acquire a lock, the server waiting up to `waitMs` (at
   * most 60000) for it. `acquired` says whether the caller holds it now
   * (with a new `fencing_token`), else who does. See `lock` and `withLock`.
   */
  async acquireLock(ctx: string, name: string, options: RequestOptions & { ttlMs?: number; waitMs?: number } = {}): Promise<LockAnswer> {
    const { ttlMs = 30_000, waitMs = 0, signal, timeoutMs } = options;
    const body: Schemas["AcquireRequest"] = { ttl_ms: int(ttlMs, "ttlMs")!, wait_ms: int(waitMs, "waitMs")! };
    // The server may hold the request for waitMs: the timeout counts from then.
    const timeout = (timeoutMs ?? this.timeoutMs) + waitMs;
    return this.send<LockAnswer>({ method: "POST", path: lockPath(ctx, name), body }, given({ signal, timeoutMs: timeout }));
  }

  /** Releases a lock the caller holds (`NotHolderError` otherwise). */
  async releaseLock(ctx: string, name: string, options: RequestOptions & { lockId?: string | undefined } = {}): Promise<Lock> {
    const { lockId, ...rest } = options;
    return this.send<Lock>({ method: "DELETE", path: lockPath(ctx, name), query: { lock_id: lockId } }, rest);
  }

  /** Extends a held lock's TTL; the fencing token stays. */
  async refreshLock(ctx: string, name: string, options: RequestOptions & { ttlMs?: number; lockId?: string | undefined } = {}): Promise<Lock> {
    const { ttlMs = 30_000, lockId, ...rest } = options;
    const body: Schemas["RefreshRequest"] = { ttl_ms: int(ttlMs, "ttlMs")!, ...given({ lock_id: lockId }) };
    return this.send<Lock>({ method: "POST", path: `${lockPath(ctx, name)}/refresh`, body }, rest);
  }

  /** A lock's state: holder, token, expiry (a lock never taken is free with token 0). */
  async getLock(ctx: string, name: string, options?: RequestOptions): Promise<Lock> {
    return this.send<Lock>({ method: "GET", path: lockPath(ctx, name) }, options);
  }

  /** The locks of a context. */
  async listLocks(ctx: string, options?: RequestOptions): Promise<Lock[]> {
    return (await this.send<{ locks: Lock[] }>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/locks` }, options)).locks;
  }

  /**
   * Acquires a lock, waiting up to `waitMs` (default 10000) for another
   * holder to let go (`LockNotAcquiredError` when it stays held). Release it
   * with `release()`; write under it with `fencing: lock`. With `refresh`, it
   * is refreshed in the background while held. See `withLock`.
   */
  async lock(ctx: string, name: string, options: LockOptions = {}): Promise<HeldLock> {
    this.begin();
    return acquireHeld(this, this.keepalive, ctx, name, options);
  }

  /**
   * Runs `fn` holding a lock: acquires it (waiting up to `waitMs`), passes
   * the held lock to `fn` (its `fencingToken`, `fence`, and a `signal`
   * aborted if the lock is lost), keeps it refreshed while `fn` runs
   * (unless `refresh: false`), and releases it after, whatever `fn` did.
   * Writes under it pass `fencing: lock`. When the lock was lost while `fn`
   * ran, `LockLostError` is thrown after `fn` (unless `fn` threw).
   */
  async withLock<T>(ctx: string, name: string, fn: (lock: HeldLock) => T | Promise<T>, options: LockOptions = {}): Promise<T> {
    const held = await this.lock(ctx, name, { refresh: true, ...options });
    let result: T;
    try {
      result = await fn(held);
    } catch (error) {
      await held.release().catch(() => undefined); // the error on its way says more
      throw error;
    }
    await held.release();
    return result;
  }

  // --- handoffs ----------------------------------------------------------------

  /**
   * Hands work to `target` with its context: the context at `revision` and
   * its `keys`, an optional prepared `package`, and the conversation so far.
   * The target finds it in its inbox (`handoff.requested`).
   */
  async requestHandoff(target: string, context: string, options: HandoffOptions = {}): Promise<Handoff> {
    const { revision, keys, package: pkg, session, userIntent, conversationHistory, extractedEntities, deadlineMs, note, ...rest } = options;
    if (conversationHistory !== undefined && !Array.isArray(conversationHistory)) throw new TypeError("conversationHistory takes an array");
    const body = given({
      target,
      context,
      revision: int(revision, "revision"),
      keys: strList(keys, "keys"),
      package: pkg === undefined ? undefined : checkJson(pkg, "package"),
      session,
      user_intent: userIntent,
      conversation_history: conversationHistory && checkJson(conversationHistory, "conversationHistory"),
      extracted_entities: extractedEntities && checkJson(extractedEntities, "extractedEntities"),
      deadline_ms: int(deadlineMs, "deadlineMs"),
      note,
    });
    return this.send<Handoff>({ method: "POST", path: "/v1/handoffs", body }, rest);
  }

  /** A handoff. */
  async getHandoff(id: string, options?: RequestOptions): Promise<Handoff> {
    return this.send<Handoff>({ method: "GET", path: `/v1/handoffs/${seg(id)}` }, options);
  }

  /** Handoffs of a context, or involving an agent (the caller itself unless admin), by `status`. */
  async listHandoffs(options: CoordListOptions = {}): Promise<HandoffList> {
    const { context, agent, status, limit, cursor, ...rest } = options;
    return this.send<HandoffList>({ method: "GET", path: "/v1/handoffs", query: { context, agent, status, limit, cursor } }, rest);
  }

  /** Accepts a handoff (its target only). */
  async acceptHandoff(id: string, outcome?: unknown, options?: RequestOptions): Promise<Handoff> {
    return this.handoffStep(id, "accept", outcome, options);
  }

  /** Rejects a handoff (its target only); `outcome` keeps the reason. */
  async rejectHandoff(id: string, outcome?: unknown, options?: RequestOptions): Promise<Handoff> {
    return this.handoffStep(id, "reject", outcome, options);
  }

  /** Completes an accepted handoff (the target only); `outcome` keeps the result. */
  async completeHandoff(id: string, outcome?: unknown, options?: RequestOptions): Promise<Handoff> {
    return this.handoffStep(id, "complete", outcome, options);
  }

  private async handoffStep(id: string, action: string, outcome: unknown, options?: RequestOptions): Promise<Handoff> {
    const body = outcome === undefined ? {} : { outcome: checkJson(outcome, "outcome") };
    return this.send<Handoff>({ method: "POST", path: `/v1/handoffs/${seg(id)}/${action}`, body }, options);
  }

  /** The handoff's context package: its keys at its revision, built for its target within `budget` tokens. */
  async handoffPackage(id: string, options: Omit<ShapeOptions, "at"> & { explain?: boolean } = {}): Promise<Package> {
    const { budget, encoding, compress, explain, ...rest } = options;
    const query = { budget: int(budget, "budget"), format: "json", encoding, compress, explain };
    return this.send<Package>({ method: "GET", path: `/v1/handoffs/${seg(id)}/package`, query }, rest);
  }

  // --- tasks -------------------------------------------------------------------

  /** Assigns a task in a context; it reaches the assignee's inbox (`task.assigned`). */
  async assignTask(ctx: string, assignee: string, title: string, options: RequestOptions & { input?: unknown; priority?: string } = {}): Promise<Task> {
    const { input, priority, ...rest } = options;
    const body = given({ assignee, title, input: input === undefined ? undefined : checkJson(input, "input"), priority });
    return this.send<Task>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/tasks`, body }, rest);
  }

  /** Tasks of a context, or of an agent (the caller itself unless admin), by `status`. */
  async listTasks(options: CoordListOptions = {}): Promise<TaskList> {
    const { context, agent, status, limit, cursor, ...rest } = options;
    return this.send<TaskList>({ method: "GET", path: "/v1/tasks", query: { context, agent, status, limit, cursor } }, rest);
  }

  /** The tasks of one context (optionally of an agent, or with a `status`). */
  async listContextTasks(ctx: string, options: Omit<CoordListOptions, "context"> = {}): Promise<TaskList> {
    const { agent, status, limit, cursor, ...rest } = options;
    return this.send<TaskList>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/tasks`, query: { agent, status, limit, cursor } }, rest);
  }

  /** A task. */
  async getTask(id: string, options?: RequestOptions): Promise<Task> {
    return this.send<Task>({ method: "GET", path: `/v1/tasks/${seg(id)}` }, options);
  }

  /** Completes a task (its assignee only); the assigner's inbox gets `task.completed`. */
  async completeTask(id: string, output?: unknown, options?: RequestOptions): Promise<Task> {
    const body = output === undefined ? {} : { output: checkJson(output, "output") };
    return this.send<Task>({ method: "POST", path: `/v1/tasks/${seg(id)}/complete`, body }, options);
  }

  // --- access control ----------------------------------------------------------

  /** Shares a context: `permissions` (read, write, share, admin) for `agents`. */
  async grant(ctx: string, agents: string | string[], permissions: Schemas["Permission"][] = ["read"], options: RequestOptions & { expiresAt?: Date | string } = {}): Promise<Grant[]> {
    const { expiresAt, ...rest } = options;
    const body: Schemas["GrantRequest"] = {
      agents: typeof agents === "string" ? [agents] : strList(agents, "agents")!,
      permissions: strList(permissions, "permissions")! as Schemas["Permission"][],
      ...given({ expires_at: timestamp(expiresAt, "expiresAt") }),
    };
    return (await this.send<{ grants: Grant[] }>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/grants`, body }, rest)).grants;
  }

  /** The grants of a context. */
  async listGrants(ctx: string, options?: RequestOptions): Promise<Grant[]> {
    return (await this.send<{ grants: Grant[] }>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/grants` }, options)).grants;
  }

  /** Ends an agent's grant on a context. */
  async revoke(ctx: string, agent: string, options?: RequestOptions): Promise<void> {
    await this.send<unknown>({ method: "DELETE", path: `/v1/contexts/${seg(ctx)}/grants`, query: { agent } }, options);
  }

  /** The grants an agent holds (default: this client's agent). */
  async shared(agent?: AgentArg, options?: RequestOptions): Promise<Grant[]> {
    const name = await this.resolveAgent(agent, options);
    return (await this.send<{ grants: Grant[] }>({ method: "GET", path: `/v1/agents/${seg(name)}/shared` }, options)).grants;
  }

  /** Adds (or replaces) an allow/deny rule (admin only); answers every rule. */
  async addPolicy(id: string, effect: "allow" | "deny", options: PolicyOptions = {}): Promise<PolicyRule[]> {
    const { contexts, agents, minTrust, maxTrust, permissions, keys, tags, description, ...rest } = options;
    const body = given({
      id,
      effect,
      contexts,
      agents,
      min_trust: minTrust,
      max_trust: maxTrust,
      permissions: strList(permissions, "permissions"),
      keys,
      tags: strList(tags, "tags"),
      description,
    });
    return (await this.send<{ policies: PolicyRule[] }>({ method: "POST", path: "/v1/policies", body }, rest)).policies;
  }

  /** Every access policy rule (admin only). */
  async listPolicies(options?: RequestOptions): Promise<PolicyRule[]> {
    return (await this.send<{ policies: PolicyRule[] }>({ method: "GET", path: "/v1/policies" }, options)).policies;
  }

  /** Removes an access policy rule (admin only). */
  async deletePolicy(id: string, options?: RequestOptions): Promise<void> {
    await this.send<unknown>({ method: "DELETE", path: `/v1/policies/${seg(id)}` }, options);
  }

  /** Access decisions from the audit log (admin only); continue with `after: next_after`. */
  async audit(options: RequestOptions & { agent?: string; context?: string; allowed?: boolean; since?: Date | string; after?: number; limit?: number } = {}): Promise<AuditPage> {
    const { agent, context, allowed, since, after, limit, ...rest } = options;
    const query = { agent, context, allowed, since: timestamp(since, "since"), after, limit };
    return this.send<AuditPage>({ method: "GET", path: "/v1/audit", query }, rest);
  }

  // --- conflicts ---------------------------------------------------------------

  /** Conflict records of a context: `pending` (default), `resolved` or `all`. */
  async listConflicts(ctx: string, options: PageOptions & { status?: "pending" | "resolved" | "all" } = {}): Promise<ConflictList> {
    const { status, limit, cursor, ...rest } = options;
    return this.send<ConflictList>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/conflicts`, query: { status, limit, cursor } }, rest);
  }

  /** A conflict record with `current`, the entry it met. */
  async getConflict(ctx: string, id: string, options?: RequestOptions): Promise<Conflict> {
    return this.send<Conflict>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/conflicts/${seg(id)}` }, options);
  }

  /** Resolves a pending conflict: `choose: "current"` or `"proposed"`, or a merged `value` (with `ifMatch`). */
  async resolveConflict(ctx: string, id: string, resolution: RequestOptions & { choose?: "current" | "proposed"; value?: unknown; ifMatch?: number }): Promise<Conflict> {
    const { choose, value, ifMatch, ...rest } = resolution;
    const body = given({ choose, value: value === undefined ? undefined : checkJson(value, "value"), if_match: int(ifMatch, "ifMatch") });
    return this.send<Conflict>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/conflicts/${seg(id)}/resolve`, body }, rest);
  }

  // --- the context mesh --------------------------------------------------------

  /** An agent's context package (JSON): its relevant entries, ranked, within `budget` tokens. */
  async package(ctx: string, agent?: string, options: ShapeOptions & { explain?: boolean } = {}): Promise<Package> {
    const { budget, encoding, explain, compress, at, ...rest } = options;
    const query = { agent, budget: int(budget, "budget"), format: "json", encoding, explain, compress, at };
    return this.send<Package>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/package`, query }, rest);
  }

  /** An agent's context package as prompt-ready Markdown, with its token count. */
  async packageMarkdown(ctx: string, agent?: string, options: ShapeOptions = {}): Promise<MarkdownPackage> {
    const { budget, encoding, compress, at, ...rest } = options;
    const query = { agent, budget: int(budget, "budget"), format: "markdown", encoding, compress, at };
    this.begin();
    const answer = await this.transport.text({ method: "GET", path: `/v1/contexts/${seg(ctx)}/package`, query }, rest);
    const number = (name: string) => {
      const raw = answer.headers.get(name);
      return raw && /^\d+$/.test(raw) ? Number(raw) : undefined;
    };
    return {
      text: answer.data,
      tokens: number("x-package-tokens"),
      revision: number("x-package-revision"),
      cache: answer.headers.get("x-package-cache") ?? undefined,
    };
  }

  /** Searches a context: `mode` keyword, semantic or hybrid; filters by kind, tags, author, time. */
  async search(ctx: string, q: string, options: SearchOptions = {}): Promise<SearchResults> {
    const { mode, limit, kind, tags, author, since, until, ...rest } = options;
    const query = { q, mode, limit, kind, tags: strList(tags, "tags"), author, since: timestamp(since, "since"), until: timestamp(until, "until") };
    return this.send<SearchResults>({ method: "GET", path: `/v1/contexts/${seg(ctx)}/search`, query }, rest);
  }

  /**
   * Weighted consensus over proposals `{agent, value, confidence}`. When the
   * leading value's share reaches `minAgreement` it is written to `key`
   * (`agreed`); otherwise a pending conflict is recorded (`conflict`).
   */
  async consensus(ctx: string, key: string, proposals: { agent: string; value: unknown; confidence?: number }[], options: RequestOptions & { minAgreement?: number } = {}): Promise<ConsensusOutcome> {
    const { minAgreement, ...rest } = options;
    const body = given({ key, proposals: checkJson(proposals, "proposals"), min_agreement: num(minAgreement, "minAgreement") });
    return this.send<ConsensusOutcome>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/consensus`, body }, rest);
  }

  /** Records a decision with the revision it was based on; `replay` rebuilds the package seen. */
  async recordDecision(ctx: string, decision: unknown, readRevision: number, options: RequestOptions & { key?: string } = {}): Promise<DecisionRecord> {
    const { key, ...rest } = options;
    const body = { ...given({ read_revision: int(readRevision, "readRevision"), key }), decision: checkJson(decision, "decision") };
    return this.send<DecisionRecord>({ method: "POST", path: `/v1/contexts/${seg(ctx)}/decisions`, body }, rest);
  }
}

// --- helpers -----------------------------------------------------------------------

function envToken(): string | undefined {
  const token = env("CTXMESH_TOKEN");
  return token === undefined ? undefined : cleanToken(token);
}

function optionalAgent(agent: string | undefined): string | undefined {
  return agent === undefined ? undefined : cleanAgentId(agent);
}

function entryPath(ctx: string, key: string): string {
  // Every `/` of the key encoded, so that a key ending in `history` is read as itself.
  return `/v1/contexts/${seg(ctx)}/entries/${seg(key)}`;
}

function lockPath(ctx: string, name: string): string {
  return `/v1/contexts/${seg(ctx)}/locks/${seg(name)}`;
}

function typesParam(types: string | string[] | undefined): string | undefined {
  if (types === undefined) return undefined;
  return typeof types === "string" ? types : strList(types, "types")!.join(",");
}

function signalOf(options: RequestOptions): RequestOptions {
  return given({ signal: options.signal, timeoutMs: options.timeoutMs });
}

function abortError(signal: AbortSignal | undefined): unknown {
  if (signal?.reason !== undefined) return signal.reason;
  const error = new Error("the operation was aborted");
  error.name = "AbortError";
  return error;
}

/** The `If-Match` value for a revision, an entry (its ETag), or `*`. */
function ifMatchValue(value: IfMatch): string {
  if (typeof value === "number") return `"${int(value, "ifMatch")}"`;
  if (typeof value === "object" && value !== null) return `"${int(value.revision, "ifMatch.revision")}"`;
  const text = String(value).trim();
  if (text === "*" || text.startsWith('"') || text.startsWith("W/")) return text;
  return `"${text}"`;
}

/** The `X-Fencing-Token` value (`<lock>=<token>`). */
function fenceValue(fencing: Fencing): string {
  if (typeof fencing === "string") return fencing;
  if (fencing instanceof HeldLock) return fencing.fence;
  if (Array.isArray(fencing)) return `${fencing[0]}=${int(fencing[1], "fencing token")}`;
  const lock = fencing as Pick<Lock, "name" | "fencing_token">;
  if (typeof lock.name === "string" && typeof lock.fencing_token === "number") return `${lock.name}=${lock.fencing_token}`;
  throw new TypeError("fencing takes a held lock, a lock, a [name, token] pair or 'name=token'");
}

function writeHeaders(ifMatch: IfMatch | undefined, ifNoneMatch: boolean, fencing: Fencing | undefined): Record<string, string> {
  if (ifMatch !== undefined && ifNoneMatch) throw new TypeError("give either ifMatch or ifNoneMatch, not both");
  const headers: Record<string, string> = {};
  if (ifMatch !== undefined) headers["if-match"] = ifMatchValue(ifMatch);
  if (ifNoneMatch) headers["if-none-match"] = "*";
  if (fencing !== undefined) headers["x-fencing-token"] = fenceValue(fencing);
  return headers;
}

/** The metadata fields of an entry write that were given, on the wire. */
function entryMeta(meta: EntryMeta): Omit<Schemas["EntryWrite"], "value"> {
  return given({
    kind: meta.kind,
    tags: strList(meta.tags, "tags"),
    confidence: num(meta.confidence, "confidence"),
    priority: meta.priority,
    depends_on: strList(meta.dependsOn, "dependsOn"),
    relevance: meta.relevance && checkJson(meta.relevance, "relevance"),
    expires_at: timestamp(meta.expiresAt, "expiresAt"),
    ttl_ms: int(meta.ttlMs, "ttlMs"),
    confidential: meta.confidential,
    vclock: meta.vclock && checkJson(meta.vclock, "vclock"),
  });
}

/** The metadata of `entry` to write again with a new value (a PUT replaces it all). */
function carriedMeta(entry: Entry | null): Record<string, unknown> {
  if (!entry) return {};
  const e = entry as Entry & Record<string, unknown>;
  return given({
    kind: e.kind ?? undefined,
    tags: Array.isArray(e.tags) && e.tags.length ? e.tags : undefined,
    confidence: e.confidence ?? undefined,
    priority: e.priority && e.priority !== "normal" ? e.priority : undefined,
    depends_on: Array.isArray(e.depends_on) && e.depends_on.length ? e.depends_on : undefined,
    relevance: e.relevance && Object.keys(e.relevance).length ? e.relevance : undefined,
    expires_at: e.expires_at ?? undefined,
    confidential: e.confidential ? true : undefined,
  });
}

/** Wire metadata back as `EntryMeta` options. */
function metaOptions(meta: Record<string, unknown>): EntryMeta {
  return given({
    kind: meta.kind as string | undefined,
    tags: meta.tags as string[] | undefined,
    confidence: meta.confidence as number | undefined,
    priority: meta.priority as EntryMeta["priority"],
    dependsOn: meta.depends_on as string[] | undefined,
    relevance: meta.relevance as Record<string, number> | undefined,
    expiresAt: meta.expires_at as string | undefined,
    ttlMs: meta.ttl_ms as number | undefined,
    confidential: meta.confidential as boolean | undefined,
    vclock: meta.vclock as Record<string, number> | undefined,
  });
}

function agentBody(spec: AgentSpec): Omit<Schemas["AgentSpec"], "id"> {
  return given({
    name: spec.name,
    capabilities: spec.capabilities && checkJson(spec.capabilities, "capabilities"),
    needs: spec.needs && checkJson(spec.needs, "needs"),
    produces: spec.produces && checkJson(spec.produces, "produces"),
    objective: spec.objective,
    token_budget: int(spec.tokenBudget, "tokenBudget"),
    trust: spec.trust,
    lease_ms: int(spec.leaseMs, "leaseMs"),
    labels: spec.labels && checkJson(spec.labels, "labels"),
  });
}

const ABSENT = Symbol("absent");

/**
 * The revision at which a client last saw each entry (`rememberReads`): at
 * most 10,000 entries, the least recently seen forgotten first.
 */
class ReadMemory {
  static readonly LIMIT = 10_000;
  private readonly seenAt = new Map<string, number | typeof ABSENT>();

  seen(ctx: string, key: string): number | typeof ABSENT | undefined {
    return this.seenAt.get(`${ctx}\u0000${key}`);
  }

  saw(ctx: string, key: string, revision: number | undefined): void {
    const id = `${ctx}\u0000${key}`;
    this.seenAt.delete(id);
    this.seenAt.set(id, revision === undefined ? ABSENT : revision);
    while (this.seenAt.size > ReadMemory.LIMIT) {
      const oldest = this.seenAt.keys().next().value;
      if (oldest === undefined) break;
      this.seenAt.delete(oldest);
    }
  }
}
