"""The operations of more than one request, written once for both clients.

An operation that takes several requests (paging, the ``update`` retry
loop, acquiring a lock, resolving the client's agent first) is a *plan*: a
generator that yields steps and receives their outcome.

- a :class:`~ctxmesh._api.Call`: the request is sent; the plan receives
  the parsed answer, or the exception it raised is thrown into it;
- :class:`Sleep`: a pause;
- :class:`Await`: an awaitable a caller's function returned (an async
  ``update`` function); the plan receives its result.

A *listing* is a plan that also hands out items, with :class:`Emit`.

:func:`run_sync` / :func:`iterate_sync` drive plans and listings with a
blocking client, :func:`run_async` / :func:`iterate_async` with an
asynchronous one, so :class:`~ctxmesh.Client` and
:class:`~ctxmesh.AsyncClient` share every line that is not I/O. Requests
themselves are built in :mod:`ctxmesh._api`.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
from dataclasses import dataclass
from typing import (
    Any,
    AsyncGenerator,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

from . import _api
from . import models as m
from ._api import Call
from .errors import LockNotAcquired, NotFound, NotHolder, PreconditionFailed, UpdateConflict
from .watch import WatchOptions

T = TypeVar("T")
C = TypeVar("C")


# --- steps and runners ---------------------------------------------------------


@dataclass(frozen=True)
class Sleep:
    """Pause for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Await:
    """An awaitable to wait for (a blocking runner hands ``value`` back as it is)."""

    value: Any


@dataclass(frozen=True)
class Emit(Generic[T]):
    """Items a listing hands out."""

    items: Sequence[T]


Step = Union[Call[Any], Sleep, Await]
Plan = Generator[Step, Any, T]
Listing = Generator[Union[Step, Emit[T]], Any, None]

Send = Callable[[Call[Any]], Any]
AsyncSend = Callable[[Call[Any]], Awaitable[Any]]


def _step_sync(step: Step, send: Send) -> Any:
    if isinstance(step, Call):
        return send(step)
    if isinstance(step, Sleep):
        time.sleep(step.seconds)
        return None
    if isinstance(step, Await):
        return step.value
    raise TypeError(f"not a step: {step!r}")


async def _step_async(step: Step, send: AsyncSend) -> Any:
    if isinstance(step, Call):
        return await send(step)
    if isinstance(step, Sleep):
        await asyncio.sleep(step.seconds)
        return None
    if isinstance(step, Await):
        return await step.value
    raise TypeError(f"not a step: {step!r}")


def run_sync(plan: Plan[T], send: Send) -> T:
    """Drives ``plan`` to its result, sending its requests with ``send``."""
    try:
        step = next(plan)
        while True:
            try:
                answer = _step_sync(step, send)
            except BaseException as exc:  # noqa: BLE001 - handed to the plan
                step = plan.throw(exc)
            else:
                step = plan.send(answer)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]


async def run_async(plan: Plan[T], send: AsyncSend) -> T:
    """Drives ``plan`` to its result, sending its requests with ``await send(...)``."""
    try:
        step = next(plan)
        while True:
            try:
                answer = await _step_async(step, send)
            except BaseException as exc:  # noqa: BLE001 - handed to the plan
                step = plan.throw(exc)
            else:
                step = plan.send(answer)
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]


def iterate_sync(listing: Listing[T], send: Send) -> Iterator[T]:
    """The items of ``listing``, its requests sent as the iteration gets to them."""
    try:
        step = next(listing)
        while True:
            if isinstance(step, Emit):
                yield from step.items
                step = listing.send(None)
                continue
            try:
                answer = _step_sync(step, send)
            except BaseException as exc:  # noqa: BLE001 - handed to the listing
                step = listing.throw(exc)
            else:
                step = listing.send(answer)
    except StopIteration:
        return
    finally:
        listing.close()


async def iterate_async(listing: Listing[T], send: AsyncSend) -> AsyncGenerator[T, None]:
    """The items of ``listing``, asynchronously."""
    try:
        step = next(listing)
        while True:
            if isinstance(step, Emit):
                for item in step.items:
                    yield item
                step = listing.send(None)
                continue
            try:
                answer = await _step_async(step, send)
            except BaseException as exc:  # noqa: BLE001 - handed to the listing
                step = listing.throw(exc)
            else:
                step = listing.send(answer)
    except StopIteration:
        return
    finally:
        listing.close()


def collect(listing: Listing[T]) -> Plan[List[T]]:
    """A plan answering every item of ``listing`` as a list."""
    items: List[T] = []
    try:
        step = next(listing)
        while True:
            if isinstance(step, Emit):
                items.extend(step.items)
                step = listing.send(None)
                continue
            try:
                answer = yield step
            except GeneratorExit:
                listing.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the listing
                step = listing.throw(exc)
            else:
                step = listing.send(answer)
    except StopIteration:
        return items


def done(value: T) -> Plan[T]:
    """A plan of no request."""
    return value
    yield  # pragma: no cover - makes this a generator


