"""``CtxmeshSaver`` beyond the conformance suite: the sync API, the key
layout, and checkpoints larger than one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.types import INTERRUPT

from ctxmesh import Client
from ctxmesh.langgraph import CtxmeshSaver
from ctxmesh.langgraph._keys import descending

if TYPE_CHECKING:
    from ctxmesh_server import CtxmeshServer


def checkpoint(values: dict[str, Any], versions: dict[str, Any]) -> Checkpoint:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=-1))
    cp["channel_values"] = values
    cp["channel_versions"] = versions
    return cp


def metadata(step: int, **extra: Any) -> CheckpointMetadata:
    return {"source": "loop", "step": step, "parents": {}, **extra}  # type: ignore[typeddict-item]


def config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def whole(thread: str) -> dict[str, Any]:
    """A config naming every namespace of a thread."""
    return {"configurable": {"thread_id": thread}}


def entries(server: "CtxmeshServer", context: str, prefix: str) -> list[dict[str, Any]]:
    with Client(server.url, server.admin_token) as client:
        page = client.request("GET", f"/v1/contexts/{context}/entries", params={"prefix": prefix, "limit": 1000})
    return list(page["entries"])


def test_sync_api_and_layout(server: "CtxmeshServer", context_id: str) -> None:
    saver = CtxmeshSaver(server.url, token=server.admin_token, context=context_id)
    thread, ns = "user 7/chat", "sub|graph:1"
    v1 = saver.get_next_version(None, None)
    v2 = saver.get_next_version(v1, None)
    assert v1 < v2 and v2.startswith("0" * 31 + "2.")
    cp1 = checkpoint({"messages": ["hi"], "count": 1}, {"messages": v1, "count": v1})
    stored1 = saver.put(config(thread, ns), cp1, metadata(0, run_id="run-1"), {"messages": v1, "count": v1})
    saver.put_writes(stored1, [("messages", "pending"), (INTERRUPT, {"ask": "?"})], "task-1", "path:1")
    saver.put_writes(stored1, [("messages", "retried")], "task-1", "path:1")  # regular writes are kept once
    cp2 = checkpoint({"messages": ["hi", "there"], "count": 1}, {"messages": v2, "count": v1})
    stored2 = saver.put(stored1, cp2, metadata(1, run_id="run-2"), {"messages": v2})

    latest = saver.get_tuple(config(thread, ns))
    assert latest is not None
    assert latest.checkpoint["id"] == cp2["id"]
    assert latest.checkpoint["channel_values"] == {"messages": ["hi", "there"], "count": 1}
    assert latest.parent_config is not None and latest.parent_config["configurable"]["checkpoint_id"] == cp1["id"]
    first = saver.get_tuple(stored1)
    assert first is not None
    assert first.pending_writes == [("task-1", INTERRUPT, {"ask": "?"}), ("task-1", "messages", "pending")]
    assert [t.checkpoint["id"] for t in saver.list(whole(thread))] == [cp2["id"], cp1["id"]]
    assert [t.checkpoint["id"] for t in saver.list(None, filter={"run_id": "run-1"})] == [cp1["id"]]
    assert [t.checkpoint["id"] for t in saver.list(whole(thread), before=stored2)] == [cp1["id"]]

    # The layout other readers see.
    t, n = "user~207~2Fchat", "sub~7Cgraph:1"
    assert [e["key"] for e in entries(server, context_id, "checkpoints/")] == [
        f"checkpoints/{t}/{n}/{descending(cp2['id'])}",
        f"checkpoints/{t}/{n}/{descending(cp1['id'])}",
    ]
    record = entries(server, context_id, "checkpoints/")[0]["value"]
    assert record["checkpoint_id"] == cp2["id"] and record["parent_checkpoint_id"] == cp1["id"]
    assert record["metadata_json"]["run_id"] == "run-2"
    assert sorted(e["key"] for e in entries(server, context_id, "blobs/")) == sorted(
        [f"blobs/{t}/{n}/count/{v1}", f"blobs/{t}/{n}/messages/{v1}", f"blobs/{t}/{n}/messages/{v2}"]
    )
    assert sorted(e["key"] for e in entries(server, context_id, "writes/")) == [
        f"writes/{t}/{n}/{descending(cp1['id'])}/task-1/-3",
        f"writes/{t}/{n}/{descending(cp1['id'])}/task-1/0",
    ]

    saver.copy_thread(thread, "copy")
    copied = saver.get_tuple(config("copy", ns))
    assert copied is not None and copied.checkpoint["channel_values"] == latest.checkpoint["channel_values"]

    saver.prune([thread], strategy="keep_latest")
    assert [t.checkpoint["id"] for t in saver.list(whole(thread))] == [cp2["id"]]
    assert sorted(e["key"] for e in entries(server, context_id, f"blobs/{t}/")) == sorted(
        [f"blobs/{t}/{n}/count/{v1}", f"blobs/{t}/{n}/messages/{v2}"]
    ), "values no checkpoint refers to go with the pruned checkpoints"
    assert entries(server, context_id, f"writes/{t}/") == []

    saver.delete_for_runs(["run-2"])
    assert saver.get_tuple(config(thread, ns)) is None
    # The copy carries the same metadata: its run-2 checkpoint goes too.
    assert [c.checkpoint["id"] for c in saver.list(whole("copy"))] == [cp1["id"]]
    saver.delete_thread("copy")
    assert list(saver.list(None)) == []
    assert entries(server, context_id, "") == []
    saver.close()


def test_checkpoints_larger_than_one_transaction(server: "CtxmeshServer", context_id: str) -> None:
    saver = CtxmeshSaver(server.url, token=server.admin_token, context=context_id, max_txn_ops=8)
    channels = {f"ch{i}": i for i in range(30)}
    versions = {name: 1 for name in channels}
    cp = checkpoint(dict(channels), dict(versions))
    stored = saver.put(config("big"), cp, metadata(0), dict(versions))
    saver.put_writes(stored, [(f"ch{i}", -i) for i in range(20)], "task")
    got = saver.get_tuple(config("big"))
    assert got is not None
    assert got.checkpoint["channel_values"] == channels
    assert [w[2] for w in got.pending_writes or []] == [-i for i in range(20)]
    for n in range(12):
        saver.put(config("many"), checkpoint({}, {}), metadata(n), {})
    assert [t.metadata["step"] for t in saver.list(config("many"))] == list(reversed(range(12)))
    assert [t.metadata["step"] for t in saver.list(config("many"), limit=5)] == [11, 10, 9, 8, 7]
    saver.copy_thread("many", "many-copy")
    assert len(list(saver.list(config("many-copy")))) == 12
    saver.close()
