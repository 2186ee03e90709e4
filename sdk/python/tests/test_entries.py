"""Contexts, entries, preconditions, transactions, history and time travel."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import ctxmesh
from ctxmesh_server import unique


def test_health(admin: ctxmesh.Client) -> None:
    assert admin.healthz() == {"status": "ok"}
    assert admin.readyz() == {"status": "ready"}
    spec = admin.openapi()
    assert "/v1/contexts/{ctx}/entries/{key}" in spec["paths"]
    assert "ctxmesh_http_request_duration_seconds" in admin.metrics()


def test_context_lifecycle(admin: ctxmesh.Client) -> None:
    cid = unique("ctx")
    created = admin.create_context(
        cid, labels={"team": "growth"}, policy={"strategy": "last-write-wins"}, retention={"max_revisions": 100}
    )
    assert created.id == cid
    assert created.revision == 1
    assert created.labels == {"team": "growth"}
    assert created.policy.strategy == "last-write-wins"
    assert created.retention.max_revisions == 100

    assert admin.get_context(cid).labels == {"team": "growth"}
    updated = admin.update_context(cid, labels={"team": "core"})
    assert updated.labels == {"team": "core"}
    assert updated.policy.strategy == "last-write-wins", "settings not given are kept"

    ids = {c.id for c in admin.iter_contexts(page_size=2)}
    assert cid in ids

    with pytest.raises(ctxmesh.AlreadyExists) as e:
        admin.create_context(cid)
    assert e.value.status == 409 and e.value.code == "already_exists"
    assert isinstance(e.value, ctxmesh.Conflict)

    admin.delete_context(cid)
    with pytest.raises(ctxmesh.NotFound):
        admin.get_context(cid)


def test_put_get_roundtrip_with_metadata(admin: ctxmesh.Client, ctx: str) -> None:
    written = admin.put(
        ctx,
        "findings/apple-revenue",
        {"q3": 89.5, "unit": "B$"},
        kind="finding",
        tags=["market", "apple"],
        confidence=0.8,
        priority="high",
        depends_on=["brief"],
        relevance={"writer": 0.9},
    )
    assert written.version == 1 and written.created_revision == written.revision
    assert written.etag == f'"{written.revision}"'
    read = admin.get(ctx, "findings/apple-revenue")
    assert read.value == {"q3": 89.5, "unit": "B$"}
    assert read.kind == "finding"
    assert read.tags == ["market", "apple"]
    assert read.confidence == 0.8
    assert read.priority == "high"
    assert read.depends_on == ["brief"]
    assert read.relevance == {"writer": 0.9}
    assert read.revision == written.revision
    assert read.vclock and sum(read.vclock.values()) == 1

    again = admin.put(ctx, "findings/apple-revenue", {"q3": 90})
    assert again.version == 2
    assert again.revision == written.revision + 1
    assert again.kind is None, "a PUT replaces the metadata too"


def test_stale_if_match_raises_with_current_entry(admin: ctxmesh.Client, ctx: str) -> None:
    first = admin.put(ctx, "doc", {"v": 1})
    newer = admin.put(ctx, "doc", {"v": 2}, if_match=first)
    with pytest.raises(ctxmesh.PreconditionFailed) as e:
        admin.put(ctx, "doc", {"v": "stale"}, if_match=first.revision)
    err = e.value
    assert err.status == 412 and err.code == "precondition_failed"
    assert err.current is not None
    assert err.current.revision == newer.revision
    assert err.current.value == {"v": 2}
    assert admin.get(ctx, "doc").value == {"v": 2}, "a failed precondition changes nothing"


def test_if_none_match_and_if_match_star(admin: ctxmesh.Client, ctx: str) -> None:
    with pytest.raises(ctxmesh.PreconditionFailed) as e:
        admin.put(ctx, "only-if-exists", 1, if_match="*")
    assert e.value.current is None
    created = admin.create(ctx, "once", {"n": 1})
    assert created.version == 1
    with pytest.raises(ctxmesh.PreconditionFailed) as e2:
        admin.put(ctx, "once", {"n": 2}, if_none_match=True)
    assert e2.value.current is not None and e2.value.current.value == {"n": 1}
    assert admin.put(ctx, "once", {"n": 3}, if_match="*").value == {"n": 3}


def test_patches(admin: ctxmesh.Client, ctx: str) -> None:
    base = admin.put(ctx, "profile", {"name": "a", "drop": True, "list": [1]}, kind="note", tags=["x"])
    merged = admin.merge_patch(ctx, "profile", {"drop": None, "age": 3}, if_match=base.revision)
    assert merged.value == {"name": "a", "list": [1], "age": 3}
    assert merged.kind == "note" and merged.tags == ["x"], "a patch keeps the metadata"
    patched = admin.json_patch(ctx, "profile", [{"op": "add", "path": "/list/-", "value": 2}])
    assert patched.value["list"] == [1, 2]
    with pytest.raises(ctxmesh.InvalidPatch) as e:
        admin.json_patch(ctx, "profile", [{"op": "test", "path": "/name", "value": "zzz"}])
    assert e.value.status == 400
    with pytest.raises(ctxmesh.PreconditionFailed):
        admin.merge_patch(ctx, "profile", {"age": 4}, if_match=base.revision)
    with pytest.raises(ctxmesh.NotFound):
        admin.merge_patch(ctx, "missing", {"a": 1})


def test_delete(admin: ctxmesh.Client, ctx: str) -> None:
    e = admin.put(ctx, "tmp", 1)
    with pytest.raises(ctxmesh.PreconditionFailed):
        admin.delete(ctx, "tmp", if_match=e.revision + 100)
    deleted = admin.delete(ctx, "tmp", if_match=e)
    assert deleted.key == "tmp" and deleted.revision == e.revision + 1
    with pytest.raises(ctxmesh.NotFound):
        admin.get(ctx, "tmp")
    assert admin.get_or_none(ctx, "tmp") is None
    with pytest.raises(ctxmesh.NotFound):
        admin.delete(ctx, "tmp")
    recreated = admin.put(ctx, "tmp", 2)
    assert recreated.version == 1


def test_list_paginates_one_snapshot(admin: ctxmesh.Client, ctx: str) -> None:
    for i in range(25):
        admin.put(ctx, f"items/{i:03d}", i)
    admin.put(ctx, "other", "x")
    page = admin.list_page(ctx, prefix="items/", limit=10)
    assert len(page.entries) == 10 and page.next_cursor
    snapshot = page.revision
    keys = []
    it = admin.iter_entries(ctx, prefix="items/", page_size=10)
    keys.append(next(it).key)
    admin.put(ctx, "items/999", "written during the listing")
    keys.extend(e.key for e in it)
    assert keys == [f"items/{i:03d}" for i in range(25)], "later pages read the first page's snapshot"
    assert [e.value for e in admin.list(ctx, prefix="items/", page_size=7)][-1] == "written during the listing"
    old = admin.list(ctx, prefix="items/", at=snapshot)
    assert len(old) == 25


def test_time_travel(admin: ctxmesh.Client, ctx: str) -> None:
    v1 = admin.put(ctx, "plan", {"step": 1})
    before_v2 = datetime.now(timezone.utc)
    v2 = admin.put(ctx, "plan", {"step": 2})
    assert admin.get(ctx, "plan", at=v1.revision).value == {"step": 1}
    assert admin.get(ctx, "plan", at=v2.revision).value == {"step": 2}
    assert admin.get(ctx, "plan", as_of=before_v2).value == {"step": 1}
    with pytest.raises(ctxmesh.NotFound):
        admin.get(ctx, "plan", at=v2.revision + 50)
    with pytest.raises(ctxmesh.InvalidArgument) as e:
        admin.get(ctx, "plan", at=v1.revision, as_of=before_v2)
    assert e.value.field == "at"
    with pytest.raises(ctxmesh.NotFound):
        admin.get(ctx, "plan", as_of=before_v2 - timedelta(days=1))


def test_keys_ending_in_history(admin: ctxmesh.Client, ctx: str) -> None:
    admin.put(ctx, "conversation/history", ["hi"])
    admin.put(ctx, "conversation/history", ["hi", "there"])
    assert admin.get(ctx, "conversation/history").value == ["hi", "there"]
    history = admin.entry_history(ctx, "conversation/history")
    assert history.key == "conversation/history"
    assert [v.entry.value for v in history.versions if v.entry] == [["hi", "there"], ["hi"]]
    assert [v.change for v in history.versions] == ["updated", "created"]


def test_txn(admin: ctxmesh.Client, ctx: str) -> None:
    a = admin.put(ctx, "a", 1)
    admin.put(ctx, "c", {"x": 1})
    admin.put(ctx, "scratch/x", 1)
    admin.put(ctx, "scratch/y", 1)
    ok = admin.txn(
        ctx,
        compare=[{"key": "a", "revision": a.revision}, {"key": "b", "exists": False}],
        success=[
            {"op": "put", "key": "a", "value": 2, "kind": "decision"},
            {"op": "put", "key": "b", "value": {"x": 1}},
            {"op": "patch", "key": "c", "merge_patch": {"y": 2}},
            {"op": "delete_prefix", "prefix": "scratch/"},
            {"op": "get", "key": "b"},
        ],
    )
    assert ok.succeeded
    assert admin.get(ctx, "b").value == {"x": 1}
    assert admin.get(ctx, "c").value == {"x": 1, "y": 2}
    assert admin.get(ctx, "a").kind == "decision"
    assert admin.list(ctx, prefix="scratch/") == []
    assert any(e.key == "b" and e.value == {"x": 1} for e in ok.entries())
    # Everything of the transaction is one revision.
    assert {e.revision for e in admin.list(ctx) if e.key in ("a", "b", "c")} == {ok.revision}

    failed = admin.txn(
        ctx,
        compare=[{"key": "a", "value": 999}],
        success=[{"op": "put", "key": "a", "value": 3}],
        failure=[{"op": "get", "key": "a"}],
    )
    assert not failed.succeeded
    assert failed.entries()[0].value == 2
    assert admin.get(ctx, "a").value == 2

    with pytest.raises(ctxmesh.InvalidTxn):
        admin.txn(ctx, success=[{"op": "put", "key": "a", "value": 1}, {"op": "put", "key": "a", "value": 2}])


def test_document(admin: ctxmesh.Client, ctx: str) -> None:
    admin.put(ctx, "brand/colors", ["blue"])
    admin.put(ctx, "brand/voice", "warm")
    first = admin.document(ctx)
    admin.put(ctx, "order", {"id": 7})
    doc = admin.document(ctx)
    assert doc.document == {"brand": {"colors": ["blue"], "voice": "warm"}, "order": {"id": 7}}
    assert admin.document(ctx, at=first.revision).document == {"brand": {"colors": ["blue"], "voice": "warm"}}
    assert admin.document(ctx, prefix="order").document == {"order": {"id": 7}}


def test_history_diff_rollback_fork(admin: ctxmesh.Client, ctx: str) -> None:
    a1 = admin.put(ctx, "a", 1)
    admin.put(ctx, "b", 1)
    admin.put(ctx, "a", 2)
    admin.delete(ctx, "b")
    commits = admin.history(ctx, limit=2)
    assert len(commits.commits) == 2 and commits.next_before is not None
    assert commits.commits[0].keys == ["b"]
    older = admin.history(ctx, before=commits.next_before)
    assert [c.revision for c in older.commits][-1] == 1

    diff = admin.diff(ctx, a1.revision)
    changes = {c.key: c.change for c in diff.changes}
    assert changes == {"a": "modified"}
    assert admin.diff(ctx, 0, a1.revision).changes[0].after.value == 1  # type: ignore[union-attr]

    rolled = admin.rollback(ctx, a1.revision + 1)
    assert rolled.restored_from == a1.revision + 1
    assert admin.get(ctx, "a").value == 1 and admin.get(ctx, "b").value == 1
    assert admin.get_context(ctx).revision == rolled.revision

    fork_id = unique("fork")
    fork = admin.fork(ctx, fork_id, at=a1.revision)
    assert fork.id == fork_id and fork.revision == 1
    assert [(e.key, e.value) for e in admin.list(fork_id)] == [("a", 1)]


def test_events_pages(admin: ctxmesh.Client, ctx: str) -> None:
    for i in range(12):
        admin.put(ctx, f"k{i}", i, priority="high" if i % 3 == 0 else None)
    page = admin.events(ctx, after=0, limit=5)
    assert page.more and len(page.events) == 5
    events = list(admin.iter_events(ctx, page_size=5))
    revisions = [e.revision for e in events]
    assert revisions == list(range(1, 14))
    updated = list(admin.iter_events(ctx, types=["context.updated"], min_priority="high"))
    assert [e.key for e in updated] == ["k0", "k3", "k6", "k9"]


def test_schemas_and_required_preconditions(admin: ctxmesh.Client) -> None:
    cid = admin.create_context(
        unique("ctx"),
        schemas={"orders/*": {"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}}},
        policy={"require_precondition": True},
    ).id
    with pytest.raises(ctxmesh.PreconditionRequired) as e:
        admin.put(cid, "orders/1", {"qty": 2})
    assert e.value.status == 428
    with pytest.raises(ctxmesh.SchemaViolation) as e2:
        admin.put(cid, "orders/1", {"qty": 0}, if_none_match=True)
    assert e2.value.status == 422
    assert e2.value.pointer == "/qty"
    ok = admin.put(cid, "orders/1", {"qty": 2}, if_none_match=True)
    assert ok.value == {"qty": 2}


def test_expiring_entries_and_confidential_flag(admin: ctxmesh.Client, ctx: str) -> None:
    e = admin.put(ctx, "session/token", "abc", ttl_ms=60_000, confidential=True)
    assert e.expires_at is not None and e.confidential
    assert e.expires_at > datetime.now(timezone.utc)
