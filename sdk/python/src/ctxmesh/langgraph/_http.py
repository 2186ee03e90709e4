"""Transports for the LangGraph adapters: one context, through the ctxmesh clients."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable
from urllib.parse import quote

from ..aio import AsyncClient
from ..client import Client
from ..errors import AlreadyExists
from ._io import ListPage, Request, Search, Txn


def route(context: str, request: Request) -> tuple[str, str, dict[str, Any] | None, Any]:
    """Method, path, query parameters and JSON body of ``request``."""
    base = f"/v1/contexts/{quote(context, safe='')}"
    if isinstance(request, Txn):
        return "POST", f"{base}/txn", None, request.body
    if isinstance(request, ListPage):
        params: dict[str, Any] = {"prefix": request.prefix, "limit": request.limit}
        if request.cursor:
            params["cursor"] = request.cursor
        return "GET", f"{base}/entries", params, None
    if isinstance(request, Search):
        return "GET", f"{base}/search", dict(request.params), None
    raise TypeError(f"unknown request {request!r}")


def _kwargs(params: dict[str, Any] | None, body: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if params is not None:
        kwargs["params"] = params
    if body is not None:
        kwargs["json"] = body
    return kwargs


class ClientTransport:
    """Blocking transport to one context through a :class:`ctxmesh.Client`.

    The context is created on first use when it does not exist.
    """

    def __init__(self, client: Client, context: str, *, labels: dict[str, str] | None = None, owned: bool = False) -> None:
        self.client = client
        self.context = context
        self.labels = dict(labels or {})
        self._owned = owned
        self._ready = False
        self._lock = threading.Lock()

    def close(self) -> None:
        """Closes the client when this transport created it."""
        if self._owned:
            self.client.close()

    def ensure_context(self) -> None:
        """Creates the context unless it exists."""
        with self._lock:
            if self._ready:
                return
            try:
                self.client.create_context(self.context, labels=self.labels or None)
            except AlreadyExists:
                pass
            self._ready = True

    def execute(self, request: Request) -> Any:
        """Runs ``request`` and answers the decoded JSON body."""
        if not self._ready:
            self.ensure_context()
        method, path, params, body = route(self.context, request)
        return self.client.request(method, path, **_kwargs(params, body))


class AsyncClientTransport:
    """Asynchronous transport to one context through a :class:`ctxmesh.AsyncClient`.

    Given a client, it uses it. Otherwise it makes one with ``factory`` per
    event loop (an ``AsyncClient``'s connections belong to the loop that
    opened them, and a program may run several loops one after the other).
    """

    def __init__(
        self,
        context: str,
        *,
        client: AsyncClient | None = None,
        factory: Callable[[], AsyncClient] | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        if client is None and factory is None:
            raise ValueError("give an AsyncClient or a factory of them")
        self.context = context
        self.labels = dict(labels or {})
        self._client = client
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False

    def _current(self) -> AsyncClient:
        if self._factory is None:
            assert self._client is not None
            return self._client
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = self._factory()
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Closes the client when this transport created it."""
        if self._factory is not None and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def ensure_context(self) -> None:
        """Creates the context unless it exists."""
        if self._ready:
            return
        try:
            await self._current().create_context(self.context, labels=self.labels or None)
        except AlreadyExists:
            pass
        self._ready = True

    async def execute(self, request: Request) -> Any:
        """Runs ``request`` and answers the decoded JSON body."""
        if not self._ready:
            await self.ensure_context()
        method, path, params, body = route(self.context, request)
        return await self._current().request(method, path, **_kwargs(params, body))


__all__ = ["AsyncClientTransport", "ClientTransport", "route"]
