"""``CtxmeshStore`` on a real server: every operation, through the sync and
the async API alike (each test runs twice)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)

from ctxmesh import Client
from ctxmesh.errors import TooLarge
from ctxmesh.langgraph import CtxmeshStore

if TYPE_CHECKING:
    from ctxmesh_server import CtxmeshServer


class Api:
    """The store's API as coroutines, backed by its sync or its async methods."""

    def __init__(self, store: CtxmeshStore, mode: str) -> None:
        self.store = store
        self.mode = mode

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "sync":
            return getattr(self.store, name)(*args, **kwargs)
        return await getattr(self.store, "a" + name)(*args, **kwargs)

    async def put(self, *args: Any, **kwargs: Any) -> None:
        await self._call("put", *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Item | None:
        return await self._call("get", *args, **kwargs)  # type: ignore[no-any-return]

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        await self._call("delete", *args, **kwargs)

    async def search(self, *args: Any, **kwargs: Any) -> list[Any]:
        return await self._call("search", *args, **kwargs)  # type: ignore[no-any-return]

    async def list_namespaces(self, **kwargs: Any) -> list[tuple[str, ...]]:
        return await self._call("list_namespaces", **kwargs)  # type: ignore[no-any-return]

    async def batch(self, ops: list[Any]) -> list[Any]:
        return await self._call("batch", ops)  # type: ignore[no-any-return]


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, server: "CtxmeshServer", context_id: str) -> AsyncIterator[Api]:
    store = CtxmeshStore(server.url, token=server.admin_token, context=context_id)
    try:
        yield Api(store, request.param)
    finally:
        store.close()
        await store.aclose()


async def test_put_get_update_delete(api: Api) -> None:
    assert await api.get(("users", "alice"), "prefs") is None
    await api.put(("users", "alice"), "prefs", {"theme": "dark", "size": 3})
    item = await api.get(("users", "alice"), "prefs")
    assert item is not None
    assert (item.namespace, item.key, item.value) == (("users", "alice"), "prefs", {"theme": "dark", "size": 3})
    assert item.created_at == item.updated_at
    assert item.created_at.tzinfo is not None

    await asyncio.sleep(0.01)
    await api.put(("users", "alice"), "prefs", {"theme": "light"})
    updated = await api.get(("users", "alice"), "prefs")
    assert updated is not None
    assert updated.value == {"theme": "light"}, "a put replaces the whole value"
    assert updated.created_at == item.created_at
    assert updated.updated_at > item.updated_at

    await api.delete(("users", "alice"), "prefs")
    assert await api.get(("users", "alice"), "prefs") is None
    await api.delete(("users", "alice"), "prefs")  # deleting a missing item is no error
    await api.put(("users", "alice"), "prefs", {"again": True})
    again = await api.get(("users", "alice"), "prefs")
    assert again is not None and again.created_at > item.created_at, "a re-created item is new"


async def test_any_label_and_key_round_trips(api: Api) -> None:
    odd_labels = [("a b", "ü/ñ", "x@y~z"), ("history",), ("-", "_", ":")]
    odd_keys = ["", ".", "..", "a/b", "history", "ключ", "100%", "a@b", "~"]
    for namespace in odd_labels:
        for n, key in enumerate(odd_keys):
            await api.put(namespace, key, {"n": n})
    for namespace in odd_labels:
        for n, key in enumerate(odd_keys):
            item = await api.get(namespace, key)
            assert item is not None and item.value == {"n": n} and item.key == key and item.namespace == namespace
        found = await api.search(namespace, limit=100)
        assert sorted(i.key for i in found) == sorted(odd_keys)
    assert sorted(await api.list_namespaces()) == sorted(odd_labels)


