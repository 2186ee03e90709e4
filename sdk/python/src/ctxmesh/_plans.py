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
import contextvars
import copy
import logging
import os
import random
import ssl
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
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
    Tuple,
    TypeVar,
    Union,
)

from . import _api, _tracing
from . import models as m
from ._api import Call
from .errors import (
    Disconnected,
    Fenced,
    Forbidden,
    LockLostError,
    LockNotAcquired,
    NotFound,
    NotHolder,
    PreconditionFailed,
    Unauthenticated,
    UpdateConflict,
)
from .watch import WatchOptions

T = TypeVar("T")
C = TypeVar("C")

log = logging.getLogger("ctxmesh")


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
        keepalive: bool,
        reads: "ReadMemory",
        ca_file: Optional[str] = None,
    ) -> None:
        self.base_url, self.token, self.agent_id = _api.resolve_settings(base_url, token, agent_id)
        self.ca_file = ca_file if ca_file is not None else (os.environ.get("CTXMESH_CA_FILE") or None)
        self._identity: Optional[m.Identity] = None
        self.timeout = timeout
        self._extra_headers = _api.str_map(dict(headers or {}), "headers") or {}
        self._reads = reads
        self._keepalive_on = keepalive
        self._keepalive = Keepalive(self) if keepalive and (self.agent_id or self.token) else None

    def __repr__(self) -> str:
        agent = f", agent_id={self.agent_id!r}" if self.agent_id else ""
        return f"{type(self).__name__}({self.base_url!r}{agent})"

    def _settings_as(self, agent_id: str, token: Optional[str]) -> Dict[str, Any]:
        """The arguments of a client acting as ``agent_id`` (with ``token``, or this client's)."""
        return {
            "base_url": self.base_url,
            "token": token if token is not None else self.token,
            "agent_id": agent_id,
            "timeout": self.timeout,
            "headers": self._extra_headers,
            "keepalive": self._keepalive_on,
            "ca_file": self.ca_file,
        }

    def _verify(self) -> Union[bool, ssl.SSLContext]:
        """How ``https://`` servers are checked: the system's roots, plus ``ca_file`` when given."""
        if not self.ca_file:
            return True
        context = ssl.create_default_context()
        try:
            context.load_verify_locations(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"ca_file {self.ca_file!r} cannot be read as PEM certificates: {e}") from None
        return context

    def _headers(self, extra: Mapping[str, str]) -> Dict[str, str]:
        headers = _api.auth_headers(self.token, self.agent_id)
        headers.update(self._extra_headers)
        headers.update(extra)
        # The caller's span, when OpenTelemetry is installed and one is
        # current: the server's spans continue its trace.
        _tracing.add_trace_headers(headers)
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


# --- the agent's lease --------------------------------------------------------------


