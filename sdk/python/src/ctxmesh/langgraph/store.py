"""``CtxmeshStore``: a LangGraph long-term memory store kept in a ctxmesh context.

Layout (one context, ``langgraph-store`` by default):

* an item ``(namespace, key)`` is the entry
  ``<prefix><label>/<label>/.../@<key>``, each label and the key escaped
  into one key segment (:mod:`ctxmesh.langgraph._keys`); ``@`` marks the
  item segment, and never appears in an escaped label;
* the entry's value is the item's value, as it is, so other agents read,
  search and receive LangGraph memories like any other entry;
* bookkeeping lives in the entry's tags, each starting with ``lg``:
  ``lgns<hash>`` for each prefix of the item's namespace (so that a search
  is scoped on the server), ``lgttl<ms>`` for the item's TTL,
  ``lgc<µs>`` / ``lgu<µs>`` for its creation and last update time once
  they differ from the entry's ``updated_at``.

Writes of one ``batch`` are one ctxmesh transaction: they land together or
not at all. Reads of a batch see the store as it was before the batch's
writes, from one snapshot.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

from ..aio import AsyncClient
from ..client import Client
from ._common import (
    DEFAULT_MAX_TXN_OPS,
    check_prefix,
    from_micros,
    make_transports,
    parse_time,
    to_micros,
)
from ._io import AsyncTransport, Plan, Search, SyncTransport, Txn, run_async, run_sync
from ._keys import escape, unescape

__all__ = ["CtxmeshStore"]

#: Tag prefixes of the store's bookkeeping.
TAG_NAMESPACE = "lgns"
TAG_TTL = "lgttl"
TAG_CREATED = "lgc"
TAG_UPDATED = "lgu"
#: Namespace prefixes tagged per item (ctxmesh allows 64 tags per entry).
MAX_NAMESPACE_TAGS = 60
#: Most hits one ctxmesh search answers.
MAX_SEARCH_HITS = 100
#: Attempts of a batch's writes when other writers keep changing its keys.
WRITE_ATTEMPTS = 8

ITEM_MARK = "@"


class CtxmeshStore(BaseStore):
    """A LangGraph ``BaseStore`` whose items are entries of a ctxmesh context.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:7600`` (default:
            ``CTXMESH_URL``, or the URL of ``client``).
        token: a bearer token (default: ``CTXMESH_TOKEN``).
        agent_id: the agent the writes are recorded for (``X-Agent-Id``).
        context: the context holding the items; created on first use.
        prefix: a key prefix under which the items live, so that one
            context can hold a store next to other entries (default: none).
        ttl: LangGraph TTL settings: ``default_ttl`` (minutes) and
            ``refresh_on_read``. Expired items are removed by the server.
        search_mode: ctxmesh search mode for ``query`` searches
            (``keyword``, ``semantic`` or ``hybrid``; default: the server's).
        kind: an entry ``kind`` given to every item (e.g. ``"memory"``),
            so that agents' ``needs`` can name LangGraph memories.
        client, async_client: ``ctxmesh.Client`` / ``ctxmesh.AsyncClient``
            whose URL, token and agent id are used.
        transport, async_transport: custom transports (tests, proxies).
        max_txn_ops: the server's ``--max-txn-ops``.

    Example:
        >>> store = CtxmeshStore("http://127.0.0.1:7600", token="...")
        >>> store.put(("users", "alice"), "prefs", {"theme": "dark"}, ttl=60)
        >>> store.search(("users",), query="dark", filter={"theme": "dark"})
    """

    supports_ttl = True

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        agent_id: str | None = None,
        context: str = "langgraph-store",
        prefix: str = "",
        ttl: TTLConfig | None = None,
        search_mode: str | None = None,
        kind: str | None = None,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        transport: SyncTransport | None = None,
        async_transport: AsyncTransport | None = None,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
    ) -> None:
        self.context = context
        self.prefix = check_prefix(prefix)
        self.ttl_config = ttl
        self.search_mode = search_mode
        self.kind = kind
        self.max_txn_ops = max_txn_ops
        self._transport, self._atransport = make_transports(
            base_url=base_url,
            token=token,
            agent_id=agent_id,
            context=context,
            labels={"langgraph": "store"},
            transport=transport,
            async_transport=async_transport,
            client=client,
            async_client=async_client,
        )

    # -- BaseStore -------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Runs ``ops`` (reads first, from one snapshot; then all writes at once)."""
        return run_sync(self._batch(list(ops)), self._transport)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Asynchronous :meth:`batch`."""
        return await run_async(self._batch(list(ops)), self._atransport)

    def close(self) -> None:
        """Closes the connection pool of the sync transport."""
        close = getattr(self._transport, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Closes the connection pool of the async transport."""
        aclose = getattr(self._atransport, "aclose", None)
        if aclose is not None:
            await aclose()

    # -- keys ------------------------------------------------------------

    def key_of(self, namespace: tuple[str, ...], key: str) -> str:
        """The ctxmesh entry key of the item ``(namespace, key)``."""
        labels = "".join(escape(label) + "/" for label in namespace)
        return f"{self.prefix}{labels}{ITEM_MARK}{escape(key)}"

    def namespace_prefix_of(self, namespace_prefix: tuple[str, ...]) -> str:
        """The ctxmesh key prefix of every item under ``namespace_prefix``."""
        return self.prefix + "".join(escape(label) + "/" for label in namespace_prefix)

    def parse_key(self, entry_key: str) -> tuple[tuple[str, ...], str] | None:
        """``(namespace, key)`` of an entry key, or ``None`` for a foreign entry."""
        if not entry_key.startswith(self.prefix):
            return None
        segments = entry_key[len(self.prefix) :].split("/")
        last = segments[-1]
        if not last.startswith(ITEM_MARK) or any(ITEM_MARK in s for s in segments[:-1]):
            return None
        try:
            return tuple(unescape(s) for s in segments[:-1]), unescape(last[len(ITEM_MARK) :])
        except ValueError:
            return None

    def namespace_tag(self, namespace_prefix: tuple[str, ...]) -> str:
        """The tag every item under ``namespace_prefix`` carries (when it is shallow enough)."""
        joined = "\x00".join((self.prefix, *namespace_prefix))
        return TAG_NAMESPACE + hashlib.sha256(joined.encode("utf-8")).hexdigest()[:24]

    # -- the plan of a batch ----------------------------------------------

    def _batch(self, ops: list[Op]) -> Plan[list[Result]]:
        for op in ops:
            if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
                raise ValueError(f"unknown operation type: {type(op)}")
            validate_op_namespace(op)
            if isinstance(op, PutOp) and op.value is not None and not isinstance(op.value, Mapping):
                raise TypeError(f"an item's value is a mapping, not {type(op.value).__name__}")
            if isinstance(op, PutOp) and op.ttl is not None and not op.ttl > 0:
                raise ValueError(f"ttl is a positive number of minutes, not {op.ttl!r}")

        # Writes: the last one per item wins, as in a dict.
        writes: dict[str, PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                writes[self.key_of(op.namespace, op.key)] = op

        # Reads, in one snapshot: single keys and key prefixes.
        keys: list[str] = []
        prefixes: list[str] = []
        for op in ops:
            if isinstance(op, GetOp):
                keys.append(self.key_of(op.namespace, op.key))
            elif isinstance(op, SearchOp) and not op.query:
                prefixes.append(self.namespace_prefix_of(op.namespace_prefix))
            elif isinstance(op, ListNamespacesOp):
                prefixes.append(self.namespace_prefix_of(_static_prefix(op.match_conditions)))
        keys.extend(k for k in writes if writes[k].value is not None)
        by_key, by_prefix = yield from self._read(keys, prefixes)

        results: list[Result] = []
        to_refresh: dict[str, dict[str, Any]] = {}
        for op in ops:
            if isinstance(op, GetOp):
                entry = by_key.get(self.key_of(op.namespace, op.key))
                if entry is None:
                    results.append(None)
                    continue
                results.append(self._item(entry))
                if op.refresh_ttl:
                    _mark_refresh(to_refresh, entry)
            elif isinstance(op, SearchOp):
                if op.query:
                    answer = yield Search(self._search_params(op))
                    hits: list[tuple[dict[str, Any], float | None]] = [
                        (hit["entry"], float(hit["score"])) for hit in answer.get("hits") or []
                    ]
                    found = self._search_hits(op, hits)
                else:
                    entries = by_prefix[self.namespace_prefix_of(op.namespace_prefix)]
                    found = self._search_hits(op, [(e, None) for e in entries])
                results.append([item for item, _ in found])
                if op.refresh_ttl:
                    for _, entry in found:
                        _mark_refresh(to_refresh, entry)
            elif isinstance(op, ListNamespacesOp):
                entries = by_prefix[self.namespace_prefix_of(_static_prefix(op.match_conditions))]
                results.append(self._namespaces(op, entries))
            else:
                results.append(None)

        if writes:
            yield from self._write(writes, by_key)
        for key in writes:
            to_refresh.pop(key, None)
        if to_refresh:
            yield from self._refresh(to_refresh)
        return results

    def _read(
        self, keys: list[str], prefixes: list[str]
    ) -> Plan[tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]]:
        """Current entries of ``keys`` and under ``prefixes``."""
        by_key: dict[str, dict[str, Any]] = {}
        by_prefix: dict[str, list[dict[str, Any]]] = {}
        unique_keys = list(dict.fromkeys(keys))
        unique_prefixes = list(dict.fromkeys(prefixes))
        gets: list[dict[str, Any]] = [{"op": "get", "key": k} for k in unique_keys]
        gets += [{"op": "get", "prefix": p} for p in unique_prefixes]
        answers: list[dict[str, Any]] = []
        for chunk in _chunks(gets, self.max_txn_ops):
            answer = yield Txn({"success": chunk})
            answers.extend(answer.get("results") or [])
        for key, result in zip(unique_keys, answers[: len(unique_keys)]):
            entries = result.get("entries") or []
            if entries:
                by_key[key] = entries[0]
        for prefix, result in zip(unique_prefixes, answers[len(unique_keys) :]):
            by_prefix[prefix] = list(result.get("entries") or [])
        return by_key, by_prefix

    def _write(self, writes: dict[str, PutOp], known: dict[str, dict[str, Any]]) -> Plan[None]:
        """Applies ``writes`` in one transaction, keeping each item's creation time."""
        current = dict(known)
        for attempt in range(WRITE_ATTEMPTS):
            compare: list[dict[str, Any]] = []
            success: list[dict[str, Any]] = []
            for key, op in writes.items():
                if op.value is None:
                    success.append({"op": "delete", "key": key})
                    continue
                before = current.get(key)
                compare.append({"key": key, "revision": int(before["revision"]) if before else 0})
                success.append(self._put_op(key, op, before))
            if len(compare) + len(success) + 1 > self.max_txn_ops:
                # Too many for one transaction: each chunk is still atomic.
                for chunk in _chunks(list(writes.items()), max(1, (self.max_txn_ops - 1) // 2)):
                    yield from self._write(dict(chunk), current)
                return None
            body: dict[str, Any] = {"compare": compare, "success": success}
            if compare:
                # A plain failed comparison (not one for the conflict policy to settle).
                body["failure"] = [{"op": "get", "key": compare[0]["key"]}]
            answer = yield Txn(body)
            if answer.get("succeeded", True):
                return None
            stale = [c["key"] for c in compare]
            fresh, _ = yield from self._read(stale, [])
            current = {**{k: v for k, v in current.items() if k not in stale}, **fresh}
        raise RuntimeError(f"the store's items kept changing under {WRITE_ATTEMPTS} attempts to write them")

    def _put_op(self, key: str, op: PutOp, before: dict[str, Any] | None) -> dict[str, Any]:
        namespace = op.namespace
        tags = [self.namespace_tag(namespace[:depth]) for depth in range(min(len(namespace), MAX_NAMESPACE_TAGS) + 1)]
        if before is not None:
            created = _tag_int(before, TAG_CREATED)
            if created is None:
                created = to_micros(parse_time(before["updated_at"]))
            tags.append(f"{TAG_CREATED}{created}")
        put: dict[str, Any] = {"op": "put", "key": key, "value": dict(op.value or {})}
        if op.ttl is not None:
            ttl_ms = max(1, int(math.ceil(op.ttl * 60_000)))
            put["ttl_ms"] = ttl_ms
            tags.append(f"{TAG_TTL}{ttl_ms}")
        put["tags"] = tags
        if self.kind:
            put["kind"] = self.kind
        return put

    def _refresh(self, entries: dict[str, dict[str, Any]]) -> Plan[None]:
        """Restarts the TTL of items just read (their value and times unchanged)."""
        ops: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for key, entry in entries.items():
            ttl_ms = _tag_int(entry, TAG_TTL)
            if ttl_ms is None:
                continue
            created = _tag_int(entry, TAG_CREATED)
            updated = _tag_int(entry, TAG_UPDATED)
            at = to_micros(parse_time(entry["updated_at"]))
            tags = [t for t in entry.get("tags") or [] if not t.startswith((TAG_CREATED, TAG_UPDATED))]
            tags.append(f"{TAG_CREATED}{created if created is not None else at}")
            tags.append(f"{TAG_UPDATED}{updated if updated is not None else at}")
            put: dict[str, Any] = {"op": "put", "key": key, "value": entry.get("value"), "tags": tags, "ttl_ms": ttl_ms}
            for field in ("kind", "confidence", "priority", "depends_on", "relevance", "confidential"):
                if entry.get(field) not in (None, [], {}):
                    put[field] = entry[field]
            ops.append(({"key": key, "revision": int(entry["revision"])}, put))
        if not ops:
            return None
        groups = [ops] if 2 * len(ops) + 1 <= self.max_txn_ops else [[one] for one in ops]
        for group in groups:
            body = {
                "compare": [c for c, _ in group],
                "success": [p for _, p in group],
                "failure": [{"op": "get", "key": group[0][0]["key"]}],
            }
            answer = yield Txn(body)
            if not answer.get("succeeded", True) and len(group) > 1:
                # Someone wrote one of them meanwhile (which set its own TTL):
                # refresh the others one by one.
                for one in group:
                    yield Txn({"compare": [one[0]], "success": [one[1]], "failure": [{"op": "get", "key": one[0]["key"]}]})
        return None

    # -- results -----------------------------------------------------------

    def _item(self, entry: dict[str, Any]) -> Item:
        parsed = self.parse_key(entry["key"])
        assert parsed is not None
        namespace, key = parsed
        created, updated = _times(entry)
        value = entry.get("value")
        return Item(
            value=value if isinstance(value, dict) else {"value": value},
            key=key,
            namespace=namespace,
            created_at=created,
            updated_at=updated,
        )

    def _search_params(self, op: SearchOp) -> dict[str, Any]:
        params: dict[str, Any] = {"q": op.query, "limit": MAX_SEARCH_HITS}
        if len(op.namespace_prefix) <= MAX_NAMESPACE_TAGS:
            params["tags"] = self.namespace_tag(op.namespace_prefix)
        if self.search_mode:
            params["mode"] = self.search_mode
        return params

    def _search_hits(
        self, op: SearchOp, hits: list[tuple[dict[str, Any], float | None]]
    ) -> list[tuple[SearchItem, dict[str, Any]]]:
        """The page of ``hits`` that ``op`` asks for, as search items."""
        matched: list[tuple[SearchItem, dict[str, Any]]] = []
        depth = len(op.namespace_prefix)
        for entry, score in hits:
            parsed = self.parse_key(entry["key"])
            if parsed is None or parsed[0][:depth] != op.namespace_prefix:
                continue
            item = self._item(entry)
            if op.filter and not all(_matches(item.value.get(k), v) for k, v in op.filter.items()):
                continue
            search_item = SearchItem(
                namespace=item.namespace,
                key=item.key,
                value=item.value,
                created_at=item.created_at,
                updated_at=item.updated_at,
                score=score,
            )
            matched.append((search_item, entry))
        if not op.query:
            matched.sort(key=lambda pair: (-pair[0].updated_at.timestamp(), pair[1]["key"]))
        start = max(op.offset, 0)
        return matched[start : start + max(op.limit, 0)]

    def _namespaces(self, op: ListNamespacesOp, entries: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        for entry in entries:
            parsed = self.parse_key(entry["key"])
            if parsed is None:
                continue
            namespace = parsed[0]
            if not all(_namespace_matches(c, namespace) for c in op.match_conditions or ()):
                continue
            found.add(namespace[: op.max_depth] if op.max_depth is not None else namespace)
        ordered = sorted(found)
        start = max(op.offset, 0)
        return ordered[start : start + max(op.limit, 0)]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _mark_refresh(to_refresh: dict[str, dict[str, Any]], entry: dict[str, Any]) -> None:
    if _tag_int(entry, TAG_TTL) is not None:
        to_refresh.setdefault(entry["key"], entry)


def _tag_int(entry: dict[str, Any], prefix: str) -> int | None:
    for tag in entry.get("tags") or []:
        if tag.startswith(prefix) and tag[len(prefix) :].isdigit():
            return int(tag[len(prefix) :])
    return None


def _times(entry: dict[str, Any]) -> tuple[datetime, datetime]:
    """An item's creation and update times: from its tags, else the entry's ``updated_at``."""
    at = parse_time(entry["updated_at"])
    created = _tag_int(entry, TAG_CREATED)
    updated = _tag_int(entry, TAG_UPDATED)
    return (
        from_micros(created) if created is not None else at,
        from_micros(updated) if updated is not None else at,
    )


def _static_prefix(conditions: tuple[MatchCondition, ...] | None) -> tuple[str, ...]:
    """The labels every namespace matching ``conditions`` starts with."""
    for condition in conditions or ():
        if condition.match_type == "prefix":
            static: list[str] = []
            for label in condition.path:
                if label == "*":
                    break
                static.append(label)
            return tuple(static)
    return ()


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise ValueError(f"unsupported match type: {condition.match_type}")
    return all(p == "*" or n == p for n, p in pairs)


def _matches(value: Any, wanted: Any) -> bool:
    """Whether an item's field ``value`` satisfies the filter ``wanted``.

    Plain values compare for equality (objects and arrays structurally);
    ``{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": x}`` compare with an operator.
    """
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_apply(value, op, operand) for op, operand in wanted.items())
        if not isinstance(value, dict):
            return False
        return all(_matches(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(_matches(a, b) for a, b in zip(value, wanted))
        )
    return bool(value == wanted)


def _apply(value: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(value == operand)
    if op == "$ne":
        return bool(value != operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if value is None or isinstance(value, bool) or isinstance(operand, bool):
            return False
        try:
            if isinstance(value, str) and isinstance(operand, str):
                a: Any = value
                b: Any = operand
            else:
                a, b = float(value), float(operand)
        except (TypeError, ValueError):
            return False
        if op == "$gt":
            return bool(a > b)
        if op == "$gte":
            return bool(a >= b)
        if op == "$lt":
            return bool(a < b)
        return bool(a <= b)
    raise ValueError(f"unsupported filter operator: {op}")
