"""The CrewAI recipe of docs/integrations.md, run with CrewAI itself.

The recipe's code is taken from the document and run as it is written:
its imports, ``TOOLS``, ``ctxmesh_tools``, one ``MCPServerAdapter`` per
agent (each starting ``ctxmesh mcp`` over stdio with that agent's token),
CrewAI's ``Agent``, ``Task`` and ``Crew``, ``kickoff()``, and the loop that
prints who wrote what. Two things are replaced, because they must be:

- the model: each agent gets a scripted ``BaseLLM`` that answers as a model
  with native function calling does (tool calls, then a final answer),
  reading the tool results CrewAI hands back to it. CrewAI's executor calls
  tools natively when the model supports function calling, as the default
  OpenAI models do, and parses ReAct text ("Action: ...") otherwise; the
  scripted model supports it, so the recipe runs the path it runs with
  OpenAI;
- the ``ctxmesh`` command and the server's URL in ``ctxmesh_tools``: this
  build's binary (``$CTXMESH_BIN``) and the server this test starts;
The recipe's ``admin`` is the Python SDK's client with the admin token,
and the server is the SDK suite's ``CtxmeshServer``
(``sdk/python/tests/ctxmesh_server.py``): the SDK is installed in this
environment too.

CrewAI needs an environment of its own (it pins ``openai<3`` and ``mcp<2``;
the Python SDK's suite has ``openai`` 3 and ``mcp`` 2.3):
``scripts/test`` installs ``requirements.txt`` into
``.venv-crewai`` and runs this file there. Nothing is fetched from the
network at run time: telemetry, tracing and the version check are off, and
any connection to a host other than this machine fails the test; what
CrewAI writes to its home goes to a temporary one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before CrewAI is imported: no telemetry, no traces, no version check, and
# a home of its own for what CrewAI keeps there (settings, a key, the last
# kickoff's outputs), removed when the run ends.
HOME = tempfile.mkdtemp(prefix="ctxmesh-crewai-home-")
atexit.register(shutil.rmtree, HOME, True)
os.environ.update(
    {
        "HOME": HOME,
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_DISABLE_TRACKING": "true",
        "OTEL_SDK_DISABLED": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "CREWAI_DISABLE_VERSION_CHECK": "true",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
)

import ast  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Dict, Iterator, List, Optional  # noqa: E402

import crewai  # noqa: E402
import pytest  # noqa: E402
from crewai import BaseLLM  # noqa: E402
from mcp import StdioServerParameters  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "integrations.md"
sys.path.insert(0, str(REPO / "sdk" / "python" / "tests"))

from ctxmesh_server import CtxmeshServer, server_binary  # noqa: E402

FINDING = "competitors charge 49 EUR a seat, billed yearly"


# --- no network -------------------------------------------------------------


@pytest.fixture(autouse=True)
def only_this_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Any]]:
    """Any connection this process makes to another host fails, and fails the test."""
    attempts: List[Any] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def local(address: Any) -> bool:
        if not isinstance(address, tuple):
            return True  # a Unix socket
        try:
            return ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            return address[0] == "localhost"

    def guarded(real: Callable[..., Any]) -> Callable[..., Any]:
        def attempt(sock: socket.socket, address: Any) -> Any:
            if not local(address):
                attempts.append(address)
                raise ConnectionRefusedError(f"this test makes no connection off this machine: {address}")
            return real(sock, address)

        return attempt

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    yield attempts
    assert attempts == [], f"connections off this machine were attempted: {attempts}"


# --- the server ---------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CtxmeshServer]:
    """``ctxmesh serve`` on a port of its own and a fresh data directory."""
    instance = CtxmeshServer(tmp_path).start()
    try:
        yield instance
    finally:
        instance.stop()


# --- the model ----------------------------------------------------------------

ToolResult = Dict[str, Any]  # {"tool", "arguments", "result"}
Turn = Callable[[List[ToolResult]], Any]


def tool_call(name: str, **arguments: Any) -> Dict[str, Any]:
    """One tool call as an OpenAI-style model returns it."""
    return {
        "id": f"call_{secrets.token_hex(4)}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


class ScriptedLLM(BaseLLM):
    """A model with native function calling whose turns are written in advance.

    Each turn is given the tool calls made so far with what CrewAI handed
    back for each (read from the messages CrewAI sends the model) and
    returns tool calls or the final answer.
    """

    _turns: List[Turn] = PrivateAttr(default_factory=list)
    _tools_offered: List[List[str]] = PrivateAttr(default_factory=list)
    _tool_results: List[ToolResult] = PrivateAttr(default_factory=list)

    def __init__(self, turns: List[Turn], **kw: Any) -> None:
        super().__init__(model="scripted", **kw)
        self._turns = list(turns)

    def supports_function_calling(self) -> bool:
        return True

    def call(  # type: ignore[override]
        self,
        messages: Any,
        tools: Optional[List[Dict[str, Any]]] = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> Any:
        assert isinstance(messages, list)
        self._tools_offered.append(sorted(t["function"]["name"] for t in tools or []))
        calls = {
            c["id"]: c["function"] for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []
        }
        self._tool_results = [
            {
                "tool": calls[m["tool_call_id"]]["name"],
                "arguments": json.loads(calls[m["tool_call_id"]]["arguments"]),
                "result": str(m["content"]),
            }
            for m in messages
            if m.get("role") == "tool"
        ]
        assert self._turns, f"the model was asked once more than scripted: {messages[-1]}"
        return self._turns.pop(0)(self._tool_results)

    @property
    def tool_results(self) -> List[ToolResult]:
        """Every tool call this model made, with what CrewAI gave back for it."""
        return self._tool_results

    @property
    def turns_left(self) -> int:
        return len(self._turns)

    @property
    def tools_offered(self) -> List[List[str]]:
        """The tools CrewAI offered the model, on each call."""
        return self._tools_offered


def succeeded(result: str) -> Any:
    """A ctxmesh tool's result as CrewAI hands it to the model: not an error."""
    assert not result.startswith(("Error", "Tool ")), f"the tool call failed: {result}"
    try:
        parsed = json.loads(result)
    except ValueError:
        return result  # get_package's Markdown
    assert not (isinstance(parsed, dict) and "error" in parsed), f"the tool call failed: {result}"
    return parsed


