"""The asynchronous ctxmesh client (``asyncio``)."""

from __future__ import annotations

import asyncio
import copy
import random
import time
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
)

import httpx

from . import _api
from . import models as m
from ._api import UNSET, Call
from .errors import LockNotAcquired, NotFound, NotHolder, PreconditionFailed, TransportError, UpdateConflict
from .watch import AsyncWatch, WatchOptions

__all__ = ["AsyncClient", "AsyncHeldLock"]

T = TypeVar("T")

JSON = Any
Fencing = Union[str, "m.Lock", "AsyncHeldLock", "tuple[str, int]"]


class AsyncClient:
    """An asynchronous client of a ctxmesh server.

    It has every method of :class:`~ctxmesh.Client`, as coroutines (and
    asynchronous iterators for watches and listings). Arguments are the
    same::

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
        _http: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self.base_url, self.token, self.agent_id = _api.resolve_settings(base_url, token, agent_id)
        self._identity: Optional[m.Identity] = None
        self.timeout = timeout
        self._extra_headers = dict(headers or {})
        self._owns_http = _http is None
        self._http = _http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    # --- plumbing ------------------------------------------------------------

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections (not those of the client this one was derived from)."""
        if self._owns_http:
            await self._http.aclose()

    def as_agent(self, agent_id: str, token: Optional[str] = None) -> "AsyncClient":
        """A client acting as ``agent_id`` (with ``token``, or this client's), sharing connections."""
        return AsyncClient(
            self.base_url,
            token if token is not None else self.token,
            agent_id,
            timeout=self.timeout,
            headers=self._extra_headers,
            _http=self._http,
        )

    def _headers(self, extra: Mapping[str, str]) -> Dict[str, str]:
        headers = _api.auth_headers(self.token, self.agent_id)
        headers.update(self._extra_headers)
        headers.update(extra)
        return headers

    async def _run(self, call: Call[T]) -> T:
        args = call.request_args()
        args["headers"] = self._headers(args["headers"])
        try:
            response = await self._http.request(call.method, call.path, **args)
        except httpx.TransportError as e:
            raise TransportError(f"{call.method} {call.path}: {e or type(e).__name__}") from e
        _api.check(response)
        return call.parse(response)

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
        return await self._run(
            Call(method, path, _api.raw_json, params=dict(params or {}), body=json, headers=dict(headers or {}))
        )

    # --- streams -------------------------------------------------------------

    def _stream_opener(
        self, path: Union[str, Callable[[], Awaitable[str]]], params: Dict[str, Any], options: WatchOptions
    ) -> Callable[[Optional[int]], Any]:
        @asynccontextmanager
        async def open_stream(after: Optional[int]) -> AsyncIterator[httpx.Response]:
            target = path if isinstance(path, str) else await path()
            query = dict(params)
            extra: Dict[str, str] = {"Accept": "text/event-stream"}
            if after is not None:
                query["after"] = after
                extra["Last-Event-ID"] = str(after)
            timeout = httpx.Timeout(self.timeout, read=options.read_timeout)
            async with self._http.stream(
                "GET", target, params=_api.query(query), headers=self._headers(extra), timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
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
    ) -> AsyncWatch:
        """Watches a context's events, resuming by itself (see :meth:`ctxmesh.Client.watch`)."""
        options = WatchOptions(
            include_progress=include_progress, reconnect=reconnect, max_retries=max_retries, read_timeout=read_timeout
        )
        params = _api.compact(types=types, prefix=prefix, min_priority=min_priority, order=order)
        opener = self._stream_opener(f"/v1/contexts/{_api.seg(ctx)}/watch", params, options)

        async def start() -> int:
            return (await self.get_context(ctx)).revision

        return AsyncWatch(
            opener, after=after, start=None if after is not None else start, order=order or "revision", options=options
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
        named = agent
        options = WatchOptions(
            include_progress=include_progress, reconnect=reconnect, max_retries=max_retries, read_timeout=read_timeout
        )
        params = _api.compact(types=types, prefix=prefix, min_priority=min_priority)

        async def path() -> str:
            # The agent may have to be asked of the server (its token's).
            return f"/v1/agents/{_api.seg(await self._agent(named))}/inbox/watch"

        opener = self._stream_opener(path, params, options)
        return AsyncWatch(opener, after=after, stream_kind="stream", options=options)

    def watch_agents(
        self, *, after: int = 0, include_progress: bool = False, reconnect: bool = True, read_timeout: float = 45.0
    ) -> AsyncWatch:
        """Watches the agents feed from ``after`` (its sequence)."""
        options = WatchOptions(include_progress=include_progress, reconnect=reconnect, read_timeout=read_timeout)
        opener = self._stream_opener("/v1/agents/watch", {}, options)
        return AsyncWatch(opener, after=after, stream_kind="stream", options=options)

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
        page = await self.list_page(ctx, prefix=prefix, at=at, as_of=as_of, limit=page_size)
        while True:
            for entry in page.entries:
                yield entry
            if not page.next_cursor:
                return
            page = await self.list_page(ctx, prefix=prefix, limit=page_size, cursor=page.next_cursor)

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
        return [e async for e in self.iter_entries(ctx, prefix=prefix, at=at, as_of=as_of, page_size=page_size)]

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
        while True:
            page = await self.events(
                ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, limit=page_size
            )
            for event in page.events:
                yield event
            if not page.more or page.last_revision <= after:
                return
            after = page.last_revision

    async def iter_inbox(
        self, agent: Optional[str] = None, *, after: int = 0, page_size: Optional[int] = None
    ) -> AsyncIterator[m.Event]:
        """Every item of an agent's inbox after ``after``, page by page."""
        while True:
            page = await self.inbox(agent, after=after, limit=page_size)
            for event in page.events:
                yield event
            if not page.events or page.next_after <= after:
                return
            after = page.next_after

    async def iter_contexts(self, *, page_size: Optional[int] = None) -> AsyncIterator[m.Context]:
        """Every context the caller may read."""
        cursor: Optional[str] = None
        while True:
            page = await self.list_contexts(limit=page_size, cursor=cursor)
            for context in page.contexts:
                yield context
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def iter_agents(
        self, *, status: Optional[str] = None, capability: Optional[str] = None, page_size: Optional[int] = None
    ) -> AsyncIterator[m.Agent]:
        """Every registered agent (optionally by status or capability)."""
        cursor: Optional[str] = None
        while True:
            page = await self.list_agents(status=status, capability=capability, limit=page_size, cursor=cursor)
            for agent in page.agents:
                yield agent
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # --- helpers -------------------------------------------------------------

    async def get_or_none(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> Optional[m.Entry]:
        """The entry, or ``None`` when it does not exist (or the caller may not read it)."""
        try:
            return await self.get(ctx, key, at=at, as_of=as_of)
        except NotFound:
            return None

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
        current = await self.get_or_none(ctx, key)
        attempt = 0
        while True:
            value = fn(copy.deepcopy(current.value) if current is not None else None)
            if asyncio.iscoroutine(value):
                value = await value
            fields = _api.carried_meta(current)
            fields.update(_api.entry_meta(**meta))
            try:
                if current is None:
                    return await self.put(ctx, key, value, if_none_match=True, fencing=fencing, **fields)
                return await self.put(ctx, key, value, if_match=current.revision, fencing=fencing, **fields)
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
                    current = await self.get_or_none(ctx, key)
                await asyncio.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 8))))

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

    async def _agent(self, agent: Optional[str]) -> str:
        agent = agent or self.agent_id or await self._token_agent()
        if not agent:
            raise ValueError("name the agent, or create the client with agent_id= or an agent's token")
        return agent

    async def _token_agent(self) -> Optional[str]:
        """The agent of this client's token, asked of the server once (None for the admin token)."""
        if self._identity is None and self.token:
            self._identity = await self.whoami()
        return _api.token_agent(self._identity)

    # --- the API (each method mirrors the one of ctxmesh.Client) ----------------

    # --- operations ----------------------------------------------------------

    async def healthz(self) -> Dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok"}`` while the server runs."""
        return await self._run(Call("GET", "/healthz", _api.raw_json))

    async def readyz(self) -> Dict[str, Any]:
        """``GET /readyz``: ``{"status": "ready"}`` when the store answers (else ``Unavailable``)."""
        return await self._run(Call("GET", "/readyz", _api.raw_json))

    async def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI document."""
        return await self._run(Call("GET", "/openapi.json", _api.raw_json))

    async def metrics(self) -> str:
        """The Prometheus metrics text."""
        return await self._run(Call("GET", "/metrics", lambda r: r.text))

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
        return await self._run(Call("POST", "/v1/contexts", _api.model(m.Context), body=body))

    async def list_contexts(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> m.ContextPage:
        """One page of the contexts the caller may read (see :meth:`iter_contexts`)."""
        params = {"limit": limit, "cursor": cursor}
        return await self._run(Call("GET", "/v1/contexts", _api.model(m.ContextPage), params=params))

    async def get_context(self, ctx: str) -> m.Context:
        """A context's settings and counters (its current ``revision``...)."""
        return await self._run(Call("GET", f"/v1/contexts/{_api.seg(ctx)}", _api.model(m.Context)))

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
        body = _api.compact(policy=policy, schemas=schemas, retention=retention, labels=labels, mesh=mesh)
        return await self._run(Call("PATCH", f"/v1/contexts/{_api.seg(ctx)}", _api.model(m.Context), body=body))

    async def delete_context(self, ctx: str) -> None:
        """Deletes a context with its entries, history and events."""
        return await self._run(Call("DELETE", f"/v1/contexts/{_api.seg(ctx)}", _api.no_content))

    async def compact(self, ctx: str) -> Any:
        """Applies the context's retention policy now; returns what was compacted (or ``None``)."""
        return await self._run(Call("POST", f"/v1/contexts/{_api.seg(ctx)}/compact", _api.raw_json))

    # --- entries -------------------------------------------------------------

    async def get(
        self, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Union[datetime, str]] = None
    ) -> m.Entry:
        """One entry, now, as of revision ``at``, or as of time ``as_of`` (``NotFound`` if absent)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}"
        return await self._run(Call("GET", path, _api.model(m.Entry), params={"at": at, "as_of": as_of}))

    async def put(
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
        return await self._run(Call("PUT", path, _api.entry_answer, body=body, headers=headers))

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
        fencing: Optional[Fencing] = None,
    ) -> m.Entry:
        """Applies a JSON Merge Patch (RFC 7386) to an entry's value; metadata is kept."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}"
        headers = _api.write_headers(if_match, False, fencing)
        return await self._run(
            Call(
                "PATCH",
                path,
                _api.entry_answer,
                content=_api.dumps(patch),
                content_type="application/merge-patch+json",
                headers=headers,
            )
        )

    async def json_patch(
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
        return await self._run(
            Call(
                "PATCH",
                path,
                _api.entry_answer,
                content=_api.dumps(list(operations)),
                content_type="application/json-patch+json",
                headers=headers,
            )
        )

    async def delete(
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
        return await self._run(Call("DELETE", path, _api.deleted_answer, headers=headers))

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
        params = {"prefix": prefix, "at": at, "as_of": as_of, "limit": limit, "cursor": cursor}
        path = f"/v1/contexts/{_api.seg(ctx)}/entries"
        return await self._run(Call("GET", path, _api.model(m.EntryPage), params=params))

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
        body = {"compare": list(compare or []), "success": list(success or []), "failure": list(failure or [])}
        headers = _api.write_headers(None, False, fencing)
        path = f"/v1/contexts/{_api.seg(ctx)}/txn"
        return await self._run(Call("POST", path, _api.model(m.TxnResult), body=body, headers=headers))

    async def document(
        self,
        ctx: str,
        *,
        prefix: Optional[str] = None,
        at: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
    ) -> m.Document:
        """The entries as one nested JSON document (keys split on ``/``)."""
        params = {"prefix": prefix, "at": at, "as_of": as_of}
        return await self._run(
            Call("GET", f"/v1/contexts/{_api.seg(ctx)}/document", _api.model(m.Document), params=params)
        )

    # --- history -------------------------------------------------------------

    async def entry_history(
        self, ctx: str, key: str, *, before: Optional[int] = None, limit: Optional[int] = None
    ) -> m.EntryHistory:
        """Versions of one entry, newest first (continue with ``before=next_before``)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/entries/{_api.key_path(key)}/history"
        params = {"before": before, "limit": limit}
        return await self._run(Call("GET", path, _api.model(m.EntryHistory), params=params))

    async def history(self, ctx: str, *, before: Optional[int] = None, limit: Optional[int] = None) -> m.CommitPage:
        """Commits of a context, newest first: revision, author, time, keys."""
        params = {"before": before, "limit": limit}
        return await self._run(
            Call("GET", f"/v1/contexts/{_api.seg(ctx)}/history", _api.model(m.CommitPage), params=params)
        )

    async def diff(self, ctx: str, from_revision: int, to: Optional[int] = None) -> m.Diff:
        """Changes between two revisions (``to`` defaults to the current one; 0 is the empty state)."""
        params = {"from": from_revision, "to": to}
        return await self._run(Call("GET", f"/v1/contexts/{_api.seg(ctx)}/diff", _api.model(m.Diff), params=params))

    async def rollback(self, ctx: str, to: int) -> m.RollbackResult:
        """Writes the state of revision ``to`` as a new revision (history is kept)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/rollback"
        return await self._run(Call("POST", path, _api.model(m.RollbackResult), body={"to": to}))

    async def fork(self, ctx: str, new_id: str, *, at: Optional[int] = None) -> m.Context:
        """A new context holding this one's entries as of ``at`` (default: now)."""
        body = _api.compact(id=new_id, at=at)
        return await self._run(Call("POST", f"/v1/contexts/{_api.seg(ctx)}/fork", _api.model(m.Context), body=body))

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
        params = {"after": after, "types": types, "prefix": prefix, "min_priority": min_priority, "limit": limit}
        return await self._run(
            Call("GET", f"/v1/contexts/{_api.seg(ctx)}/events", _api.model(m.EventPage), params=params)
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
        payload = _api.compact(
            context=context, agents=list(agents) if agents else None, priority=priority, topic=topic
        )
        payload["body"] = body
        return await self._run(Call("POST", "/v1/messages", _api.model(m.Event), body=payload))

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
        return await self._run(Call("POST", "/v1/agents", _api.model(m.RegisteredAgent), body=body))

    async def list_agents(
        self,
        *,
        status: Optional[str] = None,
        capability: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> m.AgentPage:
        """One page of registered agents (see :meth:`iter_agents`)."""
        params = {"status": status, "capability": capability, "limit": limit, "cursor": cursor}
        return await self._run(Call("GET", "/v1/agents", _api.model(m.AgentPage), params=params))

    async def get_agent(self, agent: str) -> m.Agent:
        """A registered agent."""
        return await self._run(Call("GET", f"/v1/agents/{_api.seg(agent)}", _api.model(m.Agent)))

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
        return await self._run(Call("PATCH", f"/v1/agents/{_api.seg(agent)}", _api.model(m.Agent), body=body))

    async def delete_agent(self, agent: str) -> None:
        """Unregisters an agent: its locks are released and its token ends."""
        return await self._run(Call("DELETE", f"/v1/agents/{_api.seg(agent)}", _api.no_content))

    async def whoami(self) -> m.Identity:
        """Who this client is to the server (see :meth:`ctxmesh.Client.whoami`)."""
        return await self._run(Call("GET", "/v1/whoami", _api.model(m.Identity)))

    async def heartbeat(self, agent: Optional[str] = None) -> m.Agent:
        """Renews an agent's lease (default: this client's agent)."""
        path = f"/v1/agents/{_api.seg(await self._agent(agent))}/heartbeat"
        return await self._run(Call("POST", path, _api.model(m.Agent)))

    async def rotate_token(self, agent: Optional[str] = None) -> m.NewToken:
        """Issues a new token for an agent; the old one stops working at once."""
        path = f"/v1/agents/{_api.seg(await self._agent(agent))}/token"
        return await self._run(Call("POST", path, _api.model(m.NewToken)))

    async def revoke_token(self, agent: Optional[str] = None) -> None:
        """Revokes an agent's token."""
        path = f"/v1/agents/{_api.seg(await self._agent(agent))}/token"
        return await self._run(Call("DELETE", path, _api.no_content))

    async def inbox(
        self, agent: Optional[str] = None, *, after: int = 0, limit: Optional[int] = None
    ) -> m.StreamPage:
        """One page of an agent's inbox after sequence ``after`` (default agent: this client's)."""
        path = f"/v1/agents/{_api.seg(await self._agent(agent))}/inbox"
        return await self._run(Call("GET", path, _api.model(m.StreamPage), params={"after": after, "limit": limit}))

    async def agent_events(self, *, after: int = 0, limit: Optional[int] = None) -> m.StreamPage:
        """One page of the agents feed (registrations, disconnections, unregistrations)."""
        params = {"after": after, "limit": limit}
        return await self._run(Call("GET", "/v1/agents/events", _api.model(m.StreamPage), params=params))

    # --- locks ---------------------------------------------------------------

    async def acquire_lock(self, ctx: str, name: str, *, ttl_ms: int = 30_000, wait_ms: int = 0) -> m.Lock:
        """Tries to acquire a lock, waiting up to ``wait_ms`` (at most 60000) for it.

        Returns the lock: ``acquired`` says whether the caller holds it now
        (with a new ``fencing_token``), else who does.
        """
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}"
        return await self._run(Call("POST", path, _api.model(m.Lock), body={"ttl_ms": ttl_ms, "wait_ms": wait_ms}))

    async def release_lock(self, ctx: str, name: str, *, lock_id: Optional[str] = None) -> m.Lock:
        """Releases a lock the caller holds (``NotHolder`` otherwise)."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}"
        return await self._run(Call("DELETE", path, _api.model(m.Lock), params={"lock_id": lock_id}))

    async def refresh_lock(
        self, ctx: str, name: str, *, ttl_ms: int = 30_000, lock_id: Optional[str] = None
    ) -> m.Lock:
        """Extends a held lock's TTL; the fencing token stays."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}/refresh"
        body = _api.compact(ttl_ms=ttl_ms, lock_id=lock_id)
        return await self._run(Call("POST", path, _api.model(m.Lock), body=body))

    async def get_lock(self, ctx: str, name: str) -> m.Lock:
        """A lock's state: holder, token, expiry."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks/{_api.lock_path(name)}"
        return await self._run(Call("GET", path, _api.model(m.Lock)))

    async def list_locks(self, ctx: str) -> List[m.Lock]:
        """The locks of a context."""
        path = f"/v1/contexts/{_api.seg(ctx)}/locks"
        return await self._run(Call("GET", path, _api.model_list(m.Lock, "locks")))

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
        return await self._run(Call("POST", "/v1/handoffs", _api.model(m.Handoff), body=body))

    async def get_handoff(self, id: str) -> m.Handoff:
        """A handoff."""
        return await self._run(Call("GET", f"/v1/handoffs/{_api.seg(id)}", _api.model(m.Handoff)))

    async def list_handoffs(
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
        return await self._run(Call("GET", "/v1/handoffs", _api.model(m.HandoffPage), params=params))

    def _handoff_step(self, id: str, action: str, outcome: Any) -> Call[m.Handoff]:
        body = {} if outcome is UNSET else {"outcome": outcome}
        return Call("POST", f"/v1/handoffs/{_api.seg(id)}/{action}", _api.model(m.Handoff), body=body)

    async def accept_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Accepts a handoff (its target only)."""
        return await self._run(self._handoff_step(id, "accept", outcome))

    async def reject_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Rejects a handoff (its target only); ``outcome`` keeps the reason."""
        return await self._run(self._handoff_step(id, "reject", outcome))

    async def complete_handoff(self, id: str, outcome: Any = UNSET) -> m.Handoff:
        """Completes an accepted handoff (the target only); ``outcome`` keeps the result."""
        return await self._run(self._handoff_step(id, "complete", outcome))

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
        body = _api.compact(assignee=assignee, title=title, input=input, priority=priority)
        return await self._run(Call("POST", f"/v1/contexts/{_api.seg(ctx)}/tasks", _api.model(m.Task), body=body))

    async def list_tasks(
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
        return await self._run(Call("GET", "/v1/tasks", _api.model(m.TaskPage), params=params))

    async def list_context_tasks(
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
        return await self._run(Call("GET", path, _api.model(m.TaskPage), params=params))

    async def get_task(self, id: str) -> m.Task:
        """A task."""
        return await self._run(Call("GET", f"/v1/tasks/{_api.seg(id)}", _api.model(m.Task)))

    async def complete_task(self, id: str, output: Any = UNSET) -> m.Task:
        """Completes a task (its assignee only); the assigner's inbox gets ``task.completed``."""
        body = {} if output is UNSET else {"output": output}
        return await self._run(Call("POST", f"/v1/tasks/{_api.seg(id)}/complete", _api.model(m.Task), body=body))

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
        body = _api.compact(
            agents=[agents] if isinstance(agents, str) else list(agents),
            permissions=list(permissions),
            expires_at=expires_at,
        )
        path = f"/v1/contexts/{_api.seg(ctx)}/grants"
        return await self._run(Call("POST", path, _api.model_list(m.Grant, "grants"), body=body))

    async def list_grants(self, ctx: str) -> List[m.Grant]:
        """The grants of a context."""
        return await self._run(Call("GET", f"/v1/contexts/{_api.seg(ctx)}/grants", _api.model_list(m.Grant, "grants")))

    async def revoke(self, ctx: str, agent: str) -> None:
        """Ends an agent's grant on a context."""
        path = f"/v1/contexts/{_api.seg(ctx)}/grants"
        return await self._run(Call("DELETE", path, _api.no_content, params={"agent": agent}))

    async def shared(self, agent: Optional[str] = None) -> List[m.Grant]:
        """The grants an agent holds (default: this client's agent)."""
        path = f"/v1/agents/{_api.seg(await self._agent(agent))}/shared"
        return await self._run(Call("GET", path, _api.model_list(m.Grant, "grants")))

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
        return await self._run(Call("POST", "/v1/policies", _api.model_list(m.PolicyRule, "policies"), body=body))

    async def list_policies(self) -> List[m.PolicyRule]:
        """Every access policy rule."""
        return await self._run(Call("GET", "/v1/policies", _api.model_list(m.PolicyRule, "policies")))

    async def delete_policy(self, id: str) -> None:
        """Removes an access policy rule."""
        return await self._run(Call("DELETE", f"/v1/policies/{_api.seg(id)}", _api.no_content))

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
        params = {
            "agent": agent,
            "context": context,
            "allowed": allowed,
            "since": since,
            "after": after,
            "limit": limit,
        }
        return await self._run(Call("GET", "/v1/audit", _api.model(m.AuditPage), params=params))

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
        params = {"status": status, "limit": limit, "cursor": cursor}
        path = f"/v1/contexts/{_api.seg(ctx)}/conflicts"
        return await self._run(Call("GET", path, _api.model(m.ConflictPage), params=params))

    async def get_conflict(self, ctx: str, id: str) -> m.Conflict:
        """A conflict record with ``current``, the entry it met."""
        path = f"/v1/contexts/{_api.seg(ctx)}/conflicts/{_api.seg(id)}"
        return await self._run(Call("GET", path, _api.model(m.Conflict)))

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
        body: Dict[str, Any] = _api.compact(choose=choose, if_match=if_match)
        if value is not UNSET:
            body["value"] = value
        path = f"/v1/contexts/{_api.seg(ctx)}/conflicts/{_api.seg(id)}/resolve"
        return await self._run(Call("POST", path, _api.model(m.Conflict), body=body))

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
        return await self._run(Call("GET", path, _api.package_answer, params=params))

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
        params = {
            "agent": agent,
            "budget": budget,
            "format": "markdown",
            "encoding": encoding,
            "compress": compress,
            "at": at,
        }
        path = f"/v1/contexts/{_api.seg(ctx)}/package"
        return await self._run(Call("GET", path, _api.markdown_answer, params=params))

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
        return await self._run(Call("GET", path, _api.model(m.SearchResult), params=params))

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
        body = _api.compact(key=key, proposals=list(proposals), min_agreement=min_agreement)
        path = f"/v1/contexts/{_api.seg(ctx)}/consensus"
        return await self._run(Call("POST", path, _api.model(m.ConsensusOutcome), body=body))

    async def record_decision(
        self, ctx: str, decision: JSON, read_revision: int, *, key: Optional[str] = None
    ) -> m.DecisionRecord:
        """Records a decision with the revision it was based on; ``replay`` rebuilds the package seen."""
        body = _api.compact(decision=decision, read_revision=read_revision, key=key)
        body["decision"] = decision
        path = f"/v1/contexts/{_api.seg(ctx)}/decisions"
        return await self._run(Call("POST", path, _api.model(m.DecisionRecord), body=body))



class AsyncHeldLock:
    """A lock held through ``async with client.lock(...)`` (see :class:`ctxmesh.HeldLock`)."""

    def __init__(
        self, client: AsyncClient, ctx: str, name: str, *, ttl_ms: int, wait_ms: int, refresh: bool = False
    ) -> None:
        self.client = client
        self.context = ctx
        self.name = name
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.auto_refresh = refresh
        self.lock: Optional[m.Lock] = None
        self.lost = False
        self._task: Optional["asyncio.Task[None]"] = None

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

    async def acquire(self) -> m.Lock:
        """Acquires the lock, waiting up to ``wait_ms``; raises :class:`~ctxmesh.LockNotAcquired`."""
        deadline = time.monotonic() + self.wait_ms / 1000
        while True:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            lock = await self.client.acquire_lock(
                self.context, self.name, ttl_ms=self.ttl_ms, wait_ms=min(left, 60_000)
            )
            if lock.acquired:
                break
            if time.monotonic() >= deadline:
                raise LockNotAcquired(lock)
        self.lock = lock
        self.lost = False
        if self.auto_refresh:
            self._task = asyncio.create_task(self._refresh_loop())
        return lock

    async def refresh(self, ttl_ms: Optional[int] = None) -> m.Lock:
        """Extends the lock's TTL now."""
        lock = await self.client.refresh_lock(
            self.context, self.name, ttl_ms=ttl_ms or self.ttl_ms, lock_id=self.lock_id
        )
        self.lock = lock
        return lock

    async def release(self) -> None:
        """Releases the lock (a lock already lost is only marked ``lost``)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self.lock is None:
            return
        try:
            await self.client.release_lock(self.context, self.name, lock_id=self.lock_id)
        except (NotHolder, NotFound):
            self.lost = True

    async def _refresh_loop(self) -> None:
        interval = max(0.05, self.ttl_ms / 3000)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except NotHolder:
                self.lost = True
                return
            except Exception:
                continue  # a transient failure; the next round tries again

    async def __aenter__(self) -> "AsyncHeldLock":
        await self.acquire()
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.release()
