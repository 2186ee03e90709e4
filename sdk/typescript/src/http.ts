// The wire layer: settings, one request sent with `fetch`, and its answer
// read or turned into the error of its code.

import { ConflictPendingError, CtxmeshError, TransportError, errorFromResponse } from "./errors.js";
import { addTraceHeaders } from "./tracing.js";

/** Where a client connects when neither `url` nor `$CTXMESH_URL` says. */
export const DEFAULT_URL = "http://127.0.0.1:7600";

/** The package's version, sent as the `User-Agent` in Node. */
export const VERSION = "0.1.0";

/** What every method takes besides its own options. */
export interface RequestOptions {
  /** Aborts the request (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** This request's timeout in ms (default: the client's `timeoutMs`). */
  timeoutMs?: number;
}

/** A query parameter's value; `undefined` and `null` are left out, arrays comma-joined. */
export type QueryValue = string | number | boolean | Date | readonly (string | number)[] | null | undefined;

/** One request. */
export interface Call {
  method: string;
  path: string;
  query?: Record<string, QueryValue>;
  /** A JSON body (sent as `application/json` unless `contentType` says otherwise). */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

/** An answer read. */
export interface Answer<T> {
  status: number;
  headers: Headers;
  data: T;
}

/** A `fetch` function (the global one by default). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** The value of an environment variable in Node (`undefined` in a browser). */
export function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const value = proc?.env?.[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

/** Whether this runs in Node (where a `User-Agent` may be set). */
function inNode(): boolean {
  const proc = (globalThis as { process?: { versions?: Record<string, string> } }).process;
  return typeof proc?.versions?.node === "string";
}

/**
 * A bearer token without the whitespace around it (a file's trailing
 * newline). A token holding whitespace or a control character inside is
 * refused; the message never quotes the token.
 */
export function cleanToken(token: unknown): string {
  if (typeof token !== "string") throw new TypeError(`token takes a string, not a ${typeof token}`);
  const text = token.trim();
  if (!text) throw new TypeError("token is empty: pass the admin's or an agent's token, or leave it out");
  if (!/^[\x21-\x7e]+$/.test(text)) {
    throw new TypeError(
      "token holds whitespace, a control character or a non-ASCII character inside it (the token is not shown): pass the token alone, as the server printed it",
    );
  }
  return text;
}

/** An agent id without the whitespace around it. */
export function cleanAgentId(agentId: unknown): string {
  if (typeof agentId !== "string") throw new TypeError(`agentId takes a string, not a ${typeof agentId}`);
  const text = agentId.trim();
  if (!text || !/^[\x21-\x7e]+$/.test(text)) {
    throw new TypeError(`agentId ${JSON.stringify(text)} is not an agent id: letters, digits, '-', '_', '.'`);
  }
  return text;
}

/** One path segment (a context, agent, lock, handoff or entry key), percent-encoded: a `/` too. */
export function seg(value: string): string {
  if (typeof value !== "string") throw new TypeError(`a path segment takes a string, not a ${typeof value}`);
  return encodeURIComponent(value);
}

/** The query string of `query` (with its `?`), or "". */
export function queryString(query: Record<string, QueryValue> | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    if (value instanceof Date) params.set(name, value.toISOString());
    else if (Array.isArray(value)) params.set(name, value.join(","));
    else params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** Sends requests for a client: its settings, headers, timeouts and error answers. */
export class Transport {
  readonly url: string;
  readonly agentId: string | undefined;
  readonly timeoutMs: number;
  readonly extraHeaders: Record<string, string>;
  readonly fetch: FetchLike;
  // A private field: the token appears in no error, log line or inspection of the client.
  readonly #token: string | undefined;

  constructor(settings: { url: string; token: string | undefined; agentId: string | undefined; timeoutMs: number; headers: Record<string, string>; fetch: FetchLike }) {
    this.url = settings.url;
    this.#token = settings.token;
    this.agentId = settings.agentId;
    this.timeoutMs = settings.timeoutMs;
    this.extraHeaders = settings.headers;
    this.fetch = settings.fetch;
  }

  /** Whether the client has a token. */
  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /** The same settings acting as another agent (with another token, or the same). */
  derive(agentId: string, token: string | undefined): Transport {
    return new Transport({
      url: this.url,
      token: token === undefined ? this.#token : cleanToken(token),
      agentId: cleanAgentId(agentId),
      timeoutMs: this.timeoutMs,
      headers: this.extraHeaders,
      fetch: this.fetch,
    });
  }

  /** The headers of every request: the bearer token, the agent, the extra ones. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = {};
    if (inNode()) headers["user-agent"] = `ctxmesh-typescript/${VERSION}`;
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (this.agentId) headers["x-agent-id"] = this.agentId;
    Object.assign(headers, lowerKeys(this.extraHeaders), lowerKeys(extra));
    return headers;
  }

  /** `text` with the token replaced, for messages built from lower layers' errors. */
  redact(text: string): string {
    return this.#token ? text.split(this.#token).join("[token]") : text;
  }

  /**
   * Sends a request and answers the raw `Response` once its status is a
   * success (an error answer throws the error of its code). The caller
   * reads the body.
   */
  async open(call: Call, options: RequestOptions & { stream?: boolean } = {}): Promise<{ response: Response; done: () => void; timedOut: () => boolean }> {
    const url = this.url + call.path + queryString(call.query);
    const headers = this.headers(call.headers);
    // The caller's span, when the application uses OpenTelemetry: the
    // server's spans continue its trace.
    const tracing = addTraceHeaders(headers);
    if (tracing) await tracing;
    let body: string | undefined;
    if (call.body !== undefined) {
      body = JSON.stringify(call.body);
      headers["content-type"] = call.contentType ?? "application/json";
    }
    // The request's own controller: aborted by the caller's signal, by the
    // timeout (not for streams, which the watch times by their silence),
    // and once the answer is read.
    const controller = new AbortController();
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let timedOut = false;
    const timer =
      options.stream || !(timeoutMs > 0)
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeoutMs);
    const onAbort = () => controller.abort();
    const signal = options.signal;
    if (signal?.aborted) throw abortReason(signal);
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    let response: Response | undefined;
    let failure = "";
    let tls: string | undefined;
    try {
      response = await this.fetch(url, { method: call.method, headers, body, signal: controller.signal });
    } catch (error) {
      done();
      if (signal?.aborted) throw abortReason(signal);
      failure = timedOut ? `timed out after ${timeoutMs} ms` : describe(error);
      tls = certificateRefused(error);
    }
    // Thrown outside the handler, so that no chained error carries the request.
    if (response === undefined) {
      throw new TransportError(this.redact(`${call.method} ${call.path}: ${failure}`), tls ? { details: { tls } } : {});
    }
    if (response.status >= 400) {
      let text = "";
      try {
        text = await response.text();
      } catch (error) {
        if (signal?.aborted) {
          done();
          throw abortReason(signal);
        }
      }
      done();
      throw errorFromResponse(response.status, text, headerRecord(response.headers));
    }
    return { response, done, timedOut: () => timedOut };
  }

  /** Sends a request and reads its answer as JSON (`undefined` when empty). */
  async json<T>(call: Call, options: RequestOptions = {}): Promise<Answer<T>> {
    const { response, done, timedOut } = await this.open(call, options);
    try {
      const text = await this.readBody(response, call, options, timedOut);
      return { status: response.status, headers: response.headers, data: (text ? JSON.parse(text) : undefined) as T };
    } finally {
      done();
    }
  }

  /** Sends a request and reads its answer as text. */
  async text(call: Call, options: RequestOptions = {}): Promise<Answer<string>> {
    const { response, done, timedOut } = await this.open(call, options);
    try {
      return { status: response.status, headers: response.headers, data: await this.readBody(response, call, options, timedOut) };
    } finally {
      done();
    }
  }

  private async readBody(response: Response, call: Call, options: RequestOptions, timedOut: () => boolean): Promise<string> {
    let failure: string | undefined;
    try {
      return await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw abortReason(options.signal);
      failure = timedOut() ? `timed out after ${options.timeoutMs ?? this.timeoutMs} ms` : describe(error);
    }
    throw new TransportError(this.redact(`${call.method} ${call.path}: reading the answer: ${failure}`));
  }
}

/** The answer of an entry write: the entry, or `ConflictPendingError` for a `202`. */
export function checkNotPending(answer: Answer<unknown>): void {
  if (answer.status === 202) {
    const report = answer.data !== null && typeof answer.data === "object" ? (answer.data as Record<string, unknown>) : {};
    throw new ConflictPendingError(report, { headers: headerRecord(answer.headers) });
  }
}

/** A `Headers` as a plain object, names in lower case. */
export function headerRecord(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name.toLowerCase()] = value;
  });
  return out;
}

