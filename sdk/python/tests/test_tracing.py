"""W3C trace context: a request made inside an OpenTelemetry span carries it.

The requests are recorded as the client's ``httpx`` transport receives
them (the headers exactly as they go on the wire) and then sent on to the
real server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Iterator, List, Optional, Tuple

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ctxmesh
from ctxmesh import _tracing
from ctxmesh_server import CtxmeshServer, unique

Sent = Tuple[str, str, httpx.Headers]


class Recording(httpx.BaseTransport):
    """Records each request's method, path and headers, then sends it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: List[Sent] = []
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.sent.append((request.method, request.url.path, request.headers))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class AsyncRecording(httpx.AsyncBaseTransport):
    """The same for the asynchronous client."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: List[Sent] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path, request.headers))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def spans() -> Iterator[Tuple[trace.Tracer, InMemorySpanExporter]]:
    """A tracer whose finished spans land in memory (no global provider is set)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("ctxmesh-tests"), exporter
    provider.shutdown()


def traceparent(headers: httpx.Headers) -> Optional[Tuple[str, str, str, str]]:
    """The four fields of a ``traceparent`` header, or ``None`` when there is none."""
    values = headers.get_list("traceparent")
    if not values:
        return None
    assert len(values) == 1, values
    version, trace_id, parent_id, flags = values[0].split("-")
    return version, trace_id, parent_id, flags


def continues(headers: httpx.Headers, span: ReadableSpan) -> None:
    """Asserts the request names ``span`` as its parent, in ``span``'s trace."""
    fields = traceparent(headers)
    assert fields is not None, f"no traceparent among {dict(headers)}"
    context = span.get_span_context()
    assert fields == ("00", format(context.trace_id, "032x"), format(context.span_id, "016x"), format(context.trace_flags, "02x"))
    assert context.trace_flags.sampled


def the_span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def test_tracing_is_available_with_the_extra() -> None:
    assert _tracing.AVAILABLE


def test_a_request_inside_a_span_continues_its_trace(server: CtxmeshServer, spans) -> None:
    tracer, exporter = spans
    wire = Recording()
    ctx = unique("traced")
    with ctxmesh.Client(server.url, token=server.admin_token, transport=wire, keepalive=False) as c:
        with tracer.start_as_current_span("plan step"):
            c.create_context(ctx)
            c.put(ctx, "brief", {"goal": "ship"})
        inside = list(wire.sent)
        c.get(ctx, "brief")
    outside = wire.sent[len(inside) :]

    span = the_span(exporter, "plan step")
    assert [(m, p) for m, p, _ in inside] == [("POST", "/v1/contexts"), ("PUT", f"/v1/contexts/{ctx}/entries/brief")]
    for _, _, headers in inside:
        continues(headers, span)
    assert [(m, p) for m, p, _ in outside] == [("GET", f"/v1/contexts/{ctx}/entries/brief")]
    assert traceparent(outside[0][2]) is None


def test_no_trace_context_outside_a_span(server: CtxmeshServer) -> None:
    wire = Recording()
    with ctxmesh.Client(server.url, token=server.admin_token, transport=wire, keepalive=False) as c:
        c.create_context(unique("untraced"))
    assert wire.sent
    for _, _, headers in wire.sent:
        assert "traceparent" not in headers
        assert "tracestate" not in headers


def test_the_span_state_travels_as_tracestate(server: CtxmeshServer, spans) -> None:
    tracer, exporter = spans
    wire = Recording()
    parent = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        trace_state=trace.TraceState([("vendor", "opaque")]),
    )
    with ctxmesh.Client(server.url, token=server.admin_token, transport=wire, keepalive=False) as c:
        with tracer.start_as_current_span("child", context=trace.set_span_in_context(trace.NonRecordingSpan(parent))):
            c.list_contexts()
    span = the_span(exporter, "child")
    assert span.get_span_context().trace_id == parent.trace_id
    (_, _, headers), *_ = wire.sent
    continues(headers, span)
    assert headers["tracestate"] == "vendor=opaque"


def test_a_header_the_caller_sets_is_kept(server: CtxmeshServer, spans) -> None:
    tracer, _ = spans
    wire = Recording()
    mine = "00-11111111111111111111111111111111-2222222222222222-01"
    with ctxmesh.Client(
        server.url, token=server.admin_token, transport=wire, keepalive=False, headers={"TraceParent": mine}
    ) as c:
        with tracer.start_as_current_span("outer"):
            c.list_contexts()
    (_, _, headers), *_ = wire.sent
    assert headers.get_list("traceparent") == [mine]


