"""ctxmesh's MCP server, driven by the official MCP Python client.

Over streamable HTTP at ``/mcp`` (authenticated like the API) and over
stdio with ``ctxmesh mcp``, against a server or the embedded store.
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, Optional

import httpx
import httpx2
import mcp_types
import pytest
from mcp import Client as McpClient
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated

from ctxmesh_server import CtxmeshServer, server_binary, unique

TOOLS = {
    "list_contexts", "create_context", "get_entry", "list_entries", "put_entry", "patch_entry", "delete_entry",
    "get_history", "search", "get_package", "request_handoff", "get_handoff", "accept_handoff", "reject_handoff",
    "complete_handoff", "get_handoff_package", "acquire_lock", "release_lock",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CtxmeshServer]:
    """A server of this module's own: ``list_contexts`` and the resource list show a first page of
    contexts (100), which the contexts of the other modules' tests would fill before the ones made here."""
    instance = CtxmeshServer(tmp_path_factory.mktemp("ctxmesh-mcp-data")).start()
    try:
        yield instance
    finally:
        instance.stop()


@asynccontextmanager
async def connect(server: CtxmeshServer, token: str) -> AsyncIterator[McpClient]:
    """An MCP client of the server's /mcp, with a bearer token."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http:
        async with McpClient(streamable_http_client(f"{server.url}/mcp", http_client=http)) as client:
            yield client


async def call(client: McpClient, tool: str, **args: Any) -> Any:
    """Calls a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, args)
    assert not result.is_error, f"{tool}: {result.content}"
    return result.structured_content


async def fails(client: McpClient, tool: str, **args: Any) -> Dict[str, Any]:
    """Calls a tool that must fail; the API's error object."""
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return result.structured_content["error"]


async def test_lists_its_tools(server: CtxmeshServer) -> None:
    async with connect(server, server.admin_token) as client:
        tools = (await client.list_tools()).tools
        assert TOOLS <= {t.name for t in tools}
        put = next(t for t in tools if t.name == "put_entry")
        assert set(put.input_schema["required"]) == {"context", "key", "value"}
        assert "if_match" in put.input_schema["properties"]


