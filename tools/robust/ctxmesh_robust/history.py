"""What the runner records: one `Op` per request, with its call and return
times, its input and its outcome, normalised for the checkers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Op:
    """One operation as a client saw it.

    `out` is None when the outcome is unknown: the connection broke or the
    server answered 5xx (other than `507 storage_full`, which changes
    nothing) before saying what happened. Such a write may or may not have
    taken effect.
    """

    client: int
    ctx: str
    kind: str
    inp: dict[str, Any]
    call: float
    wall: float
    ret: float | None = None
    wall_ret: float | None = None
    out: dict[str, Any] | None = None
    # Which node answered (PostgreSQL runs several).
    node: int = 0

    def done(self, out: dict[str, Any] | None, ret: float, wall_ret: float) -> None:
        self.out = out
        if out is not None:
            self.ret = ret
            self.wall_ret = wall_ret

    @property
    def key(self) -> str | None:
        return self.inp.get("key")

    def __repr__(self) -> str:
        ret = "?" if self.ret is None else f"{self.ret:.4f}"
        return f"<c{self.client} {self.kind} {self.inp} -> {self.out} [{self.call:.4f}, {ret}]>"


@dataclass
class WatchConnection:
    """One connection of a watcher: where it started, what it received."""

    watcher: str
    transport: str  # "sse" or "ws"
    ctx: str
    after: int
    types: list[str] | None
    prefix: str | None
    # ("events", revision, [event, ...]) for a frame of events (SSE: one
    # event; WebSocket: one revision), ("progress", revision, []) for a
    # bookmark.
    frames: list[tuple[str, int, list[dict[str, Any]]]] = field(default_factory=list)
    # Why it ended: "client" (the watcher chose to resume), "broken" (the
    # server went away), "end" (the run ended).
    ended: str = "end"


@dataclass
class Recorded:
    """Everything a run recorded and read back: enough to judge it again
    (`--recheck`)."""

    store: str
    seed: int
    minutes: float
    record: list[Op]
    connections: list[WatchConnection]
    # context -> its event log (None: the context is gone)
    logs: dict[str, list[dict[str, Any]] | None]
    # context -> (entries listed at the end, the revision of the list)
    listed: dict[str, tuple[dict[str, tuple[str, int]], int]]
    # context -> its last revision, which the final watch connections must reach
    last: dict[str, int]
    # (start, end, writes refused, reads answered, seconds until a write
    # went through after, or None)
    disk_windows: list[tuple[float, float, int, int, float | None]]
    stats: Any  # traffic.Stats
    faults: dict[str, int]
