"""Packages, search, consensus, decisions and conflict policies."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest

import ctxmesh
from ctxmesh_server import CtxmeshServer, unique

LONG = (
    "The European market for developer tools grew strongly this year. "
    "Teams adopt shared context servers to coordinate their agents. "
    "Pricing pressure is moderate and buyers value reliability over features. "
)


def test_package_within_budget(server: CtxmeshServer, admin: ctxmesh.Client) -> None:
    writer = server.register_agent(
        unique("writer"),
        needs={"kinds": ["finding"], "tags": ["market"]},
        objective="write a launch post about the developer tools market",
        token_budget=4000,
    )
    cid = admin.create_context(unique("launch")).id
    for i in range(12):
        admin.put(cid, f"findings/{i:02d}", {"text": LONG * 4, "n": i}, kind="finding", tags=["market"])
    admin.put(cid, "unrelated/lunch", "pizza on friday", kind="note")
    admin.grant(cid, writer.id, ["read"])

    package = admin.package(cid, writer.id, budget=300, explain=True)
    assert package.agent == writer.id and package.budget == 300
    assert 0 < package.tokens <= 300
    assert package.revision == admin.get_context(cid).revision
    keys = [item.key for item in package.items]
    assert keys and all(k.startswith("findings/") for k in keys)
    assert "unrelated/lunch" not in keys
    assert package.dropped_total + len(package.items) >= 12
    assert all(item.explain is not None for item in package.items)
    scores = [item.score for item in package.items]
    assert scores == sorted(scores, reverse=True)

    roomy = admin.package(cid, writer.id, budget=100_000, encoding="o200k_base")
    assert roomy.encoding == "o200k_base"
    assert {i.key for i in roomy.items} == {f"findings/{i:02d}" for i in range(12)}
    assert all(i.status == "included" for i in roomy.items)

    markdown = admin.package_markdown(cid, writer.id, budget=300)
    assert markdown.tokens is not None and 0 < markdown.tokens <= 300
    assert markdown.revision == package.revision
    assert "findings/" in markdown.text

    first = admin.get_context(cid).revision
    admin.put(cid, "findings/late", {"text": "a late finding about market pricing"}, kind="finding", tags=["market"])
    past = admin.package(cid, writer.id, budget=100_000, at=first)
    assert "findings/late" not in {i.key for i in past.items}
    with pytest.raises(ctxmesh.InvalidArgument):
        admin.package(cid, writer.id, budget=0)


def test_search(admin: ctxmesh.Client, ctx: str) -> None:
    admin.put(ctx, "findings/pricing", {"text": "competitor pricing is aggressive"}, kind="finding", tags=["market"])
    admin.put(ctx, "findings/hiring", {"text": "hiring engineers is slow"}, kind="finding", tags=["team"])
    admin.put(ctx, "notes/pricing", "pricing meeting on monday", kind="note")
    result = admin.search(ctx, "pricing", mode="keyword")
    assert result.mode == "keyword"
    assert {h.key for h in result.hits} == {"findings/pricing", "notes/pricing"}
    assert all(h.entry is not None and h.score > 0 for h in result.hits)
    assert [h.key for h in admin.search(ctx, "pricing", kind="finding").hits] == ["findings/pricing"]
    assert [h.key for h in admin.search(ctx, "pricing hiring", tags=["team"]).hits] == ["findings/hiring"]
    assert admin.search(ctx, "pricing", since=datetime.now(timezone.utc) + timedelta(hours=1)).hits == []
    assert len(admin.search(ctx, "pricing", limit=1).hits) == 1
    with pytest.raises(ctxmesh.InvalidArgument):
        admin.search(ctx, "   ")


def test_consensus_and_decisions(admin: ctxmesh.Client, ctx: str) -> None:
    agreed = admin.consensus(
        ctx,
        "decisions/price",
        [
            {"agent": "a", "value": {"price": 199}, "confidence": 0.9},
            {"agent": "b", "value": {"price": 199}, "confidence": 0.8},
            {"agent": "c", "value": {"price": 249}, "confidence": 0.3},
        ],
        min_agreement=0.6,
    )
    assert agreed.agreed and agreed.entry is not None
    assert agreed.entry.value == {"price": 199} and agreed.entry.kind == "decision"
    assert admin.get(ctx, "decisions/price").value == {"price": 199}

    split = admin.consensus(
        ctx,
        "decisions/name",
        [{"agent": "a", "value": "Mesh", "confidence": 0.5}, {"agent": "b", "value": "Hive", "confidence": 0.5}],
        min_agreement=0.9,
    )
    assert not split.agreed and split.conflict is not None
    assert split.conflict.status == "pending"
    pending = admin.list_conflicts(ctx).conflicts
    assert split.conflict.id in {c.id for c in pending}
    resolved = admin.resolve_conflict(ctx, split.conflict.id, value="Mesh")
    assert resolved.status == "resolved"
    assert admin.get(ctx, "decisions/name").value == "Mesh"

    read = admin.get_context(ctx).revision
    record = admin.as_agent("planner").record_decision(ctx, {"ship": "tuesday"}, read)
    assert record.entry.key == f"decisions/planner/{read}"
    assert record.entry.value == {"decision": {"ship": "tuesday"}, "read_revision": read, "agent": "planner"}
    assert record.replay.endswith(f"package?agent=planner&at={read}")


def test_manual_policy_keeps_stale_writes_aside(admin: ctxmesh.Client) -> None:
    cid = admin.create_context(unique("ctx"), policy={"strategy": "manual"}).id
    base = admin.put(cid, "votes/plan", {"choice": "a"})
    admin.put(cid, "votes/plan", {"choice": "b"}, if_match=base)
    with pytest.raises(ctxmesh.ConflictPending) as e:
        admin.put(cid, "votes/plan", {"choice": "c"}, if_match=base)
    assert e.value.status == 202 and e.value.conflict_id
    assert admin.get(cid, "votes/plan").value == {"choice": "b"}, "kept aside, not applied"
    record = admin.get_conflict(cid, e.value.conflict_id)
    assert record.status == "pending" and record.strategy == "manual"
    assert record.current is not None and record.current.value == {"choice": "b"}
    assert record.proposed is not None and record.proposed["value"] == {"choice": "c"}
    resolved = admin.resolve_conflict(cid, record.id, choose="proposed")
    assert resolved.status == "resolved"
    assert admin.get(cid, "votes/plan").value == {"choice": "c"}
    with pytest.raises(ctxmesh.InvalidTransition):
        admin.resolve_conflict(cid, record.id, choose="current")
    assert record.id in {c.id for c in admin.list_conflicts(cid, status="resolved").conflicts}


def test_merge_and_last_write_wins_report_the_conflict(admin: ctxmesh.Client) -> None:
    cid = admin.create_context(
        unique("ctx"),
        policy={"strategy": "merge", "overrides": [{"pattern": "lww/*", "strategy": "last-write-wins"}]},
    ).id
    base = admin.put(cid, "doc", {"title": "a", "body": "x"})
    admin.put(cid, "doc", {"title": "b", "body": "x"}, if_match=base)
    merged = admin.put(cid, "doc", {"title": "a", "body": "y"}, if_match=base)
    assert merged.value == {"title": "b", "body": "y"}
    assert merged.conflict is not None and merged.conflict[0] == "merged" and merged.conflict[1]

    lww = admin.put(cid, "lww/k", 1)
    admin.put(cid, "lww/k", 2, if_match=lww)
    overwritten = admin.put(cid, "lww/k", 3, if_match=lww)
    assert overwritten.value == 3
    assert overwritten.conflict is not None and overwritten.conflict[0] == "overwritten"
    assert admin.put(cid, "lww/k", 4).conflict is None
    detected = [e for e in admin.iter_events(cid, types="conflict.detected")]
    assert len(detected) == 2


def test_a_seed_001_context_map_as_written(server: CtxmeshServer, admin: ctxmesh.Client) -> None:
    """Seed 001's context map, posted as written: plain lists of names."""
    cid = admin.create_context(unique("launch")).id
    researcher, writer, reviewer = unique("researcher"), unique("writer"), unique("reviewer")
    answer = admin.put_context_map(
        cid,
        {
            researcher: {
                "needs": ["task_objective", "search_constraints", "quality_criteria"],
                "produces": ["source_documents", "key_findings", "confidence_scores"],
            },
            writer: {
                "needs": ["key_findings", "brand_guidelines", "audience_profile", "format_requirements"],
                "produces": ["draft_content", "reasoning_chain", "uncertainty_flags"],
            },
            reviewer: {
                "needs": ["draft_content", "original_objective", "quality_criteria", "brand_guidelines"],
                "produces": ["feedback", "approval_status", "revision_suggestions"],
            },
        },
    )
    assert answer.workflow == [researcher, writer, reviewer]
    assert set(answer.tokens) == {researcher, writer, reviewer}
    assert answer.agents[writer].needs.names == ["key_findings", "brand_guidelines", "audience_profile", "format_requirements"]
    assert admin.get_context_map(cid).workflow == answer.workflow
    admin.grant(cid, [researcher, writer, reviewer], ["read", "write"])

    admin.put(cid, "findings/revenue", "Revenue grew 15%.", kind="key_findings")
    admin.put(cid, "brand/voice", "Plain and warm.", tags=["brand_guidelines"])
    admin.put(cid, "drafts/v1", "Meet X1.", kind="draft_content")
    admin.put(cid, "task/objective", "Launch X1.", kind="task_objective")

    def keys(agent: str) -> set[str]:
        return {item.key for item in admin.package(cid, agent, budget=2000).items}

    assert keys(researcher) == {"task/objective"}
    assert keys(writer) == {"findings/revenue", "brand/voice"}
    assert keys(reviewer) == {"drafts/v1", "brand/voice"}

    # Each agent's own token, from the map's answer, gets its own package.
    with server.client(token=answer.tokens[writer]) as own:
        assert {item.key for item in own.package(cid, writer, budget=2000).items} == {"findings/revenue", "brand/voice"}

    with pytest.raises(ctxmesh.errors.InvalidArgument):
        admin.put_context_map(cid, {writer: {"needs": "key_findings"}})
