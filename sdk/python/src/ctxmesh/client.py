"""The synchronous ctxmesh client.

Every request is built in :mod:`ctxmesh._api` and every operation of more
than one request is a plan of :mod:`ctxmesh._plans`, shared with
:class:`~ctxmesh.AsyncClient`; this module sends them with blocking I/O.
"""

from __future__ import annotations

import functools
import threading
import weakref
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Type, TypeVar, Union

import httpx

from . import _api, _plans, _tracing
from . import models as m
from ._api import UNSET, Call
from .errors import CtxmeshError, TransportError
from .watch import Watch, WatchOptions

__all__ = ["Client", "HeldLock"]

T = TypeVar("T")

JSON = Any
Fencing = Union[str, "m.Lock", "HeldLock", "tuple[str, int]"]


class Client(_plans.ClientCore):
    """A synchronous client of a ctxmesh server.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:7600`` (default:
            ``$CTXMESH_URL``, else ``http://127.0.0.1:7600``).
        token: a bearer token, the admin's or an agent's (default:
            ``$CTXMESH_TOKEN``, else the token saved for ``base_url`` in the
            per-user credentials file that ``ctxmesh login`` and ``ctxmesh
            serve`` write, ``~/.config/ctxmesh/credentials.json``).
        agent_id: the agent this client acts as, sent as ``X-Agent-Id``
            (default: ``$CTXMESH_AGENT``). With an agent token the server
            knows the agent already: methods whose agent defaults to this
            client's ask the server once (:meth:`whoami`) when it is not
            given. With the admin token it names the agent the admin acts
            for.
        timeout: seconds for each request (watches use their own read
            timeout).
        headers: extra headers for every request.
        transport: an ``httpx`` transport (for tests and proxies).
        ca_file: a PEM file of CA certificates to trust for an ``https://``
            server, beside the system's (default: ``$CTXMESH_CA_FILE``, as
            the CLI).
        keepalive: while the client is open, keep its agent's lease alive
            (a heartbeat every third of the lease, from a daemon thread), so
            that the agent stays connected and keeps its locks however long
            it works between requests. Only a client acting as an agent (an
            agent's token, or ``agent_id``) has a lease to keep; ``False``
            leaves heartbeats to the caller (:meth:`heartbeat`).

    The token is stripped of surrounding whitespace (a file's trailing
    newline); it never appears in an exception, a log line or ``repr``.

    Use it as a context manager, or call :meth:`close`::

        with ctxmesh.Client("http://127.0.0.1:7600", token=token) as c:
            c.put("launch", "brief", {"goal": "ship"})
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        agent_id: Optional[str] = None,
        *,
        timeout: float = 30.0,
        headers: Optional[Mapping[str, str]] = None,
        transport: Optional[httpx.BaseTransport] = None,
        keepalive: bool = True,
        ca_file: Optional[str] = None,
        _http: Optional[httpx.Client] = None,
    ) -> None:
        super().__init__(
            base_url, token, agent_id, timeout=timeout, headers=headers, keepalive=keepalive,
            reads=_plans.ThreadReads(),
            ca_file=ca_file,
        )
        self._owns_http = _http is None
        self._http = _http or httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, verify=self._verify()
        )
        self._stop_keepalive = threading.Event()
        self._keepalive_thread: Optional[threading.Thread] = None
        if self._keepalive is not None:
            self._keepalive_thread = threading.Thread(
                target=_keep_alive,
                args=(weakref.ref(self), self._keepalive, self._stop_keepalive),
                name="ctxmesh-keepalive",
                daemon=True,
            )
            self._keepalive_thread.start()

    # --- plumbing ------------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stops the keepalive and closes the connections (not those of the client this one was derived from)."""
        self._stop_keepalive.set()
        thread, self._keepalive_thread = self._keepalive_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.timeout)
        if self._owns_http:
            self._http.close()

    def as_agent(self, agent_id: str, token: Optional[str] = None) -> "Client":
        """A client acting as ``agent_id`` (with ``token``, or this client's), sharing connections."""
        return Client(**self._settings_as(agent_id, token), _http=self._http)

    def _run(self, call: Call[T]) -> T:
        """Sends one request and reads its answer."""
        args = call.request_args()
        args["headers"] = self._headers(args["headers"])
        failure: Optional[str] = None
        try:
            response = self._http.request(call.method, call.path, **args)
        except (httpx.TransportError, httpx.InvalidURL) as e:
            # Raised outside the handler, so that no chained exception
            # carries the request (or its Authorization header).
            failure = _api.transport_failure(call.method, call.path, e, self.token)
        if failure is not None:
            raise TransportError(failure)
        _api.check(response)
        return call.parse(response)

    def _drive(self, plan: _plans.Plan[T]) -> T:
        """Runs a plan of requests."""
        return _plans.run_sync(plan, self._run)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = UNSET,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Sends any request to the API and returns the decoded JSON answer (``None`` when empty)."""
        return self._run(_api.request(method, path, params=params, json=json, headers=headers))

    # --- streams -------------------------------------------------------------

    def _watch(self, spec: _plans.WatchSpec) -> Watch:
        @contextmanager
        def open_stream(after: Optional[int]) -> Iterator[httpx.Response]:
            call = self._drive(spec.connect(after))
            args = call.request_args()
            timeout = httpx.Timeout(self.timeout, read=spec.options.read_timeout)
            with self._http.stream(
                call.method, call.path, params=args["params"], headers=self._headers(args["headers"]), timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _api.check(response)
                yield response

        make_start = spec.start

        def start() -> int:
            assert make_start is not None
            return self._drive(make_start())

        return Watch(
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
    ) -> Watch:
        """Watches a context's events (SSE), resuming by itself after disconnects.

        Args:
            ctx: the context.
            after: deliver the events of revisions after this one (default:
                the context's current revision, so only new events).
            types: only these event types (``"context.updated"``...).
            prefix: only events whose key starts with this (events without a
                key pass).
            min_priority: only events of at least this priority.
            order: ``"revision"`` (default) or ``"priority"``.
            include_progress: also yield ``progress`` bookmarks.
            reconnect: resume after a disconnect (default) or end.
            max_retries: consecutive failed reconnections before raising.
            read_timeout: seconds of silence after which the connection is
                replaced.

        Returns:
            a :class:`~ctxmesh.watch.Watch`: iterate it, and close it (or use
            ``with``) when done::

                with client.watch("launch", types="context.updated") as events:
                    for event in events:
                        print(event.revision, event.key)
        """
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
    ) -> Watch:
        """Watches an agent's inbox (default: this client's agent), resuming by itself.

        Positions are the inbox's sequence numbers (``event.seq``); without
        ``after`` the watch starts at the inbox's current end.
        """
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
    ) -> Watch:
        """Watches the agents feed (registrations, disconnections), from ``after`` (its sequence)."""
        options = WatchOptions(include_progress=include_progress, reconnect=reconnect, read_timeout=read_timeout)
        return self._watch(_plans.watch_agents(after=after, options=options))

    # --- iterators over pages ------------------------------------------------

    def iter_entries(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[m.Entry]:
        """Every entry (under ``prefix``), following cursors; all pages read one snapshot."""
        yield from _plans.iterate_sync(
            _plans.entries(ctx, prefix=prefix, at=at, as_of=as_of, page_size=page_size), self._run
        )

    def list(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        page_size: Optional[int] = None,
    ) -> List[m.Entry]:
        """All entries (under ``prefix``), optionally as of a revision or time, every page fetched."""
        return self._drive(_plans.collect(_plans.entries(ctx, prefix=prefix, at=at, as_of=as_of, page_size=page_size)))

    def iter_events(
        self,
        ctx: str,
        *,
        after: int = 0,
        types: Optional[Union[str, Sequence[str]]] = None,
        prefix: Optional[str] = None,
        min_priority: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[m.Event]:
        """Every logged event after ``after``, oldest first, page by page (no waiting for new ones)."""
        yield from _plans.iterate_sync(
            _plans.events(
                ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, page_size=page_size
            ),
            self._run,
        )

    def iter_inbox(
        self, agent: Optional[str] = None, *, after: int = 0, page_size: Optional[int] = None
    ) -> Iterator[m.Event]:
        """Every item of an agent's inbox after ``after``, page by page."""
        yield from _plans.iterate_sync(_plans.inbox(self, agent, after=after, page_size=page_size), self._run)

    def iter_contexts(self, *, page_size: Optional[int] = None) -> Iterator[m.Context]:
        """Every context the caller may read."""
        yield from _plans.iterate_sync(_plans.contexts(page_size=page_size), self._run)

    def iter_agents(
        self, *, status: Optional[str] = None, capability: Optional[str] = None, page_size: Optional[int] = None
    ) -> Iterator[m.Agent]:
        """Every registered agent (optionally by status or capability)."""
        yield from _plans.iterate_sync(
            _plans.agents(status=status, capability=capability, page_size=page_size), self._run
        )

    # --- helpers -------------------------------------------------------------

    def get_or_none(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> Optional[m.Entry]:
        """The entry, or ``None`` when it does not exist (remembered as missing: see :meth:`put`)."""
        return self._drive(_plans.get_or_none(self._reads, ctx, key, at=at, as_of=as_of))

    def update(
        self,
        ctx: str,
        key: str,
        fn: Callable[[Any], Any],
        *,
        retries: int = 16,
        fencing: Optional[Fencing] = None,
        **meta: Any,
    ) -> m.Entry:
        """Read-modify-write an entry without losing concurrent writes.

        Reads the entry, calls ``fn`` with a copy of its value (``None`` when
        the entry does not exist), and writes the result with ``If-Match``
        (``If-None-Match: *`` for a new entry). When another write came
        first (``412``), ``fn`` runs again on the newer value, up to
        ``retries`` times, with a short randomized backoff. The entry's
        metadata (kind, tags, priority...) is kept; keyword arguments
        (``kind=``, ``tags=``...) replace fields of it.

        Returns:
            the entry as written.

        Raises:
            UpdateConflict: the entry kept changing under the update.
        """
        return self._drive(_plans.update(ctx, key, fn, retries=retries, fencing=fencing, meta=meta, reads=self._reads))

    def lock(
        self,
        ctx: str,
        name: str,
        *,
        ttl_ms: int = 30_000,
        wait_ms: int = 10_000,
        refresh: bool = False,
    ) -> "HeldLock":
        """A lock as a context manager: acquired on entry, released on exit.

        Args:
            ctx: the context the lock lives in.
            name: the lock's name.
            ttl_ms: how long the lock lives without a refresh.
            wait_ms: how long to wait for a lock held by another agent
                (0: do not wait); :class:`~ctxmesh.LockNotAcquired` when it
                stays held.
            refresh: refresh the lock in the background (every third of its
                TTL) while it is held.

        Writes under the lock pass ``fencing=lock``, so that a late write of
        a holder that lost the lock is refused (``Fenced``)::

            with client.lock("launch", "plan") as lock:
                client.put("launch", "plan", plan, fencing=lock)

        The lock also lasts only as long as the agent's lease: the client
        keeps the lease alive while it is open (unless ``keepalive=False``).
        A lock lost while held (its refresh or release refused, a write
        under it fenced, the lease lapsed and the server released it) sets
        ``lock.lost``; its next use, and leaving the ``with`` block, raise
        :class:`~ctxmesh.LockLostError`.
        """
        return HeldLock(self, ctx, name, ttl_ms=ttl_ms, wait_ms=wait_ms, refresh=refresh)

    # --- the API (ctxmesh.AsyncClient mirrors every method below) -----------

    # --- operations ----------------------------------------------------------

    def healthz(self) -> Dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok"}`` while the server runs."""
        return self._run(_api.healthz())

    def readyz(self) -> Dict[str, Any]:
        """``GET /readyz``: ``{"status": "ready"}`` when the store answers (else ``Unavailable``)."""
        return self._run(_api.readyz())

    def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI document."""
        return self._run(_api.openapi())

    def metrics(self) -> str:
        """The Prometheus metrics text."""
        return self._run(_api.metrics())

    # --- contexts ------------------------------------------------------------

    def create_context(
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
        return self._run(
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

    def list_contexts(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> m.ContextPage:
        """One page of the contexts the caller may read (see :meth:`iter_contexts`)."""
        return self._run(_api.list_contexts(limit=limit, cursor=cursor))

    def get_context(self, ctx: str) -> m.Context:
        """A context's settings and counters (its current ``revision``...)."""
        return self._run(_api.get_context(ctx))

    def update_context(
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
        return self._run(
            _api.update_context(ctx, policy=policy, schemas=schemas, retention=retention, labels=labels, mesh=mesh)
        )

    def delete_context(self, ctx: str) -> None:
        """Deletes a context with its entries, history and events."""
        return self._run(_api.delete_context(ctx))

    def compact(self, ctx: str) -> Any:
        """Applies the context's retention policy now; returns what was compacted (or ``None``)."""
        return self._run(_api.compact(ctx))

    def put_context_map(
        self, ctx: str, agents: Mapping[str, Mapping[str, Any]], *, workflow: Optional[Sequence[str]] = None
    ) -> m.ContextMapView:
        """Sets the context's map, as seed 001 writes it (admin only).

        ``agents`` maps each agent id to its ``needs`` and ``produces``: a
        plain list of names, or kinds, tags, key patterns and names. Agents
        not yet registered are registered (their tokens are in the answer,
        this once); the context's workflow becomes the agents' order (or
        ``workflow``). Access is granted apart (:meth:`grant`).
        """
        return self._run(_api.put_context_map(ctx, agents, workflow=workflow))

    def get_context_map(self, ctx: str) -> m.ContextMapView:
        """The context's workflow and what each of its agents needs and produces."""
        return self._run(_api.get_context_map(ctx))

    # --- entries -------------------------------------------------------------

    def get(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> m.Entry:
        """One entry, now, as of revision ``at``, or as of time ``as_of`` (``NotFound`` if absent).

        A read of the entry as it is now is remembered (per thread): a later
        write of it by this client carries the revision read (see
        :meth:`put`).
        """
        return self._drive(_plans.get(self._reads, ctx, key, at=at, as_of=as_of))

    def put(
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
        the same thread carries the revision read, as an ORM's version
        column does: when someone else wrote the entry since, the write is
        refused with :class:`~ctxmesh.PreconditionFailed` instead of
        silently overwriting theirs (read again, or use :meth:`update`). An
        entry read as missing is written only if it is still missing. An
        entry this thread never read (nor wrote) is written as it is.

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
        return self._drive(
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

    def create(self, ctx: str, key: str, value: JSON, **meta: Any) -> m.Entry:
        """Creates an entry only if it does not exist (``PreconditionFailed`` otherwise)."""
        return self.put(ctx, key, value, if_none_match=True, **meta)

    def merge_patch(
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

        Like :meth:`put`, it carries the revision this thread last read the
        entry at, unless ``if_match`` or ``force=True`` is given.
        """
        build = functools.partial(_api.merge_patch, ctx, key, patch, fencing=fencing)
        return self._drive(
            _plans.write(self._reads, ctx, key, build, if_match=if_match, force=force, fencing=fencing)
        )

    def json_patch(
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

        Like :meth:`put`, it carries the revision this thread last read the
        entry at, unless ``if_match`` or ``force=True`` is given.
        """
        build = functools.partial(_api.json_patch, ctx, key, operations, fencing=fencing)
        return self._drive(
            _plans.write(self._reads, ctx, key, build, if_match=if_match, force=force, fencing=fencing)
        )

    def delete(
        self,
        ctx: str,
        key: str,
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        force: bool = False,
        fencing: Optional[Fencing] = None,
    ) -> m.Deleted:
        """Deletes an entry (``NotFound`` if absent); returns the deleting revision.

        Like :meth:`put`, it carries the revision this thread last read the
        entry at, unless ``if_match`` or ``force=True`` is given.
        """
        build = functools.partial(_api.delete, ctx, key, fencing=fencing)
        return self._drive(
            _plans.write(self._reads, ctx, key, build, if_match=if_match, force=force, fencing=fencing, deletes=True)
        )

    def list_page(
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
        return self._run(_api.list_page(ctx, prefix=prefix, at=at, as_of=as_of, limit=limit, cursor=cursor))

    def txn(
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
        return self._run(_api.txn(ctx, compare=compare, success=success, failure=failure, fencing=fencing))

    def document(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
    ) -> m.Document:
        """The entries as one nested JSON document (keys split on ``/``)."""
        return self._run(_api.document(ctx, prefix=prefix, at=at, as_of=as_of))

    # --- history -------------------------------------------------------------

    def entry_history(
        self, ctx: str, key: str, *, before: Optional[int] = None, limit: Optional[int] = None
    ) -> m.EntryHistory:
        """Versions of one entry, newest first (continue with ``before=next_before``)."""
        return self._run(_api.entry_history(ctx, key, before=before, limit=limit))

    def history(self, ctx: str, *, before: Optional[int] = None, limit: Optional[int] = None) -> m.CommitPage:
        """Commits of a context, newest first: revision, author, time, keys."""
        return self._run(_api.history(ctx, before=before, limit=limit))

    def diff(self, ctx: str, from_revision: int, to: Optional[int] = None) -> m.Diff:
        """Changes between two revisions (``to`` defaults to the current one; 0 is the empty state)."""
        return self._run(_api.diff(ctx, from_revision, to))

    def rollback(self, ctx: str, to: int) -> m.RollbackResult:
        """Writes the state of revision ``to`` as a new revision (history is kept)."""
        return self._run(_api.rollback(ctx, to))

    def fork(self, ctx: str, new_id: str, *, at: Optional[int] = None) -> m.Context:
        """A new context holding this one's entries as of ``at`` (default: now)."""
        return self._run(_api.fork(ctx, new_id, at=at))

    def events(
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
        return self._run(
            _api.events(ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, limit=limit)
        )

    def send_message(
        self,
        body: JSON,
        *,
        context: Optional[str] = None,
        agents: Optional[Sequence[str]] = None,
        priority: Optional[str] = None,
        topic: Optional[str] = None,
    ) -> m.Event:
        """Sends a priority message to a context's log, to agents' inboxes, or both."""
        return self._run(_api.send_message(body, context=context, agents=agents, priority=priority, topic=topic))

    # --- agents --------------------------------------------------------------

    def register_agent(
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
        return self._run(
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

    def list_agents(
        self,
        *,
        status: Optional[str] = None,
        capability: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.AgentPage:
        """One page of registered agents (see :meth:`iter_agents`)."""
        return self._run(_api.list_agents(status=status, capability=capability, limit=limit, cursor=cursor))

    def get_agent(self, agent: str) -> m.Agent:
        """A registered agent."""
        return self._run(_api.get_agent(agent))

    def update_agent(
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
        return self._run(
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

    def delete_agent(self, agent: str) -> None:
        """Unregisters an agent: its locks are released and its token ends."""
        return self._run(_api.delete_agent(agent))

    def whoami(self) -> m.Identity:
        """Who this client is to the server: the agent of its token (or the one it names), and whether it is admin."""
        return self._run(_api.whoami())

    def heartbeat(self, agent: Optional[str] = None) -> m.Agent:
        """Renews an agent's lease (default: this client's agent)."""
        return self._drive(_plans.for_agent(self, agent, _api.heartbeat))

    def rotate_token(self, agent: Optional[str] = None) -> m.NewToken:
        """Issues a new token for an agent; the old one stops working at once."""
        return self._drive(_plans.for_agent(self, agent, _api.rotate_token))

    def revoke_token(self, agent: Optional[str] = None) -> None:
        """Revokes an agent's token."""
        return self._drive(_plans.for_agent(self, agent, _api.revoke_token))

    def inbox(
        self, agent: Optional[str] = None, *, after: int = 0, limit: Optional[int] = None
    ) -> m.StreamPage:
        """One page of an agent's inbox after sequence ``after`` (default agent: this client's)."""
        return self._drive(_plans.for_agent(self, agent, lambda name: _api.inbox(name, after=after, limit=limit)))

    def agent_events(self, *, after: int = 0, limit: Optional[int] = None) -> m.StreamPage:
        """One page of the agents feed (registrations, disconnections, unregistrations)."""
        return self._run(_api.agent_events(after=after, limit=limit))

    # --- locks ---------------------------------------------------------------

    def acquire_lock(self, ctx: str, name: str, *, ttl_ms: int = 30_000, wait_ms: int = 0) -> m.Lock:
        """Tries to acquire a lock, waiting up to ``wait_ms`` (at most 60000) for it.

        Returns the lock: ``acquired`` says whether the caller holds it now
        (with a new ``fencing_token``), else who does.
        """
        return self._run(_api.acquire_lock(ctx, name, ttl_ms=ttl_ms, wait_ms=wait_ms))

    def release_lock(self, ctx: str, name: str, *, lock_id: Optional[str] = None) -> m.Lock:
        """Releases a lock the caller holds (``NotHolder`` otherwise)."""
        return self._run(_api.release_lock(ctx, name, lock_id=lock_id))

    def refresh_lock(
        self, ctx: str, name: str, *, ttl_ms: int = 30_000, lock_id: Optional[str] = None
    ) -> m.Lock:
        """Extends a held lock's TTL; the fencing token stays."""
        return self._run(_api.refresh_lock(ctx, name, ttl_ms=ttl_ms, lock_id=lock_id))

    def get_lock(self, ctx: str, name: str) -> m.Lock:
        """A lock's state: holder, token, expiry."""
        return self._run(_api.get_lock(ctx, name))

    def list_locks(self, ctx: str) -> List[m.Lock]:
        """The locks of a context."""
        return self._run(_api.list_locks(ctx))

    # --- handoffs ------------------------------------------------------------

    def request_handoff(
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
        return self._run(
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

    def get_handoff(self, id: str) -> m.Handoff:
        """A handoff."""
        return self._run(_api.get_handoff(id))

    def list_handoffs(
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
        return self._run(
            _api.list_handoffs(context=context, agent=agent, status=status, state=state, limit=limit, cursor=cursor)
        )

    def accept_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Accepts a handoff (its target only)."""
        return self._run(_api.accept_handoff(id, outcome))

    def reject_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Rejects a handoff (its target only); ``outcome`` keeps the reason."""
        return self._run(_api.reject_handoff(id, outcome))

    def complete_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Completes an accepted handoff (the target only); ``outcome`` keeps the result."""
        return self._run(_api.complete_handoff(id, outcome))

    def handoff_package(self, id: str, *, budget: Optional[int] = None) -> m.Package:
        """The handoff's context package: its keys at its revision, built for its target within ``budget`` tokens."""
        return self._run(_api.handoff_package(id, budget=budget))

    # --- tasks ---------------------------------------------------------------

    def assign_task(
        self,
        ctx: str,
        assignee: str,
        title: str,
        *,
        input: Any = None,
        priority: Optional[str] = None,
    ) -> m.Task:
        """Assigns a task in a context; it reaches the assignee's inbox (``task.assigned``)."""
        return self._run(_api.assign_task(ctx, assignee, title, input=input, priority=priority))

    def list_tasks(
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
        return self._run(
            _api.list_tasks(context=context, agent=agent, status=status, state=state, limit=limit, cursor=cursor)
        )

    def list_context_tasks(
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
        return self._run(
            _api.list_context_tasks(ctx, agent=agent, status=status, state=state, limit=limit, cursor=cursor)
        )

    def get_task(self, id: str) -> m.Task:
        """A task."""
        return self._run(_api.get_task(id))

    def complete_task(self, id: str, output: Any = UNSET) -> m.Task:
        """Completes a task (its assignee only); the assigner's inbox gets ``task.completed``."""
        return self._run(_api.complete_task(id, output))

    # --- access control ------------------------------------------------------

    def grant(
        self,
        ctx: str,
        agents: Union[str, Sequence[str]],
        permissions: Sequence[str] = ("read",),
        *,
        expires_at: Optional[Union[datetime, str]] = None,
    ) -> List[m.Grant]:
        """Shares a context: ``permissions`` (read, write, share, admin) for ``agents``."""
        return self._run(_api.grant(ctx, agents, permissions, expires_at=expires_at))

    def list_grants(self, ctx: str) -> List[m.Grant]:
        """The grants of a context."""
        return self._run(_api.list_grants(ctx))

    def revoke(self, ctx: str, agent: str) -> None:
        """Ends an agent's grant on a context."""
        return self._run(_api.revoke(ctx, agent))

    def shared(self, agent: Optional[str] = None) -> List[m.Grant]:
        """The grants an agent holds (default: this client's agent)."""
        return self._drive(_plans.for_agent(self, agent, _api.shared))

    def add_policy(
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
        return self._run(
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

    def list_policies(self) -> List[m.PolicyRule]:
        """Every access policy rule."""
        return self._run(_api.list_policies())

    def delete_policy(self, id: str) -> None:
        """Removes an access policy rule."""
        return self._run(_api.delete_policy(id))

    def audit(
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
        return self._run(
            _api.audit(agent=agent, context=context, allowed=allowed, since=since, after=after, limit=limit)
        )

    # --- conflicts -----------------------------------------------------------

    def list_conflicts(
        self,
        ctx: str,
        *,
        status: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.ConflictPage:
        """Conflict records of a context: ``pending`` (default), ``resolved`` or ``all``."""
        return self._run(_api.list_conflicts(ctx, status=status, limit=limit, cursor=cursor))

    def get_conflict(self, ctx: str, id: str) -> m.Conflict:
        """A conflict record with ``current``, the entry it met."""
        return self._run(_api.get_conflict(ctx, id))

    def resolve_conflict(
        self,
        ctx: str,
        id: str,
        *,
        choose: Optional[str] = None,
        value: Any = UNSET,
        if_match: Optional[int] = None,
    ) -> m.Conflict:
        """Resolves a pending conflict: ``choose="current"`` or ``"proposed"``, or a merged ``value``."""
        return self._run(_api.resolve_conflict(ctx, id, choose=choose, value=value, if_match=if_match))

    # --- the context mesh ----------------------------------------------------

    def package(
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
        return self._run(
            _api.package(ctx, agent, budget=budget, encoding=encoding, explain=explain, compress=compress, at=at)
        )

    def package_markdown(
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
        return self._run(_api.package_markdown(ctx, agent, budget=budget, encoding=encoding, compress=compress, at=at))

    def search(
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
        return self._run(
            _api.search(ctx, q, mode=mode, limit=limit, kind=kind, tags=tags, author=author, since=since, until=until)
        )

    def consensus(
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
        return self._run(_api.consensus(ctx, key, proposals, min_agreement=min_agreement))

    def record_decision(
        self, ctx: str, decision: JSON, read_revision: int, *, key: Optional[str] = None
    ) -> m.DecisionRecord:
        """Records a decision with the revision it was based on; ``replay`` rebuilds the package seen."""
        return self._run(_api.record_decision(ctx, decision, read_revision, key=key))


class HeldLock(_plans.LockCore[Client]):
    """A lock held through ``with client.lock(...)``.

    Attributes:
        lock: the lock as last acquired or refreshed.
        lost: set when the lock turned out not to be held by this
            acquisition any more (a refresh or the release was refused, a
            write fenced with it was refused, or the agent's lease lapsed
            and the server released the lock); ``lost_reason`` says which.
        lost_event: a ``threading.Event`` set at the same time (to wait on
            from another thread).

    Once lost, the next use of the lock (``refresh``, ``release``,
    ``fencing=lock``, leaving the ``with`` block) raises
    :class:`~ctxmesh.LockLostError`.
    """

    def __init__(
        self, client: Client, ctx: str, name: str, *, ttl_ms: int, wait_ms: int, refresh: bool = False
    ) -> None:
        super().__init__(client, ctx, name, ttl_ms=ttl_ms, wait_ms=wait_ms, refresh=refresh)
        self.lost_event = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _lost_signal(self) -> None:
        self.lost_event.set()

    def acquire(self) -> m.Lock:
        """Acquires the lock, waiting up to ``wait_ms``; raises :class:`~ctxmesh.LockNotAcquired`."""
        lock = self.client._drive(self._acquiring())
        self.lost_event.clear()
        if self.auto_refresh:
            self._stop.clear()
            self._thread = threading.Thread(target=self._refresh_loop, name=f"ctxmesh-lock-{self.name}", daemon=True)
            self._thread.start()
        return lock

    def refresh(self, ttl_ms: Optional[int] = None) -> m.Lock:
        """Extends the lock's TTL now (:class:`~ctxmesh.LockLostError` when it was lost)."""
        return self.client._drive(self._refreshing(ttl_ms))

    def release(self) -> None:
        """Releases the lock (:class:`~ctxmesh.LockLostError` when it was lost meanwhile)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        self.client._drive(self._releasing())

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh_interval):
            if not self.client._drive(self._refresh_round()):
                return

    def __enter__(self) -> "HeldLock":
        self.acquire()
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        if exc_type is None:
            self.release()
            return
        try:
            self.release()
        except CtxmeshError:
            pass  # the exception on its way says more


def _keep_alive(ref: "weakref.ref[Client]", keepalive: _plans.Keepalive, stop: threading.Event) -> None:
    """The keepalive thread: a heartbeat every third of the lease until the client closes (or is collected)."""
    # Its heartbeats are no part of a caller's trace, even where a thread
    # starts with a copy of its starter's context.
    _tracing.detach_trace()
    interval: Optional[float] = 0.0
    while interval is not None and not stop.wait(interval):
        client = ref()
        if client is None:
            return
        try:
            interval = client._drive(keepalive.round())
        except Exception:  # noqa: BLE001 - never ends the thread with a traceback
            interval = keepalive.interval
        del client
