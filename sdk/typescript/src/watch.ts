// Watches over Server-Sent Events that resume by themselves.
//
// A ctxmesh watch (`GET /v1/contexts/{ctx}/watch`, an inbox's
// `/v1/agents/{id}/inbox/watch`, the agents feed `/v1/agents/watch`) sends
// each event as an SSE frame whose `id` is its position (the context
// revision, or the stream's sequence number), `progress` bookmarks, and a
// few control frames. `Watch` turns such a stream, read with `fetch` (so
// that the token travels in the Authorization header, never in the URL),
// into an async iterator of events that survives disconnects and server
// restarts: it reconnects with backoff from the exact position it reached,
// and never yields an event twice or skips one.
//
// A connection can break in the middle of a revision's events (a
// transaction that changed several keys is one revision with several
// events). The watch then resumes from the last bookmark when it covers the
// last event received, else from the revision before it, and drops the
// events of that revision it already yielded: the server sends them again
// in the same order (docs/api.md, "Resuming without loss or repeats").

import { createParser, type EventSourceMessage } from "eventsource-parser";

import { CompactedError, CtxmeshError, InternalError, RateLimitedError, TransportError, UnavailableError, errorClass } from "./errors.js";
import type { Event } from "./types.js";

/** How a watch behaves. */
export interface WatchOptions {
  /** Also yield `progress` bookmarks (as events of type `progress` whose `revision`, or `seq` for inboxes and the agents feed, is the bookmark). */
  includeProgress?: boolean;
  /** Resume after a disconnect (default `true`); `false` ends the iteration when the connection ends. */
  reconnect?: boolean;
  /** Consecutive failed connection attempts before the error is thrown (default: keep trying). */
  maxRetries?: number;
  /** First delay between attempts, in ms (default 100); it doubles up to `maxBackoffMs`, with jitter. */
  backoffMs?: number;
  /** The longest delay between attempts, in ms (default 5000). */
  maxBackoffMs?: number;
  /** Silence (ms) after which a connection is taken for dead and replaced (default 45000; the server sends a bookmark every 5 s). */
  readTimeoutMs?: number;
  /** Ends the watch when aborted. */
  signal?: AbortSignal;
}

/** Where a watch connects: the client's side of it. */
export interface WatchSource {
  /** Opens a connection resuming after `after` (`undefined`: from now); throws the API's error for an error answer. */
  connect(after: number | undefined, signal: AbortSignal): Promise<Response>;
  /** The position to start from when none was given (a context's current revision). */
  start?: (signal: AbortSignal) => Promise<number>;
  /** The watch's start position, if given. */
  after?: number | undefined;
  /** `revision` (default) or `priority`. */
  order?: string | undefined;
  /** `context` (positions are revisions) or `stream` (inboxes and the agents feed: positions are `seq`). */
  kind: "context" | "stream";
}

/**
 * Where to resume a watch so that nothing is repeated or skipped.
 *
 * Positions are revisions (context watches) or sequence numbers (inboxes,
 * the agents feed). In `priority` order, events carry no position of their
 * own and resumption is at bookmarks; events already yielded since the last
 * bookmark are recognized and dropped.
 */
export class ResumeTracker {
  bookmark: number | undefined;
  last: number | undefined;
  heldOfLast = 0;
  readonly order: string;
  private skip = 0;
  private skipPosition = -1;
  private seen = new Map<string, number>();

  constructor(after: number | undefined, order = "revision") {
    this.bookmark = after;
    this.last = after;
    this.order = order;
  }

  /** Every event up to this position has been received (`undefined`: not known yet). */
  get position(): number | undefined {
    if (this.order === "priority" || this.last === undefined) return this.bookmark;
    if (this.bookmark !== undefined && this.bookmark >= this.last) return this.bookmark;
    return this.heldOfLast > 0 ? this.last - 1 : this.last;
  }

  /** The position to (re)connect after; call once per connection. */
  resumeAfter(): number | undefined {
    this.skip = 0;
    if (this.order === "priority" || this.last === undefined) return this.bookmark;
    if (this.bookmark !== undefined && this.bookmark >= this.last) return this.bookmark;
    if (this.heldOfLast > 0) {
      this.skip = this.heldOfLast;
      this.skipPosition = this.last;
      return this.last - 1;
    }
    return this.last;
  }

