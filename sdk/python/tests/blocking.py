"""An :class:`~ctxmesh.AsyncClient` behind the interface of :class:`~ctxmesh.Client`.

The tests written against the synchronous client run against the
asynchronous one through :class:`BlockingClient`: each coroutine runs to
completion on an event loop of the test's own (:class:`LoopThread`),
asynchronous iterators, watches and held locks become their blocking
counterparts, and answers and exceptions come back as they are. Several
calls may be in flight at once from several threads (a watch consumed on a
thread while the test writes), as with a shared sync client.

A call made from inside the loop (from a function the client calls, such
as ``update``'s) cannot block it: it raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from types import TracebackType
from typing import Any, Awaitable, Optional, Type, TypeVar

import ctxmesh

T = TypeVar("T")


class LoopThread:
    """An event loop running on a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ctxmesh-test-loop", daemon=True)
        self.thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        """Runs ``awaitable`` on the loop and waits for its outcome."""
        if threading.current_thread() is self.thread:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise RuntimeError("a blocking call from inside the event loop would never end")

        async def wrapper() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result()

    def close(self) -> None:
        """Stops the loop (after the calls in flight) and closes it."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def blocking(value: Any, loop: LoopThread) -> Any:
    """``value`` as the synchronous client would have answered it."""
    if isinstance(value, ctxmesh.AsyncClient):
        return BlockingClient(value, loop)
    if isinstance(value, ctxmesh.AsyncHeldLock):
        return BlockingLock(value, loop)
    if isinstance(value, ctxmesh.AsyncWatch):
        return BlockingWatch(value, loop)
    if inspect.isasyncgen(value):
        return BlockingIterator(value, loop)
    return value


class _Proxy:
    """Attributes of the wrapped object; its methods run to completion on the loop."""

    def __init__(self, inner: Any, loop: LoopThread) -> None:
        self._inner = inner
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if inspect.iscoroutine(result):
                result = self._loop.run(result)
            return blocking(result, self._loop)

        return call

    def __repr__(self) -> str:
        return f"blocking({self._inner!r})"


class BlockingClient(_Proxy):
    """An :class:`~ctxmesh.AsyncClient` used as a :class:`~ctxmesh.Client`."""

    def close(self) -> None:
        self._loop.run(self._inner.aclose())

    def __enter__(self) -> "BlockingClient":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()


class BlockingLock(_Proxy):
    """An :class:`~ctxmesh.AsyncHeldLock` used as a :class:`~ctxmesh.HeldLock`."""

    def __enter__(self) -> "BlockingLock":
        self._loop.run(self._inner.__aenter__())
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self._loop.run(self._inner.__aexit__(exc_type, exc, tb))


class BlockingIterator(_Proxy):
    """An asynchronous iterator used as an iterator."""

    def __iter__(self) -> "BlockingIterator":
        return self

    def __next__(self) -> Any:
        try:
            return self._loop.run(self._inner.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        self._loop.run(self._inner.aclose())


class BlockingWatch(BlockingIterator):
    """An :class:`~ctxmesh.AsyncWatch` used as a :class:`~ctxmesh.Watch`."""

    def __enter__(self) -> "BlockingWatch":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

