// Errors thrown by the ctxmesh client.
//
// Every error the server answers has the shape
// `{"error": {"code": "...", "message": "...", "details": {...}}}`; the
// client throws the subclass of `CtxmeshError` registered for its `code` in
// `errorClasses` (an unknown code throws `CtxmeshError` itself), so callers
// catch exactly what they handle:
//
//     try {
//       await client.put("plan", "doc", value, { ifMatch: entry });
//     } catch (e) {
//       if (e instanceof PreconditionFailedError) console.log("someone wrote first:", e.current);
//       else throw e;
//     }
//
// No error carries the client's token: messages are the server's (which
// never quotes a token) or the client's own, redacted.

import type { components } from "./schema.js";

type Entry = components["schemas"]["Entry"];

/** What a `CtxmeshError` is built from. */
export interface ErrorInit {
  /** The HTTP status (0 when no answer was received). */
  status?: number;
  /** The error's `details` object. */
  details?: Record<string, unknown>;
  /** The answer's headers, names in lower case. */
  headers?: Record<string, string>;
  /** The error that caused this one (already stripped of secrets). */
  cause?: unknown;
}

/** An error answered by ctxmesh, or met on the way to it. */
export class CtxmeshError extends Error {
  override name = "CtxmeshError";
  /** The stable error code (`not_found`, `precondition_failed`...). */
  readonly code: string;
  /** The HTTP status (0 when no answer was received). */
  readonly status: number;
  /** The error's `details` object (may be empty). */
  readonly details: Record<string, unknown>;
  /** The answer's headers, names in lower case. */
  readonly headers: Record<string, string>;

