// The shapes the API sends and takes, named after the schemas of its
// OpenAPI document (src/schema.ts, generated). Answers keep the wire's
// field names (`created_revision`, `fencing_token`...); the client's own
// options are camelCase.

import type { components } from "./schema.js";

type Schemas = components["schemas"];

/** One entry of a context. `revision` is its ETag (what `ifMatch` takes). */
export type Entry = Schemas["Entry"];
/** One page of an entry listing, read at `revision`. */
export type EntryList = Schemas["EntryList"];
/** The answer to a deletion: the key and the revision that deleted it. */
export type Deleted = Schemas["Deleted"];
/** The entries assembled into one nested JSON document. */
export type Document = Schemas["Document"];
/**
 * One version of an entry: the change and the entry after it (none for
 * deletions and expiries). Written here: the OpenAPI document does not
 * describe the answer of `GET .../entries/{key}/history` (docs/api.md does).
 */
export interface EntryVersion {
  revision: number;
  change: string;
  entry?: Entry | null;
}
/** Versions of one entry, newest first; continue with `before: next_before`. */
export interface EntryHistory {
  key: string;
  versions: EntryVersion[];
  next_before?: number | null;
}
/** Commits of a context, newest first. */
export type CommitList = Schemas["CommitList"];
/** One committed revision of a context. */
export type Commit = Schemas["Commit"];
/** Changes between two revisions. */
export type Diff = Schemas["Diff"];
/** One key's change between two revisions. */
export type DiffChange = Schemas["DiffChange"];
/** The revision a rollback wrote and the one it restored. */
export type RollbackResponse = Schemas["RollbackResponse"];
/** A context's settings and counters. */
export type Context = Schemas["ContextInfo"];
/** A page of contexts. */
export type ContextList = Schemas["ContextList"];
/** A context's conflict policy. */
export type Policy = Schemas["Policy"];
/** How much history a context keeps. */
export type Retention = Schemas["Retention"];
/** A context's mesh settings (weights, thresholds, workflow). */
export type MeshSettings = Schemas["MeshSettings"];
/** What a compaction did. */
export type Compaction = Schemas["Compaction"];
/** A transaction's comparison. */
export type Compare = Schemas["Compare"];
/** A transaction's operation. */
export type Op = Schemas["Op"];
/** The answer to a transaction. */
export type TxnResponse = Schemas["TxnResponse"];
/** One event of a context's log, an inbox or the agents feed (`seq` for the last two). */
export type Event = Schemas["Event"] & { seq?: number };
/** Events of a context, oldest first; continue with `after: last_revision`. */
export type EventList = Omit<Schemas["EventList"], "events"> & { events: Event[] };
/** Items of an inbox or of the agents feed; continue with `after: next_after`. */
export type StreamPage = Omit<Schemas["StreamPage"], "events"> & { events: Event[] };
/** A registered agent. */
export type Agent = Schemas["Agent"];
/** A registration's answer: the agent and its token, shown this once. */
export type AgentWithToken = Schemas["AgentWithToken"];
/** A page of agents. */
export type AgentList = Schemas["AgentList"];
/** What an agent may do. */
export type Capabilities = Schemas["Capabilities"];
/** Kinds, tags and key patterns an agent needs or produces. */
export type ContextMap = Schemas["ContextMap"];
/** Who a client is to the server. */
export type Identity = Schemas["Identity"];
/** A rotated agent token. */
export type NewToken = Schemas["NewToken"];
/** A lock of a context. */
export type Lock = Schemas["Lock"];
/** The answer to an acquisition: the lock and whether the caller holds it now. */
export type LockAnswer = Schemas["LockAnswer"];
/** A handoff of work, with its context. */
export type Handoff = Schemas["Handoff"];
/** A page of handoffs. */
export type HandoffList = Schemas["HandoffList"];
/** A task assigned to an agent. */
export type Task = Schemas["Task"];
/** A page of tasks. */
export type TaskList = Schemas["TaskList"];
/** Permissions of one agent on one context. */
export type Grant = Schemas["Grant"];
/** An allow or deny rule. */
export type PolicyRule = Schemas["PolicyRule"];
/** A page of the audit log. */
export type AuditPage = Schemas["AuditPage"];
/** One access decision. */
export type AuditRecord = Schemas["AuditRecord"];
/** A conflict record (`current` when read alone). */
export type Conflict = Schemas["ConflictView"];
/** A page of conflict records. */
export type ConflictList = Schemas["ConflictList"];
/** How a stale write was settled. */
export type ConflictReport = Schemas["ConflictReport"];
/** An agent's context package. */
export type Package = Schemas["Package"];
/** One entry of a package. */
export type PackageItem = Schemas["PackageItem"];
/** Search results, best first. */
export type SearchResults = Schemas["SearchResults"];
/** One search result. */
export type SearchHit = Schemas["Hit"];
/** A consensus proposal. */
export type Proposal = Schemas["Proposal"];
/** The outcome of a consensus round. */
export type ConsensusOutcome = Schemas["ConsensusOutcome"];
/** A recorded decision and the path that replays the package seen. */
export type DecisionRecord = Schemas["DecisionRecord"];
/** An entry's or event's priority. */
export type Priority = Schemas["Priority"];
/** An agent's trust level. */
export type Trust = Schemas["Trust"];
/** A permission of a grant. */
export type Permission = Schemas["Permission"];
/** The stable error codes of the API. */
export type ErrorCode = Schemas["ErrorCode"];
/** The body of every error answer. */
export type ErrorBody = Schemas["ErrorBody"];

/** How a stale write was settled by the context's policy (the `X-Conflict` header). */
export interface WriteConflict {
  /** `overwritten`, `merged` or `won`. */
  outcome: string;
  /** The conflict record's id. */
  id: string;
}

/** An entry as a write answered it; `conflict` is set when the context's policy settled a stale write. */
export type WrittenEntry = Entry & { conflict?: WriteConflict };

/** A package as prompt-ready Markdown, with its token count. */
export interface MarkdownPackage {
  text: string;
  tokens: number | undefined;
  revision: number | undefined;
  cache: string | undefined;
}
