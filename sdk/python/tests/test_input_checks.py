"""Bad input is refused at the SDK's edge, before any request; a token never shows.

What the server would store differently from what the caller gave (a
string split into letters, a set turned into a list) raises ``TypeError``
or ``ValueError`` naming the parameter. A token is stripped of the
whitespace around it, refused with inner whitespace, and appears in no
exception (nor the exceptions chained to it), log line or ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, List

import httpx
import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer, unique


def refusing_transport(sent: List[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    return httpx.MockTransport(handle)


@pytest.fixture
def offline() -> Iterator[tuple[ctxmesh.Client, List[httpx.Request]]]:
    """A client whose requests are recorded (none should be sent)."""
    sent: List[httpx.Request] = []
    with ctxmesh.Client("http://ctxmesh.invalid", keepalive=False, transport=refusing_transport(sent)) as c:
        yield c, sent


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda c: c.put("c", "k", 1, tags="market"), TypeError, ["tags", "['market']"]),
        (lambda c: c.put("c", "k", 1, tags={"a", "b"}), TypeError, ["tags", "sorted"]),
        (lambda c: c.put("c", "k", 1, tags=["ok", 3]), TypeError, ["tags[1]", "int"]),
        (lambda c: c.put("c", "k", 1, depends_on="brief"), TypeError, ["depends_on"]),
        (lambda c: c.put("c", "k", {"ids": {1, 2}}), TypeError, ["value['ids']", "set", "list"]),
        (lambda c: c.put("c", "k", b"raw"), TypeError, ["value", "bytes"]),
        (lambda c: c.put("c", "k", object()), TypeError, ["value", "object"]),
        (lambda c: c.put("c", "k", [datetime.now(timezone.utc)]), TypeError, ["value[0]", "isoformat"]),
        (lambda c: c.put("c", "k", {1: "one"}), TypeError, ["value", "key 1"]),
        (lambda c: c.put("c", "k", float("nan")), ValueError, ["value", "nan"]),
        (lambda c: c.put("c", "k", 1, confidence="0.8"), TypeError, ["confidence", "number"]),
        (lambda c: c.put("c", "k", 1, confidence=True), TypeError, ["confidence"]),
        (lambda c: c.put("c", "k", 1, priority=3), TypeError, ["priority", "str"]),
        (lambda c: c.put("c", "k", 1, ttl_ms="30"), TypeError, ["ttl_ms", "int"]),
        (lambda c: c.put("c", "k", 1, relevance={"writer": "high"}), TypeError, ["relevance['writer']"]),
        (lambda c: c.merge_patch("c", "k", {"s": {1}}), TypeError, ["patch['s']", "set"]),
        (lambda c: c.txn("c", success=[{"op": "put", "key": "k", "value": {1}}]), TypeError, ["success[0]"]),
        (lambda c: c.send_message({"ids": {1}}), TypeError, ["body['ids']"]),
        (lambda c: c.register_agent("a", needs={"tags": "market"}), TypeError, ["needs['tags']", "['market']"]),
        (lambda c: c.register_agent("a", produces={"kinds": "finding"}), TypeError, ["produces['kinds']"]),
        (lambda c: c.register_agent("a", capabilities={"custom": "search"}), TypeError, ["capabilities['custom']"]),
        (lambda c: c.register_agent("a", lease_ms=1.5), TypeError, ["lease_ms"]),
        (lambda c: c.grant("c", ["w"], "read"), TypeError, ["permissions", "['read']"]),
        (lambda c: c.request_handoff("w", "c", keys="findings/*"), TypeError, ["keys"]),
        (lambda c: c.assign_task("c", "w", "t", input={"s": {1}}), TypeError, ["input['s']"]),
        (lambda c: c.create_context("c", labels={"team": 1}), TypeError, ["labels"]),
        (lambda c: c.acquire_lock("c", "l", ttl_ms="1000"), TypeError, ["ttl_ms"]),
    ],
)
def test_bad_input_is_refused_before_any_request(
    offline: tuple[ctxmesh.Client, List[httpx.Request]], call: Callable[[ctxmesh.Client], Any], error: type, words: List[str]
) -> None:
    client, sent = offline
    with pytest.raises(error) as refused:
        call(client)
    for word in words:
        assert word in str(refused.value), str(refused.value)
    assert sent == [], "nothing was sent"


async def test_the_async_client_refuses_bad_input_too() -> None:
    sent: List[httpx.Request] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    async with ctxmesh.AsyncClient("http://ctxmesh.invalid", transport=httpx.MockTransport(handle)) as c:
        with pytest.raises(TypeError, match="tags"):
            await c.put("c", "k", 1, tags="market")
        with pytest.raises(TypeError, match="set"):
            await c.put("c", "k", {1, 2})
    assert sent == []


def test_good_input_is_stored_as_given(server: CtxmeshServer, ctx: str) -> None:
    with server.client() as c:
        entry = c.put(ctx, "k", {"pair": (1, 2), "n": 1.5}, tags=("market", "eu"), depends_on=["brief"])
        assert entry.tags == ["market", "eu"] and entry.depends_on == ["brief"]
        assert c.get(ctx, "k").value == {"pair": [1, 2], "n": 1.5}
        when = datetime.now(timezone.utc).replace(microsecond=0)
        dated = c.put(ctx, "dated", 1, expires_at=when.replace(year=when.year + 1))
        assert dated.expires_at is not None and dated.expires_at.year == when.year + 1


# --- tokens ------------------------------------------------------------------------------


def test_a_token_read_from_a_file_works(server: CtxmeshServer, tmp_path: Any) -> None:
    path = tmp_path / "admin.token"
    path.write_text(server.admin_token + "\n")
    with ctxmesh.Client(server.url, token=path.read_text()) as c:
        assert c.whoami().admin
    with ctxmesh.Client(server.url, token=f"  {server.admin_token}\r\n") as c:
        assert c.readyz()["status"] == "ready" and c.whoami().admin


def test_a_token_saved_by_login_is_found(
    server: CtxmeshServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("CTXMESH_TOKEN", raising=False)
    saved = tmp_path / "ctxmesh" / "credentials.json"
    saved.parent.mkdir()
    port = server.url.rsplit(":", 1)[1]
    # Saved under another loopback name of the same server, with a newline.
    saved.write_text(
        '{"servers": {"http://localhost:%s": {"token": "%s\\n"}, "http://example.com:80": {"token": "x"}}}'
        % (port, server.admin_token)
    )
    with ctxmesh.Client(server.url, keepalive=False) as c:
        assert c.whoami().admin, "the saved token was sent"
        assert server.admin_token not in repr(c)
    with ctxmesh.Client(server.url, token="cmt_other", keepalive=False) as c:
        with pytest.raises(ctxmesh.Unauthenticated):
            c.whoami()  # a token given wins
    with ctxmesh.Client("http://127.0.0.1:1", keepalive=False) as c:
        assert c.token is None, "no entry for that server"
    saved.write_text("not json")
    with ctxmesh.Client(server.url, keepalive=False) as c:
        assert c.token is None, "a broken file is skipped"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)


def texts_of(error: BaseException) -> List[str]:
    out = []
    for e in chain(error):
        out += [str(e), repr(e), repr(e.args)]
    return out


@pytest.mark.parametrize("flavour_name", ["sync", "async"])
def test_a_token_appears_in_no_exception_log_or_repr(
    server: CtxmeshServer, caplog: pytest.LogCaptureFixture, flavour_name: str
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "cmt_" + secrets.token_hex(24)
    texts: List[str] = []
    dead = f"http://127.0.0.1:{free_port()}"

    def provoke(make: Callable[..., Any], run: Callable[[Any], Any]) -> None:
        clients: List[Any] = []
        try:
            cases = [
                lambda: make(dead, secret + "\n"),  # nothing listens: connection refused
                lambda: make(server.url, secret + "\n"),  # an unknown token: 401
                lambda: make(server.url, secret, headers={"X-Note": "two\nlines"}),  # an illegal header
                lambda: make(server.url, secret, agent_id=unique("ghost")),  # keepalive of an unknown agent
            ]
            for case in cases:
                c = case()
                clients.append(c)
                texts.append(repr(c))
                for request in (lambda c=c: c.whoami(), lambda c=c: c.put("c", "k", 1)):
                    try:
                        run(request())
                    except Exception as e:  # noqa: BLE001
                        texts.extend(texts_of(e))
                    else:
                        pytest.fail("the request was expected to fail")
            for bad in (secret[:10] + "\n" + secret[10:], secret[:10] + " " + secret[10:]):
                with pytest.raises(ValueError) as refused:
                    make(server.url, bad)
                texts.extend(texts_of(refused.value))
        finally:
            for c in clients:
                run(c.aclose() if hasattr(c, "aclose") else c.close())

    if flavour_name == "sync":
        provoke(lambda *a, **k: ctxmesh.Client(*a, timeout=5, **k), lambda x: x)
    else:
        loop = asyncio.new_event_loop()
        try:
            provoke(
                lambda *a, **k: ctxmesh.AsyncClient(*a, timeout=5, **k),
                lambda x: loop.run_until_complete(x) if asyncio.iscoroutine(x) else x,
            )
        finally:
            loop.close()

    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    assert any("transport" in t for t in texts) and any("unauthenticated" in t for t in texts)
    assert any("X-Note" in t or "Illegal header" in t for t in texts), "the header error was provoked"
    leaks = [t for t in texts if secret[4:20] in t]
    assert leaks == []


def test_a_registered_agents_token_is_not_in_its_repr(server: CtxmeshServer) -> None:
    registered = server.register_agent(unique("quiet"))
    assert registered.token not in repr(registered) and registered.token not in str(registered)
    with server.client(token=registered.token) as c:
        assert registered.token not in repr(c)
        rotated = c.rotate_token()
        assert rotated.token not in repr(rotated)