async def test_every_tool_against_the_api(server: CtxmeshServer) -> None:
    planner = server.register_agent(unique("planner"), objective="pricing risk for the launch",
                                    needs={"keys": ["findings/**"]})
    writer = server.register_agent(unique("writer"), needs={"keys": ["findings/**"]})
    cid = unique("mcp")
    async with connect(server, planner.token) as client:
        created = await call(client, "create_context", id=cid)
        assert created["id"] == cid
        assert cid in [c["id"] for c in (await call(client, "list_contexts"))["contexts"]]

        first = await call(client, "put_entry", context=cid, key="findings/pricing",
                           value="Pricing is the main launch risk.", kind="finding", tags=["pricing"], if_absent=True)
        assert first["version"] == 1 and first["author"] == planner.id
        # A second create-only write is refused: the entry exists.
        error = await fails(client, "put_entry", context=cid, key="findings/pricing", value="x", if_absent=True)
        assert error["code"] == "precondition_failed"

        second = await call(client, "put_entry", context=cid, key="findings/pricing",
                            value="Pricing is the main launch risk; churn is second.", if_match=first["revision"],
                            kind="finding", tags=["pricing"])
        # A write from the stale revision is refused with the current entry.
        error = await fails(client, "put_entry", context=cid, key="findings/pricing", value="lost",
                            if_match=first["revision"])
        assert error["code"] == "precondition_failed"
        assert error["details"]["current"]["revision"] == second["revision"]

        got = await call(client, "get_entry", context=cid, key="findings/pricing")
        assert got["value"].endswith("churn is second.") and got["revision"] == second["revision"]
        old = await call(client, "get_entry", context=cid, key="findings/pricing", at=first["revision"])
        assert old["value"] == "Pricing is the main launch risk."

        await call(client, "put_entry", context=cid, key="plan", value={"steps": 1, "owner": "planner"})
        patched = await call(client, "patch_entry", context=cid, key="plan", merge_patch={"steps": 2, "owner": None})
        assert patched["value"] == {"steps": 2}
        patched = await call(client, "patch_entry", context=cid, key="plan",
                             json_patch=[{"op": "add", "path": "/done", "value": False}])
        assert patched["value"] == {"steps": 2, "done": False}
        error = await fails(client, "patch_entry", context=cid, key="plan", merge_patch={}, json_patch=[])
        assert error["code"] == "invalid_argument"

        listed = await call(client, "list_entries", context=cid, prefix="findings/")
        assert [e["key"] for e in listed["entries"]] == ["findings/pricing"]

        history = await call(client, "get_history", context=cid, key="findings/pricing")
        assert [v["entry"]["version"] for v in history["versions"]] == [2, 1]
        commits = await call(client, "get_history", context=cid)
        assert len(commits["commits"]) >= 4

        hits = await call(client, "search", context=cid, q="churn")
        assert [h["key"] for h in hits["hits"]] == ["findings/pricing"]

        package = await call(client, "get_package", context=cid, agent=planner.id, budget=500)
        assert [i["key"] for i in package["items"]] == ["findings/pricing"] and package["tokens"] <= 500
        markdown = await client.call_tool("get_package", {"context": cid, "agent": planner.id, "format": "markdown"})
        assert not markdown.is_error and "findings/pricing" in markdown.content[0].text

        lock = await call(client, "acquire_lock", context=cid, name="publish", ttl_ms=30_000)
        assert lock["acquired"] is True
        fenced = f"publish={lock['fencing_token']}"
        await call(client, "put_entry", context=cid, key="post", value="draft", fencing_token=fenced)
        await call(client, "release_lock", context=cid, name="publish")
        again = await call(client, "acquire_lock", context=cid, name="publish")
        assert again["fencing_token"] > lock["fencing_token"]
        # The first holder's token is stale now: its late write is refused.
        error = await fails(client, "put_entry", context=cid, key="post", value="late", fencing_token=fenced)
        assert error["code"] == "fenced"
        await call(client, "release_lock", context=cid, name="publish")

        handoff = await call(client, "request_handoff", target=writer.id, context=cid,
                             keys=["findings/*"], user_intent="a launch post", note="sources are in findings/")
        assert handoff["status"] == "requested"

        deleted = await call(client, "delete_entry", context=cid, key="plan")
        assert deleted["key"] == "plan"
        error = await fails(client, "get_entry", context=cid, key="plan")
        assert error["code"] == "not_found"

    # The target accepts and completes it through its own MCP session.
    async with connect(server, writer.token) as client:
        error = await fails(client, "get_entry", context=cid, key="findings/pricing")
        assert error["code"] in ("forbidden", "not_found")
        seen = await call(client, "get_handoff", id=handoff["id"])
        assert seen["status"] == "requested" and seen["user_intent"] == "a launch post"
        # What the handoff carries is read under the target's access: a
        # handoff does not share the context by itself.
        error = await fails(client, "get_handoff_package", id=handoff["id"])
        assert error["code"] == "forbidden" and "grant" in error["message"]
        with server.client(planner.token) as planner_client:
            planner_client.grant(cid, [writer.id], ["read"])
        package = await call(client, "get_handoff_package", id=handoff["id"], budget=500)
        assert package["revision"] == handoff["revision"] and package["agent"] == writer.id
        assert [i["key"] for i in package["items"]] == ["findings/pricing"]
        assert (await call(client, "accept_handoff", id=handoff["id"]))["status"] == "accepted"
        done = await call(client, "complete_handoff", id=handoff["id"], outcome={"post": "published"})
        assert done["status"] == "completed"


async def test_arguments_the_api_refuses_are_tool_errors(server: CtxmeshServer) -> None:
    async with connect(server, server.admin_token) as client:
        assert (await fails(client, "get_entry", context=unique("missing"), key="k"))["code"] == "not_found"
        # A write never creates a context: the refusal says how to make one.
        error = await fails(client, "put_entry", context=unique("missing"), key="k", value=1)
        assert error["code"] == "not_found" and "create_context" in error["message"]
        assert (await fails(client, "put_entry", context="c", key="k"))["code"] == "invalid_argument"
        assert (await fails(client, "create_context", id="not an id!"))["code"] == "invalid_id"
        error = await fails(client, "put_entry", context="c", key="k", value=1, if_match="seven")
        assert error["code"] == "invalid_argument"


