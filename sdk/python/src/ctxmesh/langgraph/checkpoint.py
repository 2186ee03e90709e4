"""``CtxmeshSaver``: LangGraph checkpoints kept in a ctxmesh context.

Layout (one context, ``langgraph-checkpoints`` by default, under an optional
key prefix); ``<T>`` is the escaped thread id, ``<NS>`` the escaped
checkpoint namespace (``~`` for the root namespace ``""``), ``<ID↓>`` the
checkpoint id encoded so that keys sort newest first
(:func:`ctxmesh.langgraph._keys.descending`):

* ``checkpoints/<T>/<NS>/<ID↓>``: one checkpoint: its ids, its parent's id,
  the checkpoint without its channel values (serialized), its metadata
  (serialized, and as plain JSON for readers);
* ``blobs/<T>/<NS>/<channel>/<version>``: one channel value at one version,
  shared by every checkpoint that saw that version;
* ``writes/<T>/<NS>/<ID↓>/<task id>/<idx>``: one pending write of a task
  against a checkpoint.

Serialized values are the saver's ``serde.dumps_typed`` output, stored as
``{"type": ..., "data": <base64>}``.

A checkpoint and its new channel values are written in one transaction,
so a checkpoint is never visible without its values; the writes of one
``put_writes`` are one transaction too; ``delete_thread`` is one
transaction. (A checkpoint with more new channel values than a transaction
may hold writes the values first and the checkpoint last: it becomes
visible complete.)
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..aio import AsyncClient
from ..client import Client
from ._common import DEFAULT_MAX_TXN_OPS, check_prefix, make_transports
from ._io import AsyncTransport, ListPage, Plan, SyncTransport, Txn, list_all, run_async, run_sync
from ._keys import descending, escape

__all__ = ["CtxmeshSaver"]

#: Checkpoints read per page by ``list``.
LIST_PAGE = 100


class CtxmeshSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer whose checkpoints are entries of a ctxmesh context.

    Every method has a sync and an async form; a graph compiled with this
    saver runs with ``invoke`` and ``ainvoke`` alike.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:7600`` (default:
            ``CTXMESH_URL``, or the URL of ``client``).
        token: a bearer token (default: ``CTXMESH_TOKEN``).
        agent_id: the agent the writes are recorded for (``X-Agent-Id``).
        context: the context holding the checkpoints; created on first use.
        prefix: a key prefix under which everything lives, so that one
            context can hold checkpoints next to other entries.
        serde: the serializer (default: LangGraph's ``JsonPlusSerializer``).
        client, async_client: ``ctxmesh.Client`` / ``ctxmesh.AsyncClient``
            whose URL, token and agent id are used.
        transport, async_transport: custom transports (tests, proxies).
        max_txn_ops: the server's ``--max-txn-ops``.

    Example:
        >>> saver = CtxmeshSaver("http://127.0.0.1:7600", token="...")
        >>> graph = builder.compile(checkpointer=saver)
        >>> graph.invoke(inputs, {"configurable": {"thread_id": "t1"}})
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        agent_id: str | None = None,
        context: str = "langgraph-checkpoints",
        prefix: str = "",
        serde: SerializerProtocol | None = None,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        transport: SyncTransport | None = None,
        async_transport: AsyncTransport | None = None,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
    ) -> None:
        super().__init__(serde=serde)
        self.context = context
        self.prefix = check_prefix(prefix)
        self.max_txn_ops = max_txn_ops
        self._transport, self._atransport = make_transports(
            base_url=base_url,
            token=token,
            agent_id=agent_id,
            context=context,
            labels={"langgraph": "checkpoints"},
            transport=transport,
            async_transport=async_transport,
            client=client,
            async_client=async_client,
        )

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

    # -- keys --------------------------------------------------------------

    def _checkpoints(self, thread_id: str | None = None, ns: str | None = None) -> str:
        return self._family("checkpoints", thread_id, ns)

    def _blobs(self, thread_id: str | None = None, ns: str | None = None) -> str:
        return self._family("blobs", thread_id, ns)

    def _writes(self, thread_id: str | None = None, ns: str | None = None, checkpoint_id: str | None = None) -> str:
        base = self._family("writes", thread_id, ns)
        return base if checkpoint_id is None else f"{base}{descending(checkpoint_id)}/"

    def _family(self, family: str, thread_id: str | None, ns: str | None) -> str:
        key = f"{self.prefix}{family}/"
        if thread_id is not None:
            key += escape(str(thread_id)) + "/"
            if ns is not None:
                key += escape(ns) + "/"
        return key

    def _checkpoint_key(self, thread_id: str, ns: str, checkpoint_id: str) -> str:
        return self._checkpoints(thread_id, ns) + descending(checkpoint_id)

    def _blob_key(self, thread_id: str, ns: str, channel: str, version: Any) -> str:
        return f"{self._blobs(thread_id, ns)}{escape(channel)}/{escape(str(version))}"

    # -- serialization -------------------------------------------------------

    def _dump(self, value: Any) -> dict[str, str]:
        kind, data = self.serde.dumps_typed(value)
        return {"type": kind, "data": base64.b64encode(data).decode("ascii")}

    def _load(self, stored: dict[str, Any]) -> Any:
        return self.serde.loads_typed((stored["type"], base64.b64decode(stored["data"])))

    # -- plans -----------------------------------------------------------------

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Plan[RunnableConfig]:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = str(configurable.get("checkpoint_ns", ""))
        stored = checkpoint.copy()
        values: dict[str, Any] = stored.pop("channel_values", {})  # type: ignore[misc]
        blobs: list[dict[str, Any]] = []
        for channel, version in new_versions.items():
            blob = self._dump(values[channel]) if channel in values else {"type": "empty", "data": ""}
            blobs.append(
                {
                    "op": "put",
                    "key": self._blob_key(thread_id, ns, channel, version),
                    "value": {"channel": channel, "version": str(version), **blob},
                }
            )
        full_metadata = get_checkpoint_metadata(config, metadata)
        record = {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": configurable.get("checkpoint_id"),
            "ts": checkpoint.get("ts"),
            "checkpoint": self._dump(stored),
            "metadata": self._dump(full_metadata),
            "metadata_json": _jsonable(full_metadata),
        }
        put_checkpoint = {"op": "put", "key": self._checkpoint_key(thread_id, ns, checkpoint["id"]), "value": record}
        yield from self._write_in_order(blobs, [put_checkpoint])
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    def _write_in_order(self, first: list[dict[str, Any]], last: list[dict[str, Any]]) -> Plan[None]:
        """Writes ``first`` then ``last`` in one transaction when they fit, else in
        chunks with ``last`` in the final one (so what ``last`` makes visible is complete)."""
        ops = first + last
        if len(ops) <= self.max_txn_ops:
            if ops:
                yield Txn({"success": ops})
            return None
        head = first[: len(ops) - min(len(last), self.max_txn_ops)]
        tail = ops[len(head) :]
        for start in range(0, len(head), self.max_txn_ops):
            yield Txn({"success": head[start : start + self.max_txn_ops]})
        for start in range(0, len(tail), self.max_txn_ops):
            yield Txn({"success": tail[start : start + self.max_txn_ops]})
        return None

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> Plan[None]:
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = str(configurable.get("checkpoint_ns", ""))
        checkpoint_id = str(configurable["checkpoint_id"])
        base = self._writes(thread_id, ns, checkpoint_id) + escape(str(task_id)) + "/"
        regular: list[dict[str, Any]] = []
        special: list[dict[str, Any]] = []
        for position, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, position)
            op = {
                "op": "put",
                "key": f"{base}{idx}",
                "value": {
                    "task_id": str(task_id),
                    "task_path": task_path,
                    "idx": idx,
                    "channel": channel,
                    **self._dump(value),
                },
            }
            (special if idx < 0 else regular).append(op)
        # A task's regular writes are kept once (a retried task does not
        # duplicate them); its special writes (error, interrupt...) replace.
        size = max(1, (self.max_txn_ops - len(special)) // 2)
        chunks = [regular[i : i + size] for i in range(0, len(regular), size)] or [[]]
        for n, chunk in enumerate(chunks):
            extra = special if n == 0 else []
            if not chunk:
                if extra:
                    yield Txn({"success": extra})
                continue
            yield Txn(
                {
                    "compare": [{"key": op["key"], "exists": False} for op in chunk],
                    "success": chunk + extra,
                    "failure": extra,
                }
            )
        return None

    def _find(self, config: RunnableConfig) -> Plan[dict[str, Any] | None]:
        """The checkpoint entry ``config`` names (the thread's latest without an id)."""
        configurable = config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = str(configurable.get("checkpoint_ns", ""))
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            answer = yield Txn({"success": [{"op": "get", "key": self._checkpoint_key(thread_id, ns, checkpoint_id)}]})
            entries = answer["results"][0].get("entries") or []
        else:
            answer = yield ListPage(self._checkpoints(thread_id, ns), 1)
            entries = answer.get("entries") or []
        return entries[0] if entries else None

    def _get_tuple(self, config: RunnableConfig) -> Plan[CheckpointTuple | None]:
        entry = yield from self._find(config)
        if entry is None:
            return None
        tuples = yield from self._hydrate([entry])
        return tuples[0]

    def _hydrate(self, entries: list[dict[str, Any]]) -> Plan[list[CheckpointTuple]]:
        """Checkpoint tuples of checkpoint entries: with their channel values and pending writes."""
        records = [entry["value"] for entry in entries]
        checkpoints = [self._load(record["checkpoint"]) for record in records]
        gets: list[dict[str, Any]] = []
        write_prefixes: list[str] = []
        blob_keys: dict[str, None] = {}
        for record, checkpoint in zip(records, checkpoints):
            prefix = self._writes(record["thread_id"], record["checkpoint_ns"], record["checkpoint_id"])
            write_prefixes.append(prefix)
            for channel, version in checkpoint.get("channel_versions", {}).items():
                blob_keys[self._blob_key(record["thread_id"], record["checkpoint_ns"], channel, version)] = None
        gets = [{"op": "get", "prefix": p} for p in write_prefixes]
        gets += [{"op": "get", "key": k} for k in blob_keys]
        results: list[dict[str, Any]] = []
        for start in range(0, len(gets), self.max_txn_ops):
            answer = yield Txn({"success": gets[start : start + self.max_txn_ops]})
            results.extend(answer.get("results") or [])
        writes_by_prefix = {p: r.get("entries") or [] for p, r in zip(write_prefixes, results)}
        blobs: dict[str, dict[str, Any]] = {}
        for result in results[len(write_prefixes) :]:
            for blob in result.get("entries") or []:
                blobs[blob["key"]] = blob["value"]

        tuples: list[CheckpointTuple] = []
        for record, checkpoint, prefix in zip(records, checkpoints, write_prefixes):
            thread_id, ns = record["thread_id"], record["checkpoint_ns"]
            values: dict[str, Any] = {}
            for channel, version in checkpoint.get("channel_versions", {}).items():
                blob = blobs.get(self._blob_key(thread_id, ns, channel, version))
                if blob is None or blob.get("type") == "empty":
                    continue
                values[channel] = self._load(blob)
            pending = sorted(
                (w["value"] for w in writes_by_prefix.get(prefix, [])),
                key=lambda w: writes_sort_key(w.get("task_path", ""), w["task_id"], int(w["idx"])),
            )
            parent = record.get("parent_checkpoint_id")
            tuples.append(
                CheckpointTuple(
                    config={
                        "configurable": {
                            "thread_id": thread_id,
                            "checkpoint_ns": ns,
                            "checkpoint_id": record["checkpoint_id"],
                        }
                    },
                    checkpoint={**checkpoint, "channel_values": values},  # type: ignore[typeddict-item]
                    metadata=self._load(record["metadata"]),
                    parent_config=(
                        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent}}
                        if parent
                        else None
                    ),
                    pending_writes=[(w["task_id"], w["channel"], self._load(w)) for w in pending],
                )
            )
        return tuples

    def _list_page(self, query: _ListQuery) -> Plan[list[CheckpointTuple]]:
        """The next page of ``query``'s results (empty when it is done)."""
        while not query.done:
            page = yield ListPage(query.prefix, LIST_PAGE, query.cursor)
            query.cursor = page.get("next_cursor")
            if not query.cursor:
                query.done = True
            chosen = [entry for entry in page.get("entries") or [] if query.accepts(entry, self)]
            if query.remaining is not None:
                chosen = chosen[: query.remaining]
                query.remaining -= len(chosen)
                if query.remaining <= 0:
                    query.done = True
            if chosen:
                return (yield from self._hydrate(chosen))
        return []

    def _delete_thread(self, thread_id: str) -> Plan[None]:
        yield Txn(
            {
                "success": [
                    {"op": "delete_prefix", "prefix": self._checkpoints(thread_id)},
                    {"op": "delete_prefix", "prefix": self._blobs(thread_id)},
                    {"op": "delete_prefix", "prefix": self._writes(thread_id)},
                ]
            }
        )
        return None

    def _delete_checkpoints(self, doomed: list[dict[str, Any]]) -> Plan[None]:
        """Deletes checkpoint entries with their writes, then the values no checkpoint uses."""
        ops: list[dict[str, Any]] = []
        for entry in doomed:
            record = entry["value"]
            ops.append({"op": "delete", "key": entry["key"]})
            prefix = self._writes(record["thread_id"], record["checkpoint_ns"], record["checkpoint_id"])
            ops.append({"op": "delete_prefix", "prefix": prefix})
        for start in range(0, len(ops), self.max_txn_ops - self.max_txn_ops % 2):
            yield Txn({"success": ops[start : start + self.max_txn_ops - self.max_txn_ops % 2]})
        touched = {(e["value"]["thread_id"], e["value"]["checkpoint_ns"]) for e in doomed}
        for thread_id, ns in sorted(touched):
            yield from self._collect_blobs(thread_id, ns)
        return None

    def _collect_blobs(self, thread_id: str, ns: str) -> Plan[None]:
        """Deletes the channel values of ``(thread_id, ns)`` that no checkpoint refers to."""
        remaining = yield from list_all(self._checkpoints(thread_id, ns))
        used: set[str] = set()
        for entry in remaining:
            checkpoint = self._load(entry["value"]["checkpoint"])
            for channel, version in checkpoint.get("channel_versions", {}).items():
                used.add(self._blob_key(thread_id, ns, channel, version))
        blobs = yield from list_all(self._blobs(thread_id, ns))
        unused = [{"op": "delete", "key": b["key"]} for b in blobs if b["key"] not in used]
        for start in range(0, len(unused), self.max_txn_ops):
            yield Txn({"success": unused[start : start + self.max_txn_ops]})
        return None

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        wanted = {str(r) for r in run_ids}
        if not wanted:
            return None
        entries = yield from list_all(self._checkpoints())
        doomed = [e for e in entries if str((e["value"].get("metadata_json") or {}).get("run_id")) in wanted]
        yield from self._delete_checkpoints(doomed)
        return None

    def _prune(self, thread_ids: Sequence[str], strategy: str) -> Plan[None]:
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use keep_latest or delete")
        for thread_id in thread_ids:
            if strategy == "delete":
                yield from self._delete_thread(str(thread_id))
                continue
            entries = yield from list_all(self._checkpoints(str(thread_id)))
            seen: set[str] = set()
            doomed: list[dict[str, Any]] = []
            for entry in entries:  # newest first within each namespace
                ns = entry["value"]["checkpoint_ns"]
                if ns in seen:
                    doomed.append(entry)
                seen.add(ns)
            if doomed:
                yield from self._delete_checkpoints(doomed)
        return None

    def _copy_thread(self, source: str, target: str) -> Plan[None]:
        source, target = str(source), str(target)
        copies: dict[str, list[dict[str, Any]]] = {}
        for family in ("blobs", "writes", "checkpoints"):
            from_prefix = self._family(family, source, None)
            to_prefix = self._family(family, target, None)
            entries = yield from list_all(from_prefix)
            copies[family] = []
            for entry in entries:
                value = dict(entry["value"]) if isinstance(entry["value"], dict) else entry["value"]
                if family == "checkpoints":
                    value["thread_id"] = target
                copies[family].append({"op": "put", "key": to_prefix + entry["key"][len(from_prefix) :], "value": value})
        yield from self._write_in_order(copies["blobs"] + copies["writes"], copies["checkpoints"])
        return None

    # -- BaseCheckpointSaver: sync -------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest; ``None`` if absent."""
        return run_sync(self._get_tuple(config), self._transport)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (per namespace), filtered by metadata, before a checkpoint."""
        query = _ListQuery.of(self, config, filter, before, limit)
        while not query.done:
            yield from run_sync(self._list_page(query), self._transport)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Stores a checkpoint with its new channel values, atomically."""
        return run_sync(self._put(config, checkpoint, metadata, new_versions), self._transport)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Stores a task's pending writes against a checkpoint, atomically."""
        run_sync(self._put_writes(config, writes, task_id, task_path), self._transport)

    def delete_thread(self, thread_id: str) -> None:
        """Deletes every checkpoint, value and write of a thread, atomically."""
        run_sync(self._delete_thread(str(thread_id)), self._transport)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Deletes the checkpoints (and their writes) whose metadata ``run_id`` is listed."""
        run_sync(self._delete_for_runs(run_ids), self._transport)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copies every checkpoint, value and write of a thread to another thread."""
        run_sync(self._copy_thread(source_thread_id, target_thread_id), self._transport)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keeps only the latest checkpoint per namespace (``keep_latest``), or deletes all (``delete``)."""
        run_sync(self._prune(thread_ids, strategy), self._transport)

    # -- BaseCheckpointSaver: async ------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Asynchronous :meth:`get_tuple`."""
        return await run_async(self._get_tuple(config), self._atransport)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Asynchronous :meth:`list`."""
        query = _ListQuery.of(self, config, filter, before, limit)
        while not query.done:
            for item in await run_async(self._list_page(query), self._atransport):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Asynchronous :meth:`put`."""
        return await run_async(self._put(config, checkpoint, metadata, new_versions), self._atransport)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Asynchronous :meth:`put_writes`."""
        await run_async(self._put_writes(config, writes, task_id, task_path), self._atransport)

    async def adelete_thread(self, thread_id: str) -> None:
        """Asynchronous :meth:`delete_thread`."""
        await run_async(self._delete_thread(str(thread_id)), self._atransport)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Asynchronous :meth:`delete_for_runs`."""
        await run_async(self._delete_for_runs(run_ids), self._atransport)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Asynchronous :meth:`copy_thread`."""
        await run_async(self._copy_thread(source_thread_id, target_thread_id), self._atransport)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Asynchronous :meth:`prune`."""
        await run_async(self._prune(thread_ids, strategy), self._atransport)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Channel versions as zero-padded counters with a random suffix (sortable strings)."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"


