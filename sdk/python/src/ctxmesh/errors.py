"""Exceptions raised by the ctxmesh clients.

Every error the server answers has the shape
``{"error": {"code": "...", "message": "...", "details": {...}}}``; the
clients raise the subclass of :class:`CtxmeshError` registered for its
``code`` (an unknown code raises :class:`CtxmeshError` itself), so callers
catch exactly what they handle::

    try:
        client.put("plan", "doc", value, if_match=entry.revision)
    except ctxmesh.PreconditionFailed as e:
        print("someone wrote first:", e.current)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .models import ConflictReport, Entry, Lock

__all__ = [
    "CtxmeshError",
    "TransportError",
    "InvalidArgument",
    "InvalidJson",
    "InvalidId",
    "InvalidKey",
    "InvalidTxn",
    "InvalidPatch",
    "InvalidSchema",
    "Unauthenticated",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "Conflict",
    "AlreadyExists",
    "Fenced",
    "InvalidTransition",
    "NotHolder",
    "Disconnected",
    "Compacted",
    "PreconditionFailed",
    "TooLarge",
    "UnsupportedMediaType",
    "SchemaViolation",
    "PreconditionRequired",
    "RateLimited",
    "Internal",
    "Unavailable",
    "StorageFull",
    "ConflictPending",
    "LockNotAcquired",
    "LockLostError",
    "UpdateConflict",
    "error_class",
    "error_from_response",
]


class CtxmeshError(Exception):
    """An error answered by ctxmesh (or met on the way to it).

    Attributes:
        code: the stable error code (``not_found``, ``precondition_failed``...).
        message: the server's human-readable message.
        status: the HTTP status (0 when no answer was received).
        details: the error's ``details`` object (may be empty).
        headers: the answer's headers, lower-cased names.
    """

    code: str
    message: str
    status: int
    details: dict[str, Any]
    headers: dict[str, str]

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 0,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.details = dict(details or {})
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, message={self.message!r})"


class TransportError(CtxmeshError):
    """The server could not be reached, or the connection broke."""

    def __init__(self, message: str) -> None:
        super().__init__("transport", message, 0)


class InvalidArgument(CtxmeshError):
    """400: a field or parameter has a wrong type or value; ``field`` names it."""

    @property
    def field(self) -> str | None:
        value = self.details.get("field")
        return value if isinstance(value, str) else None


class InvalidJson(InvalidArgument):
    """400 ``invalid_json``: the body is not JSON."""


class InvalidId(InvalidArgument):
    """400 ``invalid_id``: a context or agent id is malformed."""


class InvalidKey(InvalidArgument):
    """400 ``invalid_key``: a key, prefix or key pattern is malformed."""


class InvalidTxn(InvalidArgument):
    """400 ``invalid_txn``: a transaction is malformed."""


class InvalidPatch(InvalidArgument):
    """400 ``invalid_patch``: a patch is malformed or does not apply."""


class InvalidSchema(InvalidArgument):
    """400 ``invalid_schema``: a context's JSON Schema does not compile."""


class Unauthenticated(CtxmeshError):
    """401: no token, or an unknown, rotated or revoked one."""


class Forbidden(CtxmeshError):
    """403: the caller may not do this."""


class NotFound(CtxmeshError):
    """404: unknown context, entry, agent, handoff, task or revision."""


class MethodNotAllowed(CtxmeshError):
    """405: the route exists but not with this method."""


class Conflict(CtxmeshError):
    """409: the request conflicts with the current state.

    The specific 409 codes (:class:`AlreadyExists`, :class:`Fenced`,
    :class:`InvalidTransition`, :class:`NotHolder`, :class:`Disconnected`)
    are subclasses, so ``except Conflict`` catches them all.
    """


class AlreadyExists(Conflict):
    """409 ``already_exists``: a context or agent id is taken."""