  /** Records an event at `position`; `false` for a repeat to drop. */
  accept(position: number, raw = ""): boolean {
    if (this.order === "priority") {
      if (this.seen.has(raw)) return false;
      if (this.bookmark !== undefined && position <= this.bookmark) return false;
      this.seen.set(raw, position);
      return true;
    }
    if (this.skip > 0 && position === this.skipPosition) {
      this.skip -= 1;
      return false;
    }
    this.skip = 0;
    if (this.last !== undefined && position < this.last) return false; // older than what was delivered
    if (this.bookmark !== undefined && position <= this.bookmark) return false; // a bookmark said it was delivered
    if (position === this.last) {
      this.heldOfLast += 1;
    } else {
      this.last = position;
      this.heldOfLast = 1;
    }
    return true;
  }

  /** Records a bookmark: every event up to `position` has been sent. */
  progress(position: number): void {
    if (this.bookmark === undefined || position > this.bookmark) this.bookmark = position;
    if (this.order === "priority") {
      for (const [raw, p] of this.seen) if (p <= position) this.seen.delete(raw);
    }
  }
}

/** The server asked the client to resume (it is shutting down), or a connection was replaced. */
class Reconnect extends Error {}

/**
 * Errors after which a watch reconnects instead of failing. A refused
 * server certificate is not one: it would be refused again until someone
 * changes the configuration.
 */
function retryable(error: unknown): boolean {
  return (
    (error instanceof TransportError && error.details.tls === undefined) ||
    error instanceof UnavailableError ||
    error instanceof InternalError ||
    error instanceof RateLimitedError ||
    error instanceof Reconnect ||
    !(error instanceof CtxmeshError)
  );
}

/**
 * A watch over a context, an inbox or the agents feed, as an async iterator
 * of events (`for await (const event of watch)`).
 *
 * It reconnects by itself after a disconnect or a server restart, from the
 * exact position reached, so the events it yields are every event after the
 * start position, in order, each once. `close()`, aborting the `signal`
 * given, or leaving a `for await` loop (`break`, `return`, a throw) ends it
 * and closes its connection.
 *
 * It ends by itself when the watched context is deleted (after yielding the
 * `context.deleted` event), and throws `CompactedError` when its position
 * was compacted away, or the error that ended it (`ForbiddenError`,
 * `UnauthenticatedError`...).
 */
export class Watch<T extends Event = Event> implements AsyncIterableIterator<T> {
  private tracker: ResumeTracker;
  private readonly source: WatchSource;
  private readonly options: Required<Omit<WatchOptions, "signal" | "maxRetries">> & { maxRetries: number | undefined };
  private readonly stop = new AbortController();
  private readonly generator: AsyncGenerator<T, undefined, undefined>;
  private failures = 0;
  private closed = false;
  private readonly onAbort = () => void this.close();
  private readonly signal: AbortSignal | undefined;

  constructor(source: WatchSource, options: WatchOptions = {}) {
    this.source = source;
    this.options = {
      includeProgress: options.includeProgress ?? false,
      reconnect: options.reconnect ?? true,
      maxRetries: options.maxRetries,
      backoffMs: options.backoffMs ?? 100,
      maxBackoffMs: options.maxBackoffMs ?? 5000,
      readTimeoutMs: options.readTimeoutMs ?? 45_000,
    };
    this.tracker = new ResumeTracker(source.after, source.order ?? "revision");
    this.signal = options.signal;
    if (this.signal?.aborted) {
      this.closed = true;
      this.stop.abort();
    } else {
      this.signal?.addEventListener("abort", this.onAbort, { once: true });
    }
    this.generator = this.run();
  }