class _ListQuery:
    """The state of one ``list`` call across pages."""

    def __init__(
        self,
        prefix: str,
        checkpoint_id: str | None,
        before_id: str | None,
        filter: dict[str, Any] | None,
        limit: int | None,
    ) -> None:
        self.prefix = prefix
        self.checkpoint_id = checkpoint_id
        self.before_id = before_id
        self.filter = dict(filter or {})
        self.remaining = limit
        self.cursor: str | None = None
        self.done = limit is not None and limit <= 0

    @classmethod
    def of(
        cls,
        saver: CtxmeshSaver,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> _ListQuery:
        configurable = (config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id")
        ns = configurable.get("checkpoint_ns")
        prefix = saver._checkpoints(
            None if thread_id is None else str(thread_id), None if ns is None else str(ns)
        )
        return cls(
            prefix,
            configurable.get("checkpoint_id"),
            get_checkpoint_id(before) if before else None,
            filter,
            limit,
        )

    def accepts(self, entry: dict[str, Any], saver: CtxmeshSaver) -> bool:
        record = entry.get("value")
        if not isinstance(record, dict) or "checkpoint" not in record:
            return False
        checkpoint_id = record["checkpoint_id"]
        if self.checkpoint_id and checkpoint_id != self.checkpoint_id:
            return False
        if self.before_id and checkpoint_id >= self.before_id:
            return False
        if self.filter:
            metadata = saver._load(record["metadata"])
            if not all(metadata.get(k) == v for k, v in self.filter.items()):
                return False
        return True


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON (what JSON cannot hold becomes its ``repr``)."""
    return json.loads(json.dumps(value, default=repr))
