"""Server-Sent Events: parsing, and watch iterators that resume by themselves.

A ctxmesh watch (``GET /v1/contexts/{ctx}/watch``, an inbox's
``/v1/agents/{id}/inbox/watch``, the agents feed) sends each event as an
SSE frame whose ``id`` is its position (the context revision, or the
stream's sequence number), ``progress`` bookmarks, and a few control
frames. :class:`Watch` and :class:`AsyncWatch` turn such a stream into an
iterator of :class:`~ctxmesh.models.Event` that survives disconnects and
server restarts: they reconnect with backoff from the exact position they
reached, and never yield an event twice or skip one.

A connection can break in the middle of a revision's events (a
transaction that changed several keys is one revision with several
events). The iterators then resume from the last bookmark when it covers
the last event received, else from the revision before it, and drop the
events of that revision they already yielded: the server sends them again
in the same order.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Type,
)

import httpx

from . import _api
from .errors import Compacted, Internal, RateLimited, TransportError, Unavailable, error_class
from .models import Event

__all__ = ["SSEFrame", "SSEParser", "ResumeTracker", "Watch", "AsyncWatch", "WatchOptions"]


@dataclass
class SSEFrame:
    """One dispatched Server-Sent Event."""

    event: str
    data: str
    id: Optional[str] = None


class SSEParser:
    """An incremental Server-Sent Events parser (the WHATWG rules).

    Feed it lines without their line terminator; it returns a frame when a
    blank line completes one. Comments (``: keep-alive``) produce nothing.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: List[str] = []
        self._id: Optional[str] = None
        self._has_id = False

    def feed(self, line: str) -> Optional[SSEFrame]:
        """Takes one line; returns the frame it completes, if any."""
        if line.endswith("\r"):
            line = line[:-1]
        if line == "":
            if not self._data and not self._event:
                self._has_id = False
                self._id = None
                return None
            frame = SSEFrame(
                event=self._event or "message",
                data="\n".join(self._data),
                id=self._id if self._has_id else None,
            )
            self._event, self._data, self._id, self._has_id = "", [], None, False
            return frame
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id, self._has_id = value, True
        # "retry" and unknown fields are ignored.
        return None


class ResumeTracker:
    """Where to resume a watch so that nothing is repeated or skipped.

    Positions are revisions (context watches) or sequence numbers (inboxes,
    the agents feed). In ``priority`` order, events carry no position of
    their own and resumption is at bookmarks; events already yielded since
    the last bookmark are recognized and dropped.
    """

    def __init__(self, after: Optional[int], order: str = "revision") -> None:
        self.bookmark: Optional[int] = after
        self.last: Optional[int] = after
        self.held_of_last = 0
        self.order = order
        self._skip = 0
        self._skip_position = -1
        self._seen: Dict[str, int] = {}

    @property
    def position(self) -> Optional[int]:
        """Every event up to this position has been received (``None``: not known yet)."""
        if self.order == "priority":
            return self.bookmark
        if self.last is None:
            return self.bookmark
        if self.bookmark is not None and self.bookmark >= self.last:
            return self.bookmark
        return self.last - 1 if self.held_of_last > 0 else self.last

    def resume_after(self) -> Optional[int]:
        """The position to (re)connect after; call once per connection."""
        self._skip = 0
        if self.order == "priority":
            return self.bookmark
        if self.last is None:
            return self.bookmark
        if self.bookmark is not None and self.bookmark >= self.last:
            return self.bookmark
        if self.held_of_last > 0:
            self._skip = self.held_of_last
            self._skip_position = self.last
            return self.last - 1
        return self.last

    def accept(self, position: int, raw: str = "") -> bool:
        """Records an event at ``position``; ``False`` for a repeat to drop."""
        if self.order == "priority":
            if raw in self._seen:
                return False
            if self.bookmark is not None and position <= self.bookmark:
                return False
            self._seen[raw] = position
            return True
        if self._skip > 0 and position == self._skip_position:
            self._skip -= 1
            return False
        self._skip = 0
        if self.last is not None and position < self.last:
            return False  # older than what was already delivered
        if self.bookmark is not None and position <= self.bookmark:
            return False  # a bookmark said it was delivered
        if position == self.last:
            self.held_of_last += 1
        else:
            self.last = position
            self.held_of_last = 1
        return True

    def progress(self, position: int) -> None:
        """Records a bookmark: every event up to ``position`` has been sent."""
        if self.bookmark is None or position > self.bookmark:
            self.bookmark = position
        if self.order == "priority":
            self._seen = {k: p for k, p in self._seen.items() if p > position}


