"""Ordered logs of items in a context, shared by the framework adapters.

The OpenAI Agents session, the Google ADK session service and the
LlamaIndex chat store each keep an ordered list of items (conversation
items, events, chat messages) that several agents append to at once. Each
list is a *log*:

* a **head** entry holding the log's counters (``next``: the sequence number
  the next item takes; ``count``: how many items are live) and whatever else
  the adapter keeps beside them;
* one entry per item, ``<items prefix><seq>``, where ``<seq>`` is the
  sequence number written so that keys list **newest first**
  (:func:`seq_segment`): the latest ``n`` items are one page of a listing.

Every change of a log is one transaction that compares the head's revision
(optimistic concurrency): two writers that read the same head cannot both
commit; the loser receives the current head (the transaction's failure
branch reads it) and tries again on it, a bounded number of times. Nothing
is lost and nothing is applied twice. The head each adapter saw last is
cached, so that an append costs one request when nobody else wrote.

Operations are *plans* (generators yielding requests of :mod:`ctxmesh._api`,
as in :mod:`ctxmesh._plans`), run by :class:`Runner` with either client.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from . import _api, _plans
from . import models as m
from .aio import AsyncClient
from .client import Client
from ._segments import escape, unescape
from .errors import AlreadyExists, NotFound, UpdateConflict

T = TypeVar("T")

AnyClient = Union[Client, AsyncClient]
Op = Dict[str, Any]

#: Attempts of one change while other writers keep changing the same log.
ATTEMPTS = 64
#: Digits of a sequence number in a key.
SEQ_DIGITS = 12
_SEQ_LIMIT: int = 10**SEQ_DIGITS - 1
#: Entries per page of a listing.
PAGE = 1000
#: Operations per transaction, comparisons included (the server's default ``--max-txn-ops``).
MAX_TXN_OPS = 256


# --- key segments -----------------------------------------------------------------


def seq_segment(seq: int) -> str:
    """The key segment of sequence number ``seq``: keys list in descending ``seq`` order."""
    if not 0 <= seq <= _SEQ_LIMIT:
        raise ValueError(f"sequence number {seq} out of range")
    return f"{_SEQ_LIMIT - seq:0{SEQ_DIGITS}d}"


def seq_of(key: str) -> int:
    """The sequence number of an item key (its last segment)."""
    return _SEQ_LIMIT - int(key.rsplit("/", 1)[-1])


def check_prefix(prefix: str) -> str:
    """A key prefix of the adapters' settings, validated, without slashes around it."""
    prefix = prefix.strip("/")
    if not prefix or any(
        not segment or not all(c.isascii() and (c.isalnum() or c in "._~:@-") for c in segment)
        for segment in prefix.split("/")
    ):
        raise ValueError(f"prefix {prefix!r} is not a ctxmesh key prefix (segments of A-Z a-z 0-9 . _ ~ : @ -)")
    return prefix


# --- running plans with either client -----------------------------------------------


class Runner:
    """Runs plans with a :class:`ctxmesh.Client` (on a worker thread) or a :class:`ctxmesh.AsyncClient`."""

    def __init__(self, client: AnyClient) -> None:
        if not isinstance(client, (Client, AsyncClient)):
            raise TypeError(f"client must be a ctxmesh.Client or ctxmesh.AsyncClient, not {type(client).__name__}")
        self.client = client

    async def run(self, plan: _plans.Plan[T]) -> T:
        """Drives ``plan`` to its result."""
        client = self.client
        if isinstance(client, AsyncClient):
            return await client._drive(plan)
        return await asyncio.to_thread(client._drive, plan)


# --- heads ---------------------------------------------------------------------------


@dataclass
class Head:
    """A log's head as read at ``revision`` (0: the head does not exist)."""

    value: Dict[str, Any] = field(default_factory=dict)
    revision: int = 0

    @property
    def exists(self) -> bool:
        return self.revision > 0

    @property
    def next(self) -> int:
        return int(self.value.get("next", 0))

    @property
    def count(self) -> int:
        return int(self.value.get("count", 0))


class HeadCache:
    """The heads an adapter saw last (a bounded map), so that its next change needs no read first."""

    def __init__(self, size: int = 4096) -> None:
        self._heads: "OrderedDict[Tuple[str, str], Head]" = OrderedDict()
        self._size = size

    def get(self, ctx: str, key: str) -> Head:
        head = self._heads.get((ctx, key))
        return Head(dict(head.value), head.revision) if head is not None else Head()

    def put(self, ctx: str, key: str, head: Head) -> None:
        self._heads[(ctx, key)] = Head(dict(head.value), head.revision)
        self._heads.move_to_end((ctx, key))
        while len(self._heads) > self._size:
            self._heads.popitem(last=False)


def head_of(entries: Sequence[Mapping[str, Any]]) -> Head:
    """The head among a ``get`` result's entries (absent: revision 0)."""
    for entry in entries:
        value = entry.get("value")
        return Head(dict(value) if isinstance(value, dict) else {}, int(entry.get("revision") or 0))
    return Head()