async def test_needs_a_valid_token(server: CtxmeshServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for auth in ({}, {"Authorization": "Bearer cmt_not-a-token"}):
        r = httpx.post(f"{server.url}/mcp", json=body, headers={**headers, **auth})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


async def test_resources_and_update_notifications(server: CtxmeshServer) -> None:
    cid = unique("res")
    with server.client() as admin:
        admin.create_context(cid)
        admin.put(cid, "brief", {"topic": "launch"})
        admin.put(cid, "notes/a", "first")
    context_uri, entry_uri = f"ctxmesh://contexts/{cid}", f"ctxmesh://contexts/{cid}/entries/brief"
    async with connect(server, server.admin_token) as client:
        assert context_uri in [r.uri for r in (await client.list_resources()).resources]
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        assert "ctxmesh://contexts/{context}/entries/{key}" in templates
        document = json.loads((await client.read_resource(context_uri)).contents[0].text)
        assert document["document"] == {"brief": {"topic": "launch"}, "notes": {"a": "first"}}
        entry = json.loads((await client.read_resource(entry_uri)).contents[0].text)
        assert entry["value"] == {"topic": "launch"}

        async with client.listen(resource_subscriptions=[entry_uri, context_uri]) as subscription:
            assert set(subscription.honored.resource_subscriptions or []) == {entry_uri, context_uri}
            events = aiter(subscription)
            # Another client writes another entry: the context changed, the entry did not.
            with server.client() as other:
                other.put(cid, "notes/b", "second")
            updated = await asyncio.wait_for(anext(events), 15)
            assert isinstance(updated, ResourceUpdated) and updated.uri == context_uri
            # Then the subscribed entry: both are notified.
            with server.client() as other:
                other.put(cid, "brief", {"topic": "launch", "audience": "developers"})
            uris = set()
            while uris != {context_uri, entry_uri}:
                event = await asyncio.wait_for(anext(events), 15)
                assert isinstance(event, ResourceUpdated)
                uris.add(event.uri)
            entry = json.loads((await client.read_resource(entry_uri)).contents[0].text)
            assert entry["value"]["audience"] == "developers"


async def test_an_agent_subscribes_only_to_what_it_may_read(server: CtxmeshServer) -> None:
    cid = unique("private")
    with server.client() as admin:
        admin.create_context(cid)
    outsider = server.register_agent(unique("outsider"))
    async with connect(server, outsider.token) as client:
        with pytest.raises(Exception):
            await client.read_resource(f"ctxmesh://contexts/{cid}")
        with pytest.raises(Exception):
            async with client.listen(resource_subscriptions=[f"ctxmesh://contexts/{cid}"]) as subscription:
                await asyncio.wait_for(anext(aiter(subscription)), 10)


def stdio(*args: str, env: Optional[Dict[str, str]] = None) -> StdioServerParameters:
    return StdioServerParameters(command=str(server_binary()), args=["mcp", *args],
                                 env={**os.environ, **(env or {})})


async def test_stdio_against_a_server(server: CtxmeshServer) -> None:
    agent = server.register_agent(unique("stdio"))
    cid = unique("stdio")
    params = stdio("--server", server.url, env={"CTXMESH_TOKEN": agent.token})
    async with McpClient(params) as client:
        assert TOOLS <= {t.name for t in (await client.list_tools()).tools}
        await call(client, "create_context", id=cid)
        written = await call(client, "put_entry", context=cid, key="k", value={"via": "stdio"})
        assert written["author"] == agent.id
    with server.client() as admin:
        assert admin.get(cid, "k").value == {"via": "stdio"}


async def test_stdio_on_the_embedded_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with McpClient(stdio("--data-dir", str(data))) as client:
        await call(client, "create_context", id="local")
        first = await call(client, "put_entry", context="local", key="notes/a", value="kept")
        error = await fails(client, "put_entry", context="local", key="notes/a", value="x", if_match=first["revision"] + 5)
        assert error["code"] == "precondition_failed"
    # The writes are in the data directory: a server started on it has them.
    instance = CtxmeshServer(data).start()
    try:
        with instance.client() as admin:
            assert admin.get("local", "notes/a").value == "kept"
    finally:
        instance.stop()
