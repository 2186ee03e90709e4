"""Helpers shared by the store and the checkpoint saver."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ..aio import AsyncClient
from ..client import Client
from ._http import AsyncClientTransport, ClientTransport
from ._io import AsyncTransport, SyncTransport

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: Most operations (comparisons included) in one transaction: the server's
#: default ``--max-txn-ops``.
DEFAULT_MAX_TXN_OPS = 256


def parse_time(value: str) -> datetime:
    """Parses an RFC 3339 time as the server writes it (``...Z`` or an offset)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python before 3.11 accepts at most 6 fractional digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (exact)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """Inverse of :func:`to_micros`."""
    return EPOCH + timedelta(microseconds=micros)


def check_prefix(prefix: str) -> str:
    """Validates a root key prefix and returns it with its trailing ``/`` (or ``""``)."""
    prefix = prefix.strip("/")
    if not prefix:
        return ""
    for segment in prefix.split("/"):
        if not segment or not all(c.isascii() and (c.isalnum() or c in "._~:@-") for c in segment):
            raise ValueError(f"prefix {prefix!r} is not a ctxmesh key prefix (segments of A-Z a-z 0-9 . _ ~ : @ -)")
    return prefix + "/"


def make_transports(
    *,
    base_url: str | None,
    token: str | None,
    agent_id: str | None,
    context: str,
    labels: dict[str, str],
    transport: SyncTransport | None,
    async_transport: AsyncTransport | None,
    client: Client | None,
    async_client: AsyncClient | None,
) -> tuple[SyncTransport, AsyncTransport]:
    """The sync and async transports an adapter talks through.

    Explicit transports win; then the given ``ctxmesh.Client`` /
    ``ctxmesh.AsyncClient``; otherwise clients are made from ``base_url``,
    ``token`` and ``agent_id`` (each defaulting as in :class:`ctxmesh.Client`:
    ``CTXMESH_URL``, ``CTXMESH_TOKEN``, ``CTXMESH_AGENT``), or from the
    settings of the one client given.
    """
    source = client or async_client
    if source is not None:
        base_url = base_url or source.base_url
        token = token if token is not None else source.token
        agent_id = agent_id if agent_id is not None else source.agent_id
    sync: SyncTransport
    if transport is not None:
        sync = transport
    elif client is not None:
        sync = ClientTransport(client, context, labels=labels)
    else:
        sync = ClientTransport(Client(base_url, token, agent_id), context, labels=labels, owned=True)
    async_: AsyncTransport
    if async_transport is not None:
        async_ = async_transport
    elif async_client is not None:
        async_ = AsyncClientTransport(context, client=async_client, labels=labels)
    else:
        async_ = AsyncClientTransport(
            context, factory=lambda: AsyncClient(base_url, token, agent_id), labels=labels
        )
    return sync, async_