def get_results(result: m.TxnResult) -> List[List[Dict[str, Any]]]:
    """The entries of each ``get`` of a transaction's results, in order."""
    return [list(r.get("entries") or []) for r in result.results if r.get("op") == "get"]


def put_op(key: str, value: Any, meta: Optional[Mapping[str, Any]] = None) -> Op:
    """A transaction's ``put``."""
    op: Op = {"op": "put", "key": key, "value": value}
    op.update(meta or {})
    return op


# --- plans ---------------------------------------------------------------------------


def create_context(ctx: str, labels: Optional[Mapping[str, str]]) -> _plans.Plan[None]:
    """Creates ``ctx`` unless it exists."""
    try:
        yield _api.create_context(ctx, labels=labels or None)
    except AlreadyExists:
        pass


def backoff(attempt: int) -> _plans.Sleep:
    """A short random pause before attempt ``attempt`` (1, 2...) of a change that met another writer."""
    return _plans.Sleep(random.uniform(0, min(0.1, 0.002 * 2 ** min(attempt, 6))))


Change = Callable[[Head], Tuple[Optional[List[Op]], T]]


@dataclass(frozen=True)
class Log:
    """Where a log lives: its context, head key and items prefix (which ends with ``/``)."""

    ctx: str
    head_key: str
    items_prefix: str
    labels: Optional[Mapping[str, str]] = None

    def item_key(self, seq: int) -> str:
        return self.items_prefix + seq_segment(seq)


def change(
    log: Log,
    cache: HeadCache,
    build: Change[T],
    *,
    extra_compare: Sequence[Op] = (),
    missing: Optional[Callable[[], BaseException]] = None,
    attempts: int = ATTEMPTS,
) -> _plans.Plan[Tuple[T, Optional[m.TxnResult]]]:
    """Applies the operations ``build(head)`` returns, conditionally on the head's revision.

    ``build`` receives the current head and returns the operations (``None``:
    nothing to write) and a result. The transaction compares the head's
    revision: when another writer changed the log first, ``build`` runs
    again on the newer head. A ``None`` is confirmed on a head known to be
    current. The context is created when it does not exist yet. Returns
    ``build``'s result and the transaction's answer (``None`` when nothing
    was written).

    With ``missing``, the log must exist: when its head is confirmed absent,
    ``missing()`` is raised instead of calling ``build``.
    """
    head = cache.get(log.ctx, log.head_key)
    created = False
    for attempt in range(1, attempts + 1):
        confirming = missing is not None and not head.exists
        ops, outcome = (None, None) if confirming else build(head)
        compare = [{"key": log.head_key, "revision": head.revision}, *extra_compare]
        # The failure branch reads the head: a failed comparison is then a
        # plain failure (never settled by the context's conflict policy), and
        # the next attempt starts from what it read.
        success = ops if ops else [{"op": "get", "key": log.head_key}]
        try:
            result: m.TxnResult = yield _api.txn(
                log.ctx, compare=compare, success=success, failure=[{"op": "get", "key": log.head_key}]
            )
        except NotFound:
            if created:
                raise
            if missing is not None:
                raise missing() from None
            yield from create_context(log.ctx, log.labels)
            created = True
            continue
        if result.succeeded:
            if confirming:
                assert missing is not None
                raise missing()
            cache.put(log.ctx, log.head_key, head_after(log.head_key, result, head))
            return outcome, (result if ops else None)  # type: ignore[return-value]
        head = head_of(get_results(result)[-1] if get_results(result) else [])
        cache.put(log.ctx, log.head_key, head)
        yield backoff(attempt)
    raise UpdateConflict(
        "precondition_failed",
        f"{log.head_key!r} kept changing: gave up after {attempts} attempts",
    )


def head_after(head_key: str, result: m.TxnResult, before: Head) -> Head:
    """The head as a successful transaction left it."""
    head = before
    for r in result.results:
        op = r.get("op")
        entry = r.get("entry")
        if op in ("put", "patch") and isinstance(entry, dict) and entry.get("key") == head_key:
            value = entry.get("value")
            head = Head(dict(value) if isinstance(value, dict) else {}, int(entry.get("revision") or 0))
        elif op == "delete" and r.get("key") == head_key:
            head = Head()
        elif op == "get":
            for e in r.get("entries") or []:
                if e.get("key") == head_key:
                    head = head_of([e])
    return head