function lowerKeys(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}

/** What a failed `fetch` says, without its request: `fetch failed (ECONNREFUSED)`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  if (!(cause instanceof Error)) return error.message || error.name;
  const code = causeCode(error);
  const message = cause.message || cause.name;
  const detail = code === undefined || message.includes(code) ? message : `${code}: ${message}`;
  const hint = code === undefined ? undefined : tlsHint(code);
  return `${error.message || error.name} (${detail})${hint ? `: ${hint}` : ""}`;
}

/** The `code` of `error`'s cause (Node's network and TLS errors have one). */
function causeCode(error: unknown): string | undefined {
  const cause = error instanceof Error ? (error as { cause?: unknown }).cause : undefined;
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

// Node's codes for a server certificate that is not trusted.
const UNTRUSTED = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
]);

/** Node's code when `error` is the server's certificate refused (see `tlsHint`), else `undefined`. */
function certificateRefused(error: unknown): string | undefined {
  const code = causeCode(error);
  return code !== undefined && tlsHint(code) !== undefined ? code : undefined;
}

/** What a failed TLS handshake means and what to do, for Node's error `code`. */
function tlsHint(code: string): string | undefined {
  if (UNTRUSTED.has(code)) {
    return (
      "the server's certificate is not signed by a CA this process trusts; for a private CA, " +
      "start Node with NODE_EXTRA_CA_CERTS=<the CA's PEM file>"
    );
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return "the server's certificate does not name this host: connect by a name or address the certificate lists";
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") {
    return "the server's certificate is outside its validity period";
  }
  return undefined;
}

/** The reason an aborted signal carries (an `AbortError` when it has none). */
export function abortReason(signal: AbortSignal): unknown {
  if (signal.reason !== undefined) return signal.reason;
  const error = new Error("the operation was aborted");
  error.name = "AbortError";
  return error;
}

/** Whether `error` is one the client raised (not the caller's abort). */
export function isCtxmeshError(error: unknown): error is CtxmeshError {
  return error instanceof CtxmeshError;
}