async def test_invalid_namespaces_are_refused(api: Api) -> None:
    with pytest.raises(InvalidNamespaceError):
        await api.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        await api.put((), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        await api.put(("langgraph",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        await api.batch([GetOp(("a", ""), "k")])
    assert await api.list_namespaces() == []


async def test_search_by_prefix_filter_and_pages(api: Api) -> None:
    for n in range(7):
        await api.put(("docs", "a" if n % 2 else "b"), f"doc{n}", {"n": n, "kind": "even" if n % 2 == 0 else "odd", "meta": {"lang": "en" if n < 4 else "fr"}, "tags": ["x", str(n)]})
    await api.put(("docsx",), "other", {"n": 100, "kind": "even"})
    await api.put(("other", "docs"), "other", {"n": 101, "kind": "even"})

    everything = await api.search(("docs",), limit=100)
    assert sorted(i.key for i in everything) == [f"doc{n}" for n in range(7)], "a prefix is whole labels"
    assert [i.key for i in everything] == [f"doc{n}" for n in reversed(range(7))], "newest first"
    assert all(i.score is None for i in everything)
    assert len(await api.search((), limit=100)) == 9
    assert sorted(i.key for i in await api.search(("docs", "a"))) == ["doc1", "doc3", "doc5"]

    async def keys(**kwargs: Any) -> list[str]:
        return sorted(i.key for i in await api.search(("docs",), limit=100, **kwargs))

    assert await keys(filter={"kind": "even"}) == ["doc0", "doc2", "doc4", "doc6"]
    assert await keys(filter={"kind": {"$eq": "odd"}, "n": {"$gt": 1}}) == ["doc3", "doc5"]
    assert await keys(filter={"kind": {"$ne": "odd"}}) == ["doc0", "doc2", "doc4", "doc6"]
    assert await keys(filter={"n": {"$gte": 5}}) == ["doc5", "doc6"]
    assert await keys(filter={"n": {"$lt": 2}}) == ["doc0", "doc1"]
    assert await keys(filter={"n": {"$lte": 2, "$gt": 0}}) == ["doc1", "doc2"]
    assert await keys(filter={"meta": {"lang": "fr"}}) == ["doc4", "doc5", "doc6"]
    assert await keys(filter={"tags": ["x", "3"]}) == ["doc3"]
    assert await keys(filter={"missing": 1}) == []

    pages = [await api.search(("docs",), limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [i.key for p in pages for i in p] == [i.key for i in everything]
    filtered_page = await api.search(("docs",), filter={"kind": "even"}, limit=2, offset=1)
    assert [i.key for i in filtered_page] == ["doc4", "doc2"]


async def test_search_by_query(api: Api) -> None:
    await api.put(("kb", "fruit"), "apple", {"text": "Apples are red or green fruit that grow on trees"})
    await api.put(("kb", "fruit"), "banana", {"text": "Bananas are long yellow fruit", "ripe": True})
    await api.put(("kb", "cars"), "tesla", {"text": "An electric car, sometimes red"})
    await api.put(("elsewhere",), "apple", {"text": "red apples elsewhere"})

    hits = await api.search(("kb",), query="red apples")
    assert [i.key for i in hits][:1] == ["apple"]
    assert {(i.namespace, i.key) for i in hits} == {(("kb", "fruit"), "apple"), (("kb", "cars"), "tesla")}
    assert all(isinstance(i.score, float) and i.score > 0 for i in hits)
    assert hits == sorted(hits, key=lambda i: -(i.score or 0))

    assert [i.key for i in await api.search(("kb", "fruit"), query="fruit", filter={"ripe": True})] == ["banana"]
    red = await api.search(("kb",), query="red")
    assert len(red) == 2
    assert [i.key for i in await api.search(("kb",), query="red", limit=1, offset=1)] == [red[1].key]
    assert await api.search(("kb",), query="submarine") == []


async def test_list_namespaces(api: Api) -> None:
    namespaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
        ("admin", "users", "789"),
    ]
    for n, namespace in enumerate(namespaces):
        await api.put(namespace, f"k{n}", {"n": n})
    await api.put(("a", "b", "c"), "second", {"n": 99})  # one namespace, two items

    assert await api.list_namespaces() == sorted(namespaces)
    assert await api.list_namespaces(prefix=("a", "b")) == sorted(ns for ns in namespaces if ns[:2] == ("a", "b"))
    assert await api.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert await api.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert await api.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert await api.list_namespaces(suffix=("*", "f")) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert await api.list_namespaces(prefix=("*", "users")) == [("admin", "users", "789")]
    assert await api.list_namespaces(max_depth=2) == [("a", "b"), ("a", "c"), ("admin", "users"), ("b", "a"), ("users", "123"), ("users", "456")]
    assert await api.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    everything = await api.list_namespaces()
    assert await api.list_namespaces(limit=3) == everything[:3]
    assert await api.list_namespaces(limit=3, offset=3) == everything[3:6]
    assert await api.list_namespaces(offset=8) == everything[8:]
    assert await api.list_namespaces(prefix=("nothing",)) == []

    for n, namespace in enumerate(namespaces):
        await api.delete(namespace, f"k{n}")
    assert await api.list_namespaces() == [("a", "b", "c")], "a namespace lasts while it has items"


async def test_batch_of_mixed_operations(api: Api) -> None:
    await api.put(("b",), "old", {"v": "old"})
    await api.put(("b",), "gone", {"v": "gone"})
    results = await api.batch(
        [
            PutOp(("b",), "new", {"v": "new"}),
            GetOp(("b",), "new"),
            GetOp(("b",), "gone"),
            PutOp(("b",), "gone", None),
            SearchOp(("b",), filter={"v": "old"}),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("b",)),)),
            PutOp(("b", "c"), "x", {"v": 1}),
            PutOp(("b", "c"), "x", {"v": 2}),
            SearchOp(("b",), query="old"),
        ]
    )
    assert len(results) == 9
    assert results[0] is None and results[3] is None and results[6] is None and results[7] is None
    assert results[1] is None, "reads see the store as it was before the batch's writes"
    assert results[2] is not None and results[2].value == {"v": "gone"}
    assert [i.key for i in results[4]] == ["old"]
    assert results[5] == [("b",)]
    assert [i.key for i in results[8]] == ["old"]

    new = await api.get(("b",), "new")
    assert new is not None and new.value == {"v": "new"}
    assert await api.get(("b",), "gone") is None
    x = await api.get(("b", "c"), "x")
    assert x is not None and x.value == {"v": 2}, "the last write of an item in a batch wins"


async def test_a_batch_writes_all_or_nothing(api: Api) -> None:
    await api.put(("t",), "kept", {"v": 1})
    with pytest.raises(TooLarge):
        await api.batch(
            [
                PutOp(("t",), "a", {"v": 2}),
                PutOp(("t",), "kept", None),
                PutOp(("t",), "huge", {"blob": "x" * 1_200_000}),  # over the 1 MiB value limit
            ]
        )
    assert await api.get(("t",), "a") is None
    kept = await api.get(("t",), "kept")
    assert kept is not None and kept.value == {"v": 1}


async def test_ttl_expiry_and_refresh(api: Api) -> None:
    ttl = 0.025  # minutes: 1.5 s
    await api.put(("ttl",), "plain", {"v": 0})
    await api.put(("ttl",), "read", {"v": 1}, ttl=ttl)
    await api.put(("ttl",), "unread", {"v": 2}, ttl=ttl)
    await api.put(("ttl",), "searched", {"v": 3}, ttl=ttl)
    written = await api.get(("ttl",), "read", refresh_ttl=False)
    assert written is not None

    time.sleep(0.9)
    refreshed = await api.get(("ttl",), "read")  # restarts its TTL
    assert refreshed is not None
    assert refreshed.updated_at == written.updated_at, "a refresh is not an update"
    assert refreshed.created_at == written.created_at
    assert {i.key for i in await api.search(("ttl",), filter={"v": 3})} == {"searched"}  # restarts its TTL
    assert await api.get(("ttl",), "unread", refresh_ttl=False) is not None

    time.sleep(0.9)  # 1.8 s after the writes, 0.9 s after the refreshes
    assert await api.get(("ttl",), "unread", refresh_ttl=False) is None
    assert await api.get(("ttl",), "read", refresh_ttl=False) is not None
    assert {i.key for i in await api.search(("ttl",), refresh_ttl=False)} == {"plain", "read", "searched"}

    time.sleep(1.0)  # 1.9 s after the refreshes, the last reads did not refresh
    assert await api.get(("ttl",), "read") is None
    assert {i.key for i in await api.search(("ttl",))} == {"plain"}
    assert await api.list_namespaces() == [("ttl",)]
    with pytest.raises(ValueError):
        await api.put(("ttl",), "bad", {"v": 1}, ttl=0)


async def test_ttl_config_default_and_no_refresh(server: "CtxmeshServer", context_id: str) -> None:
    store = CtxmeshStore(
        server.url,
        token=server.admin_token,
        context=context_id,
        ttl={"default_ttl": 0.02, "refresh_on_read": False},
    )
    await store.aput(("cfg",), "default", {"v": 1})
    await store.aput(("cfg",), "forever", {"v": 2}, ttl=None)
    time.sleep(0.7)
    assert await store.aget(("cfg",), "default") is not None  # no refresh by default
    time.sleep(0.7)
    assert await store.aget(("cfg",), "default") is None
    assert await store.aget(("cfg",), "forever") is not None
    assert store.get(("cfg",), "forever") is not None
    store.close()
    await store.aclose()


def test_layout_other_agents_read(server: "CtxmeshServer", context_id: str) -> None:
    store = CtxmeshStore(server.url, token=server.admin_token, context=context_id, prefix="memories", kind="memory")
    store.put(("users", "alice smith"), "prefs", {"theme": "dark"}, ttl=5)
    store.put(("users", "alice smith"), "prefs", {"theme": "dark", "v": 2})
    with Client(server.url, server.admin_token) as client:
        page = client.request("GET", f"/v1/contexts/{context_id}/entries", params={"prefix": "memories/"})
        (entry,) = page["entries"]
        assert entry["key"] == "memories/users/alice~20smith/@prefs"
        assert entry["value"] == {"theme": "dark", "v": 2}, "the value is the item's, as it is"
        assert entry["kind"] == "memory"
        assert entry["expires_at"] is None, "a put without ttl clears it"
        assert all(tag.startswith("lg") for tag in entry["tags"])
        # Foreign entries under the prefix are not items and are left alone.
        client.request("PUT", f"/v1/contexts/{context_id}/entries/memories/notes", json={"value": "hi"})
        client.request("PUT", f"/v1/contexts/{context_id}/entries/elsewhere/@x", json={"value": {"a": 1}})
    assert store.list_namespaces() == [("users", "alice smith")]
    assert [i.key for i in store.search(())] == ["prefs"]
    item = store.get(("users", "alice smith"), "prefs")
    assert item is not None and item.created_at < item.updated_at
    store.close()
