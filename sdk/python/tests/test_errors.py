"""Errors are raised as the exception of their code, with their details."""

from __future__ import annotations

from typing import Callable

import httpx
import pytest

import ctxmesh
from ctxmesh.errors import error_class, error_from_response
from ctxmesh_server import CtxmeshServer, unique


def test_not_found(admin: ctxmesh.Client, ctx: str) -> None:
    with pytest.raises(ctxmesh.NotFound) as e:
        admin.get(ctx, "nothing/here")
    assert e.value.status == 404 and e.value.code == "not_found"
    assert "nothing/here" in e.value.message
    with pytest.raises(ctxmesh.NotFound):
        admin.get_context(unique("absent"))
    with pytest.raises(ctxmesh.NotFound):
        admin.get_agent(unique("absent"))
    with pytest.raises(ctxmesh.NotFound):
        admin.request("GET", "/v1/no-such-route")


def test_already_exists(admin: ctxmesh.Client, server: CtxmeshServer) -> None:
    registered = server.register_agent()
    with pytest.raises(ctxmesh.AlreadyExists) as e:
        admin.register_agent(registered.id)
    assert e.value.status == 409


def test_too_large(server_factory: Callable[..., CtxmeshServer]) -> None:
    small = server_factory("--max-value-bytes", "1024")
    with small.client() as c:
        cid = c.create_context(unique("ctx")).id
        with pytest.raises(ctxmesh.TooLarge) as e:
            c.put(cid, "big", "x" * 5000)
        assert e.value.status == 413
        assert e.value.limit == 1024
        assert e.value.actual is not None and e.value.actual > 1024
        with pytest.raises(ctxmesh.NotFound):
            c.get(cid, "big")


def test_schema_violation(admin: ctxmesh.Client) -> None:
    cid = admin.create_context(unique("ctx"), schemas={"user": {"type": "object", "required": ["name"]}}).id
    with pytest.raises(ctxmesh.SchemaViolation) as e:
        admin.put(cid, "user", {"age": 3})
    assert e.value.status == 422 and e.value.code == "schema_violation"
    assert e.value.pointer == ""
    assert e.value.schema_path is not None


def test_unauthenticated(server: CtxmeshServer) -> None:
    with ctxmesh.Client(server.url) as anonymous:
        with pytest.raises(ctxmesh.Unauthenticated) as e:
            anonymous.list_contexts()
        assert e.value.status == 401
        assert e.value.headers.get("www-authenticate", "").startswith("Bearer")
        assert anonymous.healthz() == {"status": "ok"}, "health needs no token"
    with server.client(token="cmt_" + "0" * 64) as wrong:
        with pytest.raises(ctxmesh.Unauthenticated):
            wrong.list_contexts()


def test_forbidden(agent: Callable[..., ctxmesh.Client], admin: ctxmesh.Client, ctx: str) -> None:
    outsider = agent("outsider")
    with pytest.raises(ctxmesh.Forbidden) as e:
        outsider.get(ctx, "anything")
    assert e.value.status == 403
    with pytest.raises(ctxmesh.Forbidden):
        outsider.register_agent(unique("nope"))


def test_invalid_arguments(admin: ctxmesh.Client, ctx: str) -> None:
    with pytest.raises(ctxmesh.InvalidId):
        admin.create_context("-bad id-")
    with pytest.raises(ctxmesh.InvalidKey):
        admin.put(ctx, "bad key with spaces", 1)
    with pytest.raises(ctxmesh.InvalidArgument) as e:
        admin.list_page(ctx, limit=0)
    assert e.value.field == "limit"
    with pytest.raises(ctxmesh.InvalidArgument) as e2:
        admin.request("POST", "/v1/contexts", json={"id": unique("ctx"), "unknown_field": 1})
    assert e2.value.status == 400


