"""Watches: SSE parsing, filters, and resuming without gaps or repeats."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, List, Optional, Tuple

import httpx
import pytest

import ctxmesh
from ctxmesh.watch import ResumeTracker, SSEParser
from ctxmesh_server import CtxmeshServer, unique

Triple = Tuple[int, str, Optional[str]]


class Collector:
    """Iterates a watch on a thread until ``until`` holds for an event."""

    def __init__(self, watch: ctxmesh.Watch, until: Callable[[ctxmesh.Event], bool]) -> None:
        self.watch = watch
        self.until = until
        self.events: List[ctxmesh.Event] = []
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watch:
                self.events.append(event)
                if self.until(event):
                    break
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.watch.close()
            self.done.set()

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"only {len(self.events)} of {count} events arrived"
            time.sleep(0.02)

    def finish(self, timeout: float = 30) -> List[ctxmesh.Event]:
        assert self.done.wait(timeout), f"the watch did not finish; got {len(self.events)} events"
        assert self.error is None, self.error
        return self.events


def triples(events: List[ctxmesh.Event]) -> List[Triple]:
    return [(e.revision, e.type, e.key) for e in events]


def logged(c: ctxmesh.Client, ctx: str, after: int, **filters: object) -> List[Triple]:
    return triples(list(c.iter_events(ctx, after=after, **filters)))  # type: ignore[arg-type]


# --- the parser and the tracker ----------------------------------------------


def test_sse_parser() -> None:
    parser = SSEParser()
    lines = [
        ": keep-alive",
        "",
        "id: 7",
        "event: context.updated",
        'data: {"revision": 7,',
        'data:  "key": "a"}',
        "",
        "event: progress",
        "id:8",
        'data: {"type": "progress", "revision": 8}\r',
        "",
        "retry: 100",
        "",
    ]
    frames = [f for f in (parser.feed(line) for line in lines) if f is not None]
    assert [(f.id, f.event) for f in frames] == [("7", "context.updated"), ("8", "progress")]
    assert frames[0].data == '{"revision": 7,\n "key": "a"}'


def test_resume_tracker_mid_revision() -> None:
    t = ResumeTracker(0)
    assert t.resume_after() == 0
    for position in (1, 2, 3):
        assert t.accept(position)
    # Revision 3 may have more events: resume after 2 and drop the one already held.
    assert t.resume_after() == 2
    assert not t.accept(3)
    assert t.accept(3), "the second event of revision 3 is new"
    t.progress(5)
    assert t.resume_after() == 5, "a bookmark says everything up to 5 was sent"
    assert not t.accept(5)
    assert t.accept(6)
    assert t.position == 5
    t.progress(6)
    assert t.position == 6


def test_resume_tracker_priority_order() -> None:
    t = ResumeTracker(10, order="priority")
    assert t.accept(13, '{"a":13}') and t.accept(11, '{"a":11}')
    assert t.resume_after() == 10
    assert not t.accept(13, '{"a":13}') and not t.accept(11, '{"a":11}')
    assert t.accept(12, '{"a":12}')
    t.progress(13)
    assert t.resume_after() == 13


# --- live watches --------------------------------------------------------------


def test_watch_delivers_new_events_with_filters(admin: ctxmesh.Client, ctx: str) -> None:
    admin.put(ctx, "before", 0)
    everything = Collector(admin.watch(ctx), lambda e: e.key == "done")
    filtered = Collector(
        admin.watch(ctx, types=["context.updated"], prefix="findings/", min_priority="high"),
        lambda e: e.key == "findings/done",
    )
    time.sleep(0.3)
    admin.put(ctx, "findings/a", 1, priority="high")
    admin.put(ctx, "findings/b", 2)
    admin.put(ctx, "notes/c", 3, priority="critical")
    admin.send_message({"hello": "all"}, context=ctx, priority="high", topic="greeting")
    admin.put(ctx, "findings/done", True, priority="critical")
    admin.put(ctx, "done", True)
    got = everything.finish()
    assert [e.key for e in got if e.type == "context.updated"] == [
        "findings/a",
        "findings/b",
        "notes/c",
        "findings/done",
        "done",
    ], "only events after the start, none before"
    message = next(e for e in got if e.type == "message")
    assert message.data == {"topic": "greeting", "body": {"hello": "all"}}
    assert [e.key for e in filtered.finish()] == ["findings/a", "findings/done"]


def test_watch_from_a_revision_and_progress(admin: ctxmesh.Client, ctx: str) -> None:
    first = admin.put(ctx, "a", 1)
    admin.put(ctx, "b", 2)
    with admin.watch(ctx, after=first.revision - 1, include_progress=True) as w:
        seen: List[ctxmesh.Event] = []
        for event in w:
            seen.append(event)
            if event.type == "progress":
                break
    assert [e.key for e in seen if e.type != "progress"] == ["a", "b"]
    assert seen[-1].revision == first.revision + 1
    assert w.position == first.revision + 1
    with pytest.raises(StopIteration):
        next(w)


def test_watch_ends_when_the_context_is_deleted(admin: ctxmesh.Client) -> None:
    cid = admin.create_context(unique("ctx")).id
    collector = Collector(admin.watch(cid), lambda e: False)
    time.sleep(0.3)
    admin.put(cid, "x", 1)
    collector.wait_for(1)
    admin.delete_context(cid)
    events = collector.finish()
    assert [e.type for e in events] == ["context.updated", "context.deleted"]


def test_watch_resumes_across_a_server_restart(fresh_server: CtxmeshServer) -> None:
    c = fresh_server.client(agent_id="writer")
    cid = c.create_context(unique("ctx")).id
    start = c.get_context(cid).revision
    collector = Collector(fresh_server.client().watch(cid, after=start), lambda e: e.key == "done")
    for i in range(5):
        c.put(cid, f"before/{i}", i)
    c.txn(cid, success=[{"op": "put", "key": f"multi/{i}", "value": i} for i in range(3)])
    collector.wait_for(8)

    url = fresh_server.url
    fresh_server.restart()
    assert fresh_server.url == url, "the server came back on its port"

    c.close()
    c = fresh_server.client(agent_id="writer")
    for i in range(5):
        c.put(cid, f"after/{i}", i)
    c.put(cid, "done", True)
    events = collector.finish()
    expected = logged(c, cid, start)
    assert triples(events) == expected
    revisions = sorted({e.revision for e in events})
    assert revisions == list(range(start + 1, start + 1 + len(revisions))), "no gap"
    c.close()


def test_watch_resumes_after_a_crash(fresh_server: CtxmeshServer) -> None:
    c = fresh_server.client(agent_id="writer")
    cid = c.create_context(unique("ctx")).id
    start = c.get_context(cid).revision
    collector = Collector(fresh_server.client().watch(cid), lambda e: e.key == "done")
    time.sleep(0.3)
    for i in range(3):
        c.put(cid, f"k{i}", i)
    collector.wait_for(3)
    fresh_server.restart(kill=True)
    c.close()
    c = fresh_server.client(agent_id="writer")
    for i in range(3, 6):
        c.put(cid, f"k{i}", i)
    c.put(cid, "done", True)
    assert triples(collector.finish()) == logged(c, cid, start)
    c.close()


class _CutStream(httpx.SyncByteStream):
    """A response body that breaks after ``events`` event frames (progress frames not counted)."""

    def __init__(self, inner: httpx.SyncByteStream, events: int) -> None:
        self.inner = inner
        self.events = events

    def __iter__(self) -> Iterator[bytes]:
        buffer = b""
        count = 0
        for chunk in self.inner:
            buffer += chunk
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                yield frame + b"\n\n"
                if b"event: " in frame and b"event: progress" not in frame:
                    count += 1
                    if count >= self.events:
                        raise httpx.ReadError("connection cut by the test")

    def close(self) -> None:
        self.inner.close()


class CuttingTransport(httpx.HTTPTransport):
    """Cuts successive watch connections after the given numbers of events."""

    def __init__(self, cuts: List[int]) -> None:
        super().__init__()
        self.cuts = list(cuts)
        self.watch_connections: List[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/watch"):
            self.watch_connections.append(str(request.url.params.get("after")))
            if self.cuts:
                response.stream = _CutStream(response.stream, self.cuts.pop(0))  # type: ignore[arg-type]
        return response


def test_watch_resumes_after_a_cut_inside_a_revision(server: CtxmeshServer, admin: ctxmesh.Client, ctx: str) -> None:
    start = admin.get_context(ctx).revision
    transport = CuttingTransport([2, 1, 4])
    watcher = server.client(transport=transport)
    collector = Collector(watcher.watch(ctx, after=start), lambda e: e.key == "done")
    txn = admin.txn(ctx, success=[{"op": "put", "key": f"t/{i}", "value": i} for i in range(3)])
    collector.wait_for(3)
    admin.put(ctx, "single", 1)
    admin.txn(ctx, success=[{"op": "put", "key": f"u/{i}", "value": i} for i in range(2)])
    admin.put(ctx, "done", True)
    events = collector.finish()
    assert triples(events) == logged(admin, ctx, start)
    assert [e.key for e in events[:3]] == ["t/0", "t/1", "t/2"]
    assert transport.watch_connections[:3] == [str(start), str(txn.revision - 1), str(txn.revision - 1)], (
        "resumed from the revision before the one that was cut"
    )
    watcher.close()


def test_inbox_watch_resumes_across_a_restart(fresh_server: CtxmeshServer) -> None:
    reader = fresh_server.register_agent("reader")
    admin = fresh_server.client(agent_id="sender")
    inbox = fresh_server.client(token=reader.token).watch_inbox(reader.id, after=0)
    collector = Collector(inbox, lambda e: isinstance(e.data, dict) and e.data.get("body") == "last")
    for i in range(3):
        admin.send_message(f"m{i}", agents=[reader.id], priority="high")
    collector.wait_for(3)
    fresh_server.restart()
    admin.close()
    admin = fresh_server.client(agent_id="sender")
    for i in range(3, 5):
        admin.send_message(f"m{i}", agents=[reader.id])
    admin.send_message("last", agents=[reader.id])
    events = collector.finish()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.data["body"] for e in events] == ["m0", "m1", "m2", "m3", "m4", "last"]
    assert [e.seq for e in admin.iter_inbox(reader.id)] == [1, 2, 3, 4, 5, 6]
    admin.close()


def test_watch_of_a_missing_context_raises(admin: ctxmesh.Client) -> None:
    with pytest.raises(ctxmesh.NotFound):
        next(admin.watch(unique("absent"), after=0))


def test_watch_without_reconnect_ends_with_the_connection(fresh_server: CtxmeshServer) -> None:
    c = fresh_server.client()
    cid = c.create_context(unique("ctx")).id
    collector = Collector(c.watch(cid, reconnect=False), lambda e: False)
    time.sleep(0.3)
    c.put(cid, "x", 1)
    collector.wait_for(1)
    fresh_server.stop()
    assert collector.done.wait(20)
    assert collector.error is None
    assert [e.key for e in collector.events] == ["x"]
    c.close()


def test_inbox_watch_finds_its_agent_when_it_connects(
    server: CtxmeshServer, admin: ctxmesh.Client, connect: Callable[..., ctxmesh.Client]
) -> None:
    # The admin token belongs to no agent: the watch is made, its first connection says so.
    orphan = admin.watch_inbox(after=0)
    with pytest.raises(ValueError, match="name the agent"):
        next(orphan)
    reader = server.register_agent(unique("reader"))
    inbox = connect(token=reader.token).watch_inbox(after=0)  # a token only: the server says whose
    admin.send_message("hi", agents=[reader.id])
    first = next(inbox)
    assert (first.seq, first.data["body"]) == (1, "hi")
    inbox.close()