class Fenced(Conflict):
    """409 ``fenced``: the write's fencing token is older than the lock's latest."""

    @property
    def token(self) -> int | None:
        """The token the write carried."""
        return _int(self.details.get("token"))

    @property
    def current_token(self) -> int | None:
        """The lock's latest token."""
        return _int(self.details.get("current_token"))


class InvalidTransition(Conflict):
    """409 ``invalid_transition``: a handoff or task cannot take this step."""


class NotHolder(Conflict):
    """409 ``not_holder``: releasing or refreshing a lock the caller does not hold."""


class Disconnected(Conflict):
    """409 ``disconnected``: a disconnected agent acquiring a lock (heartbeat first)."""


class Compacted(CtxmeshError):
    """410 ``compacted``: the revision asked for was compacted away."""

    @property
    def compacted_revision(self) -> int | None:
        return _int(self.details.get("compacted_revision"))


class PreconditionFailed(CtxmeshError):
    """412 ``precondition_failed``: ``If-Match`` / ``If-None-Match`` failed.

    ``current`` is the entry as it is now (``None`` when it is absent or the
    caller may not read it): merge with it and retry.
    """

    @property
    def current(self) -> Entry | None:
        from .models import Entry

        raw = self.details.get("current")
        if not isinstance(raw, dict):
            return None
        return Entry.model_validate(raw)

    @property
    def reason(self) -> str | None:
        value = self.details.get("reason")
        return value if isinstance(value, str) else None

    @property
    def fields(self) -> list[str]:
        value = self.details.get("fields")
        return [str(f) for f in value] if isinstance(value, list) else []


class TooLarge(CtxmeshError):
    """413 ``too_large``: a body, value, key, transaction or entry count over its limit."""

    @property
    def limit(self) -> int | None:
        return _int(self.details.get("limit"))

    @property
    def actual(self) -> int | None:
        return _int(self.details.get("actual"))


class UnsupportedMediaType(CtxmeshError):
    """415 ``unsupported_media_type``: wrong ``Content-Type``."""


class SchemaViolation(CtxmeshError):
    """422 ``schema_violation``: a value breaks its key's JSON Schema."""

    @property
    def pointer(self) -> str | None:
        """The JSON pointer into the value that failed."""
        value = self.details.get("pointer")
        return value if isinstance(value, str) else None

    @property
    def schema_path(self) -> str | None:
        """The JSON pointer into the schema that failed."""
        value = self.details.get("schema_path")
        return value if isinstance(value, str) else None


class PreconditionRequired(CtxmeshError):
    """428 ``precondition_required``: the context requires preconditions on writes."""


class _RetryAfter(CtxmeshError):
    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before retrying (from ``Retry-After``), if given."""
        raw = self.headers.get("retry-after")
        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:
            return None


class RateLimited(_RetryAfter):
    """429 ``rate_limited``: over the token's request rate or stream limit."""


class Internal(CtxmeshError):
    """500 ``internal``: a bug or storage failure on the server."""


class Unavailable(_RetryAfter):
    """503 ``unavailable``: the store cannot take requests now."""


class StorageFull(_RetryAfter):
    """507 ``storage_full``: the server's disk is full; the write changed
    nothing and can be retried once space is freed. Reads still work."""