def append(
    log: Log,
    cache: HeadCache,
    values: Sequence[Any],
    *,
    meta: Optional[Mapping[str, Any]] = None,
    head_fields: Optional[Callable[[Head], Mapping[str, Any]]] = None,
    extra_ops: Optional[Callable[[Head, int], List[Op]]] = None,
    missing: Optional[Callable[[], BaseException]] = None,
    already: Optional[Callable[[Head], bool]] = None,
) -> _plans.Plan[Tuple[int, Optional[m.TxnResult]]]:
    """Appends ``values`` after the log's last item, in order.

    ``head_fields(head)`` adds fields to the new head; ``extra_ops(head,
    first_seq)`` adds operations to the same transaction (state written with
    an event, for instance); ``missing`` as in :func:`change`. When
    ``already(head)`` says the values are in the log (an append retried
    after its answer was lost), nothing is written. Returns the first
    item's sequence number and the answer of the transaction that moved the
    head (``None`` when nothing was written).

    The values are one transaction with the head, unless they are more than
    a transaction may hold (``MAX_TXN_OPS``): then that transaction reserves
    the sequence numbers of all of them and writes the first ones, and the
    rest follow in further transactions (a reader may see such a batch
    partly written for a moment; no other writer can take its places).
    """
    values = list(values)
    room = MAX_TXN_OPS - 8

    def build(head: Head) -> Tuple[Optional[List[Op]], Tuple[int, int]]:
        if already is not None and already(head):
            return None, (head.next, len(values))
        first = head.next
        new_head = dict(head.value)
        new_head.update(head_fields(head) if head_fields else {})
        new_head.update({"next": first + len(values), "count": head.count + len(values)})
        ops = extra_ops(head, first) if extra_ops else []
        included = values[: max(1, room - len(ops))]
        ops += [put_op(log.item_key(first + i), v, meta) for i, v in enumerate(included)]
        ops.append(put_op(log.head_key, new_head))
        return ops, (first, len(included))

    (first, written), result = yield from change(log, cache, build, missing=missing)
    if result is None:
        return first, None
    for start in range(written, len(values), room):
        ops = [put_op(log.item_key(first + start + i), v, meta) for i, v in enumerate(values[start : start + room])]
        yield _api.txn(log.ctx, success=ops)
    return first, result


def read_newest(ctx: str, prefix: str, limit: Optional[int] = None, *, at: Optional[int] = None) -> _plans.Plan[List[m.Entry]]:
    """The entries under ``prefix`` in key order (for item keys: newest first), at most ``limit``.

    All pages read one snapshot. A context that does not exist has none.
    """
    out: List[m.Entry] = []
    cursor: Optional[str] = None
    while limit is None or len(out) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(out))
        try:
            page: m.EntryPage = yield _api.list_page(ctx, prefix=prefix, at=at, limit=size, cursor=cursor)
        except NotFound:
            return []
        out.extend(page.entries)
        cursor = page.next_cursor
        if not cursor:
            break
    return out if limit is None else out[:limit]


def read_prefixes(
    ctx: str, prefixes: Sequence[str], *, exact: Sequence[bool] = ()
) -> _plans.Plan[Optional[Tuple[int, List[List[m.Entry]]]]]:
    """The entries under each prefix, all read at one revision (the first listing's).

    ``exact[i]`` reads only the entry whose key is ``prefixes[i]`` itself.
    Listings page through prefixes of any size (a transaction answers with
    every entry at once). Returns the revision and the entries of each
    prefix in key order, or ``None`` when the context does not exist.
    """
    revision: Optional[int] = None
    out: List[List[m.Entry]] = []
    for i, prefix in enumerate(prefixes):
        only = i < len(exact) and exact[i]
        entries: List[m.Entry] = []
        cursor: Optional[str] = None
        while True:
            try:
                page: m.EntryPage = yield _api.list_page(
                    ctx, prefix=prefix, at=revision, limit=1 if only else PAGE, cursor=cursor
                )
            except NotFound:
                return None
            if revision is None:
                revision = page.revision
            entries.extend(page.entries)
            cursor = page.next_cursor
            if only or not cursor:
                break
        out.append([e for e in entries if e.key == prefix] if only else entries)
    return (revision or 0), out


def txn_read(ctx: str, gets: Sequence[Op]) -> _plans.Plan[Optional[Tuple[int, List[List[Dict[str, Any]]]]]]:
    """Reads several keys and prefixes at one revision (a transaction of ``get`` operations).

    Returns the revision and each ``get``'s entries, or ``None`` when the
    context does not exist. A transaction of reads needs only the ``read``
    permission; its answer holds every entry it reads at once (large
    prefixes: :func:`read_prefixes`).
    """
    try:
        result: m.TxnResult = yield _api.txn(ctx, success=list(gets))
    except NotFound:
        return None
    return result.revision, get_results(result)


def chunks(items: Sequence[T], size: int) -> List[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)] or [items[:0]]


__all__ = [
    "ATTEMPTS",
    "AnyClient",
    "Head",
    "HeadCache",
    "Log",
    "MAX_TXN_OPS",
    "Runner",
    "append",
    "change",
    "check_prefix",
    "chunks",
    "create_context",
    "escape",
    "get_results",
    "head_after",
    "head_of",
    "put_op",
    "read_newest",
    "read_prefixes",
    "seq_of",
    "seq_segment",
    "txn_read",
    "unescape",
]