async def test_the_async_client_continues_the_trace(server: CtxmeshServer, spans) -> None:
    tracer, exporter = spans
    wire = AsyncRecording()
    ctx = unique("traced-async")
    async with ctxmesh.AsyncClient(server.url, token=server.admin_token, transport=wire, keepalive=False) as c:
        with tracer.start_as_current_span("async step"):
            await c.create_context(ctx)
            # Concurrent requests each carry the context of the task that sent them.
            await asyncio.gather(c.put(ctx, "a", 1), c.put(ctx, "b", 2))
        inside = list(wire.sent)
        await c.get(ctx, "a")
    outside = wire.sent[len(inside) :]

    span = the_span(exporter, "async step")
    assert len(inside) == 3
    for _, _, headers in inside:
        continues(headers, span)
    assert len(outside) == 1 and traceparent(outside[0][2]) is None


async def test_the_async_keepalive_is_not_part_of_the_callers_trace(server: CtxmeshServer, spans) -> None:
    tracer, exporter = spans
    registered = server.register_agent(unique("traced-agent"))
    wire = AsyncRecording()
    heartbeat = f"/v1/agents/{registered.id}/heartbeat"
    async with ctxmesh.AsyncClient(server.url, token=registered.token, transport=wire) as c:
        # The first request starts the keepalive task, inside the span.
        with tracer.start_as_current_span("agent step"):
            await c.list_contexts()
        deadline = time.monotonic() + 20
        while not any(p == heartbeat for _, p, _ in wire.sent):
            assert time.monotonic() < deadline, [p for _, p, _ in wire.sent]
            await asyncio.sleep(0.02)
    span = the_span(exporter, "agent step")
    listed = [h for m, p, h in wire.sent if (m, p) == ("GET", "/v1/contexts")]
    assert len(listed) == 1
    continues(listed[0], span)
    beats = [h for _, p, h in wire.sent if p == heartbeat]
    assert beats and all(traceparent(h) is None for h in beats)


def test_the_keepalive_thread_is_not_part_of_the_callers_trace(server: CtxmeshServer, spans) -> None:
    tracer, exporter = spans
    registered = server.register_agent(unique("traced-agent"))
    wire = Recording()
    heartbeat = f"/v1/agents/{registered.id}/heartbeat"
    # The client, and so its keepalive thread, is made inside the span.
    with tracer.start_as_current_span("agent step"):
        c = ctxmesh.Client(server.url, token=registered.token, transport=wire)
        c.list_contexts()
    try:
        deadline = time.monotonic() + 20
        while not any(p == heartbeat for _, p, _ in list(wire.sent)):
            assert time.monotonic() < deadline, [p for _, p, _ in wire.sent]
            time.sleep(0.02)
    finally:
        c.close()
    span = the_span(exporter, "agent step")
    listed = [h for m, p, h in wire.sent if (m, p) == ("GET", "/v1/contexts")]
    assert len(listed) == 1
    continues(listed[0], span)
    beats = [h for _, p, h in wire.sent if p == heartbeat]
    assert beats and all(traceparent(h) is None for h in beats)


def test_a_watch_continues_the_trace(server: CtxmeshServer, spans) -> None:
    tracer, exporter = spans
    wire = Recording()
    with ctxmesh.Client(server.url, token=server.admin_token, transport=wire, keepalive=False) as c:
        ctx = c.create_context(unique("traced-watch")).id
        written = c.put(ctx, "brief", {"goal": "ship"})
        before = len(wire.sent)
        with tracer.start_as_current_span("watching"):
            with c.watch(ctx, after=written.revision - 1, reconnect=False) as watch:
                event = next(iter(watch))
        assert (event.type, event.key, event.revision) == ("context.updated", "brief", written.revision)
    span = the_span(exporter, "watching")
    streams = [h for m, p, h in wire.sent[before:] if (m, p) == ("GET", f"/v1/contexts/{ctx}/watch")]
    assert len(streams) == 1
    assert streams[0]["accept"] == "text/event-stream"
    continues(streams[0], span)


async def test_an_async_watch_continues_the_trace(server: CtxmeshServer, spans) -> None:
    tracer, exporter = spans
    wire = AsyncRecording()
    async with ctxmesh.AsyncClient(server.url, token=server.admin_token, transport=wire, keepalive=False) as c:
        ctx = (await c.create_context(unique("traced-watch-async"))).id
        written = await c.put(ctx, "brief", {"goal": "ship"})
        before = len(wire.sent)
        with tracer.start_as_current_span("watching async"):
            async with c.watch(ctx, after=written.revision - 1, reconnect=False) as watch:
                event = await watch.__anext__()
        assert (event.type, event.key, event.revision) == ("context.updated", "brief", written.revision)
    span = the_span(exporter, "watching async")
    streams = [h for m, p, h in wire.sent[before:] if (m, p) == ("GET", f"/v1/contexts/{ctx}/watch")]
    assert len(streams) == 1
    continues(streams[0], span)
