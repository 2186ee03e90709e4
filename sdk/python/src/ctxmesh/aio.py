"""The asynchronous ctxmesh client (``asyncio``).

Every request is built in :mod:`ctxmesh._api` and every operation of more
than one request is a plan of :mod:`ctxmesh._plans`, shared with
:class:`~ctxmesh.Client`; this module sends them with asynchronous I/O.
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import aclosing, asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
)

import httpx

from . import _api, _plans, _tracing
from . import models as m
from ._api import UNSET, Call
from .errors import CtxmeshError, TransportError
from .watch import AsyncWatch, WatchOptions

__all__ = ["AsyncClient", "AsyncHeldLock"]

T = TypeVar("T")

JSON = Any
Fencing = Union[str, "m.Lock", "AsyncHeldLock", "tuple[str, int]"]


class AsyncClient(_plans.ClientCore):
    """An asynchronous client of a ctxmesh server.

    It has every method of :class:`~ctxmesh.Client`, as coroutines (and
    asynchronous iterators for watches and listings). Arguments are the
    same. The keepalive of the agent's lease is an asyncio task, started
    at the client's first request (the constructor has no event loop to
    start it on) and stopped by :meth:`aclose`; what a task read is
    remembered per task (see :meth:`put`)::

        async with ctxmesh.AsyncClient("http://127.0.0.1:7600", token=token) as c:
            entry = await c.put("launch", "brief", {"goal": "ship"})
            async with c.watch("launch") as events:
                async for event in events:
                    ...
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        agent_id: Optional[str] = None,
        *,
        timeout: float = 30.0,
        headers: Optional[Mapping[str, str]] = None,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        keepalive: bool = True,
        ca_file: Optional[str] = None,
        _http: Optional[httpx.AsyncClient] = None,
    ) -> None:
        super().__init__(
            base_url, token, agent_id, timeout=timeout, headers=headers, keepalive=keepalive,
            reads=_plans.TaskReads(),
            ca_file=ca_file,
        )
        self._owns_http = _http is None
        self._http = _http or httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, verify=self._verify()
        )
        self._keepalive_task: Optional["asyncio.Task[None]"] = None
        self._closed = False

    # --- plumbing ------------------------------------------------------------

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stops the keepalive and closes the connections (not those of the client this one was derived from)."""
        self._closed = True
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._owns_http:
            await self._http.aclose()

    def _start_keepalive(self) -> None:
        """Starts the keepalive task on the running loop (once, unless it ended for good)."""
        keepalive = self._keepalive
        if keepalive is None or keepalive.stopped or self._closed:
            return
        task = self._keepalive_task
        loop = asyncio.get_running_loop()
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._keepalive_task = loop.create_task(_keep_alive(self, keepalive), name="ctxmesh-keepalive")

    def as_agent(self, agent_id: str, token: Optional[str] = None) -> "AsyncClient":
        """A client acting as ``agent_id`` (with ``token``, or this client's), sharing connections."""
        return AsyncClient(**self._settings_as(agent_id, token), _http=self._http)

    async def _run(self, call: Call[T]) -> T:
        """Sends one request and reads its answer."""
        if self._keepalive is not None and self._keepalive_task is None:
            self._start_keepalive()
        args = call.request_args()
        args["headers"] = self._headers(args["headers"])
        failure: Optional[str] = None
        try:
            response = await self._http.request(call.method, call.path, **args)
        except (httpx.TransportError, httpx.InvalidURL) as e:
            # Raised outside the handler, so that no chained exception
            # carries the request (or its Authorization header).
            failure = _api.transport_failure(call.method, call.path, e, self.token)
        if failure is not None:
            raise TransportError(failure)
        _api.check(response)
        return call.parse(response)

    async def _drive(self, plan: _plans.Plan[T]) -> T:
        """Runs a plan of requests."""
        return await _plans.run_async(plan, self._run)

    def _iterate(self, listing: _plans.Listing[T]) -> "aclosing[AsyncGenerator[T, None]]":
        """The items of a listing, closed with the ``async with`` block."""
        return aclosing(_plans.iterate_async(listing, self._run))

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = UNSET,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Sends any request to the API and returns the decoded JSON answer (``None`` when empty)."""
        return await self._run(_api.request(method, path, params=params, json=json, headers=headers))

    # --- streams -------------------------------------------------------------

    def _watch(self, spec: _plans.WatchSpec) -> AsyncWatch:
        @asynccontextmanager
        async def open_stream(after: Optional[int]) -> AsyncIterator[httpx.Response]:
            call = await self._drive(spec.connect(after))
            args = call.request_args()
            timeout = httpx.Timeout(self.timeout, read=spec.options.read_timeout)
            async with self._http.stream(
                call.method, call.path, params=args["params"], headers=self._headers(args["headers"]), timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _api.check(response)
                yield response

        make_start = spec.start

        async def start() -> int:
            assert make_start is not None
            return await self._drive(make_start())

        return AsyncWatch(
            open_stream,
            after=spec.after,
            start=None if make_start is None else start,
            order=spec.order,
            stream_kind=spec.stream_kind,
            options=spec.options,
        )

    def watch(
        self,
        ctx: str,
        *,
        after: Optional[int] = None,
        types: Optional[Union[str, Sequence[str]]] = None,
        prefix: Optional[str] = None,
        min_priority: Optional[str] = None,
        order: Optional[str] = None,
        include_progress: bool = False,
        reconnect: bool = True,
        max_retries: Optional[int] = None,
        read_timeout: float = 45.0,
    ) -> AsyncWatch:
        """Watches a context's events, resuming by itself (see :meth:`ctxmesh.Client.watch`)."""
        options = WatchOptions(
            include_progress=include_progress, reconnect=reconnect, max_retries=max_retries, read_timeout=read_timeout
        )
        return self._watch(
            _plans.watch(
                ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, order=order, options=options
            )
        )

    def watch_inbox(
        self,
        agent: Optional[str] = None,
        *,
        after: Optional[int] = None,
        types: Optional[Union[str, Sequence[str]]] = None,
        prefix: Optional[str] = None,
        min_priority: Optional[str] = None,
        include_progress: bool = False,
        reconnect: bool = True,
        max_retries: Optional[int] = None,
        read_timeout: float = 45.0,
    ) -> AsyncWatch:
        """Watches an agent's inbox (default: this client's agent), resuming by itself."""
        options = WatchOptions(
            include_progress=include_progress, reconnect=reconnect, max_retries=max_retries, read_timeout=read_timeout
        )
        return self._watch(
            _plans.watch_inbox(
                self, agent, after=after, types=types, prefix=prefix, min_priority=min_priority, options=options
            )
        )

    def watch_agents(
        self, *, after: int = 0, include_progress: bool = False, reconnect: bool = True, read_timeout: float = 45.0
    ) -> AsyncWatch:
        """Watches the agents feed from ``after`` (its sequence)."""
        options = WatchOptions(include_progress=include_progress, reconnect=reconnect, read_timeout=read_timeout)
        return self._watch(_plans.watch_agents(after=after, options=options))

    # --- iterators over pages ------------------------------------------------

    async def iter_entries(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[m.Entry]:
        """Every entry (under ``prefix``), following cursors; all pages read one snapshot."""
        listing = _plans.entries(ctx, prefix=prefix, at=at, as_of=as_of, page_size=page_size)
        async with self._iterate(listing) as items:
            async for entry in items:
                yield entry

    async def list(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        page_size: Optional[int] = None,
    ) -> List[m.Entry]:
        """All entries (under ``prefix``), optionally as of a revision or time, every page fetched."""
        return await self._drive(
            _plans.collect(_plans.entries(ctx, prefix=prefix, at=at, as_of=as_of, page_size=page_size))
        )

    async def iter_events(
        self,
        ctx: str,
        *,
        after: int = 0,
        types: Optional[Union[str, Sequence[str]]] = None,
        prefix: Optional[str] = None,
        min_priority: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[m.Event]:
        """Every logged event after ``after``, oldest first, page by page."""
        listing = _plans.events(
            ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, page_size=page_size
        )
        async with self._iterate(listing) as items:
            async for event in items:
                yield event

    async def iter_inbox(
        self, agent: Optional[str] = None, *, after: int = 0, page_size: Optional[int] = None
    ) -> AsyncIterator[m.Event]:
        """Every item of an agent's inbox after ``after``, page by page."""
        async with self._iterate(_plans.inbox(self, agent, after=after, page_size=page_size)) as items:
            async for event in items:
                yield event

    async def iter_contexts(self, *, page_size: Optional[int] = None) -> AsyncIterator[m.Context]:
        """Every context the caller may read."""
        async with self._iterate(_plans.contexts(page_size=page_size)) as items:
            async for context in items:
                yield context

    async def iter_agents(
        self, *, status: Optional[str] = None, capability: Optional[str] = None, page_size: Optional[int] = None
    ) -> AsyncIterator[m.Agent]:
        """Every registered agent (optionally by status or capability)."""
        async with self._iterate(_plans.agents(status=status, capability=capability, page_size=page_size)) as items:
            async for agent in items:
                yield agent

    # --- helpers -------------------------------------------------------------

    async def get_or_none(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> Optional[m.Entry]:
        """The entry, or ``None`` when it does not exist (remembered as missing: see :meth:`put`)."""
        return await self._drive(_plans.get_or_none(self._reads, ctx, key, at=at, as_of=as_of))

    async def update(
        self,
        ctx: str,
        key: str,
        fn: Callable[[Any], Any],
        *,
        retries: int = 16,
        fencing: Optional[Fencing] = None,
        **meta: Any,
    ) -> m.Entry:
        """Read-modify-write an entry without losing concurrent writes (see :meth:`ctxmesh.Client.update`).

        ``fn`` may be a plain function or a coroutine function.
        """
        return await self._drive(
            _plans.update(ctx, key, fn, retries=retries, fencing=fencing, meta=meta, reads=self._reads)
        )

    def lock(
        self,
        ctx: str,
        name: str,
        *,
        ttl_ms: int = 30_000,
        wait_ms: int = 10_000,
        refresh: bool = False,
    ) -> "AsyncHeldLock":
        """A lock as an async context manager (see :meth:`ctxmesh.Client.lock`)::

        async with client.lock("launch", "plan") as lock:
            await client.put("launch", "plan", plan, fencing=lock)
        """
        return AsyncHeldLock(self, ctx, name, ttl_ms=ttl_ms, wait_ms=wait_ms, refresh=refresh)

    # --- the API (each method mirrors the one of ctxmesh.Client) ----------------

    # --- operations ----------------------------------------------------------

    async def healthz(self) -> Dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok"}`` while the server runs."""
        return await self._run(_api.healthz())

    async def readyz(self) -> Dict[str, Any]:
        """``GET /readyz``: ``{"status": "ready"}`` when the store answers (else ``Unavailable``)."""
        return await self._run(_api.readyz())

    async def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI document."""
        return await self._run(_api.openapi())

    async def metrics(self) -> str:
        """The Prometheus metrics text."""
        return await self._run(_api.metrics())

    # --- contexts ------------------------------------------------------------

    async def create_context(
        self,
        id: str,
        *,
        policy: Optional[Mapping[str, Any]] = None,
        schemas: Optional[Mapping[str, Any]] = None,
        retention: Optional[Mapping[str, Any]] = None,
        labels: Optional[Mapping[str, str]] = None,
        mesh: Optional[Mapping[str, Any]] = None,
        parent: Optional[str] = None,
        inherit: Optional[Sequence[str]] = None,
        override: Optional[Mapping[str, Any]] = None,
        isolate: Optional[Sequence[str]] = None,
    ) -> m.Context:
        """Creates a context (``AlreadyExists`` when the id is taken).

        ``parent`` with ``inherit`` / ``override`` / ``isolate`` creates a
        child context holding (some of) the parent's entries.
        """
        return await self._run(
            _api.create_context(
                id,
                policy=policy,
                schemas=schemas,
                retention=retention,
                labels=labels,
                mesh=mesh,
                parent=parent,
                inherit=inherit,
                override=override,
                isolate=isolate,
            )
        )

    async def list_contexts(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> m.ContextPage:
        """One page of the contexts the caller may read (see :meth:`iter_contexts`)."""
        return await self._run(_api.list_contexts(limit=limit, cursor=cursor))

    async def get_context(self, ctx: str) -> m.Context:
        """A context's settings and counters (its current ``revision``...)."""
        return await self._run(_api.get_context(ctx))

    async def update_context(
        self,
        ctx: str,
        *,
        policy: Optional[Mapping[str, Any]] = None,
        schemas: Optional[Mapping[str, Any]] = None,
        retention: Optional[Mapping[str, Any]] = None,
        labels: Optional[Mapping[str, str]] = None,
        mesh: Optional[Mapping[str, Any]] = None,
    ) -> m.Context:
        """Replaces the given settings of a context (each one given is replaced whole)."""
        return await self._run(
            _api.update_context(ctx, policy=policy, schemas=schemas, retention=retention, labels=labels, mesh=mesh)
        )

    async def delete_context(self, ctx: str) -> None:
        """Deletes a context with its entries, history and events."""
        return await self._run(_api.delete_context(ctx))

    async def compact(self, ctx: str) -> Any:
        """Applies the context's retention policy now; returns what was compacted (or ``None``)."""
        return await self._run(_api.compact(ctx))

    async def put_context_map(
        self, ctx: str, agents: Mapping[str, Mapping[str, Any]], *, workflow: Optional[Sequence[str]] = None
    ) -> m.ContextMapView:
        """Sets the context's map, as seed 001 writes it (admin only).

        ``agents`` maps each agent id to its ``needs`` and ``produces``: a
        plain list of names, or kinds, tags, key patterns and names. Agents
        not yet registered are registered (their tokens are in the answer,
        this once); the context's workflow becomes the agents' order (or
        ``workflow``). Access is granted apart (:meth:`grant`).
        """
        return await self._run(_api.put_context_map(ctx, agents, workflow=workflow))

    async def get_context_map(self, ctx: str) -> m.ContextMapView:
        """The context's workflow and what each of its agents needs and produces."""
        return await self._run(_api.get_context_map(ctx))

    # --- entries -------------------------------------------------------------

    async def get(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> m.Entry:
        """One entry, now, as of revision ``at``, or as of time ``as_of`` (``NotFound`` if absent).

        A read of the entry as it is now is remembered (per asyncio task): a later
        write of it by this client carries the revision read (see
        :meth:`put`).
        """
        return await self._drive(_plans.get(self._reads, ctx, key, at=at, as_of=as_of))

    async def put(
        self,
        ctx: str,
        key: str,
        value: JSON,
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        if_none_match: bool = False,
        force: bool = False,
        fencing: Optional[Fencing] = None,
        kind: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        confidence: Optional[float] = None,
        priority: Optional[str] = None,
        depends_on: Optional[Sequence[str]] = None,
        relevance: Optional[Mapping[str, float]] = None,
        expires_at: Optional[Union[datetime, str]] = None,
        ttl_ms: Optional[int] = None,
        confidential: Optional[bool] = None,
        vclock: Optional[Mapping[str, int]] = None,
    ) -> m.Entry:
        """Creates or replaces an entry (its value and all its metadata).

        A ``put`` after a ``get`` (or ``get_or_none``) of the same entry in
        the same asyncio task carries the revision read, as an ORM's version
        column does: when someone else wrote the entry since, the write is
        refused with :class:`~ctxmesh.PreconditionFailed` instead of
        silently overwriting theirs (read again, or use :meth:`update`). An
        entry read as missing is written only if it is still missing. An
        entry this task never read (nor wrote) is written as it is.

        Args:
            value: the value, JSON as given (a ``set``, ``bytes`` or a
                ``datetime`` raise ``TypeError``: convert them first).
            if_match: write only if the entry is still at this revision (an
                int, or the entry read), or ``"*"``: only if it exists. A
                stale one raises :class:`~ctxmesh.PreconditionFailed` (with
                ``.current``) under the default ``reject`` policy. It
                replaces the revision remembered from a read.
            if_none_match: create only if the entry does not exist.
            force: write whatever was read before (a blind write).
            fencing: a held lock (or ``(name, token)``): the write is refused
                with :class:`~ctxmesh.Fenced` once a newer token of that lock
                was issued; a lock known to be lost raises
                :class:`~ctxmesh.LockLostError` before sending.
            kind, tags, confidence, priority, depends_on, relevance,
            expires_at, ttl_ms, confidential: the entry's metadata
            (``tags`` and ``depends_on`` are lists of strings).
            vclock: the version vector the write is based on (a causal
                precondition).

        Returns:
            the entry as written. ``entry.conflict`` tells when the
            context's policy settled a stale write; a write kept aside as a
            pending conflict (``manual`` policy) raises
            :class:`~ctxmesh.ConflictPending`.
        """
        build = functools.partial(
            _api.put,
            ctx,
            key,
            value,
            fencing=fencing,
            kind=kind,
            tags=tags,
            confidence=confidence,
            priority=priority,
            depends_on=depends_on,
            relevance=relevance,
            expires_at=expires_at,
            ttl_ms=ttl_ms,
            confidential=confidential,
            vclock=vclock,
        )
        return await self._drive(
            _plans.write(
                self._reads,
                ctx,
                key,
                build,
                if_match=if_match,
                if_none_match=if_none_match,
                force=force,
                fencing=fencing,
            )
        )

    async def create(self, ctx: str, key: str, value: JSON, **meta: Any) -> m.Entry:
        """Creates an entry only if it does not exist (``PreconditionFailed`` otherwise)."""
        return await self.put(ctx, key, value, if_none_match=True, **meta)

    async def merge_patch(
        self,
        ctx: str,
        key: str,
        patch: Mapping[str, Any],
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        force: bool = False,
        fencing: Optional[Fencing] = None,
    ) -> m.Entry:
        """Applies a JSON Merge Patch (RFC 7386) to an entry's value; metadata is kept.

        Like :meth:`put`, it carries the revision this task last read the
        entry at, unless ``if_match`` or ``force=True`` is given.
        """
        build = functools.partial(_api.merge_patch, ctx, key, patch, fencing=fencing)
        return await self._drive(
            _plans.write(self._reads, ctx, key, build, if_match=if_match, force=force, fencing=fencing)
        )

    async def json_patch(
        self,
        ctx: str,
        key: str,
        operations: Sequence[Mapping[str, Any]],
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        force: bool = False,
        fencing: Optional[Fencing] = None,
    ) -> m.Entry:
        """Applies a JSON Patch (RFC 6902) to an entry's value; metadata is kept.

        Like :meth:`put`, it carries the revision this task last read the
        entry at, unless ``if_match`` or ``force=True`` is given.
        """
        build = functools.partial(_api.json_patch, ctx, key, operations, fencing=fencing)
        return await self._drive(
            _plans.write(self._reads, ctx, key, build, if_match=if_match, force=force, fencing=fencing)
        )

    async def delete(
        self,
        ctx: str,
        key: str,
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        force: bool = False,
        fencing: Optional[Fencing] = None,
    ) -> m.Deleted:
        """Deletes an entry (``NotFound`` if absent); returns the deleting revision.

        Like :meth:`put`, it carries the revision this task last read the
        entry at, unless ``if_match`` or ``force=True`` is given.
        """
        build = functools.partial(_api.delete, ctx, key, fencing=fencing)
        return await self._drive(
            _plans.write(self._reads, ctx, key, build, if_match=if_match, force=force, fencing=fencing, deletes=True)
        )

    async def list_page(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.EntryPage:
        """One page of entries (see :meth:`list` and :meth:`iter_entries` for all of them)."""
        return await self._run(_api.list_page(ctx, prefix=prefix, at=at, as_of=as_of, limit=limit, cursor=cursor))

    async def txn(
        self,
        ctx: str,
        *,
        compare: Optional[Sequence[Mapping[str, Any]]] = None,
        success: Optional[Sequence[Mapping[str, Any]]] = None,
        failure: Optional[Sequence[Mapping[str, Any]]] = None,
        fencing: Optional[Fencing] = None,
    ) -> m.TxnResult:
        """Runs a transaction: if every comparison holds, ``success``, else ``failure``.

        Comparisons and operations are the API's JSON objects, e.g.
        ``{"key": "a", "revision": 7}`` and ``{"op": "put", "key": "a",
        "value": 1}``. A failed comparison is not an error:
        ``result.succeeded`` is ``False``.
        """
        return await self._run(_api.txn(ctx, compare=compare, success=success, failure=failure, fencing=fencing))

    async def document(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
    ) -> m.Document:
        """The entries as one nested JSON document (keys split on ``/``)."""
        return await self._run(_api.document(ctx, prefix=prefix, at=at, as_of=as_of))

    # --- history -------------------------------------------------------------

    async def entry_history(
        self, ctx: str, key: str, *, before: Optional[int] = None, limit: Optional[int] = None
    ) -> m.EntryHistory:
        """Versions of one entry, newest first (continue with ``before=next_before``)."""
        return await self._run(_api.entry_history(ctx, key, before=before, limit=limit))

    async def history(self, ctx: str, *, before: Optional[int] = None, limit: Optional[int] = None) -> m.CommitPage:
        """Commits of a context, newest first: revision, author, time, keys."""
        return await self._run(_api.history(ctx, before=before, limit=limit))

    async def diff(self, ctx: str, from_revision: int, to: Optional[int] = None) -> m.Diff:
        """Changes between two revisions (``to`` defaults to the current one; 0 is the empty state)."""
        return await self._run(_api.diff(ctx, from_revision, to))

    async def rollback(self, ctx: str, to: int) -> m.RollbackResult:
        """Writes the state of revision ``to`` as a new revision (history is kept)."""
        return await self._run(_api.rollback(ctx, to))

    async def fork(self, ctx: str, new_id: str, *, at: Optional[int] = None) -> m.Context:
        """A new context holding this one's entries as of ``at`` (default: now)."""
        return await self._run(_api.fork(ctx, new_id, at=at))

    async def events(
        self,
        ctx: str,
        *,
        after: int = 0,
        types: Optional[Union[str, Sequence[str]]] = None,
        prefix: Optional[str] = None,
        min_priority: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> m.EventPage:
        """One page of a context's event log after revision ``after`` (see :meth:`iter_events`)."""
        return await self._run(
            _api.events(ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, limit=limit)
        )

    async def send_message(
        self,
        body: JSON,
        *,
        context: Optional[str] = None,
        agents: Optional[Sequence[str]] = None,
        priority: Optional[str] = None,
        topic: Optional[str] = None,
    ) -> m.Event:
        """Sends a priority message to a context's log, to agents' inboxes, or both."""
        return await self._run(_api.send_message(body, context=context, agents=agents, priority=priority, topic=topic))

    # --- agents --------------------------------------------------------------

    async def register_agent(
        self,
        id: str,
        *,
        name: Optional[str] = None,
        capabilities: Optional[Mapping[str, Any]] = None,
        needs: Optional[Mapping[str, Any]] = None,
        produces: Optional[Mapping[str, Any]] = None,
        objective: Optional[str] = None,
        token_budget: Optional[int] = None,
        trust: Optional[str] = None,
        lease_ms: Optional[int] = None,
        labels: Optional[Mapping[str, str]] = None,
    ) -> m.RegisteredAgent:
        """Registers an agent (admin only); the answer carries its token, this once."""
        return await self._run(
            _api.register_agent(
                id,
                name=name,
                capabilities=capabilities,
                needs=needs,
                produces=produces,
                objective=objective,
                token_budget=token_budget,
                trust=trust,
                lease_ms=lease_ms,
                labels=labels,
            )
        )

    async def list_agents(
        self,
        *,
        status: Optional[str] = None,
        capability: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.AgentPage:
        """One page of registered agents (see :meth:`iter_agents`)."""
        return await self._run(_api.list_agents(status=status, capability=capability, limit=limit, cursor=cursor))

    async def get_agent(self, agent: str) -> m.Agent:
        """A registered agent."""
        return await self._run(_api.get_agent(agent))

    async def update_agent(
        self,
        agent: str,
        *,
        name: Optional[str] = None,
        capabilities: Optional[Mapping[str, Any]] = None,
        needs: Optional[Mapping[str, Any]] = None,
        produces: Optional[Mapping[str, Any]] = None,
        objective: Optional[str] = None,
        token_budget: Optional[int] = None,
        trust: Optional[str] = None,
        status: Optional[str] = None,
        lease_ms: Optional[int] = None,
        labels: Optional[Mapping[str, str]] = None,
    ) -> m.Agent:
        """Replaces the given fields of an agent (the agent itself or the admin; ``trust``: admin)."""
        return await self._run(
            _api.update_agent(
                agent,
                name=name,
                capabilities=capabilities,
                needs=needs,
                produces=produces,
                objective=objective,
                token_budget=token_budget,
                trust=trust,
                status=status,
                lease_ms=lease_ms,
                labels=labels,
            )
        )

    async def delete_agent(self, agent: str) -> None:
        """Unregisters an agent: its locks are released and its token ends."""
        return await self._run(_api.delete_agent(agent))

    async def whoami(self) -> m.Identity:
        """Who this client is to the server (see :meth:`ctxmesh.Client.whoami`)."""
        return await self._run(_api.whoami())

    async def heartbeat(self, agent: Optional[str] = None) -> m.Agent:
        """Renews an agent's lease (default: this client's agent)."""
        return await self._drive(_plans.for_agent(self, agent, _api.heartbeat))

    async def rotate_token(self, agent: Optional[str] = None) -> m.NewToken:
        """Issues a new token for an agent; the old one stops working at once."""
        return await self._drive(_plans.for_agent(self, agent, _api.rotate_token))

    async def revoke_token(self, agent: Optional[str] = None) -> None:
        """Revokes an agent's token."""
        return await self._drive(_plans.for_agent(self, agent, _api.revoke_token))

    async def inbox(
        self, agent: Optional[str] = None, *, after: int = 0, limit: Optional[int] = None
    ) -> m.StreamPage:
        """One page of an agent's inbox after sequence ``after`` (default agent: this client's)."""
        return await self._drive(_plans.for_agent(self, agent, lambda name: _api.inbox(name, after=after, limit=limit)))

    async def agent_events(self, *, after: int = 0, limit: Optional[int] = None) -> m.StreamPage:
        """One page of the agents feed (registrations, disconnections, unregistrations)."""
        return await self._run(_api.agent_events(after=after, limit=limit))

    # --- locks ---------------------------------------------------------------

    async def acquire_lock(self, ctx: str, name: str, *, ttl_ms: int = 30_000, wait_ms: int = 0) -> m.Lock:
        """Tries to acquire a lock, waiting up to ``wait_ms`` (at most 60000) for it.

        Returns the lock: ``acquired`` says whether the caller holds it now
        (with a new ``fencing_token``), else who does.
        """
        return await self._run(_api.acquire_lock(ctx, name, ttl_ms=ttl_ms, wait_ms=wait_ms))

    async def release_lock(self, ctx: str, name: str, *, lock_id: Optional[str] = None) -> m.Lock:
        """Releases a lock the caller holds (``NotHolder`` otherwise)."""
        return await self._run(_api.release_lock(ctx, name, lock_id=lock_id))

    async def refresh_lock(
        self, ctx: str, name: str, *, ttl_ms: int = 30_000, lock_id: Optional[str] = None
    ) -> m.Lock:
        """Extends a held lock's TTL; the fencing token stays."""
        return await self._run(_api.refresh_lock(ctx, name, ttl_ms=ttl_ms, lock_id=lock_id))

    async def get_lock(self, ctx: str, name: str) -> m.Lock:
        """A lock's state: holder, token, expiry."""
        return await self._run(_api.get_lock(ctx, name))

    async def list_locks(self, ctx: str) -> List[m.Lock]:
        """The locks of a context."""
        return await self._run(_api.list_locks(ctx))

    # --- handoffs ------------------------------------------------------------

    async def request_handoff(
        self,
        target: str,
        context: str,
        *,
        revision: Optional[int] = None,
        keys: Optional[Sequence[str]] = None,
        package: Any = None,
        session: Optional[str] = None,
        user_intent: Optional[str] = None,
        conversation_history: Optional[Sequence[Any]] = None,
        extracted_entities: Optional[Mapping[str, Any]] = None,
        deadline_ms: Optional[int] = None,
        note: Optional[str] = None,
    ) -> m.Handoff:
        """Hands work to ``target`` with its context: the context at ``revision`` and its ``keys``,
        an optional prepared ``package``, and the conversation so far. The target finds it in its
        inbox (``handoff.requested``)."""
        return await self._run(
            _api.request_handoff(
                target,
                context,
                revision=revision,
                keys=keys,
                package=package,
                session=session,
                user_intent=user_intent,
                conversation_history=conversation_history,
                extracted_entities=extracted_entities,
                deadline_ms=deadline_ms,
                note=note,
            )
        )

    async def get_handoff(self, id: str) -> m.Handoff:
        """A handoff."""
        return await self._run(_api.get_handoff(id))

    async def list_handoffs(
        self,
        *,
        context: Optional[str] = None,
        agent: Optional[str] = None,
        status: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.HandoffPage:
        """Handoffs of a context, or involving an agent (the caller itself unless admin).

        ``status`` filters by status; ``state`` is its former name.
        """
        return await self._run(
            _api.list_handoffs(context=context, agent=agent, status=status, state=state, limit=limit, cursor=cursor)
        )

    async def accept_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Accepts a handoff (its target only)."""
        return await self._run(_api.accept_handoff(id, outcome))

    async def reject_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Rejects a handoff (its target only); ``outcome`` keeps the reason."""
        return await self._run(_api.reject_handoff(id, outcome))

    async def complete_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Completes an accepted handoff (the target only); ``outcome`` keeps the result."""
        return await self._run(_api.complete_handoff(id, outcome))

    async def handoff_package(self, id: str, *, budget: Optional[int] = None) -> m.Package:
        """The handoff's context package: its keys at its revision, built for its target within ``budget`` tokens."""
        return await self._run(_api.handoff_package(id, budget=budget))

    # --- tasks ---------------------------------------------------------------

    async def assign_task(
        self,
        ctx: str,
        assignee: str,
        title: str,
        *,
        input: Any = None,
        priority: Optional[str] = None,
    ) -> m.Task:
        """Assigns a task in a context; it reaches the assignee's inbox (``task.assigned``)."""
        return await self._run(_api.assign_task(ctx, assignee, title, input=input, priority=priority))

    async def list_tasks(
        self,
        *,
        context: Optional[str] = None,
        agent: Optional[str] = None,
        status: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.TaskPage:
        """Tasks of a context, or of an agent (the caller itself unless admin).

        ``status`` filters by status; ``state`` is its former name.
        """
        return await self._run(
            _api.list_tasks(context=context, agent=agent, status=status, state=state, limit=limit, cursor=cursor)
        )

    async def list_context_tasks(
        self,
        ctx: str,
        *,
        agent: Optional[str] = None,
        status: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.TaskPage:
        """The tasks of one context (optionally of an agent, or with a ``status``; ``state``: its former name)."""
        return await self._run(
            _api.list_context_tasks(ctx, agent=agent, status=status, state=state, limit=limit, cursor=cursor)
        )

    async def get_task(self, id: str) -> m.Task:
        """A task."""
        return await self._run(_api.get_task(id))

    async def complete_task(self, id: str, output: Any = UNSET) -> m.Task:
        """Completes a task (its assignee only); the assigner's inbox gets ``task.completed``."""
        return await self._run(_api.complete_task(id, output))

    # --- access control ------------------------------------------------------

    async def grant(
        self,
        ctx: str,
        agents: Union[str, Sequence[str]],
        permissions: Sequence[str] = ("read",),
        *,
        expires_at: Optional[Union[datetime, str]] = None,
    ) -> List[m.Grant]:
        """Shares a context: ``permissions`` (read, write, share, admin) for ``agents``."""
        return await self._run(_api.grant(ctx, agents, permissions, expires_at=expires_at))

    async def list_grants(self, ctx: str) -> List[m.Grant]:
        """The grants of a context."""
        return await self._run(_api.list_grants(ctx))

    async def revoke(self, ctx: str, agent: str) -> None:
        """Ends an agent's grant on a context."""
        return await self._run(_api.revoke(ctx, agent))

    async def shared(self, agent: Optional[str] = None) -> List[m.Grant]:
        """The grants an agent holds (default: this client's agent)."""
        return await self._drive(_plans.for_agent(self, agent, _api.shared))

    async def add_policy(
        self,
        id: str,
        effect: str,
        *,
        contexts: Optional[str] = None,
        agents: Optional[str] = None,
        min_trust: Optional[str] = None,
        max_trust: Optional[str] = None,
        permissions: Optional[Sequence[str]] = None,
        keys: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        description: Optional[str] = None,
    ) -> List[m.PolicyRule]:
        """Adds (or replaces) an allow/deny rule (admin only); returns every rule."""
        return await self._run(
            _api.add_policy(
                id,
                effect,
                contexts=contexts,
                agents=agents,
                min_trust=min_trust,
                max_trust=max_trust,
                permissions=permissions,
                keys=keys,
                tags=tags,
                description=description,
            )
        )

    async def list_policies(self) -> List[m.PolicyRule]:
        """Every access policy rule."""
        return await self._run(_api.list_policies())

    async def delete_policy(self, id: str) -> None:
        """Removes an access policy rule."""
        return await self._run(_api.delete_policy(id))

    async def audit(
        self,
        *,
        agent: Optional[str] = None,
        context: Optional[str] = None,
        allowed: Optional[bool] = None,
        since: Optional[Union[datetime, str]] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> m.AuditPage:
        """Access decisions from the audit log (admin only)."""
        return await self._run(
            _api.audit(agent=agent, context=context, allowed=allowed, since=since, after=after, limit=limit)
        )

    # --- conflicts -----------------------------------------------------------

    async def list_conflicts(
        self,
        ctx: str,
        *,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.ConflictPage:
        """Conflict records of a context: ``pending`` (default), ``resolved`` or ``all``."""
        return await self._run(_api.list_conflicts(ctx, status=status, limit=limit, cursor=cursor))

    async def get_conflict(self, ctx: str, id: str) -> m.Conflict:
        """A conflict record with ``current``, the entry it met."""
        return await self._run(_api.get_conflict(ctx, id))

    async def resolve_conflict(
        self,
        ctx: str,
        id: str,
        *,
        choose: Optional[str] = None,
        value: Any = UNSET,
        if_match: Optional[int] = None,
    ) -> m.Conflict:
        """Resolves a pending conflict: ``choose="current"`` or ``"proposed"``, or a merged ``value``."""
        return await self._run(_api.resolve_conflict(ctx, id, choose=choose, value=value, if_match=if_match))

    # --- the context mesh ----------------------------------------------------

    async def package(
        self,
        ctx: str,
        agent: Optional[str] = None,
        *,
        budget: Optional[int] = None,
        encoding: Optional[str] = None,
        explain: Optional[bool] = None,
        compress: Optional[bool] = None,
        at: Optional[int] = None,
    ) -> m.Package:
        """An agent's context package (JSON): its relevant entries, ranked, within ``budget`` tokens."""
        return await self._run(
            _api.package(ctx, agent, budget=budget, encoding=encoding, explain=explain, compress=compress, at=at)
        )

    async def package_markdown(
        self,
        ctx: str,
        agent: Optional[str] = None,
        *,
        budget: Optional[int] = None,
        encoding: Optional[str] = None,
        compress: Optional[bool] = None,
        at: Optional[int] = None,
    ) -> m.MarkdownPackage:
        """An agent's context package as prompt-ready Markdown, with its token count."""
        return await self._run(
            _api.package_markdown(ctx, agent, budget=budget, encoding=encoding, compress=compress, at=at)
        )

    async def search(
        self,
        ctx: str,
        q: str,
        *,
        mode: Optional[str] = None,
        limit: Optional[int] = None,
        kind: Optional[str] = None,
        tags: Optional[Union[str, Sequence[str]]] = None,
        author: Optional[str] = None,
        since: Optional[Union[datetime, str]] = None,
        until: Optional[Union[datetime, str]] = None,
    ) -> m.SearchResult:
        """Searches a context: ``mode`` keyword, semantic or hybrid; filters by kind, tags, author, time."""
        return await self._run(
            _api.search(ctx, q, mode=mode, limit=limit, kind=kind, tags=tags, author=author, since=since, until=until)
        )

    async def consensus(
        self,
        ctx: str,
        key: str,
        proposals: Sequence[Mapping[str, Any]],
        *,
        min_agreement: Optional[float] = None,
    ) -> m.ConsensusOutcome:
        """Weighted consensus over proposals ``{"agent", "value", "confidence"}``.

        When the leading value's share reaches ``min_agreement`` it is
        written to ``key`` (``agreed``); otherwise a pending conflict is
        recorded (``conflict``).
        """
        return await self._run(_api.consensus(ctx, key, proposals, min_agreement=min_agreement))

    async def record_decision(
        self, ctx: str, decision: JSON, read_revision: int, *, key: Optional[str] = None
    ) -> m.DecisionRecord:
        """Records a decision with the revision it was based on; ``replay`` rebuilds the package seen."""
        return await self._run(_api.record_decision(ctx, decision, read_revision, key=key))


class AsyncHeldLock(_plans.LockCore[AsyncClient]):
    """A lock held through ``async with client.lock(...)`` (see :class:`ctxmesh.HeldLock`).

    ``lost_event`` is an ``asyncio.Event``, set when the lock is lost.
    """

    def __init__(
        self, client: AsyncClient, ctx: str, name: str, *, ttl_ms: int, wait_ms: int, refresh: bool = False
    ) -> None:
        super().__init__(client, ctx, name, ttl_ms=ttl_ms, wait_ms=wait_ms, refresh=refresh)
        self.lost_event = asyncio.Event()
        self._task: Optional["asyncio.Task[None]"] = None

    def _lost_signal(self) -> None:
        self.lost_event.set()

    async def acquire(self) -> m.Lock:
        """Acquires the lock, waiting up to ``wait_ms``; raises :class:`~ctxmesh.LockNotAcquired`."""
        lock = await self.client._drive(self._acquiring())
        self.lost_event.clear()
        if self.auto_refresh:
            self._task = asyncio.create_task(self._refresh_loop())
        return lock

    async def refresh(self, ttl_ms: Optional[int] = None) -> m.Lock:
        """Extends the lock's TTL now (:class:`~ctxmesh.LockLostError` when it was lost)."""
        return await self.client._drive(self._refreshing(ttl_ms))

    async def release(self) -> None:
        """Releases the lock (:class:`~ctxmesh.LockLostError` when it was lost meanwhile)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        await self.client._drive(self._releasing())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            if not await self.client._drive(self._refresh_round()):
                return

    async def __aenter__(self) -> "AsyncHeldLock":
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        if exc_type is None:
            await self.release()
            return
        try:
            await self.release()
        except CtxmeshError:
            pass  # the exception on its way says more


async def _keep_alive(client: AsyncClient, keepalive: _plans.Keepalive) -> None:
    """The keepalive task: a heartbeat every third of the lease until the client closes."""
    # The task started with a copy of its starter's context: its heartbeats
    # are not part of the trace that was current then.
    _tracing.detach_trace()
    interval: Optional[float] = 0.0
    while interval is not None:
        await asyncio.sleep(interval)
        try:
            interval = await client._drive(keepalive.round())
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - never ends the task with a traceback
            interval = keepalive.interval
