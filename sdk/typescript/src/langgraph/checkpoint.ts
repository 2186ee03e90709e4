// `CtxmeshSaver`: LangGraph.js checkpoints kept in a ctxmesh context.
//
// Layout (one context, `langgraph-checkpoints` by default, under an optional
// key prefix), the same as the Python SDK's `CtxmeshSaver`; `<T>` is the
// escaped thread id, `<NS>` the escaped checkpoint namespace (`~` for the
// root namespace ""), `<ID↓>` the checkpoint id encoded so that keys sort
// newest first (`descending` in keys.ts):
//
// - `checkpoints/<T>/<NS>/<ID↓>`: one checkpoint: its ids, its parent's id,
//   the checkpoint without its channel values (serialized), its metadata
//   (serialized, and as plain JSON for readers);
// - `blobs/<T>/<NS>/<channel>/<version>`: one channel value at one version,
//   shared by every checkpoint that saw that version;
// - `writes/<T>/<NS>/<ID↓>/<task id>/<idx>`: one pending write of a task
//   against a checkpoint.
//
// Serialized values are the saver's `serde.dumpsTyped` output, stored as
// `{"type": ..., "data": <base64>}`.
//
// A checkpoint and its new channel values are one transaction, so a
// checkpoint is never visible without its values; the writes of one
// `putWrites` are one transaction; `deleteThread` is one transaction. (A
// checkpoint with more new values than a transaction may hold writes the
// values first and the checkpoint last: it still becomes visible complete.)

import type { RunnableConfig } from "@langchain/core/runnables";
import {
  BaseCheckpointSaver,
  TASKS,
  WRITES_IDX_MAP,
  compareWritesSortKeys,
  getCheckpointId,
  maxChannelVersion,
  writesSortKey,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointListOptions,
  type CheckpointMetadata,
  type CheckpointPendingWrite,
  type CheckpointTuple,
  type PendingWrite,
  type SerializerProtocol,
} from "@langchain/langgraph-checkpoint";

import { BoundContext, type Connection } from "./context.js";
import { checkPrefix, descending, escape } from "./keys.js";
import {
  chunks,
  deepEqual,
  entriesOf,
  fromBase64,
  toBase64,
  toPlainJson,
  type Serialized,
  type TxnOp,
  type WireEntry,
} from "./wire.js";

/** Most operations (comparisons included) in one transaction: the server's default `--max-txn-ops`. */
export const DEFAULT_MAX_TXN_OPS = 256;

/** Checkpoints read per page by `list`. */
const LIST_PAGE = 100;

/** What a `CtxmeshSaver` is made with. */
export interface CtxmeshSaverOptions extends Connection {
  /** The context holding the checkpoints; created on first use (default `langgraph-checkpoints`). */
  context?: string;
  /** A key prefix under which everything lives, so that one context can hold checkpoints next to other entries. */
  prefix?: string;
  /** The serializer (default: LangGraph's `JsonPlusSerializer`). */
  serde?: SerializerProtocol;
  /** The server's `--max-txn-ops` (default 256). */
  maxTxnOps?: number;
}

/** A checkpoint entry's value. */
interface CheckpointRecord {
  thread_id: string;
  checkpoint_ns: string;
  checkpoint_id: string;
  parent_checkpoint_id: string | null;
  ts: string | null;
  checkpoint: Serialized;
  metadata: Serialized;
  metadata_json: unknown;
}

/** A pending write's value. */
interface WriteRecord extends Serialized {
  task_id: string;
  task_path: string;
  idx: number;
  channel: string;
}

/** A channel value's value (`type: "empty"` for a channel without a value at that version). */
interface BlobRecord extends Serialized {
  channel: string;
  version: string;
}

/**
 * A LangGraph.js checkpointer whose checkpoints are entries of a ctxmesh context.
 *
 * ```ts
 * const saver = new CtxmeshSaver({ client, context: "support-bot" });
 * const graph = builder.compile({ checkpointer: saver });
 * await graph.invoke(inputs, { configurable: { thread_id: "ticket-4711" } });
 * ```
 */