@dataclass
class WatchOptions:
    """How a watch behaves.

    Attributes:
        include_progress: also yield ``progress`` bookmarks (as events of
            type ``progress`` whose ``revision``, or ``seq`` for streams, is
            the bookmark).
        reconnect: resume after a disconnect; ``False`` ends the iteration
            when the connection ends.
        max_retries: consecutive failed connection attempts before the
            error is raised (``None``: keep trying).
        backoff: first delay between attempts, in seconds; it doubles up to
            ``max_backoff``, with jitter.
        max_backoff: the longest delay between attempts.
        read_timeout: seconds without any byte (the server sends a bookmark
            every few seconds) after which the connection is considered
            dead and replaced.
    """

    include_progress: bool = False
    reconnect: bool = True
    max_retries: Optional[int] = None
    backoff: float = 0.1
    max_backoff: float = 5.0
    read_timeout: float = 45.0


# Errors after which a watch reconnects instead of failing.
_RETRYABLE = (httpx.TransportError, httpx.StreamError, TransportError, Unavailable, Internal, RateLimited)


def _as_ctxmesh_error(error: BaseException) -> BaseException:
    """A transport failure of ``httpx`` as :class:`~ctxmesh.TransportError`; others as they are."""
    if isinstance(error, (httpx.TransportError, httpx.StreamError)):
        message = str(error) or type(error).__name__
        hint = _api.certificate_refused(error)
        return TransportError(f"{message}: {hint}" if hint else message)
    return error


def _gives_up(error: BaseException, options: "WatchOptions") -> Optional[BaseException]:
    """The error a watch ends with after ``error`` (one of ``_RETRYABLE``), or ``None`` to reconnect.

    A refused server certificate ends it: reconnecting would meet the same
    refusal until someone changes the configuration.
    """
    if not options.reconnect or _api.certificate_refused(error) is not None:
        return _as_ctxmesh_error(error)
    return None


class _Reconnect(Exception):
    """The server asked the client to resume (it is shutting down)."""


class _Core:
    """What the sync and async watches share: turning frames into events."""

    def __init__(self, after: Optional[int], order: str, stream_kind: str, options: WatchOptions) -> None:
        self.tracker = ResumeTracker(after, order)
        self.stream_kind = stream_kind  # "context" or "stream"
        self.options = options
        self.failures = 0
        self.closed = False

    def position_of(self, frame: SSEFrame, payload: Dict[str, Any]) -> int:
        if frame.id is not None:
            try:
                return int(frame.id)
            except ValueError:
                pass
        field = "seq" if self.stream_kind == "stream" else "revision"
        value = payload.get(field)
        if not isinstance(value, int):
            value = payload.get("revision", 0)
        return int(value) if isinstance(value, int) else 0

    def handle(self, frame: SSEFrame) -> Optional[Event]:
        """The event to yield for ``frame`` (``None``: nothing); raises to stop or reconnect."""
        try:
            payload = json.loads(frame.data) if frame.data else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        kind = frame.event
        if kind == "progress":
            position = self.position_of(frame, payload)
            self.tracker.progress(position)
            self.failures = 0
            if self.options.include_progress:
                data = dict(payload)
                data.setdefault("type", "progress")
                if self.stream_kind == "stream":
                    data["seq"] = position
                else:
                    data["revision"] = position
                return Event.model_validate(data)
            return None
        if kind == "compacted":
            self.closed = True
            raise Compacted(
                "compacted",
                f"the watch position {payload.get('requested')} was compacted; "
                f"restart from the current revision and read the state again",
                410,
                payload,
            )
        if kind == "error":
            raw_error = payload.get("error")
            error: Dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
            code = str(error.get("code") or "internal")
            message = str(error.get("message") or "")
            if code in ("unavailable", "internal"):
                raise _Reconnect(message)
            self.closed = True
            raise error_class(code)(code, message, 0, error.get("details") or {})
        position = self.position_of(frame, payload)
        if not self.tracker.accept(position, frame.data):
            return None
        self.failures = 0
        payload.setdefault("type", kind)
        event = Event.model_validate(payload)
        if kind == "context.deleted" and self.stream_kind == "context":
            self.closed = True
        return event

    def delay(self) -> float:
        self.failures += 1
        if self.options.max_retries is not None and self.failures > self.options.max_retries:
            return -1.0
        base = min(self.options.max_backoff, self.options.backoff * float(2 ** min(self.failures - 1, 16)))
        return base * (0.5 + random.random() / 2)


