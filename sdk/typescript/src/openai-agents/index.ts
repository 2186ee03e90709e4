// `@ctxmesh/client/openai-agents`: an OpenAI Agents SDK (JS) `Session` whose
// conversation lives in a ctxmesh context, so that several agents, runners
// and processes share one conversation, with its history and live events.
//
// Layout (one context, `openai-agents` by default, under an optional key
// prefix); `<S>` is the escaped session id:
//
// - `sessions/<S>/head`: `{"session_id": ..., "next": N}`: the items of the
//   session are numbered 0 to N - 1;
// - `sessions/<S>/items/<n>`: item number n (zero-padded to 16 digits, so
//   that keys list in order), the `AgentInputItem` as it is, kind `message`.
//
// Every change is one transaction conditional on the head's revision
// (compare-and-swap): an append writes its items after the last one and
// moves the head; a pop reads, deletes the last item and moves the head
// back; a transaction that meets a moved head changes nothing, reads the
// head again and retries. So appends of concurrent runners all survive, in
// the order in which they committed, and each popped item is returned to
// exactly one caller. `clearSession` deletes the head and the items at once.

import type { AgentInputItem, Session } from "@openai/agents-core";

import type { EventFilter } from "../client.js";
import type { Watch, WatchOptions } from "../watch.js";

import { BoundContext, type Connection } from "../langgraph/context.js";
import { checkPrefix, escape } from "../langgraph/keys.js";
import { entriesOf, type Compare, type TxnOp, type WireEntry } from "../langgraph/wire.js";

/** Most operations (comparisons included) in one transaction: the server's default `--max-txn-ops`. */
const DEFAULT_MAX_TXN_OPS = 256;
/** Bytes of items one append transaction carries at most (the server's body limit is 2 MiB by default). */
const DEFAULT_MAX_TXN_BYTES = 1536 * 1024;
/** Attempts of one change before giving up, when other writers keep moving the head. */
const MAX_ATTEMPTS = 1000;
/** Digits of an item's number in its key. */
const SEQUENCE_DIGITS = 16;
const utf8 = new TextEncoder();

/** What a `CtxmeshSession` is made with. */
export interface CtxmeshSessionOptions extends Connection {
  /** The session: every `CtxmeshSession` with this id (and context) shares one conversation (default: a random UUID). */
  sessionId?: string;
  /** The context holding the sessions; created on first use (default `openai-agents`). */
  context?: string;
  /** A key prefix under which the sessions live, so that one context can hold them next to other entries. */
  prefix?: string;
  /** The entry kind of the items (default `message`). */
  kind?: string;
  /** The server's `--max-txn-ops` (default 256). */
  maxTxnOps?: number;
  /** Bytes of items (as JSON) one append transaction carries at most (default 1.5 MiB; the server's `--max-body-bytes` is 2 MiB). */
  maxTxnBytes?: number;
}

/** The head as last read: its revision (0 when absent) and the number of the next item. */
interface Head {
  revision: number;
  next: number;
}

/**
 * An OpenAI Agents SDK `Session` kept in a ctxmesh context.
 *
 * ```ts
 * const session = new CtxmeshSession({ client, sessionId: "ticket-4711", context: "support" });
 * await run(triageAgent, "where is my order?", { session });
 * ```
 */
export class CtxmeshSession implements Session {
  /** The session's id. */
  readonly sessionId: string;
  /** The context holding the session. */
  readonly context: string;
  /** The key prefix of everything this session keeps (ends in `/`). */
  readonly keyPrefix: string;
  /** The key prefix of the session's items: watch it to follow the conversation. */
  readonly itemsPrefix: string;
  /** The key of the session's head. */
  readonly headKey: string;
  private readonly kind: string;
  private readonly maxTxnOps: number;
  private readonly maxTxnBytes: number;
  private readonly mesh: BoundContext;
  private head: Head | undefined;