export class CtxmeshSaver extends BaseCheckpointSaver<number> {
  /** The context holding the checkpoints. */
  readonly context: string;
  /** The key prefix (`""` or ending in `/`). */
  readonly prefix: string;
  /** The most operations one transaction may hold. */
  readonly maxTxnOps: number;
  private readonly mesh: BoundContext;

  constructor(options: CtxmeshSaverOptions = {}) {
    super(options.serde);
    this.context = options.context ?? "langgraph-checkpoints";
    this.prefix = checkPrefix(options.prefix ?? "");
    this.maxTxnOps = options.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
    if (!Number.isInteger(this.maxTxnOps) || this.maxTxnOps < 4) {
      throw new RangeError(`maxTxnOps is the server's --max-txn-ops, at least 4, not ${String(options.maxTxnOps)}`);
    }
    this.mesh = new BoundContext(options, this.context, { langgraph: "checkpoints" });
  }

  /** Closes the client the saver made from `url`, `token` and `agentId` (not one it was given). */
  close(): void {
    this.mesh.close();
  }

  // --- keys ----------------------------------------------------------------

  private family(family: string, threadId?: string, ns?: string): string {
    let key = `${this.prefix}${family}/`;
    if (threadId !== undefined) {
      key += escape(threadId) + "/";
      if (ns !== undefined) key += escape(ns) + "/";
    }
    return key;
  }

  private checkpointKey(threadId: string, ns: string, checkpointId: string): string {
    return this.family("checkpoints", threadId, ns) + descending(checkpointId);
  }

  private blobKey(threadId: string, ns: string, channel: string, version: string | number): string {
    return `${this.family("blobs", threadId, ns)}${escape(channel)}/${escape(String(version))}`;
  }

  private writesPrefix(threadId: string, ns: string, checkpointId: string): string {
    return `${this.family("writes", threadId, ns)}${descending(checkpointId)}/`;
  }

  // --- serialization ---------------------------------------------------------

  private async dump(value: unknown): Promise<Serialized> {
    const [type, data] = await this.serde.dumpsTyped(value);
    return { type, data: toBase64(data) };
  }

  private async load(stored: Serialized): Promise<unknown> {
    return this.serde.loadsTyped(stored.type, fromBase64(stored.data));
  }

  // --- BaseCheckpointSaver -----------------------------------------------------

