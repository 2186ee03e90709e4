"""The requests the LangGraph adapters make, and how they are run.

The adapters' logic is written once, as generators ("plans") that yield
:class:`Txn`, :class:`ListPage` or :class:`Search` requests and receive the
server's answers. :func:`run_sync` drives a plan with a
:class:`SyncTransport`, :func:`run_async` with an :class:`AsyncTransport`,
so the sync and async methods of the store and the saver share every line
that is not I/O.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, Union

T = TypeVar("T")


@dataclass(frozen=True)
class Txn:
    """``POST /v1/contexts/{ctx}/txn`` with ``body``; answers the JSON result."""

    body: dict[str, Any]


@dataclass(frozen=True)
class ListPage:
    """``GET /v1/contexts/{ctx}/entries``: one page of entries under ``prefix``."""

    prefix: str
    limit: int = 1000
    cursor: str | None = None


@dataclass(frozen=True)
class Search:
    """``GET /v1/contexts/{ctx}/search`` with ``params``."""

    params: dict[str, Any] = field(default_factory=dict)


Request = Union[Txn, ListPage, Search]
Plan = Generator[Request, Any, T]


class SyncTransport(Protocol):
    """Runs requests against one context, blocking."""

    def execute(self, request: Request) -> Any:
        """Runs ``request`` and answers the decoded JSON body."""
        ...


class AsyncTransport(Protocol):
    """Runs requests against one context, asynchronously."""

    async def execute(self, request: Request) -> Any:
        """Runs ``request`` and answers the decoded JSON body."""
        ...


def run_sync(plan: Plan[T], transport: SyncTransport) -> T:
    """Drives ``plan`` to completion with blocking I/O."""
    try:
        request = next(plan)
        while True:
            try:
                answer = transport.execute(request)
            except BaseException as exc:  # noqa: BLE001 - handed to the plan
                request = plan.throw(exc)
            else:
                request = plan.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(plan: Plan[T], transport: AsyncTransport) -> T:
    """Drives ``plan`` to completion with asynchronous I/O."""
    try:
        request = next(plan)
        while True:
            try:
                answer = await transport.execute(request)
            except BaseException as exc:  # noqa: BLE001 - handed to the plan
                request = plan.throw(exc)
            else:
                request = plan.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def list_all(prefix: str, page_size: int = 1000) -> Plan[list[dict[str, Any]]]:
    """Every current entry whose key starts with ``prefix``, in key order.

    Pages share the revision of the first one (the server pins it in the
    cursor), so the result is one consistent snapshot.
    """
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = yield ListPage(prefix, page_size, cursor)
        entries.extend(page.get("entries") or [])
        cursor = page.get("next_cursor")
        if not cursor:
            return entries


def txn_ops_results(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``results`` of a transaction answer."""
    return list(answer.get("results") or [])