  constructor(options: CtxmeshSessionOptions = {}) {
    this.sessionId = options.sessionId ?? globalThis.crypto.randomUUID();
    this.context = options.context ?? "openai-agents";
    this.keyPrefix = `${checkPrefix(options.prefix ?? "")}sessions/${escape(this.sessionId)}/`;
    this.itemsPrefix = `${this.keyPrefix}items/`;
    this.headKey = `${this.keyPrefix}head`;
    this.kind = options.kind ?? "message";
    this.maxTxnOps = options.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
    this.maxTxnBytes = options.maxTxnBytes ?? DEFAULT_MAX_TXN_BYTES;
    if (!Number.isInteger(this.maxTxnOps) || this.maxTxnOps < 5) {
      throw new RangeError(`maxTxnOps is the server's --max-txn-ops, at least 5, not ${String(options.maxTxnOps)}`);
    }
    this.mesh = new BoundContext(options, this.context, { "openai-agents": "sessions" });
  }

  /** Closes the client the session made from `url`, `token` and `agentId` (not one it was given). */
  close(): void {
    this.mesh.close();
  }

  /** The key of item number `n`. */
  itemKey(n: number): string {
    return this.itemsPrefix + String(n).padStart(SEQUENCE_DIGITS, "0");
  }

  /** The session's id. */
  async getSessionId(): Promise<string> {
    return this.sessionId;
  }