  /** The checkpoint `config` names, or its thread's latest; `undefined` when there is none. */
  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const configurable = config.configurable ?? {};
    if (configurable.thread_id === undefined || configurable.thread_id === null) return undefined;
    const threadId = String(configurable.thread_id);
    const ns = String(configurable.checkpoint_ns ?? "");
    const checkpointId = getCheckpointId(config);
    let entry: WireEntry | undefined;
    if (checkpointId) {
      const answer = await this.mesh.txn({ success: [{ op: "get", key: this.checkpointKey(threadId, ns, checkpointId) }] });
      entry = entriesOf(answer, 0)[0];
    } else {
      entry = (await this.mesh.page(this.family("checkpoints", threadId, ns), 1)).entries[0];
    }
    if (entry === undefined || !isCheckpointRecord(entry.value)) return undefined;
    const [tuple] = await this.hydrate([entry.value]);
    return tuple;
  }

  /**
   * Checkpoints newest first within each thread and namespace: of the thread
   * (and namespace) `config` names, or of every thread; filtered by metadata
   * fields (`filter`), older than `before`, at most `limit`.
   */
  async *list(config: RunnableConfig, options: CheckpointListOptions = {}): AsyncGenerator<CheckpointTuple> {
    const configurable = config.configurable ?? {};
    const threadId = configurable.thread_id === undefined ? undefined : String(configurable.thread_id);
    const ns = configurable.checkpoint_ns === undefined ? undefined : String(configurable.checkpoint_ns);
    const onlyId = configurable.checkpoint_id ? String(configurable.checkpoint_id) : undefined;
    const beforeId = options.before ? getCheckpointId(options.before) || undefined : undefined;
    const filter = options.filter ?? {};
    let remaining = options.limit;
    if (remaining !== undefined && remaining <= 0) return;
    const prefix = this.family("checkpoints", threadId, threadId === undefined ? undefined : ns);
    let cursor: string | null = null;
    do {
      const page = await this.mesh.page(prefix, LIST_PAGE, cursor);
      cursor = page.nextCursor;
      const chosen: CheckpointRecord[] = [];
      for (const entry of page.entries) {
        const record = entry.value;
        if (!isCheckpointRecord(record)) continue;
        if (ns !== undefined && record.checkpoint_ns !== ns) continue;
        if (onlyId !== undefined && record.checkpoint_id !== onlyId) continue;
        if (beforeId !== undefined && !(record.checkpoint_id < beforeId)) continue;
        if (Object.keys(filter).length > 0) {
          const metadata = (await this.load(record.metadata)) as Record<string, unknown>;
          if (!Object.entries(filter).every(([k, v]) => deepEqual(metadata?.[k], v))) continue;
        }
        chosen.push(record);
        if (remaining !== undefined && --remaining <= 0) break;
      }
      if (chosen.length > 0) yield* await this.hydrate(chosen);
      if (remaining !== undefined && remaining <= 0) return;
    } while (cursor);
  }

  /** Stores a checkpoint with its new channel values, atomically. */
  async put(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions,
  ): Promise<RunnableConfig> {
    const configurable = config.configurable;
    if (configurable === undefined) {
      throw new Error("cannot put a checkpoint without config.configurable: pass { configurable: { thread_id } }");
    }
    if (configurable.thread_id === undefined || configurable.thread_id === null) {
      throw new Error("cannot put a checkpoint without config.configurable.thread_id: name the thread to persist");
    }
    const threadId = String(configurable.thread_id);
    const ns = String(configurable.checkpoint_ns ?? "");
    const { channel_values: values = {}, ...rest } = checkpoint;
    const blobs: TxnOp[] = [];
    for (const [channel, version] of Object.entries(newVersions)) {
      const has = Object.prototype.hasOwnProperty.call(values, channel);
      const blob: Serialized = has ? await this.dump((values as Record<string, unknown>)[channel]) : { type: "empty", data: "" };
      const value: BlobRecord = { channel, version: String(version), ...blob };
      blobs.push({ op: "put", key: this.blobKey(threadId, ns, channel, version), value });
    }
    const parent = configurable.checkpoint_id ? String(configurable.checkpoint_id) : null;
    const record: CheckpointRecord = {
      thread_id: threadId,
      checkpoint_ns: ns,
      checkpoint_id: checkpoint.id,
      parent_checkpoint_id: parent,
      ts: checkpoint.ts ?? null,
      checkpoint: await this.dump(rest),
      metadata: await this.dump(metadata),
      metadata_json: toPlainJson(metadata),
    };
    await this.writeInOrder(blobs, [{ op: "put", key: this.checkpointKey(threadId, ns, checkpoint.id), value: record }]);
    return { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: checkpoint.id } };
  }

  /**
   * Stores a task's pending writes against a checkpoint. A task's regular
   * writes are kept once (a retried task does not replace them); its special
   * writes (error, interrupt, resume...) replace the previous ones.
   */
  async putWrites(config: RunnableConfig, writes: PendingWrite[], taskId: string, taskPath = ""): Promise<void> {
    const configurable = config.configurable ?? {};
    if (configurable.thread_id === undefined || configurable.thread_id === null) {
      throw new Error("cannot put writes without config.configurable.thread_id: name the thread they belong to");
    }
    if (!configurable.checkpoint_id) {
      throw new Error("cannot put writes without config.configurable.checkpoint_id: name the checkpoint they follow");
    }
    const threadId = String(configurable.thread_id);
    const ns = String(configurable.checkpoint_ns ?? "");
    const base = this.writesPrefix(threadId, ns, String(configurable.checkpoint_id)) + escape(String(taskId)) + "/";
    const regular: TxnOp[] = [];
    const special: TxnOp[] = [];
    for (const [position, [channel, value]] of writes.entries()) {
      const idx = WRITES_IDX_MAP[channel] ?? position;
      const record: WriteRecord = { task_id: String(taskId), task_path: taskPath, idx, channel, ...(await this.dump(value)) };
      (idx < 0 ? special : regular).push({ op: "put", key: `${base}${idx}`, value: record });
    }
    // Each regular write costs a comparison, a put and a read (of the failure branch).
    const size = Math.max(1, Math.floor((this.maxTxnOps - special.length) / 3));
    const groups = regular.length > 0 ? chunks(regular, size) : [[]];
    for (const [n, group] of groups.entries()) {
      const extra = n === 0 ? special : [];
      await this.putOnce(group, extra);
    }
  }

  /** Writes `ops` whose keys do not exist yet, and `extra` in any case, in one transaction per attempt. */
  private async putOnce(ops: TxnOp[], extra: TxnOp[]): Promise<void> {
    let missing = ops;
    for (;;) {
      if (missing.length === 0) {
        if (extra.length > 0) await this.mesh.txn({ success: extra });
        return;
      }
      const keys = missing.map((op) => (op as { key: string }).key);
      const answer = await this.mesh.txn({
        compare: keys.map((key) => ({ key, exists: false })),
        success: [...missing, ...extra],
        failure: keys.map((key) => ({ op: "get" as const, key })),
      });
      if (answer.succeeded) return;
      // Some were written already (by an earlier attempt of the task): those stay.
      const present = new Set(answer.results.flatMap((r) => (r.entries ?? []).map((e) => e.key)));
      missing = missing.filter((op) => !present.has((op as { key: string }).key));
    }
  }

  /** Deletes every checkpoint, channel value and pending write of a thread, atomically. */
  async deleteThread(threadId: string): Promise<void> {
    const thread = String(threadId);
    await this.mesh.txn({
      success: [
        { op: "delete_prefix", prefix: this.family("checkpoints", thread) },
        { op: "delete_prefix", prefix: this.family("blobs", thread) },
        { op: "delete_prefix", prefix: this.family("writes", thread) },
      ],
    });
  }

  /**
   * Channel versions are a counter plus a random fraction (`3.5812...`):
   * they grow as LangGraph needs, and a fork from an earlier checkpoint never
   * reuses the version (so the key) of a value another branch stored.
   */
  override getNextVersion(current: number | undefined): number {
    let counter = 0;
    if (typeof current === "number") counter = Math.floor(current);
    // A version written by another saver (the Python one writes "0...03.0.58...").
    else if (typeof current === "string") counter = Number.parseInt(String(current).split(".")[0] ?? "0", 10) || 0;
    return counter + 1 + Math.random();
  }

  // --- reading ---------------------------------------------------------------

  /** Checkpoint tuples of checkpoint records, with their channel values and pending writes. */
  private async hydrate(records: CheckpointRecord[]): Promise<CheckpointTuple[]> {
    const checkpoints = await Promise.all(
      records.map(async (record) => (await this.load(record.checkpoint)) as Omit<Checkpoint, "channel_values">),
    );
    const writePrefixes = records.map((r) => this.writesPrefix(r.thread_id, r.checkpoint_ns, r.checkpoint_id));
    // Checkpoints older than format 4 take their pending sends from their parent's writes.
    const parentPrefixes = new Map<number, string>();
    records.forEach((record, i) => {
      if ((checkpoints[i]!.v ?? 0) < 4 && record.parent_checkpoint_id) {
        parentPrefixes.set(i, this.writesPrefix(record.thread_id, record.checkpoint_ns, record.parent_checkpoint_id));
      }
    });
    const blobKeys = new Set<string>();
    records.forEach((record, i) => {
      for (const [channel, version] of Object.entries(checkpoints[i]!.channel_versions ?? {})) {
        blobKeys.add(this.blobKey(record.thread_id, record.checkpoint_ns, channel, version));
      }
    });
    const prefixes = [...new Set([...writePrefixes, ...parentPrefixes.values()])];
    const gets: TxnOp[] = [
      ...prefixes.map((prefix) => ({ op: "get" as const, prefix })),
      ...[...blobKeys].map((key) => ({ op: "get" as const, key })),
    ];
    const writesByPrefix = new Map<string, WriteRecord[]>();
    const blobs = new Map<string, BlobRecord>();
    let index = 0;
    for (const group of chunks(gets, this.maxTxnOps)) {
      const answer = await this.mesh.txn({ success: group });
      for (const [n] of group.entries()) {
        const entries = entriesOf(answer, n);
        if (index < prefixes.length) writesByPrefix.set(prefixes[index]!, entries.map((e) => e.value as WriteRecord));
        else for (const entry of entries) blobs.set(entry.key, entry.value as BlobRecord);
        index++;
      }
    }

    return Promise.all(
      records.map(async (record, i) => {
        const stored = checkpoints[i]!;
        const { thread_id: threadId, checkpoint_ns: ns } = record;
        const values: Record<string, unknown> = {};
        for (const [channel, version] of Object.entries(stored.channel_versions ?? {})) {
          const blob = blobs.get(this.blobKey(threadId, ns, channel, version));
          if (blob === undefined || blob.type === "empty") continue;
          values[channel] = await this.load(blob);
        }
        const checkpoint: Checkpoint = { ...stored, channel_values: values } as Checkpoint;
        const parentPrefix = parentPrefixes.get(i);
        if (parentPrefix !== undefined) {
          const sends = sortWrites(writesByPrefix.get(parentPrefix) ?? []).filter((w) => w.channel === TASKS);
          checkpoint.channel_values = { ...checkpoint.channel_values, [TASKS]: await Promise.all(sends.map((w) => this.load(w))) };
          const versions = Object.values(checkpoint.channel_versions ?? {});
          checkpoint.channel_versions = {
            ...checkpoint.channel_versions,
            [TASKS]: versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined),
          };
        }
        const pendingWrites: CheckpointPendingWrite[] = await Promise.all(
          sortWrites(writesByPrefix.get(writePrefixes[i]!) ?? []).map(
            async (w): Promise<CheckpointPendingWrite> => [w.task_id, w.channel, await this.load(w)],
          ),
        );
        const tuple: CheckpointTuple = {
          config: { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: record.checkpoint_id } },
          checkpoint,
          metadata: (await this.load(record.metadata)) as CheckpointMetadata,
          pendingWrites,
        };
        if (record.parent_checkpoint_id) {
          tuple.parentConfig = {
            configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: record.parent_checkpoint_id },
          };
        }
        return tuple;
      }),
    );
  }

  /**
   * Writes `first` then `last` in one transaction when they fit, else in
   * chunks with `last` in the final one (so that what `last` makes visible
   * is complete when it appears).
   */
  private async writeInOrder(first: TxnOp[], last: TxnOp[]): Promise<void> {
    const ops = [...first, ...last];
    if (ops.length <= this.maxTxnOps) {
      if (ops.length > 0) await this.mesh.txn({ success: ops });
      return;
    }
    const head = first.slice(0, ops.length - Math.min(last.length, this.maxTxnOps));
    for (const group of chunks(head, this.maxTxnOps)) await this.mesh.txn({ success: group });
    for (const group of chunks(ops.slice(head.length), this.maxTxnOps)) await this.mesh.txn({ success: group });
  }
}

/** Pending writes in the order LangGraph applies them: `(task_path, task_id, idx)`. */
function sortWrites(writes: WriteRecord[]): WriteRecord[] {
  return [...writes].sort((a, b) =>
    compareWritesSortKeys(writesSortKey(a.task_path ?? "", a.task_id, Number(a.idx)), writesSortKey(b.task_path ?? "", b.task_id, Number(b.idx))),
  );
}

function isCheckpointRecord(value: unknown): value is CheckpointRecord {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof (value as CheckpointRecord).checkpoint_id === "string" &&
    typeof (value as CheckpointRecord).checkpoint === "object"
  );
}
