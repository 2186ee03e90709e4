"""The MCP part of the CrewAI recipe in docs/integrations.md.

The crew itself (CrewAI's ``Agent``, ``Task``, ``Crew`` and
``MCPServerAdapter``, with a scripted model) runs in
``tools/crewai/test_recipe.py``, in a virtualenv of its own
(``.venv-crewai``, made by ``scripts/test``): CrewAI pins ``openai<3`` and
``mcp<2``, and this environment has the OpenAI Agents SDK (``openai>=3``)
and the suite's MCP client (``mcp`` 2.3). What the recipe relies on is
checked here too, with this suite's MCP client: its own code
(``ctxmesh_tools``, ``TOOLS``) is taken from the document, and each agent's
``ctxmesh mcp`` server is started over stdio with those parameters,
serving those tools, for the calls the crew's agents make, with the
arguments CrewAI's adapter sends.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Dict

from mcp import Client as McpClient
from mcp.client.stdio import StdioServerParameters

from ctxmesh_server import REPO, CtxmeshServer, server_binary, unique

DOC = REPO / "docs" / "integrations.md"


def recipe() -> Dict[str, Any]:
    """The recipe's ``TOOLS`` and ``ctxmesh_tools``, as the document defines them."""
    text = DOC.read_text()
    section = text[text.index("## CrewAI") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "the CrewAI section has a python block"
    tree = ast.parse(block.group(1))
    wanted = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name == "ctxmesh_tools")
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "TOOLS" for t in node.targets))
    ]
    assert len(wanted) == 2, "the recipe defines TOOLS and ctxmesh_tools"
    namespace: Dict[str, Any] = {"StdioServerParameters": StdioServerParameters}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(DOC), "exec"), namespace)  # noqa: S102
    return namespace


def as_started_here(params: StdioServerParameters, server: CtxmeshServer) -> StdioServerParameters:
    """The recipe's parameters with this build's binary and this test's server."""
    assert params.command == "ctxmesh"
    assert params.args[:2] == ["mcp", "--server"] and len(params.args) == 3
    return StdioServerParameters(command=str(server_binary()), args=["mcp", "--server", server.url], env=params.env)


async def call(client: McpClient, tool: str, args: Dict[str, Any]) -> Any:
    result = await client.call_tool(tool, args)
    assert not result.is_error, f"{tool}: {result.content}"
    return result.structured_content


async def test_the_crews_agents_share_a_context_through_mcp(server: CtxmeshServer) -> None:
    ns = recipe()
    ctx = unique("launch-post")
    researcher = server.register_agent(unique("researcher"))
    writer = server.register_agent(unique("writer"), needs={"kinds": ["finding"]})
    with server.client() as admin:
        admin.create_context(ctx)
        admin.grant(ctx, [researcher.id, writer.id], ["read", "write"])

    params = ns["ctxmesh_tools"](researcher.token)
    assert params.env == {"CTXMESH_TOKEN": researcher.token}
    async with McpClient(as_started_here(params, server)) as research_tools, McpClient(
        as_started_here(ns["ctxmesh_tools"](writer.token), server)
    ) as write_tools:
        tools = {t.name: t for t in (await research_tools.list_tools()).tools}
        assert set(ns["TOOLS"]) <= set(tools)

        # CrewAI's adapter sends every argument of the tool's schema, the
        # unset ones as null: the call is what the agent meant.
        put_schema = tools["put_entry"].input_schema
        everything: Dict[str, Any] = {name: None for name in put_schema["properties"]}
        everything.update(
            context=ctx, key="findings/pricing", value={"text": "competitors charge 49 EUR a seat"}, kind="finding"
        )
        finding = await call(research_tools, "put_entry", everything)
        assert finding["author"] == researcher.id
        assert finding["kind"] == "finding" and finding["tags"] == []

        # The writer reads what the researcher found, by key, by search and in its package.
        read = await call(write_tools, "get_entry", {"context": ctx, "key": "findings/pricing"})
        assert read["value"] == {"text": "competitors charge 49 EUR a seat"}
        hits = await call(write_tools, "search", {"context": ctx, "q": "competitors pricing"})
        assert [h["key"] for h in hits["hits"]] == ["findings/pricing"]
        # Its own package: `agent` defaults to the caller.
        package = await write_tools.call_tool("get_package", {"context": ctx, "format": "markdown"})
        assert not package.is_error, package.content
        assert "49 EUR" in json.dumps([c.model_dump() for c in package.content])
        draft = await call(
            write_tools,
            "put_entry",
            {"context": ctx, "key": "drafts/launch-post", "value": {"text": "39 EUR a seat"}, "kind": "output"},
        )
        assert draft["author"] == writer.id

    with server.client() as admin:
        assert {e.key: e.author for e in admin.list(ctx)} == {
            "findings/pricing": researcher.id,
            "drafts/launch-post": writer.id,
        }