  /** The conversation in order; with `limit`, its last `limit` items (still oldest first). */
  async getItems(limit?: number): Promise<AgentInputItem[]> {
    if (limit !== undefined && limit <= 0) return [];
    // A few items are read by key, conditionally on the head they were
    // computed from; a whole conversation, or a long tail, by prefix.
    if (limit !== undefined && limit + 2 <= this.maxTxnOps) {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const head = this.head ?? (await this.readHead());
        const from = Math.max(0, head.next - limit);
        const keys = range(from, head.next).map((n) => this.itemKey(n));
        const answer = await this.mesh.txn({
          compare: [this.headCompare(head)],
          success: keys.map((key) => ({ op: "get", key })),
          failure: [{ op: "get", key: this.headKey }],
        });
        if (!answer.succeeded) {
          this.head = headOf(entriesOf(answer, 0)[0]);
          continue;
        }
        return keys.flatMap((_, n) => entriesOf(answer, n).map((e) => e.value as AgentInputItem));
      }
      throw tooBusy("read");
    }
    const answer = await this.mesh.txn({
      success: [
        { op: "get", key: this.headKey },
        { op: "get", prefix: this.itemsPrefix },
      ],
    });
    this.head = headOf(entriesOf(answer, 0)[0]);
    // Zero-padded numbers: key order is the items' order.
    const entries = [...entriesOf(answer, 1)].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const items = entries.map((e) => e.value as AgentInputItem);
    return limit === undefined ? items : items.slice(Math.max(0, items.length - limit));
  }

  /**
   * Appends `items` after the last item, in one transaction when they fit
   * (`maxTxnOps`, `maxTxnBytes`), so that they stay together whatever other
   * runners append meanwhile; a larger append is written in several
   * transactions, each of them contiguous.
   */
  async addItems(items: AgentInputItem[]): Promise<void> {
    // Each item costs a comparison and a put; the head, a comparison, a put and a read.
    const perTxn = Math.floor((this.maxTxnOps - 3) / 2);
    const groups: AgentInputItem[][] = [];
    let group: AgentInputItem[] = [];
    let bytes = 0;
    for (const item of items) {
      const size = utf8.encode(JSON.stringify(item) ?? "").length;
      if (group.length > 0 && (group.length >= perTxn || bytes + size > this.maxTxnBytes)) {
        groups.push(group);
        group = [];
        bytes = 0;
      }
      group.push(item);
      bytes += size;
    }
    if (group.length > 0) groups.push(group);
    for (const one of groups) await this.append(one);
  }

  private async append(items: AgentInputItem[]): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const head = this.head ?? (await this.readHead());
      const keys = items.map((_, i) => this.itemKey(head.next + i));
      const next = head.next + items.length;
      const compare: Compare[] = [this.headCompare(head), ...keys.map((key) => ({ key, exists: false }))];
      const success: TxnOp[] = [
        ...items.map((item, i): TxnOp => ({ op: "put", key: keys[i]!, value: item, kind: this.kind })),
        this.putHead(next),
      ];
      const answer = await this.mesh.txn({ compare, success, failure: [{ op: "get", key: this.headKey }] });
      if (answer.succeeded) {
        this.head = { revision: answer.revision, next };
        return;
      }
      const fresh = headOf(entriesOf(answer, 0)[0]);
      if (fresh.revision === head.revision && fresh.next === head.next) {
        // The head is as read, so an item is where none should be.
        this.head = undefined;
        throw new Error(
          `session ${JSON.stringify(this.sessionId)} of context ${JSON.stringify(this.context)} has items past its head ` +
            `(${this.headKey} says ${head.next}): they were written outside CtxmeshSession; delete them or clear the session`,
        );
      }
      this.head = fresh;
    }
    throw tooBusy("append to");
  }

  /** Removes the last item and returns it (`undefined` when the session is empty); a racing caller gets the one before. */
  async popItem(): Promise<AgentInputItem | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const head = this.head ?? (await this.readHead());
      const key = this.itemKey(Math.max(0, head.next - 1));
      // With no items, the comparison alone says whether the session is still empty.
      const answer = await this.mesh.txn({
        compare: [this.headCompare(head)],
        success: head.next === 0 ? [] : [{ op: "get", key }, { op: "delete", key }, this.putHead(head.next - 1)],
        failure: [{ op: "get", key: this.headKey }],
      });
      if (!answer.succeeded) {
        this.head = headOf(entriesOf(answer, 0)[0]);
        continue;
      }
      if (head.next === 0) return undefined;
      this.head = { revision: answer.revision, next: head.next - 1 };
      const popped = entriesOf(answer, 0)[0];
      // A number without an item (deleted by hand) is skipped: pop the one before.
      if (popped !== undefined) return popped.value as AgentInputItem;
    }
    throw tooBusy("pop from");
  }

  /** Removes every item of the session and its head, in one transaction. */
  async clearSession(): Promise<void> {
    await this.mesh.txn({ success: [{ op: "delete_prefix", prefix: this.keyPrefix }] });
    this.head = { revision: 0, next: 0 };
  }

  /**
   * The live events of the session's items, resuming by itself: a
   * `context.updated` event per appended item (`data.change` "created",
   * `data.value` the item, `key` its `itemKey`, `agent` who appended it)
   * and per removed one ("deleted"), in the order they happened. Without
   * `after`, every change after the moment the promise resolves;
   * `after: 0` replays the whole conversation first.
   */
  async watch(options: WatchOptions & Pick<EventFilter, "minPriority"> & { after?: number } = {}): Promise<Watch> {
    await this.mesh.ensure();
    const after = options.after ?? (await this.mesh.client.getContext(this.context)).revision;
    return this.mesh.client.watch(this.context, { ...options, after, types: "context.updated", prefix: this.itemsPrefix });
  }

  private async readHead(): Promise<Head> {
    const answer = await this.mesh.txn({ success: [{ op: "get", key: this.headKey }] });
    this.head = headOf(entriesOf(answer, 0)[0]);
    return this.head;
  }

  private headCompare(head: Head): Compare {
    return { key: this.headKey, revision: head.revision };
  }

  private putHead(next: number): TxnOp {
    return { op: "put", key: this.headKey, value: { session_id: this.sessionId, next } };
  }
}

function headOf(entry: WireEntry | undefined): Head {
  if (entry === undefined) return { revision: 0, next: 0 };
  const next = (entry.value as { next?: unknown } | null)?.next;
  return { revision: Number(entry.revision), next: typeof next === "number" && next >= 0 ? next : 0 };
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let n = from; n < to; n++) out.push(n);
  return out;
}

function tooBusy(what: string): Error {
  return new Error(`other writers kept changing the session during ${MAX_ATTEMPTS} attempts to ${what} it: retry later`);
}