OpenStream = Callable[[Optional[int]], AbstractContextManager[httpx.Response]]
OpenAsyncStream = Callable[[Optional[int]], AbstractAsyncContextManager[httpx.Response]]


class Watch(Iterator[Event]):
    """A watch over a context, an inbox or the agents feed, as an iterator.

    It reconnects by itself after a disconnect or a server restart, from
    the exact position reached, so the events it yields are every event
    after the start position, in order, each once. ``close()`` (or leaving
    a ``with`` block) ends it and closes the connection; so does breaking
    out of a ``for`` loop once the watch is no longer referenced.

    It ends by itself when the watched context is deleted (after yielding
    the ``context.deleted`` event), and raises :class:`~ctxmesh.Compacted`
    when its position was compacted away, or the error that ended it
    (``Forbidden``, ``Unauthenticated``...).
    """

    def __init__(
        self,
        open_stream: OpenStream,
        *,
        after: Optional[int],
        start: Optional[Callable[[], int]] = None,
        order: str = "revision",
        stream_kind: str = "context",
        options: Optional[WatchOptions] = None,
    ) -> None:
        self._open = open_stream
        self._start = start
        self._core = _Core(after, order, stream_kind, options or WatchOptions())
        self._wake = threading.Event()
        self._gen = self._run()

    @property
    def position(self) -> Optional[int]:
        """Every event up to this position has been yielded (resume a new watch from it)."""
        return self._core.tracker.position

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> Event:
        return next(self._gen)

    def close(self) -> None:
        """Ends the watch and closes its connection."""
        self._core.closed = True
        self._wake.set()
        self._gen.close()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._gen.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def _run(self) -> Generator[Event, None, None]:
        core = self._core
        if core.tracker.last is None and self._start is not None:
            position = self._start()
            core.tracker = ResumeTracker(position, core.tracker.order)
        while not core.closed:
            after = core.tracker.resume_after()
            failure: Optional[BaseException] = None
            try:
                with self._open(after) as response:
                    parser = SSEParser()
                    for line in response.iter_lines():
                        frame = parser.feed(line)
                        if frame is None:
                            continue
                        event = core.handle(frame)
                        if event is not None:
                            yield event
                        if core.closed:
                            return
            except _Reconnect:
                pass
            except _RETRYABLE as e:
                failure = _gives_up(e, core.options)
            # Raised outside the handler: no chained exception carries the
            # request (or its Authorization header).
            if failure is not None:
                raise failure
            if core.closed or not core.options.reconnect:
                return
            delay = core.delay()
            if delay < 0:
                raise TransportError(f"the watch could not reconnect after {core.options.max_retries} attempts")
            if self._wake.wait(delay):
                return


class AsyncWatch(AsyncIterator[Event]):
    """The asynchronous :class:`Watch`: ``async for event in watch``.

    ``await watch.aclose()`` (or leaving an ``async with`` block) ends it
    and closes its connection.
    """

    def __init__(
        self,
        open_stream: OpenAsyncStream,
        *,
        after: Optional[int],
        start: Optional[Callable[[], Awaitable[int]]] = None,
        order: str = "revision",
        stream_kind: str = "context",
        options: Optional[WatchOptions] = None,
    ) -> None:
        self._open = open_stream
        self._start = start
        self._core = _Core(after, order, stream_kind, options or WatchOptions())
        self._gen = self._run()

    @property
    def position(self) -> Optional[int]:
        """Every event up to this position has been yielded."""
        return self._core.tracker.position

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> Event:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Ends the watch and closes its connection."""
        self._core.closed = True
        await self._gen.aclose()

    async def __aenter__(self) -> "AsyncWatch":
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[Event, None]:
        core = self._core
        if core.tracker.last is None and self._start is not None:
            position = await self._start()
            core.tracker = ResumeTracker(position, core.tracker.order)
        while not core.closed:
            after = core.tracker.resume_after()
            failure: Optional[BaseException] = None
            try:
                async with self._open(after) as response:
                    parser = SSEParser()
                    async for line in response.aiter_lines():
                        frame = parser.feed(line)
                        if frame is None:
                            continue
                        event = core.handle(frame)
                        if event is not None:
                            yield event
                        if core.closed:
                            return
            except _Reconnect:
                pass
            except _RETRYABLE as e:
                failure = _gives_up(e, core.options)
            if failure is not None:
                raise failure
            if core.closed or not core.options.reconnect:
                return
            delay = core.delay()
            if delay < 0:
                raise TransportError(f"the watch could not reconnect after {core.options.max_retries} attempts")
            await asyncio.sleep(delay)