  /** Every event up to this position has been yielded: start a later watch from it (`after`). */
  get position(): number | undefined {
    return this.tracker.position;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T, undefined>> {
    return this.generator.next();
  }

  /** Ends the watch (what a `break` out of `for await` calls). */
  async return(): Promise<IteratorResult<T, undefined>> {
    this.close();
    return this.generator.return(undefined);
  }

  /** Ends the watch and closes its connection; a pending `next()` resolves as done. */
  close(): void {
    if (!this.closed) {
      this.closed = true;
      this.signal?.removeEventListener("abort", this.onAbort);
    }
    this.stop.abort();
  }

  private async *run(): AsyncGenerator<T, undefined, undefined> {
    try {
      if (this.tracker.last === undefined && this.source.start && !this.closed) {
        let start: number;
        try {
          start = await this.source.start(this.stop.signal);
        } catch (error) {
          if (this.stop.signal.aborted) return undefined;
          throw error;
        }
        this.tracker = new ResumeTracker(start, this.tracker.order);
      }
      while (!this.closed) {
        const after = this.tracker.resumeAfter();
        const connection = new AbortController();
        const abortConnection = () => connection.abort();
        this.stop.signal.addEventListener("abort", abortConnection, { once: true });
        try {
          const response = await this.source.connect(after, connection.signal);
          for await (const frame of readFrames(response, connection, this.options.readTimeoutMs)) {
            const event = this.handle(frame);
            if (event !== undefined) yield event;
            if (this.closed) return undefined;
          }
        } catch (error) {
          if (this.stop.signal.aborted) return undefined;
          if (!retryable(error)) {
            this.closed = true;
            throw error;
          }
          if (!this.options.reconnect) throw asTransportError(error);
        } finally {
          this.stop.signal.removeEventListener("abort", abortConnection);
          connection.abort();
        }
        if (this.closed || !this.options.reconnect) return undefined;
        const delay = this.delay();
        if (delay < 0) {
          throw new TransportError(`the watch could not reconnect after ${this.options.maxRetries} attempts`);
        }
        if (!(await sleep(delay, this.stop.signal))) return undefined;
      }
      return undefined;
    } finally {
      this.close();
    }
  }

  private positionOf(frame: EventSourceMessage, payload: Record<string, unknown>): number {
    if (frame.id !== undefined) {
      const id = Number(frame.id);
      if (Number.isInteger(id)) return id;
    }
    let value = payload[this.source.kind === "stream" ? "seq" : "revision"];
    if (typeof value !== "number") value = payload.revision;
    return typeof value === "number" ? value : 0;
  }

  /** The event to yield for a frame (`undefined`: nothing); throws to stop or reconnect. */
  private handle(frame: EventSourceMessage): T | undefined {
    let payload: Record<string, unknown> = {};
    try {
      const parsed: unknown = frame.data ? JSON.parse(frame.data) : {};
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) payload = parsed as Record<string, unknown>;
    } catch {
      // not JSON: an empty payload
    }
    const kind = frame.event ?? "message";
    if (kind === "progress") {
      const position = this.positionOf(frame, payload);
      this.tracker.progress(position);
      this.failures = 0;
      if (!this.options.includeProgress) return undefined;
      const data: Record<string, unknown> = { type: "progress", ...payload };
      if (this.source.kind === "stream") data.seq = position;
      else data.revision = position;
      return data as unknown as T;
    }
    if (kind === "compacted") {
      this.closed = true;
      throw new CompactedError(
        "compacted",
        `the watch position ${String(payload.requested)} was compacted; restart from the current revision and read the state again`,
        { status: 410, details: payload },
      );
    }
    if (kind === "error") {
      const raw = payload.error;
      const error = raw !== null && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
      const code = typeof error.code === "string" && error.code ? error.code : "internal";
      const message = typeof error.message === "string" ? error.message : "";
      if (code === "unavailable" || code === "internal") throw new Reconnect(message);
      this.closed = true;
      const details = error.details !== null && typeof error.details === "object" ? (error.details as Record<string, unknown>) : {};
      throw new (errorClass(code))(code, message, { details });
    }
    const position = this.positionOf(frame, payload);
    if (!this.tracker.accept(position, frame.data)) return undefined;
    this.failures = 0;
    if (payload.type === undefined) payload.type = kind;
    if (kind === "context.deleted" && this.source.kind === "context") this.closed = true;
    return payload as unknown as T;
  }

  /** The delay before the next connection attempt, in ms (negative: give up). */
  private delay(): number {
    this.failures += 1;
    if (this.options.maxRetries !== undefined && this.failures > this.options.maxRetries) return -1;
    const base = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** Math.min(this.failures - 1, 16));
    return base * (0.5 + Math.random() / 2);
  }
}

/** The SSE frames of a response, one connection's worth; a connection silent for `readTimeoutMs` is aborted. */
async function* readFrames(response: Response, connection: AbortController, readTimeoutMs: number): AsyncGenerator<EventSourceMessage> {
  if (!response.body) throw new TransportError("the watch's answer has no body");
  const frames: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (message) => frames.push(message) });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const arm = () => {
    timer = setTimeout(() => {
      timedOut = true;
      connection.abort();
    }, readTimeoutMs);
  };
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      // Only the wait for the server is timed, not the caller's handling
      // of the events yielded (an LLM call may take minutes).
      arm();
      try {
        chunk = await reader.read();
      } catch (error) {
        if (timedOut) throw new Reconnect(`no data for ${readTimeoutMs} ms: the connection is replaced`);
        throw error;
      } finally {
        clearTimeout(timer);
      }
      if (chunk.done) return;
      parser.feed(decoder.decode(chunk.value, { stream: true }));
      while (frames.length > 0) yield frames.shift()!;
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    reader.cancel().catch(() => undefined);
  }
}

function asTransportError(error: unknown): unknown {
  if (error instanceof CtxmeshError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new TransportError(`the watch's connection broke: ${message}`);
}

/** Waits `ms`; `false` when `signal` aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