class Keepalive:
    """Keeps the lease of a client's agent alive while the client is open.

    The client's thread or task runs :meth:`round` again and again: a
    heartbeat, then a pause of a third of the agent's lease (read from the
    heartbeat's answer). A heartbeat refused for good (the agent is not
    registered, the token is not the agent's or was revoked) ends it; a
    failed one (no answer, 5xx) is tried again at the next round. Nothing
    is printed: the ``ctxmesh`` logger says what happens at debug level.

    It also holds the locks acquired through the client: when a heartbeat
    shows that the lease lapsed since the one before (the server may have
    disconnected the agent and released its locks), each of them is read
    again, and marked lost unless this acquisition still holds it.
    """

    # Between attempts while the lease's length is not known yet.
    FIRST_INTERVAL = 1.0

    def __init__(self, client: ClientCore) -> None:
        self._client = weakref.ref(client)
        self.agent: Optional[str] = None
        self.lease_ms: Optional[int] = None
        self.lease_expires_at: Optional[datetime] = None
        self.stopped = False
        self._locks: "weakref.WeakSet[LockCore[Any]]" = weakref.WeakSet()
        self._guard = threading.Lock()

    @property
    def interval(self) -> float:
        """Seconds between heartbeats: a third of the lease."""
        return self.lease_ms / 3000 if self.lease_ms else self.FIRST_INTERVAL

    def hold(self, lock: "LockCore[Any]") -> None:
        with self._guard:
            self._locks.add(lock)

    def drop(self, lock: "LockCore[Any]") -> None:
        with self._guard:
            self._locks.discard(lock)

    def held(self) -> List["LockCore[Any]"]:
        with self._guard:
            return [lock for lock in self._locks if lock.lock is not None and not lock.lost]

    def round(self) -> Plan[Optional[float]]:
        """One heartbeat; answers the seconds until the next, or ``None`` when the keepalive ends."""
        client = self._client()
        if client is None or self.stopped:
            return None
        try:
            agent = self.agent or (yield from agent_of(client, None))
        except ValueError:
            log.debug("ctxmesh: no agent to keep alive (the admin token without agent_id)")
            return self._stop()
        except (Unauthenticated, Forbidden) as e:
            log.debug("ctxmesh: keepalive ended: %s", e.code)
            return self._stop()
        except RuntimeError:
            return self._stop()  # the client was closed meanwhile
        except Exception as e:  # noqa: BLE001 - no answer: try again at the next round
            log.debug("ctxmesh: finding the agent to keep alive failed (%s); trying again", type(e).__name__)
            return self.interval
        self.agent = agent
        del client
        try:
            answer: m.Agent = yield _api.heartbeat(agent)
        except (NotFound, Unauthenticated, Forbidden) as e:
            log.debug("ctxmesh: keepalive of agent %r ended: %s", agent, e.code)
            return self._stop()
        except RuntimeError:
            return self._stop()
        except Exception as e:  # noqa: BLE001
            log.debug("ctxmesh: heartbeat of agent %r failed (%s); trying again", agent, type(e).__name__)
            return min(self.interval, self.FIRST_INTERVAL)
        lapsed = (
            self.lease_expires_at is not None
            and answer.last_heartbeat_at is not None
            and answer.last_heartbeat_at >= self.lease_expires_at
        )
        self.lease_ms = answer.lease_ms or None
        self.lease_expires_at = answer.lease_expires_at
        log.debug("ctxmesh: heartbeat of agent %r; lease %s ms", agent, answer.lease_ms)
        if lapsed:
            log.debug("ctxmesh: the lease of agent %r had lapsed; checking its locks", agent)
            yield from self.check_locks(agent)
        return self.interval

    def check_locks(self, agent: str) -> Plan[None]:
        """Marks lost each lock held through the client that this acquisition does not hold any more."""
        for lock in self.held():
            try:
                current: m.Lock = yield _api.get_lock(lock.context, lock.name)
            except Exception:  # noqa: BLE001 - cannot tell: the lease did lapse
                current = None  # type: ignore[assignment]
            if current is None or current.holder != agent or current.lock_id != lock.lock_id:
                lock._mark_lost("the agent's lease lapsed: the server released its locks (holder disconnected)")

    def _stop(self) -> Optional[float]:
        """Ends the keepalive (``None``: no next round)."""
        self.stopped = True
        return None


# --- what the client remembers having read ------------------------------------------


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""Remembered for an entry the client read as missing."""

Seen = Union[int, _Absent]


class ReadMemory:
    """The revision at which a client last saw each entry, per thread or per task.

    ``get`` and ``get_or_none`` of the current state (not ``at=`` /
    ``as_of=``) record it, as do the client's own writes; a later ``put``,
    ``merge_patch``, ``json_patch`` or ``delete`` of the same entry without
    a precondition of its own sends ``If-Match`` with that revision (or
    ``If-None-Match: *`` for an entry read as missing), the way an ORM's
    version column does. At most :attr:`LIMIT` entries are remembered, the
    least recently seen forgotten first.
    """

    LIMIT = 10_000

    def seen(self, ctx: str, key: str) -> Optional[Seen]:
        """The revision the entry was last seen at, :data:`ABSENT`, or ``None`` when never seen."""
        raise NotImplementedError

    def saw(self, ctx: str, key: str, revision: Optional[int]) -> None:
        """Remembers the entry at ``revision`` (``None``: missing)."""
        raise NotImplementedError


class ThreadReads(ReadMemory):
    """A :class:`ReadMemory` per thread (the sync client)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _map(self) -> "OrderedDict[tuple[str, str], Seen]":
        seen: Optional[OrderedDict[tuple[str, str], Seen]] = getattr(self._local, "seen", None)
        if seen is None:
            seen = self._local.seen = OrderedDict()
        return seen

    def seen(self, ctx: str, key: str) -> Optional[Seen]:
        return self._map().get((ctx, key))

    def saw(self, ctx: str, key: str, revision: Optional[int]) -> None:
        seen = self._map()
        seen[(ctx, key)] = ABSENT if revision is None else revision
        seen.move_to_end((ctx, key))
        while len(seen) > self.LIMIT:
            seen.popitem(last=False)


