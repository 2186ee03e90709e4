"""The synchronous ctxmesh client."""

from __future__ import annotations

import copy
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Type, TypeVar, Union

import httpx

from . import _api
from . import models as m
from ._api import UNSET, Call
from .errors import LockNotAcquired, NotFound, NotHolder, PreconditionFailed, TransportError, UpdateConflict
from .watch import Watch, WatchOptions

__all__ = ["Client", "HeldLock"]

T = TypeVar("T")

JSON = Any
Fencing = Union[str, "m.Lock", "HeldLock", "tuple[str, int]"]


class Client:
    """A synchronous client of a ctxmesh server.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:7600`` (default:
            ``$CTXMESH_URL``, else ``http://127.0.0.1:7600``).
        token: a bearer token, the admin's or an agent's (default:
            ``$CTXMESH_TOKEN``).
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
        _http: Optional[httpx.Client] = None,
    ) -> None:
        self.base_url, self.token, self.agent_id = _api.resolve_settings(base_url, token, agent_id)
        self._identity: Optional[m.Identity] = None
        self.timeout = timeout
        self._extra_headers = dict(headers or {})
        self._owns_http = _http is None
        self._http = _http or httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    # --- plumbing ------------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections (not those of the client this one was derived from)."""
        if self._owns_http:
            self._http.close()

    def as_agent(self, agent_id: str, token: Optional[str] = None) -> "Client":
        """A client acting as ``agent_id`` (with ``token``, or this client's), sharing connections."""
        other = Client(
            self.base_url,
            token if token is not None else self.token,
            agent_id,
            timeout=self.timeout,
            headers=self._extra_headers,
            _http=self._http,
        )
        return other

    def _headers(self, extra: Mapping[str, str]) -> Dict[str, str]:
        headers = _api.auth_headers(self.token, self.agent_id)
        headers.update(self._extra_headers)
        headers.update(extra)
        return headers

    def _run(self, call: Call[T]) -> T:
        args = call.request_args()
        args["headers"] = self._headers(args["headers"])
        try:
            response = self._http.request(call.method, call.path, **args)
        except httpx.TransportError as e:
            raise TransportError(f"{call.method} {call.path}: {e or type(e).__name__}") from e
        _api.check(response)
        return call.parse(response)

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
        return self._run(
            Call(method, path, _api.raw_json, params=dict(params or {}), body=json, headers=dict(headers or {}))
        )

    # --- streams -------------------------------------------------------------

    def _stream_opener(
        self, path: str, params: Dict[str, Any], options: WatchOptions
    ) -> Callable[[Optional[int]], Any]:
        @contextmanager
        def open_stream(after: Optional[int]) -> Iterator[httpx.Response]:
            query = dict(params)
            extra: Dict[str, str] = {"Accept": "text/event-stream"}
            if after is not None:
                query["after"] = after
                extra["Last-Event-ID"] = str(after)
            timeout = httpx.Timeout(self.timeout, read=options.read_timeout)
            with self._http.stream(
                "GET", path, params=_api.query(query), headers=self._headers(extra), timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    _api.check(response)
                yield response

        return open_stream

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
        params = _api.compact(types=types, prefix=prefix, min_priority=min_priority, order=order)
        opener = self._stream_opener(f"/v1/contexts/{_api.seg(ctx)}/watch", params, options)
        start = None if after is not None else (lambda: self.get_context(ctx).revision)
        return Watch(opener, after=after, start=start, order=order or "revision", options=options)

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
        agent = self._agent(agent)
        options = WatchOptions(
            include_progress=include_progress, reconnect=reconnect, max_retries=max_retries, read_timeout=read_timeout
        )
        params = _api.compact(types=types, prefix=prefix, min_priority=min_priority)
        opener = self._stream_opener(f"/v1/agents/{_api.seg(agent)}/inbox/watch", params, options)
        return Watch(opener, after=after, stream_kind="stream", options=options)

    def watch_agents(
        self, *, after: int = 0, include_progress: bool = False, reconnect: bool = True, read_timeout: float = 45.0
    ) -> Watch:
        """Watches the agents feed (registrations, disconnections), from ``after`` (its sequence)."""
        options = WatchOptions(include_progress=include_progress, reconnect=reconnect, read_timeout=read_timeout)
        opener = self._stream_opener("/v1/agents/watch", {}, options)
        return Watch(opener, after=after, stream_kind="stream", options=options)

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
        page = self.list_page(ctx, prefix=prefix, at=at, as_of=as_of, limit=page_size)
        while True:
            yield from page.entries
            if not page.next_cursor:
                return
            page = self.list_page(ctx, prefix=prefix, limit=page_size, cursor=page.next_cursor)

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
        return list(self.iter_entries(ctx, prefix=prefix, at=at, as_of=as_of, page_size=page_size))

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
        while True:
            page = self.events(
                ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, limit=page_size
            )
            yield from page.events
            if not page.more or page.last_revision <= after:
                return
            after = page.last_revision

    def iter_inbox(
        self, agent: Optional[str] = None, *, after: int = 0, page_size: Optional[int] = None
    ) -> Iterator[m.Event]:
        """Every item of an agent's inbox after ``after``, page by page."""
        while True:
            page = self.inbox(agent, after=after, limit=page_size)
            yield from page.events
            if not page.events or page.next_after <= after:
                return
            after = page.next_after

    def iter_contexts(self, *, page_size: Optional[int] = None) -> Iterator[m.Context]:
        """Every context the caller may read."""
        cursor: Optional[str] = None
        while True:
            page = self.list_contexts(limit=page_size, cursor=cursor)
            yield from page.contexts
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def iter_agents(
        self, *, status: Optional[str] = None, capability: Optional[str] = None, page_size: Optional[int] = None
    ) -> Iterator[m.Agent]:
        """Every registered agent (optionally by status or capability)."""
        cursor: Optional[str] = None
        while True:
            page = self.list_agents(status=status, capability=capability, limit=page_size, cursor=cursor)
            yield from page.agents
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # --- helpers -------------------------------------------------------------

    def get_or_none(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> Optional[m.Entry]:
        """The entry, or ``None`` when it does not exist (or the caller may not read it)."""
        try:
            return self.get(ctx, key, at=at, as_of=as_of)
        except NotFound:
            return None

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
        current = self.get_or_none(ctx, key)
        attempt = 0
        while True:
            value = fn(copy.deepcopy(current.value) if current is not None else None)
            fields = _api.carried_meta(current)
            fields.update(_api.entry_meta(**meta))
            try:
                if current is None:
                    return self.put(ctx, key, value, if_none_match=True, fencing=fencing, **fields)
                return self.put(ctx, key, value, if_match=current.revision, fencing=fencing, **fields)
            except PreconditionFailed as e:
                attempt += 1
                if attempt > retries:
                    raise UpdateConflict(
                        "precondition_failed",
                        f"{key!r} kept changing: gave up after {retries} retries",
                        e.status,
                        e.details,
                        e.headers,
                    ) from e
                current = e.current
                if current is None:
                    current = self.get_or_none(ctx, key)
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 8))))

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
        """
        return HeldLock(self, ctx, name, ttl_ms=ttl_ms, wait_ms=wait_ms, refresh=refresh)

    def _agent(self, agent: Optional[str]) -> str:
        agent = agent or self.agent_id or self._token_agent()
        if not agent:
            raise ValueError("name the agent, or create the client with agent_id= or an agent's token")
        return agent

    def _token_agent(self) -> Optional[str]:
        """The agent of this client's token, asked of the server once (None for the admin token)."""
        if self._identity is None and self.token:
            self._identity = self.whoami()
        return _api.token_agent(self._identity)

    # --- the API (ctxmesh.AsyncClient mirrors every method below) -----------

    # --- operations ----------------------------------------------------------

    def healthz(self) -> Dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok"}`` while the server runs."""
        return self._run(Call("GET", "/healthz", _api.raw_json))

    def readyz(self) -> Dict[str, Any]:
        """``GET /readyz``: ``{"status": "ready"}`` when the store answers (else ``Unavailable``)."""
        return self._run(Call("GET", "/readyz", _api.raw_json))

    def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI document."""
        return self._run(Call("GET", "/openapi.json", _api.raw_json))

    def metrics(self) -> str:
        """The Prometheus metrics text."""
        return self._run(Call("GET", "/metrics", lambda r: r.text))

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
        body = _api.compact(
            id=id,
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
        return self._run(Call("POST", "/v1/contexts", _api.model(m.Context), body=body))

    def list_contexts(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> m.ContextPage:
        """One page of the contexts the caller may read (see :meth:`iter_contexts`)."""
        params = {"limit": limit, "cursor": cursor}
        return self._run(Call("GET", "/v1/contexts", _api.model(m.ContextPage), params=params))

    def get_context(self, ctx: str) -> m.Context:
        """A context's settings and counters (its current ``revision``...)."""
        return self._run(Call("GET", f"/v1/contexts/{_api.seg(ctx)}", _api.model(m.Context)))

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
        body = _api.compact(policy=policy, schemas=schemas, retention=retention, labels=labels, mesh=mesh)
        return self._run(Call("PATCH", f"/v1/contexts/{_api.seg(ctx)}", _api.model(m.Context), body=body))

    def delete_context(self, ctx: str) -> None:
        """Deletes a context with its entries, history and events."""
        return self._run(Call("DELETE", f"/v1/contexts/{_api.seg(ctx)}", _api.no_content))

    def compact(self, ctx: str) -> Any:
        """Applies the context's retention policy now; returns what was compacted (or ``None``)."""
        return self._run(Call("POST", f"/v1/contexts/{_api.seg(ctx)}/compact", _api.raw_json))

    # --- entries -------------------------------------------------------------

    def get(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> m.Entry:
        """One entry, now, as of revision ``at``, or as of time ``as_of`` (``NotFound`` if absent)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}"
        return self._run(Call("GET", path, _api.model(m.Entry), params={"at": at, "as_of": as_of}))

    def put(
        self,
        ctx: str,
        key: str,
        value: JSON,
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        if_none_match: bool = False,
        fencing: Optional[Fencing] = None,
        kind: Optional[str] = None,
        tags: Optional[Iterable[str]] = None,
        confidence: Optional[float] = None,
        priority: Optional[str] = None,
        depends_on: Optional[Iterable[str]] = None,
        relevance: Optional[Mapping[str, float]] = None,
        expires_at: Optional[Union[datetime, str]] = None,
        ttl_ms: Optional[int] = None,
        confidential: Optional[bool] = None,
        vclock: Optional[Mapping[str, int]] = None,
    ) -> m.Entry:
        """Creates or replaces an entry (its value and all its metadata).

        Args:
            if_match: write only if the entry is still at this revision (an
                int, or the entry read), or ``"*"``: only if it exists. A
                stale one raises :class:`~ctxmesh.PreconditionFailed` (with
                ``.current``) under the default ``reject`` policy.
            if_none_match: create only if the entry does not exist.
            fencing: a held lock (or ``(name, token)``): the write is refused
                with :class:`~ctxmesh.Fenced` once a newer token of that lock
                was issued.
            kind, tags, confidence, priority, depends_on, relevance,
            expires_at, ttl_ms, confidential: the entry's metadata.
            vclock: the version vector the write is based on (a causal
                precondition).

        Returns:
            the entry as written. ``entry.conflict`` tells when the
            context's policy settled a stale write; a write kept aside as a
            pending conflict (``manual`` policy) raises
            :class:`~ctxmesh.ConflictPending`.
        """
        body: Dict[str, Any] = {"value": value}
        body.update(
            _api.entry_meta(
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
        )
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}"
        headers = _api.write_headers(if_match, if_none_match, fencing)
        return self._run(Call("PUT", path, _api.entry_answer, body=body, headers=headers))

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
        fencing: Optional[Fencing] = None,
    ) -> m.Entry:
        """Applies a JSON Merge Patch (RFC 7386) to an entry's value; metadata is kept."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}"
        headers = _api.write_headers(if_match, False, fencing)
        return self._run(
            Call(
                "PATCH",
                path,
                _api.entry_answer,
                content=_api.dumps(patch),
                content_type="application/merge-patch+json",
                headers=headers,
            )
        )

    def json_patch(
        self,
        ctx: str,
        key: str,
        operations: Sequence[Mapping[str, Any]],
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        fencing: Optional[Fencing] = None,
    ) -> m.Entry:
        """Applies a JSON Patch (RFC 6902) to an entry's value; metadata is kept."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}"
        headers = _api.write_headers(if_match, False, fencing)
        return self._run(
            Call(
                "PATCH",
                path,
                _api.entry_answer,
                content=_api.dumps(list(operations)),
                content_type="application/json-patch+json",
                headers=headers,
            )
        )

    def delete(
        self,
        ctx: str,
        key: str,
        *,
        if_match: Optional[Union[int, str, m.Entry]] = None,
        fencing: Optional[Fencing] = None,
    ) -> m.Deleted:
        """Deletes an entry (``NotFound`` if absent); returns the deleting revision."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}"
        headers = _api.write_headers(if_match, False, fencing)
        return self._run(Call("DELETE", path, _api.deleted_answer, headers=headers))

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
        params = {"prefix": prefix, "at": at, "as_of": as_of, "limit": limit, "cursor": cursor}
        path = f"/v1/contexts/{_api.seg(ctx)}/entries"
        return self._run(Call("GET", path, _api.model(m.EntryPage), params=params))

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
        body = {"compare": list(compare or []), "success": list(success or []), "failure": list(failure or [])}
        headers = _api.write_headers(None, False, fencing)
        path = f"/v1/contexts/{_api.seg(ctx)}/txn"
        return self._run(Call("POST", path, _api.model(m.TxnResult), body=body, headers=headers))

    def document(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
    ) -> m.Document:
        """The entries as one nested JSON document (keys split on ``/``)."""
        params = {"prefix": prefix, "at": at, "as_of": as_of}
        return self._run(
            Call("GET", f"/v1/contexts/{_api.seg(ctx)}/document", _api.model(m.Document), params=params)
        )

    # --- history -------------------------------------------------------------

    def entry_history(
        self, ctx: str, key: str, *, before: Optional[int] = None, limit: Optional[int] = None
    ) -> m.EntryHistory:
        """Versions of one entry, newest first (continue with ``before=next_before``)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}/history"
        params = {"before": before, "limit": limit}
        return self._run(Call("GET", path, _api.model(m.EntryHistory), params=params))

    def history(self, ctx: str, *, before: Optional[int] = None, limit: Optional[int] = None) -> m.CommitPage:
        """Commits of a context, newest first: revision, author, time, keys."""
        params = {"before": before, "limit": limit}
        return self._run(
            Call("GET", f"/v1/contexts/{_api.seg(ctx)}/history", _api.model(m.CommitPage), params=params)
        )

    def diff(self, ctx: str, from_revision: int, to: Optional[int] = None) -> m.Diff:
        """Changes between two revisions (``to`` defaults to the current one; 0 is the empty state)."""
        params = {"from": from_revision, "to": to}
        return self._run(Call("GET", f"/v1/contexts/{_api.seg(ctx)}/diff", _api.model(m.Diff), params=params))

    def rollback(self, ctx: str, to: int) -> m.RollbackResult:
        """Writes the state of revision ``to`` as a new revision (history is kept)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/rollback"
        return self._run(Call("POST", path, _api.model(m.RollbackResult), body={"to": to}))

    def fork(self, ctx: str, new_id: str, *, at: Optional[int] = None) -> m.Context:
        """A new context holding this one's entries as of ``at`` (default: now)."""
        body = _api.compact(id=new_id, at=at)
        return self._run(Call("POST", f"/v1/contexts/{_api.seg(ctx)}/fork", _api.model(m.Context), body=body))

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
        params = {"after": after, "types": types, "prefix": prefix, "min_priority": min_priority, "limit": limit}
        return self._run(
            Call("GET", f"/v1/contexts/{_api.seg(ctx)}/events", _api.model(m.EventPage), params=params)
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
        payload = _api.compact(
            context=context, agents=list(agents) if agents else None, priority=priority, topic=topic
        )
        payload["body"] = body
        return self._run(Call("POST", "/v1/messages", _api.model(m.Event), body=payload))

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
        body = _api.compact(
            id=id,
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
        return self._run(Call("POST", "/v1/agents", _api.model(m.RegisteredAgent), body=body))

    def list_agents(
        self,
        *,
        status: Optional[str] = None,
        capability: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.AgentPage:
        """One page of registered agents (see :meth:`iter_agents`)."""
        params = {"status": status, "capability": capability, "limit": limit, "cursor": cursor}
        return self._run(Call("GET", "/v1/agents", _api.model(m.AgentPage), params=params))

    def get_agent(self, agent: str) -> m.Agent:
        """A registered agent."""
        return self._run(Call("GET", f"/v1/agents/{_api.seg(agent)}", _api.model(m.Agent)))

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
        body = _api.compact(
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
        return self._run(Call("PATCH", f"/v1/agents/{_api.seg(agent)}", _api.model(m.Agent), body=body))

    def delete_agent(self, agent: str) -> None:
        """Unregisters an agent: its locks are released and its token ends."""
        return self._run(Call("DELETE", f"/v1/agents/{_api.seg(agent)}", _api.no_content))

    def whoami(self) -> m.Identity:
        """Who this client is to the server: the agent of its token (or the one it names), and whether it is admin."""
        return self._run(Call("GET", "/v1/whoami", _api.model(m.Identity)))

    def heartbeat(self, agent: Optional[str] = None) -> m.Agent:
        """Renews an agent's lease (default: this client's agent)."""
        path = f"/v1/agents/{_api.seg(self._agent(agent))}/heartbeat"
        return self._run(Call("POST", path, _api.model(m.Agent)))

    def rotate_token(self, agent: Optional[str] = None) -> m.NewToken:
        """Issues a new token for an agent; the old one stops working at once."""
        path = f"/v1/agents/{_api.seg(self._agent(agent))}/token"
        return self._run(Call("POST", path, _api.model(m.NewToken)))

    def revoke_token(self, agent: Optional[str] = None) -> None:
        """Revokes an agent's token."""
        path = f"/v1/agents/{_api.seg(self._agent(agent))}/token"
        return self._run(Call("DELETE", path, _api.no_content))

    def inbox(
        self, agent: Optional[str] = None, *, after: int = 0, limit: Optional[int] = None
    ) -> m.StreamPage:
        """One page of an agent's inbox after sequence ``after`` (default agent: this client's)."""
        path = f"/v1/agents/{_api.seg(self._agent(agent))}/inbox"
        return self._run(Call("GET", path, _api.model(m.StreamPage), params={"after": after, "limit": limit}))

    def agent_events(self, *, after: int = 0, limit: Optional[int] = None) -> m.StreamPage:
        """One page of the agents feed (registrations, disconnections, unregistrations)."""
        params = {"after": after, "limit": limit}
        return self._run(Call("GET", "/v1/agents/events", _api.model(m.StreamPage), params=params))

    # --- locks ---------------------------------------------------------------

    def acquire_lock(self, ctx: str, name: str, *, ttl_ms: int = 30_000, wait_ms: int = 0) -> m.Lock:
        """Tries to acquire a lock, waiting up to ``wait_ms`` (at most 60000) for it.

        Returns the lock: ``acquired`` says whether the caller holds it now
        (with a new ``fencing_token``), else who does.
        """
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}"
        return self._run(Call("POST", path, _api.model(m.Lock), body={"ttl_ms": ttl_ms, "wait_ms": wait_ms}))

    def release_lock(self, ctx: str, name: str, *, lock_id: Optional[str] = None) -> m.Lock:
        """Releases a lock the caller holds (``NotHolder`` otherwise)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}"
        return self._run(Call("DELETE", path, _api.model(m.Lock), params={"lock_id": lock_id}))

    def refresh_lock(
        self, ctx: str, name: str, *, ttl_ms: int = 30_000, lock_id: Optional[str] = None
    ) -> m.Lock:
        """Extends a held lock's TTL; the fencing token stays."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}/refresh"
        body = _api.compact(ttl_ms=ttl_ms, lock_id=lock_id)
        return self._run(Call("POST", path, _api.model(m.Lock), body=body))

    def get_lock(self, ctx: str, name: str) -> m.Lock:
        """A lock's state: holder, token, expiry."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}"
        return self._run(Call("GET", path, _api.model(m.Lock)))

    def list_locks(self, ctx: str) -> List[m.Lock]:
        """The locks of a context."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks"
        return self._run(Call("GET", path, _api.model_list(m.Lock, "locks")))

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
        body = _api.compact(
            target=target,
            context=context,
            revision=revision,
            keys=list(keys) if keys is not None else None,
            package=package,
            session=session,
            user_intent=user_intent,
            conversation_history=list(conversation_history) if conversation_history is not None else None,
            extracted_entities=extracted_entities,
            deadline_ms=deadline_ms,
            note=note,
        )
        return self._run(Call("POST", "/v1/handoffs", _api.model(m.Handoff), body=body))

    def get_handoff(self, id: str) -> m.Handoff:
        """A handoff."""
        return self._run(Call("GET", f"/v1/handoffs/{_api.seg(id)}", _api.model(m.Handoff)))

    def list_handoffs(
        self,
        *,
        context: Optional[str] = None,
        agent: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.HandoffPage:
        """Handoffs of a context, or involving an agent (the caller itself unless admin)."""
        params = {"context": context, "agent": agent, "state": state, "limit": limit, "cursor": cursor}
        return self._run(Call("GET", "/v1/handoffs", _api.model(m.HandoffPage), params=params))

    def _handoff_step(self, id: str, action: str, outcome: Any) -> Call[m.Handoff]:
        body = {} if outcome is UNSET else {"outcome": outcome}
        return Call("POST", f"/v1/handoffs/{_api.seg(id)}/{action}", _api.model(m.Handoff), body=body)

    def accept_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Accepts a handoff (its target only)."""
        return self._run(self._handoff_step(id, "accept", outcome))

    def reject_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Rejects a handoff (its target only); ``outcome`` keeps the reason."""
        return self._run(self._handoff_step(id, "reject", outcome))

    def complete_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Completes an accepted handoff (the target only); ``outcome`` keeps the result."""
        return self._run(self._handoff_step(id, "complete", outcome))

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
        body = _api.compact(assignee=assignee, title=title, input=input, priority=priority)
        return self._run(Call("POST", f"/v1/contexts/{_api.seg(ctx)}/tasks", _api.model(m.Task), body=body))

    def list_tasks(
        self,
        *,
        context: Optional[str] = None,
        agent: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.TaskPage:
        """Tasks of a context, or of an agent (the caller itself unless admin)."""
        params = {"context": context, "agent": agent, "state": state, "limit": limit, "cursor": cursor}
        return self._run(Call("GET", "/v1/tasks", _api.model(m.TaskPage), params=params))

    def list_context_tasks(
        self,
        ctx: str,
        *,
        agent: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.TaskPage:
        """The tasks of one context (optionally of an agent, or in a state)."""
        params = {"agent": agent, "state": state, "limit": limit, "cursor": cursor}
        path = f"/v1/contexts/{_api.seg(ctx)}/tasks"
        return self._run(Call("GET", path, _api.model(m.TaskPage), params=params))

    def get_task(self, id: str) -> m.Task:
        """A task."""
        return self._run(Call("GET", f"/v1/tasks/{_api.seg(id)}", _api.model(m.Task)))

    def complete_task(self, id: str, output: Any = UNSET) -> m.Task:
        """Completes a task (its assignee only); the assigner's inbox gets ``task.completed``."""
        body = {} if output is UNSET else {"output": output}
        return self._run(Call("POST", f"/v1/tasks/{_api.seg(id)}/complete", _api.model(m.Task), body=body))

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
        body = _api.compact(
            agents=[agents] if isinstance(agents, str) else list(agents),
            permissions=list(permissions),
            expires_at=expires_at,
        )
        path = f"/v1/contexts/{_api.seg(ctx)}/grants"
        return self._run(Call("POST", path, _api.model_list(m.Grant, "grants"), body=body))

    def list_grants(self, ctx: str) -> List[m.Grant]:
        """The grants of a context."""
        return self._run(Call("GET", f"/v1/contexts/{_api.seg(ctx)}/grants", _api.model_list(m.Grant, "grants")))

    def revoke(self, ctx: str, agent: str) -> None:
        """Ends an agent's grant on a context."""
        path = f"/v1/contexts/{_api.seg(ctx)}/grants"
        return self._run(Call("DELETE", path, _api.no_content, params={"agent": agent}))

    def shared(self, agent: Optional[str] = None) -> List[m.Grant]:
        """The grants an agent holds (default: this client's agent)."""
        path = f"/v1/agents/{_api.seg(self._agent(agent))}/shared"
        return self._run(Call("GET", path, _api.model_list(m.Grant, "grants")))

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
        body = _api.compact(
            id=id,
            effect=effect,
            contexts=contexts,
            agents=agents,
            min_trust=min_trust,
            max_trust=max_trust,
            permissions=list(permissions) if permissions is not None else None,
            keys=keys,
            tags=list(tags) if tags is not None else None,
            description=description,
        )
        return self._run(Call("POST", "/v1/policies", _api.model_list(m.PolicyRule, "policies"), body=body))

    def list_policies(self) -> List[m.PolicyRule]:
        """Every access policy rule."""
        return self._run(Call("GET", "/v1/policies", _api.model_list(m.PolicyRule, "policies")))

    def delete_policy(self, id: str) -> None:
        """Removes an access policy rule."""
        return self._run(Call("DELETE", f"/v1/policies/{_api.seg(id)}", _api.no_content))

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
        params = {
            "agent": agent,
            "context": context,
            "allowed": allowed,
            "since": since,
            "after": after,
            "limit": limit,
        }
        return self._run(Call("GET", "/v1/audit", _api.model(m.AuditPage), params=params))

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
        params = {"status": status, "limit": limit, "cursor": cursor}
        path = f"/v1/contexts/{_api.seg(ctx)}/conflicts"
        return self._run(Call("GET", path, _api.model(m.ConflictPage), params=params))

    def get_conflict(self, ctx: str, id: str) -> m.Conflict:
        """A conflict record with ``current``, the entry it met."""
        path = f"/v1/contexts/{_api.seg(ctx)}/conflicts/{_api.seg(id)}"
        return self._run(Call("GET", path, _api.model(m.Conflict)))

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
        body: Dict[str, Any] = _api.compact(choose=choose, if_match=if_match)
        if value is not UNSET:
            body["value"] = value
        path = f"/v1/contexts/{_api.seg(ctx)}/conflicts/{_api.seg(id)}/resolve"
        return self._run(Call("POST", path, _api.model(m.Conflict), body=body))

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
        params = {
            "agent": agent,
            "budget": budget,
            "format": "json",
            "encoding": encoding,
            "explain": explain,
            "compress": compress,
            "at": at,
        }
        path = f"/v1/contexts/{_api.seg(ctx)}/package"
        return self._run(Call("GET", path, _api.package_answer, params=params))

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
        params = {
            "agent": agent,
            "budget": budget,
            "format": "markdown",
            "encoding": encoding,
            "compress": compress,
            "at": at,
        }
        path = f"/v1/contexts/{_api.seg(ctx)}/package"
        return self._run(Call("GET", path, _api.markdown_answer, params=params))

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
        params = {
            "q": q,
            "mode": mode,
            "limit": limit,
            "kind": kind,
            "tags": tags,
            "author": author,
            "since": since,
            "until": until,
        }
        path = f"/v1/contexts/{_api.seg(ctx)}/search"
        return self._run(Call("GET", path, _api.model(m.SearchResult), params=params))

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
        body = _api.compact(key=key, proposals=list(proposals), min_agreement=min_agreement)
        path = f"/v1/contexts/{_api.seg(ctx)}/consensus"
        return self._run(Call("POST", path, _api.model(m.ConsensusOutcome), body=body))

    def record_decision(
        self, ctx: str, decision: JSON, read_revision: int, *, key: Optional[str] = None
    ) -> m.DecisionRecord:
        """Records a decision with the revision it was based on; ``replay`` rebuilds the package seen."""
        body = _api.compact(decision=decision, read_revision=read_revision, key=key)
        body["decision"] = decision
        path = f"/v1/contexts/{_api.seg(ctx)}/decisions"
        return self._run(Call("POST", path, _api.model(m.DecisionRecord), body=body))



class HeldLock:
    """A lock held through ``with client.lock(...)``.

    Attributes:
        lock: the lock as last acquired or refreshed.
        lost: set when the lock turned out not to be held any more (a
            refresh or the release answered ``NotHolder``).
    """

    def __init__(
        self, client: Client, ctx: str, name: str, *, ttl_ms: int, wait_ms: int, refresh: bool = False
    ) -> None:
        self.client = client
        self.context = ctx
        self.name = name
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.auto_refresh = refresh
        self.lock: Optional[m.Lock] = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def fencing_token(self) -> int:
        """The fencing token of this acquisition."""
        if self.lock is None:
            raise RuntimeError("the lock is not held")
        return self.lock.fencing_token

    @property
    def lock_id(self) -> Optional[str]:
        """``<name>:<token>``: names this acquisition."""
        return self.lock.lock_id if self.lock else None

    @property
    def fence(self) -> str:
        """The ``X-Fencing-Token`` value for writes under this lock."""
        return f"{self.name}={self.fencing_token}"

    @property
    def headers(self) -> Dict[str, str]:
        """The header to send with writes under this lock (for other HTTP clients)."""
        return {"X-Fencing-Token": self.fence}

    def acquire(self) -> m.Lock:
        """Acquires the lock, waiting up to ``wait_ms``; raises :class:`~ctxmesh.LockNotAcquired`."""
        deadline = time.monotonic() + self.wait_ms / 1000
        while True:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            lock = self.client.acquire_lock(self.context, self.name, ttl_ms=self.ttl_ms, wait_ms=min(left, 60_000))
            if lock.acquired:
                break
            if time.monotonic() >= deadline:
                raise LockNotAcquired(lock)
        self.lock = lock
        self.lost = False
        if self.auto_refresh:
            self._stop.clear()
            self._thread = threading.Thread(target=self._refresh_loop, name=f"ctxmesh-lock-{self.name}", daemon=True)
            self._thread.start()
        return lock

    def refresh(self, ttl_ms: Optional[int] = None) -> m.Lock:
        """Extends the lock's TTL now."""
        lock = self.client.refresh_lock(self.context, self.name, ttl_ms=ttl_ms or self.ttl_ms, lock_id=self.lock_id)
        self.lock = lock
        return lock

    def release(self) -> None:
        """Releases the lock (a lock already lost is only marked ``lost``)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        if self.lock is None:
            return
        try:
            self.client.release_lock(self.context, self.name, lock_id=self.lock_id)
        except (NotHolder, NotFound):
            self.lost = True

    def _refresh_loop(self) -> None:
        interval = max(0.05, self.ttl_ms / 3000)
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except NotHolder:
                self.lost = True
                return
            except Exception:
                continue  # a transient failure; the next round tries again

    def __enter__(self) -> "HeldLock":
        self.acquire()
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.release()
