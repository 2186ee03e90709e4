"""The checkpointer against LangGraph's own conformance suite
(``langgraph-checkpoint-conformance``), every capability, on a real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from ctxmesh.langgraph import CtxmeshSaver

if TYPE_CHECKING:
    from ctxmesh_server import CtxmeshServer


async def test_conformance_suite_passes_every_capability(server: "CtxmeshServer") -> None:
    @checkpointer_test(name="CtxmeshSaver")
    async def ctxmesh_saver() -> AsyncIterator[CtxmeshSaver]:
        # A fresh context per capability suite, as the suite expects.
        saver = CtxmeshSaver(server.url, token=server.admin_token, context="conf-" + uuid.uuid4().hex[:10])
        try:
            yield saver
        finally:
            await saver.aclose()

    report = await validate(ctxmesh_saver, progress=ProgressCallbacks.verbose())
    report.print_report()

    failures = {name: r.failures for name, r in report.results.items() if r.failures}
    assert not failures, failures
    assert {name for name, r in report.results.items() if r.detected} == {c.value for c in ALL_CAPABILITIES}
    assert all(r.passed is True for r in report.results.values())
    assert report.conformance_level() == "FULL"
    assert sum(r.tests_passed for r in report.results.values()) >= 80