class TaskReads(ReadMemory):
    """A :class:`ReadMemory` per asyncio task (the async client).

    A context variable holds the memory, which is replaced, never changed,
    so that a task started from another inherits what it had seen without
    the two sharing later reads. It is split in :attr:`BUCKETS` buckets by
    key, so that remembering an entry copies one bucket and the list of
    buckets, not the whole memory; each bucket forgets its least recently
    seen entries past its share of :attr:`LIMIT`.
    """

    BUCKETS = 64

    def __init__(self) -> None:
        empty: Tuple[Dict[tuple[str, str], Seen], ...] = tuple({} for _ in range(self.BUCKETS))
        self._var: contextvars.ContextVar[Tuple[Dict[tuple[str, str], Seen], ...]] = contextvars.ContextVar(
            f"ctxmesh-reads-{id(self)}", default=empty
        )

    def seen(self, ctx: str, key: str) -> Optional[Seen]:
        entry = (ctx, key)
        return self._var.get()[hash(entry) % self.BUCKETS].get(entry)

    def saw(self, ctx: str, key: str, revision: Optional[int]) -> None:
        entry = (ctx, key)
        buckets = self._var.get()
        i = hash(entry) % self.BUCKETS
        bucket = dict(buckets[i])
        bucket.pop(entry, None)
        bucket[entry] = ABSENT if revision is None else revision
        while len(bucket) > self.LIMIT // self.BUCKETS:
            del bucket[next(iter(bucket))]
        self._var.set(buckets[:i] + (bucket,) + buckets[i + 1 :])


# --- entries ---------------------------------------------------------------------


def get(
    reads: ReadMemory, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Any] = None
) -> Plan[m.Entry]:
    """An entry; a read of the current state is remembered (see :class:`ReadMemory`)."""
    entry: m.Entry = yield _api.get(ctx, key, at=at, as_of=as_of)
    if at is None and as_of is None:
        reads.saw(ctx, key, entry.revision)
    return entry


def get_or_none(
    reads: ReadMemory, ctx: str, key: str, *, at: Optional[int] = None, as_of: Optional[Any] = None
) -> Plan[Optional[m.Entry]]:
    try:
        return (yield from get(reads, ctx, key, at=at, as_of=as_of))
    except NotFound:
        if at is None and as_of is None:
            reads.saw(ctx, key, None)
        return None


def write(
    reads: ReadMemory,
    ctx: str,
    key: str,
    build: Callable[..., Call[T]],
    *,
    if_match: Any = None,
    if_none_match: bool = False,
    force: bool = False,
    fencing: Any = None,
    deletes: bool = False,
) -> Plan[T]:
    """A write of one entry (``build(if_match=, if_none_match=)`` makes its request).

    Without a precondition of its own and without ``force``, it carries the
    revision this thread or task last saw the entry at (see
    :class:`ReadMemory`); what it wrote is remembered in turn.
    """
    if isinstance(fencing, LockCore):
        fencing._check_held()
    implied: Optional[Seen] = None
    if if_match is None and not if_none_match and not force:
        implied = reads.seen(ctx, key)
        if implied is ABSENT:
            if_none_match = True
        elif implied is not None:
            if_match = implied
    try:
        answer: T = yield build(if_match=if_match, if_none_match=if_none_match)
    except PreconditionFailed as e:
        if implied is None:
            raise
        seen = "missing" if implied is ABSENT else f"at revision {implied}"
        raise PreconditionFailed(
            e.code,
            f"{e.message}; this client last read {key!r} {seen}, and it changed since: "
            "read it again before writing, use update(), or pass force=True to overwrite",
            e.status,
            e.details,
            e.headers,
        ) from None
    except Fenced:
        if isinstance(fencing, LockCore):
            fencing._mark_lost("a newer holder of the lock was issued a token (the write was fenced)")
        raise
    if deletes:
        reads.saw(ctx, key, None)
    elif isinstance(answer, m.Entry):
        reads.saw(ctx, key, answer.revision)
    return answer