  constructor(code: string, message: string, init: ErrorInit = {}) {
    super(message ? `${code}: ${message}` : code, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.status = init.status ?? 0;
    this.details = init.details ?? {};
    this.headers = init.headers ?? {};
  }

  /** The server's human-readable message, without the code in front. */
  get reason(): string {
    const prefix = `${this.code}: `;
    return this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
  }

  /** The request id the server sent (`X-Request-Id`), if any. */
  get requestId(): string | undefined {
    return this.headers["x-request-id"];
  }

  /** Milliseconds to wait before retrying, from `Retry-After`, if the answer had one. */
  get retryAfterMs(): number | undefined {
    const raw = this.headers["retry-after"];
    if (raw === undefined) return undefined;
    const seconds = Number(raw);
    if (Number.isFinite(seconds) && raw.trim() !== "") return Math.max(0, seconds * 1000);
    const date = Date.parse(raw);
    return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
  }
}

/**
 * The server could not be reached, the connection broke, or the request timed out.
 * When the server's certificate was refused, `details.tls` holds Node's code
 * (`UNABLE_TO_GET_ISSUER_CERT_LOCALLY`, `ERR_TLS_CERT_ALTNAME_INVALID`...).
 */
export class TransportError extends CtxmeshError {
  override name = "TransportError";
  constructor(message: string, init: ErrorInit = {}) {
    super("transport", message, init);
  }
}

/** 400: a field or parameter has a wrong type or value; `field` names it. */
export class InvalidArgumentError extends CtxmeshError {
  override name = "InvalidArgumentError";
  /** The field or parameter at fault (`details.field`). */
  get field(): string | undefined {
    return str(this.details.field);
  }
  /** The JSON Schema of the shape accepted there (`details.expected`), for a body of the wrong shape. */
  get expected(): unknown {
    return this.details.expected;
  }
}

/** 400 `invalid_json`: the body is not JSON. */
export class InvalidJsonError extends InvalidArgumentError {
  override name = "InvalidJsonError";
}

/** 400 `invalid_body`: the request body could not be read. */
export class InvalidBodyError extends InvalidArgumentError {
  override name = "InvalidBodyError";
}

/** 400 `invalid_id`: a context or agent id is malformed. */
export class InvalidIdError extends InvalidArgumentError {
  override name = "InvalidIdError";
}

/** 400 `invalid_key`: a key, prefix or key pattern is malformed. */
export class InvalidKeyError extends InvalidArgumentError {
  override name = "InvalidKeyError";
}

/** 400 `invalid_txn`: a transaction is malformed. */
export class InvalidTxnError extends InvalidArgumentError {
  override name = "InvalidTxnError";
}

/** 400 `invalid_patch`: a patch is malformed or does not apply. */
export class InvalidPatchError extends InvalidArgumentError {
  override name = "InvalidPatchError";
}

/** 400 `invalid_schema`: a context's JSON Schema does not compile. */
export class InvalidSchemaError extends InvalidArgumentError {
  override name = "InvalidSchemaError";
}

/** 401 `unauthenticated`: no token, or an unknown, rotated or revoked one. */
export class UnauthenticatedError extends CtxmeshError {
  override name = "UnauthenticatedError";
}

/** 403 `forbidden`: the caller may not do this (no grant, a capability it lacks...). */
export class ForbiddenError extends CtxmeshError {
  override name = "ForbiddenError";
}

/** 404 `not_found`: unknown context, entry, agent, handoff, task or revision. */
export class NotFoundError extends CtxmeshError {
  override name = "NotFoundError";
  /** The agent that must be registered first (`details.agent`), when that is why. */
  get agent(): string | undefined {
    return str(this.details.agent);
  }
}

/** 405 `method_not_allowed`: the route exists but not with this method. */
export class MethodNotAllowedError extends CtxmeshError {
  override name = "MethodNotAllowedError";
}

/**
 * 409: the request conflicts with the current state. The specific 409
 * codes (`AlreadyExistsError`, `FencedError`, `InvalidTransitionError`,
 * `NotHolderError`, `DisconnectedError`) are subclasses.
 */
export class ConflictError extends CtxmeshError {
  override name = "ConflictError";
}

/** 409 `already_exists`: a context or agent id is taken. */
export class AlreadyExistsError extends ConflictError {
  override name = "AlreadyExistsError";
}

/** 409 `fenced`: the write's fencing token is older than the lock's latest. */
export class FencedError extends ConflictError {
  override name = "FencedError";
  /** The token the write carried. */
  get token(): number | undefined {
    return int(this.details.token);
  }
  /** The lock's latest token. */
  get currentToken(): number | undefined {
    return int(this.details.current_token);
  }
}

/** 409 `invalid_transition`: a handoff or task cannot take this step from its status. */
export class InvalidTransitionError extends ConflictError {
  override name = "InvalidTransitionError";
}

/** 409 `not_holder`: releasing or refreshing a lock the caller does not hold. */
export class NotHolderError extends ConflictError {
  override name = "NotHolderError";
}

/** 409 `disconnected`: a disconnected agent (lapsed lease) acquiring a lock: heartbeat first. */
export class DisconnectedError extends ConflictError {
  override name = "DisconnectedError";
}

/** 410 `compacted`: the revision asked for was compacted away. */
export class CompactedError extends CtxmeshError {
  override name = "CompactedError";
  /** The first revision still kept. */
  get compactedRevision(): number | undefined {
    return int(this.details.compacted_revision);
  }
}

/**
 * 412 `precondition_failed`: `If-Match` / `If-None-Match` failed and nothing
 * changed. `current` is the entry as it is now (`null` when it is absent or
 * the caller may not read it): merge with it and retry.
 */
export class PreconditionFailedError extends CtxmeshError {
  override name = "PreconditionFailedError";
  /** The entry as it is now (`details.current`), or `null`. */
  get current(): Entry | null {
    const raw = this.details.current;
    return raw !== null && typeof raw === "object" && !Array.isArray(raw) ? (raw as Entry) : null;
  }
  /** The current entry's revision (0 when it is absent). */
  get currentRevision(): number {
    return this.current?.revision ?? 0;
  }
}

/** 413 `too_large`: a body, value, key, transaction or entry count over its limit. */
export class TooLargeError extends CtxmeshError {
  override name = "TooLargeError";
  get limit(): number | undefined {
    return int(this.details.limit);
  }
  get actual(): number | undefined {
    return int(this.details.actual);
  }
}

/** 415 `unsupported_media_type`: wrong `Content-Type`. */
export class UnsupportedMediaTypeError extends CtxmeshError {
  override name = "UnsupportedMediaTypeError";
}

/** 422 `schema_violation`: a value breaks its key's JSON Schema. */
export class SchemaViolationError extends CtxmeshError {
  override name = "SchemaViolationError";
  /** The JSON pointer into the value that failed. */
  get pointer(): string | undefined {
    return str(this.details.pointer);
  }
  /** The JSON pointer into the schema that failed. */
  get schemaPath(): string | undefined {
    return str(this.details.schema_path);
  }
}

/** 428 `precondition_required`: the context requires preconditions on writes. */
export class PreconditionRequiredError extends CtxmeshError {
  override name = "PreconditionRequiredError";
}

/** 429 `rate_limited`: over the token's request rate; `retryAfterMs` says when to retry. */
export class RateLimitedError extends CtxmeshError {
  override name = "RateLimitedError";
}

/** 500 `internal`: a bug or storage failure on the server (details in its log). */
export class InternalError extends CtxmeshError {
  override name = "InternalError";
}

/**
 * 503 `unavailable`: the store cannot take requests now (`retryAfterMs`). A
 * write answered so may or may not have been applied: read before retrying
 * a blind write.
 */
export class UnavailableError extends CtxmeshError {
  override name = "UnavailableError";
}

/** 507 `storage_full`: the server's disk is full; the write changed nothing. */
export class StorageFullError extends CtxmeshError {
  override name = "StorageFullError";
}

// --- errors the client raises itself --------------------------------------------

/**
 * A stale write was kept aside as a pending conflict (`202 Accepted`, under
 * a `manual` conflict policy): the entry is unchanged until someone resolves
 * `conflictId` through the conflicts API. `details` is the server's report.
 */
export class ConflictPendingError extends CtxmeshError {
  override name = "ConflictPendingError";
  constructor(report: Record<string, unknown>, init: ErrorInit = {}) {
    super("conflict_pending", `the write to ${JSON.stringify(report.key ?? "")} was kept aside as conflict ${String(report.conflict ?? "")}`, {
      ...init,
      status: 202,
      details: report,
    });
  }
  /** The pending conflict's id. */
  get conflictId(): string | undefined {
    return str(this.details.conflict);
  }
}

/** `update()` kept meeting newer writes and gave up after its retries. */
export class UpdateConflictError extends PreconditionFailedError {
  override name = "UpdateConflictError";
}

/** A lock could not be acquired within the time allowed; `lock` says who holds it. */
export class LockNotAcquiredError extends CtxmeshError {
  override name = "LockNotAcquiredError";
  readonly lock: components["schemas"]["Lock"];
  constructor(lock: components["schemas"]["Lock"]) {
    super("lock_not_acquired", `lock ${JSON.stringify(lock.name)} of context ${JSON.stringify(lock.context)} is held by ${JSON.stringify(lock.holder ?? null)}`, {
      status: 200,
      details: { ...lock },
    });
    this.lock = lock;
  }
}

/**
 * A lock held through `client.lock()` / `withLock()` is not held any more
 * (its refresh or release was refused, a write fenced with it was refused,
 * or the agent's lease lapsed and the server released it). What was done
 * under it may have raced with another holder: check it, and acquire the
 * lock again.
 */
export class LockLostError extends CtxmeshError {
  override name = "LockLostError";
  constructor(context: string, lockName: string, why: string) {
    super(
      "lock_lost",
      `lock ${JSON.stringify(lockName)} of context ${JSON.stringify(context)} was lost (${why}): what was done under it may have raced with another holder; acquire it again`,
      { details: { name: lockName, context, reason: why } },
    );
  }
}

/** A class of `CtxmeshError`, as `errorClasses` maps them. */
export type CtxmeshErrorClass = new (code: string, message: string, init?: ErrorInit) => CtxmeshError;

/** The class thrown for each stable error code of the API. */
export const errorClasses: Readonly<Record<string, CtxmeshErrorClass>> = Object.freeze({
  invalid_json: InvalidJsonError,
  invalid_body: InvalidBodyError,
  invalid_argument: InvalidArgumentError,
  invalid_id: InvalidIdError,
  invalid_key: InvalidKeyError,
  invalid_txn: InvalidTxnError,
  invalid_patch: InvalidPatchError,
  invalid_schema: InvalidSchemaError,
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  method_not_allowed: MethodNotAllowedError,
  conflict: ConflictError,
  already_exists: AlreadyExistsError,
  fenced: FencedError,
  invalid_transition: InvalidTransitionError,
  not_holder: NotHolderError,
  disconnected: DisconnectedError,
  compacted: CompactedError,
  precondition_failed: PreconditionFailedError,
  too_large: TooLargeError,
  unsupported_media_type: UnsupportedMediaTypeError,
  schema_violation: SchemaViolationError,
  precondition_required: PreconditionRequiredError,
  rate_limited: RateLimitedError,
  internal: InternalError,
  unavailable: UnavailableError,
  storage_full: StorageFullError,
});

// Used when an answer has no ctxmesh error body (a proxy in between, say).
const BY_STATUS: Record<number, string> = {
  400: "invalid_argument",
  401: "unauthenticated",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  410: "compacted",
  412: "precondition_failed",
  413: "too_large",
  415: "unsupported_media_type",
  422: "schema_violation",
  428: "precondition_required",
  429: "rate_limited",
  500: "internal",
  502: "unavailable",
  503: "unavailable",
  504: "unavailable",
  507: "storage_full",
};

/** The class thrown for an error `code` (`CtxmeshError` itself when the code is unknown). */
export function errorClass(code: string): CtxmeshErrorClass {
  return Object.prototype.hasOwnProperty.call(errorClasses, code) ? errorClasses[code]! : CtxmeshError;
}

/** The error for an error answer, from its status, body text and headers. */
export function errorFromResponse(status: number, body: string, headers: Record<string, string> = {}): CtxmeshError {
  let parsed: unknown;
  try {
    parsed = body ? JSON.parse(body) : undefined;
  } catch {
    parsed = undefined;
  }
  const error = isObject(parsed) ? parsed.error : undefined;
  if (isObject(error) && typeof error.code === "string") {
    const code = error.code;
    const message = typeof error.message === "string" ? error.message : "";
    const details = isObject(error.details) ? error.details : {};
    return new (errorClass(code))(code, message, { status, details, headers });
  }
  const code = BY_STATUS[status] ?? `http_${status}`;
  const text = body.trim().slice(0, 500);
  return new (errorClass(code))(code, text || `HTTP ${status}`, { status, headers });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function int(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}
