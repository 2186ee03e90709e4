"""A linearizability checker for recorded histories, after porcupine.

The algorithm is Wing & Gong's, with Lowe's memoization, as porcupine
(github.com/anishathalye/porcupine) implements it: walk the history in
real-time order, try to linearize each pending call at the current point,
and backtrack when a return is reached whose call could not be placed. A
cache of (linearized set, model state) pairs already explored keeps the
search from trying the same configuration twice.

Operations with an unknown outcome (the server died before answering) are
given a return time after every other operation, as porcupine does: the
checker may linearize them anywhere after their call, or (by placing them
last, where nothing observes them) treat them as never having happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Protocol, Sequence, TypeVar

S = TypeVar("S", bound=Hashable)


class Model(Protocol[S]):
    """A sequential specification: an initial state and a step function."""

    def init(self) -> S: ...

    def step(self, state: S, op: Any) -> tuple[bool, S]:
        """Whether `op` (its input and output) is legal in `state`, and the
        state after it."""
        ...


@dataclass
class Result:
    """The outcome of one history's check."""

    ok: bool
    # When not ok: the operations of the longest linearizable prefix found,
    # and the operations that could not be placed after it.
    linearized: list[Any] = field(default_factory=list)
    stuck: list[Any] = field(default_factory=list)
    # The search gave up (more steps than its budget): neither proven nor
    # refuted.
    inconclusive: bool = False
    steps: int = 0


class _Node:
    __slots__ = ("op", "index", "is_call", "match", "prev", "next")

    def __init__(self, op: Any, index: int, is_call: bool) -> None:
        self.op = op
        self.index = index
        self.is_call = is_call
        self.match: _Node | None = None
        self.prev: _Node | None = None
        self.next: _Node | None = None


def check(
    model: Model[S],
    ops: Sequence[Any],
    call_time: Callable[[Any], float],
    return_time: Callable[[Any], float | None],
    max_steps: int = 5_000_000,
) -> Result:
    """Checks that `ops` (one partition of a history) is linearizable.

    `return_time(op)` is None for an operation whose outcome is unknown.
    """
    events: list[tuple[float, int, int, Any]] = []
    for index, op in enumerate(ops):
        ret = return_time(op)
        # Calls sort before returns at the same instant: two operations
        # that touch in time count as concurrent, the permissive reading.
        events.append((call_time(op), 0, index, op))
        events.append((math.inf if ret is None else ret, 1, index, op))
    events.sort(key=lambda e: (e[0], e[1], e[2]))

    head = _Node(None, -1, False)
    last = head
    calls: dict[int, _Node] = {}
    for _, kind, index, op in events:
        node = _Node(op, index, kind == 0)
        if kind == 0:
            calls[index] = node
        else:
            call = calls[index]
            call.match = node
            node.match = call
        last.next = node
        node.prev = last
        last = node

    def lift(call: _Node) -> None:
        call.prev.next = call.next  # type: ignore[union-attr]
        if call.next is not None:
            call.next.prev = call.prev
        ret = call.match
        assert ret is not None
        ret.prev.next = ret.next  # type: ignore[union-attr]
        if ret.next is not None:
            ret.next.prev = ret.prev

    def unlift(call: _Node) -> None:
        ret = call.match
        assert ret is not None
        ret.prev.next = ret  # type: ignore[union-attr]
        if ret.next is not None:
            ret.next.prev = ret
        call.prev.next = call  # type: ignore[union-attr]
        if call.next is not None:
            call.next.prev = call

    state = model.init()
    linearized = 0
    cache: set[tuple[int, S]] = set()
    stack: list[tuple[_Node, S]] = []
    best: list[Any] = []
    entry = head.next
    steps = 0
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return Result(ok=False, inconclusive=True, steps=steps)
        assert entry is not None
        if entry.is_call:
            legal, after = model.step(state, entry.op)
            if legal:
                key = (linearized | (1 << entry.index), after)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = after
                    linearized |= 1 << entry.index
                    lift(entry)
                    if len(stack) > len(best):
                        best = [n.op for n, _ in stack]
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # A return whose call is still pending: this ordering is dead.
            if not stack:
                return Result(ok=False, linearized=best, stuck=_pending(ops, best), steps=steps)
            node, state = stack.pop()
            linearized &= ~(1 << node.index)
            unlift(node)
            entry = node.next
    return Result(ok=True, steps=steps)


def _pending(ops: Sequence[Any], placed: list[Any]) -> list[Any]:
    done = {id(op) for op in placed}
    return [op for op in ops if id(op) not in done][:8]