def update(
    ctx: str,
    key: str,
    fn: Callable[[Any], Any],
    *,
    retries: int,
    fencing: Optional[Any],
    meta: Mapping[str, Any],
    reads: ReadMemory,
) -> Plan[m.Entry]:
    """Read, apply ``fn``, write with a precondition; again on the newer value after a ``412``."""
    if isinstance(fencing, LockCore):
        fencing._check_held()
    current = yield from get_or_none(reads, ctx, key)
    attempt = 0
    while True:
        value = fn(copy.deepcopy(current.value) if current is not None else None)
        if asyncio.iscoroutine(value):
            value = yield Await(value)
        fields = _api.carried_meta(current)
        fields.update(_api.entry_meta(**meta))
        try:
            if current is None:
                written: m.Entry = yield _api.put(ctx, key, value, if_none_match=True, fencing=fencing, **fields)
            else:
                written = yield _api.put(ctx, key, value, if_match=current.revision, fencing=fencing, **fields)
            reads.saw(ctx, key, written.revision)
            return written
        except Fenced:
            if isinstance(fencing, LockCore):
                fencing._mark_lost("a newer holder of the lock was issued a token (the write was fenced)")
            raise
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
                current = yield from get_or_none(reads, ctx, key)
            else:
                reads.saw(ctx, key, current.revision)
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
    """What a held lock is, whichever client holds it; the acquisition, refresh and release plans.

    A lock is *lost* when it turns out not to be held by this acquisition
    any more: a refresh or the release is refused (``NotHolder``), a write
    fenced with it is refused (``Fenced``), or the client's keepalive finds
    that the agent's lease lapsed and another acquisition (or none) holds
    the lock. ``lost`` and ``lost_reason`` say so, the subclass's
    ``lost_event`` is set, and the next use of the lock raises
    :class:`~ctxmesh.LockLostError`.
    """

    def __init__(self, client: C, ctx: str, name: str, *, ttl_ms: int, wait_ms: int, refresh: bool = False) -> None:
        self.client = client
        self.context = ctx
        self.name = name
        self.ttl_ms: int = _api.integer(ttl_ms, "ttl_ms")
        self.wait_ms: int = _api.integer(wait_ms, "wait_ms")
        self.auto_refresh = refresh
        self.lock: Optional[m.Lock] = None
        self.lost = False
        self.lost_reason: Optional[str] = None

    def __repr__(self) -> str:
        state = "lost" if self.lost else ("held" if self.lock is not None else "not held")
        token = f", fencing_token={self.lock.fencing_token}" if self.lock is not None else ""
        return f"{type(self).__name__}(context={self.context!r}, name={self.name!r}{token}, {state})"

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
        """The ``X-Fencing-Token`` value for writes under this lock (:class:`~ctxmesh.LockLostError` once lost)."""
        self._check_held()
        return f"{self.name}={self.fencing_token}"

    @property
    def headers(self) -> Dict[str, str]:
        """The header to send with writes under this lock (for other HTTP clients)."""
        return {"X-Fencing-Token": self.fence}

    @property
    def _refresh_interval(self) -> float:
        """Seconds between background refreshes: a third of the TTL."""
        return max(0.05, self.ttl_ms / 3000)

    def _check_held(self) -> None:
        """Raises :class:`~ctxmesh.LockLostError` when the lock is known to be lost."""
        if self.lost:
            raise LockLostError(self)

    def _mark_lost(self, reason: str) -> None:
        if not self.lost:
            self.lost_reason = reason
            self.lost = True
            log.debug("ctxmesh: lock %r of context %r lost: %s", self.name, self.context, reason)
        self._lost_signal()

    def _lost_signal(self) -> None:
        """Sets the subclass's ``lost_event``."""

    def _keepalive(self) -> Optional[Keepalive]:
        return getattr(self.client, "_keepalive", None)

    def _acquiring(self) -> Plan[m.Lock]:
        """Asks for the lock until it is granted or ``wait_ms`` passed (the server waits up to a minute each time)."""
        deadline = time.monotonic() + self.wait_ms / 1000
        revived = False
        while True:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                lock: m.Lock = yield _api.acquire_lock(
                    self.context, self.name, ttl_ms=self.ttl_ms, wait_ms=min(left, 60_000)
                )
            except Disconnected:
                # The agent's lease lapsed before this client's keepalive
                # renewed it (the client was just opened, say): renew, once.
                keepalive = self._keepalive()
                if revived or keepalive is None or keepalive.stopped:
                    raise
                revived = True
                yield from keepalive.round()
                continue
            if lock.acquired:
                break
            if time.monotonic() >= deadline:
                raise LockNotAcquired(lock)
        self.lock = lock
        self.lost = False
        self.lost_reason = None
        keepalive = self._keepalive()
        if keepalive is not None:
            keepalive.hold(self)
        return lock

    def _refreshing(self, ttl_ms: Optional[int]) -> Plan[m.Lock]:
        self._check_held()
        try:
            lock: m.Lock = yield _api.refresh_lock(
                self.context, self.name, ttl_ms=ttl_ms or self.ttl_ms, lock_id=self.lock_id
            )
        except (NotHolder, NotFound):
            self._mark_lost("a refresh was refused: the lock is not held by this acquisition any more")
            raise LockLostError(self) from None
        self.lock = lock
        return lock

    def _releasing(self) -> Plan[None]:
        """Releases the lock; :class:`~ctxmesh.LockLostError` when it was lost (it is forgotten either way)."""
        if self.lock is None:
            return
        keepalive = self._keepalive()
        if keepalive is not None:
            keepalive.drop(self)
        if not self.lost:
            try:
                yield _api.release_lock(self.context, self.name, lock_id=self.lock_id)
                return
            except (NotHolder, NotFound):
                self._mark_lost("the release was refused: the lock was not held by this acquisition any more")
        raise LockLostError(self)

    def _refresh_round(self) -> Plan[bool]:
        """One background refresh; ``False`` once the lock turned out lost (the refreshing ends)."""
        if self.lost:
            return False
        try:
            yield from self._refreshing(None)
        except LockLostError:
            return False
        except Exception:
            pass  # a transient failure; the next round tries again
        return True