class ConflictPending(CtxmeshError):
    """A stale write was kept aside as a pending conflict (``202 Accepted``).

    Raised by writes under a ``manual`` conflict policy: the entry is
    unchanged until someone resolves ``conflict_id`` through the conflicts
    API. ``report`` is the server's conflict report.
    """

    def __init__(self, report: ConflictReport, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(
            "conflict_pending",
            f"the write to {report.key!r} was kept aside as conflict {report.conflict}",
            202,
            report.model_dump(mode="json"),
            headers,
        )
        self.report = report

    @property
    def conflict_id(self) -> str | None:
        return self.report.conflict


class LockNotAcquired(CtxmeshError):
    """A lock could not be acquired within the time allowed; ``lock`` says who holds it."""

    def __init__(self, lock: Lock) -> None:
        super().__init__(
            "lock_not_acquired",
            f"lock {lock.name!r} of context {lock.context!r} is held by {lock.holder!r}",
            200,
            lock.model_dump(mode="json"),
        )
        self.lock = lock


class LockLostError(CtxmeshError):
    """A lock held through ``client.lock(...)`` is not held any more.

    Raised by the next use of the lost lock: refreshing or releasing it,
    writing with ``fencing=lock``, and leaving its ``with`` block (unless
    another exception is already on its way). The lock is lost when its
    holder's lease lapsed (the agent was disconnected and the server
    released its locks), when its TTL ran out without a refresh, or when
    another holder took it. ``lock`` is the held lock (its ``lost_reason``
    says why).
    """

    def __init__(self, lock: Any) -> None:
        reason = getattr(lock, "lost_reason", None) or "it is not held any more"
        super().__init__(
            "lock_lost",
            f"lock {lock.name!r} of context {lock.context!r} was lost ({reason}): "
            "what was done under it may have raced with another holder; acquire it again",
            0,
            {"name": lock.name, "context": lock.context, "reason": reason},
        )
        self.lock = lock


class UpdateConflict(PreconditionFailed):
    """``update()`` kept meeting newer writes and gave up after its retries."""


_BY_CODE: dict[str, type[CtxmeshError]] = {
    "invalid_json": InvalidJson,
    "invalid_argument": InvalidArgument,
    "invalid_id": InvalidId,
    "invalid_key": InvalidKey,
    "invalid_txn": InvalidTxn,
    "invalid_patch": InvalidPatch,
    "invalid_schema": InvalidSchema,
    "unauthenticated": Unauthenticated,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "conflict": Conflict,
    "already_exists": AlreadyExists,
    "fenced": Fenced,
    "invalid_transition": InvalidTransition,
    "not_holder": NotHolder,
    "disconnected": Disconnected,
    "compacted": Compacted,
    "precondition_failed": PreconditionFailed,
    "too_large": TooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "schema_violation": SchemaViolation,
    "precondition_required": PreconditionRequired,
    "rate_limited": RateLimited,
    "internal": Internal,
    "unavailable": Unavailable,
    "storage_full": StorageFull,
}

# Used when an answer has no ctxmesh error body (a proxy in between, say).
_BY_STATUS: dict[int, tuple[str, type[CtxmeshError]]] = {
    400: ("invalid_argument", InvalidArgument),
    401: ("unauthenticated", Unauthenticated),
    403: ("forbidden", Forbidden),
    404: ("not_found", NotFound),
    405: ("method_not_allowed", MethodNotAllowed),
    409: ("conflict", Conflict),
    410: ("compacted", Compacted),
    412: ("precondition_failed", PreconditionFailed),
    413: ("too_large", TooLarge),
    415: ("unsupported_media_type", UnsupportedMediaType),
    422: ("schema_violation", SchemaViolation),
    428: ("precondition_required", PreconditionRequired),
    429: ("rate_limited", RateLimited),
    500: ("internal", Internal),
    502: ("unavailable", Unavailable),
    503: ("unavailable", Unavailable),
    504: ("unavailable", Unavailable),
    507: ("storage_full", StorageFull),
}


def error_class(code: str) -> type[CtxmeshError]:
    """The exception class raised for an error ``code`` (the base class when unknown)."""
    return _BY_CODE.get(code, CtxmeshError)


def error_from_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> CtxmeshError:
    """Builds the exception for an error answer from its status, body and headers."""
    import json

    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        message = str(error.get("message") or "")
        details = error.get("details")
        return error_class(code)(code, message, status, details if isinstance(details, dict) else {}, headers)
    code, cls = _BY_STATUS.get(status, (f"http_{status}", CtxmeshError))
    text = body.decode("utf-8", "replace").strip()[:500]
    return cls(code, text or f"HTTP {status}", status, {}, headers)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