def researcher_model(ctx: str) -> ScriptedLLM:
    return ScriptedLLM(
        [
            lambda done: [
                tool_call("put_entry", context=ctx, key="findings/pricing", value={"text": FINDING}, kind="finding")
            ],
            lambda done: succeeded(done[-1]["result"])["key"],
        ]
    )


def writer_model(ctx: str) -> ScriptedLLM:
    def write(done: List[ToolResult]) -> Any:
        read, package = (succeeded(call["result"]) for call in done)
        assert FINDING in package, f"the writer's package leaves out the finding: {package}"
        post = f"Launch post. Why switch: {read['value']['text']}."
        return [tool_call("put_entry", context=ctx, key="drafts/launch-post", value={"text": post}, kind="output")]

    return ScriptedLLM(
        [
            lambda done: [tool_call("get_entry", context=ctx, key="findings/pricing")],
            lambda done: [tool_call("get_package", context=ctx, format="markdown")],
            write,
            lambda done: succeeded(done[-1]["result"])["key"],
        ]
    )


# --- the recipe ---------------------------------------------------------------


def recipe() -> ast.Module:
    """The python block of the CrewAI section, with the document's line numbers."""
    text = DOC.read_text()
    start = text.index("## CrewAI")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "the CrewAI section has a python block"
    tree = ast.parse(block.group(1))
    ast.increment_lineno(tree, text[: start + block.start(1)].count("\n"))
    return tree


def test_the_recipes_crew_shares_one_context(server: CtxmeshServer, capsys: pytest.CaptureFixture[str]) -> None:
    tree = recipe()
    admin = server.client()
    models: Dict[str, ScriptedLLM] = {}

    def agent_with_scripted_model(**kw: Any) -> crewai.Agent:
        assert "llm" not in kw, "the recipe leaves the model to CrewAI's default"
        (ctx,) = [c.id for c in admin.list_contexts().contexts]
        models[kw["role"]] = {"Researcher": researcher_model, "Writer": writer_model}[kw["role"]](ctx)
        return crewai.Agent(llm=models[kw["role"]], **kw)

    def started_here(ctxmesh_tools: Callable[[str], StdioServerParameters]) -> Callable[[str], StdioServerParameters]:
        def params(token: str) -> StdioServerParameters:
            as_written = ctxmesh_tools(token)
            assert as_written.command == "ctxmesh"
            assert as_written.args == ["mcp", "--server", "http://127.0.0.1:7600"]
            assert as_written.env == {"CTXMESH_TOKEN": token}
            return StdioServerParameters(
                command=str(server_binary()), args=["mcp", "--server", server.url], env=as_written.env
            )

        return params

    # The block, one statement after the other in one namespace, starting
    # from what the document's shared setup leaves (`admin`, `tokens`).
    namespace: Dict[str, Any] = {"admin": admin, "tokens": {}, "__name__": "recipe"}
    replaced = set()
    for statement in tree.body:
        exec(compile(ast.Module(body=[statement], type_ignores=[]), str(DOC), "exec"), namespace)  # noqa: S102
        if namespace.get("Agent") is crewai.Agent:
            namespace["Agent"] = agent_with_scripted_model
            replaced.add("Agent")
        if isinstance(statement, ast.FunctionDef) and statement.name == "ctxmesh_tools":
            namespace["ctxmesh_tools"] = started_here(namespace["ctxmesh_tools"])
            replaced.add("ctxmesh_tools")
    assert replaced == {"Agent", "ctxmesh_tools"}
    assert set(models) == {"Researcher", "Writer"}

    # Each agent played its part to the end, offered the recipe's four tools and only those.
    for model in models.values():
        assert model.turns_left == 0
        assert model.tools_offered and all(offered == sorted(namespace["TOOLS"]) for offered in model.tools_offered)
    researcher, writer = models["Researcher"], models["Writer"]
    assert [r["tool"] for r in researcher.tool_results] == ["put_entry"]
    assert [r["tool"] for r in writer.tool_results] == ["get_entry", "get_package", "put_entry"]
    for call in researcher.tool_results + writer.tool_results:
        succeeded(call["result"])

    # The entries, each written with its agent's own token.
    (ctx,) = [c.id for c in admin.list_contexts().contexts]
    finding, draft = admin.get(ctx, "findings/pricing"), admin.get(ctx, "drafts/launch-post")
    assert (finding.author, finding.kind, finding.value) == ("researcher", "finding", {"text": FINDING})
    # The arguments the model left out, which CrewAI's adapter sends as null, are absent ones.
    assert (finding.tags, finding.priority, finding.depends_on, finding.expires_at, finding.confidential) == (
        [], "normal", [], None, False
    )
    assert (draft.author, draft.kind) == ("writer", "output")
    # The writer read the researcher's finding (as its author wrote it) and wrote from it.
    read = json.loads(writer.tool_results[0]["result"])
    assert (read["author"], read["revision"]) == ("researcher", finding.revision)
    assert FINDING in draft.value["text"]
    assert draft.revision > finding.revision

    # What the recipe prints at the end.
    assert capsys.readouterr().out.splitlines() == [
        "drafts/launch-post by writer",
        "findings/pricing by researcher",
    ]
