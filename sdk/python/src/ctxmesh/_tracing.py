"""W3C trace context on the requests of both clients.

When the OpenTelemetry API (``opentelemetry-api``, the ``otel`` extra) is
installed and the caller's current context holds a valid span, every
request carries that context as ``traceparent`` (and ``tracestate``, and
whatever else the globally configured propagator writes), so that the
server's spans continue the caller's trace. Without the package, or
outside a span, nothing is added and nothing is computed beyond one check.
"""

from __future__ import annotations

from typing import Dict, Optional

try:
    from opentelemetry import context as _otel_context
    from opentelemetry import propagate as _otel_propagate
    from opentelemetry import trace as _otel_trace

    AVAILABLE = True
except ImportError:  # the optional extra is not installed
    AVAILABLE = False


def trace_headers() -> Optional[Dict[str, str]]:
    """The trace context headers of the caller's current span, or ``None`` outside a valid span."""
    if not AVAILABLE:
        return None
    if not _otel_trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: Dict[str, str] = {}
    _otel_propagate.inject(carrier)
    return carrier


def add_trace_headers(headers: Dict[str, str]) -> None:
    """Adds the current span's trace context to ``headers``, leaving any header the caller set (in any case) alone."""
    carrier = trace_headers()
    if not carrier:
        return
    present = {name.lower() for name in headers}
    for name, value in carrier.items():
        if name.lower() not in present:
            headers[name] = value


def detach_trace() -> None:
    """Makes the current context (a background task's own copy) one without a span.

    The keepalive's heartbeats belong to the client, not to the trace that
    happened to be current when its task started.
    """
    if AVAILABLE:
        _otel_context.attach(_otel_context.Context())