def single(call: Call[T]) -> Plan[T]:
    """A plan of one request."""
    return (yield call)  # type: ignore[no-any-return]


# --- what both clients hold ------------------------------------------------------


class ClientCore:
    """The settings of a client and the identity its token was found to have."""

    def __init__(
        self,
        base_url: Optional[str],
        token: Optional[str],
        agent_id: Optional[str],
        *,
        timeout: float,
        headers: Optional[Mapping[str, str]],
    ) -> None:
        self.base_url, self.token, self.agent_id = _api.resolve_settings(base_url, token, agent_id)
        self._identity: Optional[m.Identity] = None
        self.timeout = timeout
        self._extra_headers = dict(headers or {})

    def _settings_as(self, agent_id: str, token: Optional[str]) -> Dict[str, Any]:
        """The arguments of a client acting as ``agent_id`` (with ``token``, or this client's)."""
        return {
            "base_url": self.base_url,
            "token": token if token is not None else self.token,
            "agent_id": agent_id,
            "timeout": self.timeout,
            "headers": self._extra_headers,
        }

    def _headers(self, extra: Mapping[str, str]) -> Dict[str, str]:
        headers = _api.auth_headers(self.token, self.agent_id)
        headers.update(self._extra_headers)
        headers.update(extra)
        return headers


def agent_of(client: ClientCore, agent: Optional[str]) -> Plan[str]:
    """``agent``, else the client's agent: its ``agent_id``, else its token's (asked of the server once)."""
    agent = agent or client.agent_id
    if not agent:
        if client._identity is None and client.token:
            client._identity = yield _api.whoami()
        agent = _api.token_agent(client._identity)
    if not agent:
        raise ValueError("name the agent, or create the client with agent_id= or an agent's token")
    return agent


def for_agent(client: ClientCore, agent: Optional[str], build: Callable[[str], Call[T]]) -> Plan[T]:
    """The request ``build`` makes for ``agent`` (default: the client's agent)."""
    name = yield from agent_of(client, agent)
    return (yield build(name))  # type: ignore[no-any-return]


# --- entries ---------------------------------------------------------------------


def get_or_none(
    ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Any] = None
) -> Plan[Optional[m.Entry]]:
    try:
        return (yield _api.get(ctx, key, at=at, as_of=as_of))  # type: ignore[no-any-return]
    except NotFound:
        return None


def update(
    ctx: str,
    key: str,
    fn: Callable[[Any], Any],
    *,
    retries: int,
    fencing: Optional[Any],
    meta: Mapping[str, Any],
) -> Plan[m.Entry]:
    """Read, apply ``fn``, write with a precondition; again on the newer value after a ``412``."""
    current = yield from get_or_none(ctx, key)
    attempt = 0
    while True:
        value = fn(copy.deepcopy(current.value) if current is not None else None)
        if asyncio.iscoroutine(value):
            value = yield Await(value)
        fields = _api.carried_meta(current)
        fields.update(_api.entry_meta(**meta))
        try:
            if current is None:
                return (  # type: ignore[no-any-return]
                    yield _api.put(ctx, key, value, if_none_match=True, fencing=fencing, **fields)
                )
            return (  # type: ignore[no-any-return]
                yield _api.put(ctx, key, value, if_match=current.revision, fencing=fencing, **fields)
            )
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
                current = yield from get_or_none(ctx, key)
            yield Sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 8))))


# --- listings over pages -----------------------------------------------------------


def entries(
    ctx: str,
    *,
    prefix: Optional[str] = None,
    at: Optional[int] = None,
    as_of: Optional[Any] = None,
    page_size: Optional[int] = None,
) -> Listing[m.Entry]:
    """Every entry, following cursors (the later pages read the first one's snapshot)."""
    page = yield _api.list_page(ctx, prefix=prefix, at=at, as_of=as_of, limit=page_size)
    while True:
        yield Emit(page.entries)
        if not page.next_cursor:
            return
        page = yield _api.list_page(ctx, prefix=prefix, limit=page_size, cursor=page.next_cursor)


def events(
    ctx: str,
    *,
    after: int = 0,
    types: Optional[Union[str, Sequence[str]]] = None,
    prefix: Optional[str] = None,
    min_priority: Optional[str] = None,
    page_size: Optional[int] = None,
) -> Listing[m.Event]:
    """Every logged event after ``after``, page by page."""
    while True:
        page = yield _api.events(
            ctx, after=after, types=types, prefix=prefix, min_priority=min_priority, limit=page_size
        )
        yield Emit(page.events)
        if not page.more or page.last_revision <= after:
            return
        after = page.last_revision


def inbox(
    client: ClientCore, agent: Optional[str], *, after: int = 0, page_size: Optional[int] = None
) -> Listing[m.Event]:
    """Every item of an agent's inbox after ``after``, page by page."""
    while True:
        page = yield from for_agent(
            client, agent, lambda name: _api.inbox(name, after=after, limit=page_size)  # noqa: B023
        )
        yield Emit(page.events)
        if not page.events or page.next_after <= after:
            return
        after = page.next_after


