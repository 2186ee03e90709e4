// One ctxmesh context as a framework adapter uses it: created on first use,
// then read and written through the core client's transactions, entry
// pages and search. Both adapters (`@ctxmesh/client/langgraph` and
// `@ctxmesh/client/openai-agents`) go through it, so neither sends a request
// of its own making.

import { Client, type ClientOptions } from "../client.js";
import { AlreadyExistsError } from "../errors.js";
import type { TxnAnswer, TxnBody, WireEntry } from "./wire.js";

/** How an adapter reaches its server: a client, or what to make one from. */
export interface Connection {
  /** The client to use (its URL, token and agent id). */
  client?: Client;
  /** The server's URL, when no `client` is given (default: the client's default). */
  url?: string;
  /** A bearer token (the admin's or an agent's), when no `client` is given. */
  token?: string;
  /** The agent the writes are recorded for (`X-Agent-Id`), when no `client` is given. */
  agentId?: string;
}

/** One page of entries under a prefix. */
export interface EntryPage {
  entries: WireEntry[];
  nextCursor: string | null;
}

/** A search hit. */
export interface SearchHit {
  key: string;
  score: number;
  entry: WireEntry;
}

/** What a search is narrowed by. */
export interface SearchParams {
  mode?: string;
  limit?: number;
  tags?: string[];
  kind?: string;
}

/** One context, created (with `labels`) the first time it is used. */
export class BoundContext {
  readonly client: Client;
  readonly id: string;
  private readonly labels: Record<string, string>;
  private readonly owned: boolean;
  private ready: Promise<void> | undefined;

  constructor(connection: Connection, id: string, labels: Record<string, string> = {}) {
    this.owned = connection.client === undefined;
    this.client = connection.client ?? new Client(clientOptions(connection));
    this.id = id;
    this.labels = labels;
  }

  /** Closes the client when this made it (a client given is the caller's to close). */
  close(): void {
    if (this.owned) this.client.close();
  }

  /** Creates the context unless it exists (once; a failed attempt is tried again next time). */
  ensure(): Promise<void> {
    if (this.ready === undefined) {
      this.ready = this.create().catch((error: unknown) => {
        this.ready = undefined;
        throw error;
      });
    }
    return this.ready;
  }

  private async create(): Promise<void> {
    try {
      await this.client.createContext(this.id, { labels: this.labels });
    } catch (error) {
      // By its code too: an error class of another copy of the package is not this one's.
      if (!(error instanceof AlreadyExistsError) && (error as { code?: unknown })?.code !== "already_exists") throw error;
    }
  }

  /** Runs a transaction. */
  async txn(body: TxnBody): Promise<TxnAnswer> {
    await this.ensure();
    return (await this.client.txn(this.id, body as never)) as unknown as TxnAnswer;
  }

  /** One page (at most `limit` entries, in key order) under `prefix`; later pages read the first one's revision. */
  async page(prefix: string, limit: number, cursor?: string | null): Promise<EntryPage> {
    await this.ensure();
    const answer = await this.client.listPage(this.id, { prefix, limit, ...(cursor ? { cursor } : {}) });
    return { entries: answer.entries as unknown as WireEntry[], nextCursor: answer.next_cursor ?? null };
  }

  /** Every entry under `prefix`, in key order, from one snapshot. */
  async all(prefix: string): Promise<WireEntry[]> {
    const entries: WireEntry[] = [];
    let cursor: string | null = null;
    do {
      const page: EntryPage = await this.page(prefix, 1000, cursor);
      entries.push(...page.entries);
      cursor = page.nextCursor;
    } while (cursor);
    return entries;
  }

  /** ctxmesh search over the context. */
  async search(query: string, params: SearchParams): Promise<SearchHit[]> {
    await this.ensure();
    const answer = await this.client.search(this.id, query, params as never);
    return answer.hits as unknown as SearchHit[];
  }
}

function clientOptions(connection: Connection): ClientOptions {
  const options: Record<string, string> = {};
  if (connection.url !== undefined) options.url = connection.url;
  if (connection.token !== undefined) options.token = connection.token;
  if (connection.agentId !== undefined) options.agentId = connection.agentId;
  return options as ClientOptions;
}