def test_invalid_json(server: CtxmeshServer) -> None:
    with httpx.Client(base_url=server.url) as raw:
        response = raw.post(
            "/v1/contexts",
            content=b"{not json",
            headers={"Authorization": f"Bearer {server.admin_token}", "Content-Type": "application/json"},
        )
    error = error_from_response(response.status_code, response.content, response.headers)
    assert isinstance(error, ctxmesh.InvalidJson)
    assert error.status == 400


def test_rate_limited(server_factory: Callable[..., CtxmeshServer]) -> None:
    limited = server_factory("--rate-limit", "1", "--rate-burst", "2")
    registered = limited.register_agent()
    with limited.client(token=registered.token) as c:
        with pytest.raises(ctxmesh.RateLimited) as e:
            for _ in range(20):
                c.get_agent(registered.id)
        assert e.value.status == 429
        assert e.value.retry_after is not None and e.value.retry_after > 0


def test_transport_error() -> None:
    with ctxmesh.Client("http://127.0.0.1:9", timeout=2) as c:
        with pytest.raises(ctxmesh.TransportError) as e:
            c.healthz()
        assert e.value.status == 0


def test_error_mapping_table() -> None:
    body = b'{"error": {"code": "fenced", "message": "old token", "details": {"token": 3, "current_token": 5}}}'
    error = error_from_response(409, body, {"X-Test": "1"})
    assert type(error) is ctxmesh.Fenced
    assert isinstance(error, ctxmesh.Conflict)
    assert (error.token, error.current_token) == (3, 5)
    assert error.headers == {"x-test": "1"}

    unknown = error_from_response(418, b'{"error": {"code": "teapot", "message": "short and stout"}}')
    assert type(unknown) is ctxmesh.CtxmeshError
    assert unknown.code == "teapot" and unknown.status == 418

    no_body = error_from_response(503, b"<html>bad gateway</html>", {"Retry-After": "2"})
    assert isinstance(no_body, ctxmesh.Unavailable)
    assert no_body.retry_after == 2.0

    stale = error_from_response(
        412,
        b'{"error": {"code": "precondition_failed", "message": "stale",'
        b' "details": {"current": {"key": "k", "value": 1, "revision": 9}}}}',
    )
    assert isinstance(stale, ctxmesh.PreconditionFailed)
    assert stale.current is not None and stale.current.revision == 9

    for code, cls in {
        "not_found": ctxmesh.NotFound,
        "already_exists": ctxmesh.AlreadyExists,
        "precondition_failed": ctxmesh.PreconditionFailed,
        "precondition_required": ctxmesh.PreconditionRequired,
        "conflict": ctxmesh.Conflict,
        "fenced": ctxmesh.Fenced,
        "forbidden": ctxmesh.Forbidden,
        "unauthenticated": ctxmesh.Unauthenticated,
        "rate_limited": ctxmesh.RateLimited,
        "schema_violation": ctxmesh.SchemaViolation,
        "too_large": ctxmesh.TooLarge,
        "compacted": ctxmesh.Compacted,
        "invalid_argument": ctxmesh.InvalidArgument,
        "unavailable": ctxmesh.Unavailable,
        "storage_full": ctxmesh.StorageFull,
        "internal": ctxmesh.Internal,
        "something_new": ctxmesh.CtxmeshError,
    }.items():
        assert error_class(code) is cls


def test_compacted(admin: ctxmesh.Client) -> None:
    cid = admin.create_context(unique("ctx"), retention={"max_revisions": 2}).id
    for i in range(6):
        admin.put(cid, "k", i)
    admin.compact(cid)
    assert admin.get_context(cid).compacted_revision > 1
    with pytest.raises(ctxmesh.Compacted) as e:
        admin.get(cid, "k", at=2)
    assert e.value.status == 410
    assert e.value.compacted_revision is not None and e.value.compacted_revision > 2
    with pytest.raises(ctxmesh.Compacted):
        admin.watch(cid, after=1).__next__()