def contexts(*, page_size: Optional[int] = None) -> Listing[m.Context]:
    """Every context the caller may read."""
    cursor: Optional[str] = None
    while True:
        page = yield _api.list_contexts(limit=page_size, cursor=cursor)
        yield Emit(page.contexts)
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def agents(
    *, status: Optional[str] = None, capability: Optional[str] = None, page_size: Optional[int] = None
) -> Listing[m.Agent]:
    """Every registered agent."""
    cursor: Optional[str] = None
    while True:
        page = yield _api.list_agents(status=status, capability=capability, limit=page_size, cursor=cursor)
        yield Emit(page.agents)
        if not page.next_cursor:
            return
        cursor = page.next_cursor


# --- watches -----------------------------------------------------------------------


@dataclass
class WatchSpec:
    """What a watch connects to; :class:`~ctxmesh.Watch` and :class:`~ctxmesh.AsyncWatch` do the rest.

    Attributes:
        connect: the plan of the request of a connection resuming after a
            position (run for each connection; it may ask the client's
            agent of the server first).
        start: the plan of the position to start from when none is given.
    """

    connect: Callable[[Optional[int]], Plan[Call[None]]]
    options: WatchOptions
    after: Optional[int]
    start: Optional[Callable[[], Plan[int]]] = None
    order: str = "revision"
    stream_kind: str = "context"


def context_revision(ctx: str) -> Plan[int]:
    context: m.Context = yield _api.get_context(ctx)
    return context.revision


def watch(
    ctx: str,
    *,
    after: Optional[int],
    types: Optional[Union[str, Sequence[str]]],
    prefix: Optional[str],
    min_priority: Optional[str],
    order: Optional[str],
    options: WatchOptions,
) -> WatchSpec:
    """A context's watch: from ``after``, else from the context's revision when it is first read."""

    def connect(position: Optional[int]) -> Plan[Call[None]]:
        return done(_api.watch(ctx, position, types=types, prefix=prefix, min_priority=min_priority, order=order))

    start = None if after is not None else (lambda: context_revision(ctx))
    return WatchSpec(connect, options, after, start=start, order=order or "revision")


def watch_inbox(
    client: ClientCore,
    agent: Optional[str],
    *,
    after: Optional[int],
    types: Optional[Union[str, Sequence[str]]],
    prefix: Optional[str],
    min_priority: Optional[str],
    options: WatchOptions,
) -> WatchSpec:
    """An inbox's watch; the agent (default: the client's) is resolved when the watch connects."""

    def connect(position: Optional[int]) -> Plan[Call[None]]:
        name = yield from agent_of(client, agent)
        return _api.watch_inbox(name, position, types=types, prefix=prefix, min_priority=min_priority)

    return WatchSpec(connect, options, after, stream_kind="stream")


def watch_agents(*, after: int, options: WatchOptions) -> WatchSpec:
    """The agents feed's watch."""
    return WatchSpec(lambda position: done(_api.watch_agents(position)), options, after, stream_kind="stream")


# --- locks -------------------------------------------------------------------------


class LockCore(Generic[C]):
    """What a held lock is, whichever client holds it; the acquisition, refresh and release plans."""

    def __init__(self, client: C, ctx: str, name: str, *, ttl_ms: int, wait_ms: int, refresh: bool = False) -> None:
        self.client = client
        self.context = ctx
        self.name = name
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self.auto_refresh = refresh
        self.lock: Optional[m.Lock] = None
        self.lost = False

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

    @property
    def _refresh_interval(self) -> float:
        """Seconds between background refreshes: a third of the TTL."""
        return max(0.05, self.ttl_ms / 3000)

    def _acquiring(self) -> Plan[m.Lock]:
        """Asks for the lock until it is granted or ``wait_ms`` passed (the server waits up to a minute each time)."""
        deadline = time.monotonic() + self.wait_ms / 1000
        while True:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            lock: m.Lock = yield _api.acquire_lock(
                self.context, self.name, ttl_ms=self.ttl_ms, wait_ms=min(left, 60_000)
            )
            if lock.acquired:
                break
            if time.monotonic() >= deadline:
                raise LockNotAcquired(lock)
        self.lock = lock
        self.lost = False
        return lock

    def _refreshing(self, ttl_ms: Optional[int]) -> Plan[m.Lock]:
        lock: m.Lock = yield _api.refresh_lock(
            self.context, self.name, ttl_ms=ttl_ms or self.ttl_ms, lock_id=self.lock_id
        )
        self.lock = lock
        return lock

    def _releasing(self) -> Plan[None]:
        if self.lock is None:
            return
        try:
            yield _api.release_lock(self.context, self.name, lock_id=self.lock_id)
        except (NotHolder, NotFound):
            self.lost = True

    def _refresh_round(self) -> Plan[bool]:
        """One background refresh; ``False`` once the lock turned out lost (the refreshing ends)."""
        try:
            yield from self._refreshing(None)
        except NotHolder:
            self.lost = True
            return False
        except Exception:
            pass  # a transient failure; the next round tries again
        return True
