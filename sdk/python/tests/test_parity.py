"""Client and AsyncClient offer the same methods, with the same signatures.

The async form of a method takes the same parameters (names, kinds,
defaults, annotations) and answers the async counterpart of what the sync
one answers: a coroutine for a value, an asynchronous iterator for an
iterator, ``AsyncWatch`` / ``AsyncHeldLock`` / ``AsyncClient`` for
``Watch`` / ``HeldLock`` / ``Client``. These tests need no server.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Dict, List

import pytest

import ctxmesh
from ctxmesh import _api
from ctxmesh import models as m

# Sync names whose async counterparts are named differently.
RENAMED = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}

# Names in sync annotations and their async counterparts.
COUNTERPARTS = {
    "Client": "AsyncClient",
    "HeldLock": "AsyncHeldLock",
    "Watch": "AsyncWatch",
    "Iterator": "AsyncIterator",
    "httpx.BaseTransport": "httpx.AsyncBaseTransport",
}
_WORD = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in COUNTERPARTS) + r")(?![\w.])|httpx\.Client\b")

# What the sync method answers -> the async counterpart, to be used without ``await``.
RETURNS_ASYNC_OBJECT = {"'Client'": ctxmesh.AsyncClient, "'HeldLock'": ctxmesh.AsyncHeldLock, "Watch": ctxmesh.AsyncWatch}


def asyncified(annotation: Any) -> Any:
    """A sync annotation (a string: the modules use postponed annotations) in its async form."""
    if not isinstance(annotation, str):
        return annotation
    return _WORD.sub(lambda match: "httpx.AsyncClient" if match.group(1) is None else COUNTERPARTS[match.group(1)], annotation)


def methods(cls: type) -> Dict[str, Callable[..., Any]]:
    """The public methods of ``cls`` (and its context-manager methods), inherited ones included."""
    return {
        name: value
        for name, value in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in ("__init__", *RENAMED, *RENAMED.values())
    }


def properties(cls: type) -> List[str]:
    return sorted(name for name, value in inspect.getmembers(cls) if isinstance(value, property))


def shape(fn: Callable[..., Any], *, sync: bool) -> List[Any]:
    signature = inspect.signature(fn)
    convert = asyncified if sync else (lambda a: a)
    params = [(p.name, p.kind, p.default, convert(p.annotation)) for p in signature.parameters.values()]
    return [params, convert(signature.return_annotation)]


def differences(sync_cls: type, async_cls: type) -> List[str]:
    """How ``async_cls`` fails to be the async counterpart of ``sync_cls`` (empty: it is)."""
    found: List[str] = []
    sync_methods, async_methods = methods(sync_cls), methods(async_cls)
    expected = {RENAMED.get(name, name): name for name in sync_methods}
    for name in sorted(set(expected) - set(async_methods)):
        found.append(f"{expected[name]}: only on {sync_cls.__name__}")
    for name in sorted(set(async_methods) - set(expected)):
        found.append(f"{name}: only on {async_cls.__name__}")
    if properties(sync_cls) != properties(async_cls):
        found.append(f"properties differ: {properties(sync_cls)} / {properties(async_cls)}")
    for async_name, sync_name in sorted(expected.items()):
        if async_name not in async_methods:
            continue
        sync_fn, async_fn = sync_methods[sync_name], async_methods[async_name]
        if shape(sync_fn, sync=True) != shape(async_fn, sync=False):
            found.append(f"{sync_name}: {inspect.signature(sync_fn)} / {inspect.signature(async_fn)}")
        if inspect.iscoroutinefunction(sync_fn) or inspect.isasyncgenfunction(sync_fn):
            found.append(f"{sync_name}: the sync form is asynchronous")
        returns = inspect.signature(sync_fn).return_annotation
        if sync_name == "__init__":
            continue
        if sync_name in RENAMED:
            if not inspect.iscoroutinefunction(async_fn):
                found.append(f"{async_name}: must be a coroutine function")
        elif isinstance(returns, str) and returns.startswith("Iterator["):
            if not inspect.isasyncgenfunction(async_fn):
                found.append(f"{async_name}: answers an iterator, so the async form must be an async generator")
        elif returns in RETURNS_ASYNC_OBJECT:
            if inspect.iscoroutinefunction(async_fn) or inspect.isasyncgenfunction(async_fn):
                found.append(f"{async_name}: answers {returns} at once, so the async form must not be a coroutine")
        elif not inspect.iscoroutinefunction(async_fn):
            found.append(f"{async_name}: does I/O, so the async form must be a coroutine function")
    return found


# --- the clients -----------------------------------------------------------------


def test_the_clients_have_the_same_methods_and_signatures() -> None:
    assert differences(ctxmesh.Client, ctxmesh.AsyncClient) == []


def test_the_held_locks_have_the_same_methods_and_signatures() -> None:
    assert differences(ctxmesh.HeldLock, ctxmesh.AsyncHeldLock) == []


def test_the_async_objects_are_used_asynchronously() -> None:
    assert hasattr(ctxmesh.AsyncWatch, "__aiter__") and hasattr(ctxmesh.AsyncWatch, "__anext__")
    assert hasattr(ctxmesh.AsyncWatch, "__aenter__") and hasattr(ctxmesh.AsyncWatch, "__aexit__")
    assert hasattr(ctxmesh.AsyncHeldLock, "__aenter__") and hasattr(ctxmesh.AsyncHeldLock, "__aexit__")
    assert not hasattr(ctxmesh.AsyncHeldLock, "__enter__") and not hasattr(ctxmesh.AsyncWatch, "__iter__")
    assert hasattr(ctxmesh.AsyncClient, "__aenter__") and not hasattr(ctxmesh.AsyncClient, "__enter__")


def test_every_public_method_is_documented() -> None:
    for cls in (ctxmesh.Client, ctxmesh.AsyncClient, ctxmesh.HeldLock, ctxmesh.AsyncHeldLock):
        for name, fn in methods(cls).items():
            if not name.startswith("_"):
                assert inspect.getdoc(fn), f"{cls.__name__}.{name} has no docstring"


def test_the_request_builders_take_the_methods_parameters() -> None:
    """A method sending one request passes its arguments to the builder of the same name."""
    checked = 0
    for name, fn in methods(ctxmesh.Client).items():
        builder = getattr(_api, name, None)
        if name.startswith("_") or not inspect.isfunction(builder):
            continue
        ours = [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()][1:]
        theirs = [(p.name, p.kind) for p in inspect.signature(builder).parameters.values()]
        if name.startswith("watch"):
            theirs = [p for p in theirs if p[0] != "after"]
            ours = [p for p in ours if p[0] not in ("after", "include_progress", "reconnect", "max_retries", "read_timeout")]
        if ("force", inspect.Parameter.KEYWORD_ONLY) in ours:
            # A write's precondition defaults to the revision the client read
            # (``force`` turns that off): the builder takes the header's form.
            ours = [p for p in ours if p[0] != "force"]
            if ("if_none_match", inspect.Parameter.KEYWORD_ONLY) not in ours:
                theirs = [p for p in theirs if p[0] != "if_none_match"]
        assert ours == theirs, name
        checked += 1
    assert checked > 60


# --- the checks themselves ---------------------------------------------------------


def test_a_method_added_to_one_client_only_is_found() -> None:
    class MoreSync(ctxmesh.Client):
        def frobnicate(self, ctx: str) -> None:
            """Not on the async client."""

    class MoreAsync(ctxmesh.AsyncClient):
        async def frobnicate(self, ctx: str) -> None:
            """Not on the sync client."""

    assert differences(MoreSync, ctxmesh.AsyncClient) == ["frobnicate: only on MoreSync"]
    assert differences(ctxmesh.Client, MoreAsync) == ["frobnicate: only on MoreAsync"]
    assert differences(MoreSync, MoreAsync) == []


def test_a_drifted_signature_or_kind_is_found() -> None:
    class Drifted(ctxmesh.AsyncClient):
        async def get(self, ctx: str, key: str, *, at: int | None = None) -> m.Entry:  # as_of dropped
            raise NotImplementedError

        async def delete_policy(self, id: str = "x") -> None:  # a default the sync one lacks
            raise NotImplementedError

        def get_context(self, ctx: str) -> m.Context:  # I/O without a coroutine
            raise NotImplementedError

        async def iter_contexts(self, *, page_size: int | None = None) -> Any:  # a coroutine, not an iterator
            raise NotImplementedError

    found = differences(ctxmesh.Client, Drifted)
    assert [d.split(":")[0] for d in found] == ["delete_policy", "get", "get_context", "iter_contexts", "iter_contexts"]


@pytest.mark.parametrize(
    "sync, expected",
    [
        ("Optional[Fencing]", "Optional[Fencing]"),
        ("Iterator[m.Entry]", "AsyncIterator[m.Entry]"),
        ("'HeldLock'", "'AsyncHeldLock'"),
        ("Optional[httpx.Client]", "Optional[httpx.AsyncClient]"),
        ("Optional[httpx.BaseTransport]", "Optional[httpx.AsyncBaseTransport]"),
        ("Watch", "AsyncWatch"),
    ],
)
def test_asyncified(sync: str, expected: str) -> None:
    assert asyncified(sync) == expected
