"""The Google ADK session and memory services, driven by ADK's own ``Runner``.

The models are a scripted ``BaseLlm`` (canned responses, no network); the
sessions live in a real ctxmesh server.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any, AsyncGenerator, AsyncIterator, Dict, List

import pytest
from google.adk.agents import LlmAgent, ParallelAgent
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.models._capabilities import LlmCapabilities
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
from pydantic import Field

import ctxmesh
from ctxmesh.adk import CtxmeshMemoryService, CtxmeshSessionService
from ctxmesh_server import CtxmeshServer, agents_sharing, unique

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class ScriptedLlm(BaseLlm):
    """A model answering each request with the next canned response."""

    model: str = "scripted"
    responses: List[LlmResponse] = Field(default_factory=list)
    requests: List[LlmRequest] = Field(default_factory=list)

    @property
    def capabilities(self) -> LlmCapabilities:
        return LlmCapabilities(output_schema_and_tools=False)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request)
        await asyncio.sleep(0)  # let parallel branches interleave
        yield self.responses.pop(0)


def says(text: str) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


def transfer(agent: str) -> LlmResponse:
    call = types.FunctionCall(name="transfer_to_agent", args={"agent_name": agent})
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(function_call=call)]))


def user(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def texts(events: List[Event]) -> List[str]:
    """The text of each event that has some."""
    out = [" ".join(p.text for p in e.content.parts if p.text) for e in events if e.content and e.content.parts]
    return [t for t in out if t]


async def run(runner: Runner, user_id: str, session_id: str, message: str) -> List[Event]:
    out = []
    async for event in runner.run_async(user_id=user_id, session_id=session_id, new_message=user(message)):
        if not event.partial:
            out.append(event)
    return out


@pytest.fixture
async def app(server: CtxmeshServer) -> AsyncIterator[Dict[str, Any]]:
    """An app (its context) shared by two runner agents and a reader, each with a client of its own."""
    writer = (["read", "write"], "async")
    roles = {"runner-a": writer, "runner-b": (["read", "write"], "sync"), "reader": (["read"], "async")}
    async with agents_sharing(server, "support", roles) as (name, ids, clients):
        yield {
            "name": name,
            "ids": {"a": ids["runner-a"], "b": ids["runner-b"]},
            "a": clients["runner-a"],
            "b": clients["runner-b"],
            "reader": clients["reader"],
        }


async def test_transfer_then_parallel_agents_in_one_session(app: Dict[str, Any]) -> None:
    name = app["name"]
    service = CtxmeshSessionService(app["a"])
    session = await service.create_session(
        app_name=name,
        user_id="alice",
        state={"app:tier": "gold", "user:lang": "en", "temp:scratch": 1, "topic": "refund"},
    )
    assert session.state == {"topic": "refund", "app:tier": "gold", "user:lang": "en"}

    # A coordinator transfers to a billing sub-agent.
    billing = LlmAgent(name="billing", model=ScriptedLlm(responses=[says("Refund issued.")]), output_key="billing_reply")
    coordinator = LlmAgent(name="coordinator", model=ScriptedLlm(responses=[transfer("billing")]), sub_agents=[billing])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = await run(Runner(agent=coordinator, app_name=name, session_service=service), "alice", session.id, "charged twice")
    assert [e.author for e in first] == ["coordinator", "coordinator", "billing"]
    assert first[1].actions.transfer_to_agent == "billing"

    # Then three agents run in parallel; one keeps a temp: value, which is never stored.
    checker = LlmAgent(name="checker", model=ScriptedLlm(responses=[says("Card ok.")]), output_key="card")
    notifier = LlmAgent(name="notifier", model=ScriptedLlm(responses=[says("Mail queued.")]), output_key="mail")
    drafter = LlmAgent(name="drafter", model=ScriptedLlm(responses=[says("Draft.")]), output_key="temp:draft")
    team = ParallelAgent(name="team", sub_agents=[checker, notifier, drafter])
    second = await run(Runner(agent=team, app_name=name, session_service=service), "alice", session.id, "finish it")
    assert sorted(e.author for e in second) == ["checker", "drafter", "notifier"]

    # Another agent, through another client and service, reads the session back.
    stored = await CtxmeshSessionService(app["reader"]).get_session(app_name=name, user_id="alice", session_id=session.id)
    assert stored is not None
    produced = [e for e in stored.events if e.author != "user"]
    assert [e.id for e in produced] == [e.id for e in first + second]  # complete, in order
    assert [e.author for e in stored.events][:4] == ["user", "coordinator", "coordinator", "billing"]
    assert texts(stored.events) == ["charged twice", "Refund issued.", "finish it", *texts(second)]
    assert stored.events[1].content.parts[0].function_call.name == "transfer_to_agent"
    assert stored.state == {
        "topic": "refund",
        "billing_reply": "Refund issued.",
        "card": "Card ok.",
        "mail": "Mail queued.",
        "app:tier": "gold",
        "user:lang": "en",
    }
    assert stored.last_update_time == pytest.approx(max(e.timestamp for e in second))

    # Each event is an entry written by the agent that ran the runner.
    entries = await app["reader"].list(name, prefix=f"adk/{name}/events/alice/")
    assert len(entries) == len(stored.events)
    assert {e.author for e in entries} == {app["ids"]["a"]}

    # app: state is shared by every user of the app, user: state by the user's sessions only.
    other = CtxmeshSessionService(app["b"])
    bob = await other.create_session(app_name=name, user_id="bob")
    assert bob.state == {"app:tier": "gold"}
    again = await other.create_session(app_name=name, user_id="alice", session_id="second")
    assert again.state == {"app:tier": "gold", "user:lang": "en"}
    assert await other.get_user_state(app_name=name, user_id="alice") == {"lang": "en"}


async def test_runners_holding_stale_copies_of_a_session_all_land(app: Dict[str, Any]) -> None:
    """Two runners (two agents, two processes' worth of services) work on one session at once."""
    name = app["name"]
    service_a, service_b = CtxmeshSessionService(app["a"]), CtxmeshSessionService(app["b"])
    await service_a.create_session(app_name=name, user_id="u", session_id="shared")

    def runner(service: CtxmeshSessionService, agent: str, n: int) -> Runner:
        model = ScriptedLlm(responses=[says(f"{agent} answer {i}") for i in range(n)])
        return Runner(agent=LlmAgent(name=agent, model=model, output_key=f"{agent}_last"), app_name=name, session_service=service)

    async def turns(r: Runner, agent: str, n: int) -> List[Event]:
        out: List[Event] = []
        for i in range(n):
            out += await run(r, "u", "shared", f"to {agent} {i}")
        return out

    left, right = await asyncio.gather(
        turns(runner(service_a, "left", 5), "left", 5), turns(runner(service_b, "right", 5), "right", 5)
    )
    stored = await service_a.get_session(app_name=name, user_id="u", session_id="shared")
    assert stored is not None
    assert len(stored.events) == 20  # 10 user messages, 10 answers: none lost
    got = texts(stored.events)
    assert [t for t in got if t.startswith("left")] == [f"left answer {i}" for i in range(5)]
    assert [t for t in got if t.startswith("right")] == [f"right answer {i}" for i in range(5)]
    assert stored.state == {"left_last": "left answer 4", "right_last": "right answer 4"}

    # A copy read before other appends is not refused as stale: its event lands, and
    # its state delta merges with the others' instead of replacing them.
    stale = await service_b.get_session(app_name=name, user_id="u", session_id="shared")
    fresh = await service_a.get_session(app_name=name, user_id="u", session_id="shared")
    assert stale is not None and fresh is not None
    await service_a.append_event(fresh, Event(author="left", actions=EventActions(state_delta={"x": 1})))
    await service_b.append_event(stale, Event(author="right", actions=EventActions(state_delta={"y": 2, "temp:t": 3})))
    assert stale.state["temp:t"] == 3  # for the rest of the invocation only
    final = await service_a.get_session(app_name=name, user_id="u", session_id="shared")
    assert final is not None
    assert [e.author for e in final.events[-2:]] == ["left", "right"]
    assert final.state == {"left_last": "left answer 4", "right_last": "right answer 4", "x": 1, "y": 2}


async def test_an_event_appended_again_is_stored_once(app: Dict[str, Any]) -> None:
    """A runner that retries an append whose answer it lost sends the same event (same id) again."""
    name = app["name"]
    service_a, service_b = CtxmeshSessionService(app["a"]), CtxmeshSessionService(app["b"])
    session = await service_a.create_session(app_name=name, user_id="u", session_id="retried")
    before = await service_b.get_session(app_name=name, user_id="u", session_id="retried")
    assert before is not None
    event = Event(author="agent", content=user("once"))
    await service_a.append_event(session, event)
    # Another runner appends meanwhile; then the retry comes, from a copy
    # of the session read before the first attempt landed.
    await service_a.append_event(session, Event(author="agent", content=user("between")))
    await service_b.append_event(before, event)
    assert texts(before.events) == ["once"]  # the retrying runner's copy holds it once
    await service_a.append_event(session, event)  # and again, from a copy that has it
    assert texts(session.events) == ["once", "between"]
    stored = await service_b.get_session(app_name=name, user_id="u", session_id="retried")
    assert stored is not None
    assert texts(stored.events) == ["once", "between"]
    assert [e.id for e in stored.events] == [e.id for e in session.events]
    # A new event (a new id) with the same content is a new event.
    await service_a.append_event(session, Event(author="agent", content=user("once")))
    stored = await service_b.get_session(app_name=name, user_id="u", session_id="retried")
    assert stored is not None and texts(stored.events) == ["once", "between", "once"]


async def test_get_list_delete(app: Dict[str, Any]) -> None:
    name = app["name"]
    service = CtxmeshSessionService(app["a"])
    s1 = await service.create_session(app_name=name, user_id="u1", session_id=" s1 ", state={"k": "v"})
    assert s1.id == "s1"
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name=name, user_id="u1", session_id="s1")
    generated = await service.create_session(app_name=name, user_id="u2")
    assert generated.id
    base = 1_700_000_000.0
    for i in range(5):
        await service.append_event(s1, Event(author="agent", timestamp=base + i, content=user(f"e{i}")))
    assert s1.last_update_time == base + 4
    assert texts(s1.events) == [f"e{i}" for i in range(5)]  # the caller's copy follows

    got = await service.get_session(app_name=name, user_id="u1", session_id="s1", config=GetSessionConfig(num_recent_events=2))
    assert got is not None and texts(got.events) == ["e3", "e4"]
    got = await service.get_session(app_name=name, user_id="u1", session_id="s1", config=GetSessionConfig(after_timestamp=base + 3))
    assert got is not None and texts(got.events) == ["e3", "e4"]
    got = await service.get_session(app_name=name, user_id="u1", session_id="s1", config=GetSessionConfig(num_recent_events=0))
    assert got is not None and got.events == [] and got.state == {"k": "v"}
    assert await service.get_session(app_name=name, user_id="u2", session_id="s1") is None
    assert await service.get_session(app_name=unique("no-such-app"), user_id="u1", session_id="s1") is None

    listed = (await service.list_sessions(app_name=name)).sessions
    # Oldest update first: s1's last event is dated 2023, u2's session was created now.
    assert [(s.user_id, s.id) for s in listed] == [("u1", "s1"), ("u2", generated.id)]
    assert listed[0].state == {"k": "v"} and listed[0].events == []
    assert listed[0].last_update_time == base + 4
    assert [s.id for s in (await service.list_sessions(app_name=name, user_id="u1")).sessions] == ["s1"]

    await service.delete_session(app_name=name, user_id="u1", session_id="s1")
    assert await service.get_session(app_name=name, user_id="u1", session_id="s1") is None
    assert await app["reader"].list(name, prefix=f"adk/{name}/events/u1/") == []
    with pytest.raises(SessionNotFoundError):
        await CtxmeshSessionService(app["b"]).append_event(s1, Event(author="agent", content=user("late")))
    with pytest.raises(SessionNotFoundError):
        await service.append_event(s1, Event(author="agent", content=user("late")))


async def test_access_control_applies(app: Dict[str, Any], server: CtxmeshServer) -> None:
    name = app["name"]
    await CtxmeshSessionService(app["a"]).create_session(app_name=name, user_id="u", session_id="s")
    reader = CtxmeshSessionService(app["reader"])
    session = await reader.get_session(app_name=name, user_id="u", session_id="s")
    assert session is not None
    with pytest.raises(ctxmesh.Forbidden):
        await reader.append_event(session, Event(author="reader", content=user("no")))
    outsider = server.register_agent(unique("outsider"))
    async with server.async_client(outsider.token, outsider.id) as client:
        with pytest.raises(ctxmesh.Forbidden):
            await CtxmeshSessionService(client).get_session(app_name=name, user_id="u", session_id="s")


async def test_memory_service_searches_a_users_memories(app: Dict[str, Any]) -> None:
    name = app["name"]
    sessions = CtxmeshSessionService(app["a"])
    memory = CtxmeshMemoryService(app["a"])
    model = ScriptedLlm(responses=[says("Your parcel left the Lyon warehouse on Monday.")])
    runner = Runner(
        agent=LlmAgent(name="tracker", model=model), app_name=name, session_service=sessions, memory_service=memory
    )
    session = await sessions.create_session(app_name=name, user_id="alice")
    await run(runner, "alice", session.id, "Where is my parcel?")
    done = await sessions.get_session(app_name=name, user_id="alice", session_id=session.id)
    assert done is not None
    await memory.add_session_to_memory(done)
    await memory.add_session_to_memory(done)  # again: replaced, not duplicated
    other = await sessions.create_session(app_name=name, user_id="bob")
    await sessions.append_event(other, Event(author="tracker", content=user("Bob's parcel is in the Lyon depot.")))
    bob = await sessions.get_session(app_name=name, user_id="bob", session_id=other.id)
    assert bob is not None
    await memory.add_session_to_memory(bob)

    found = await CtxmeshMemoryService(app["reader"]).search_memory(app_name=name, user_id="alice", query="Lyon warehouse")
    assert [m.id for m in found.memories] == [done.events[1].id]
    hit = found.memories[0]
    assert hit.author == "tracker"
    assert hit.content.parts[0].text == "Your parcel left the Lyon warehouse on Monday."
    assert hit.timestamp and hit.timestamp.startswith("20")
    assert [m.content.parts[0].text for m in (await memory.search_memory(app_name=name, user_id="bob", query="Lyon")).memories] == [
        "Bob's parcel is in the Lyon depot."
    ]
    assert (await memory.search_memory(app_name=name, user_id="carol", query="Lyon")).memories == []

    await memory.delete_memory(app_name=name, user_id="alice", memory_id=hit.id)
    assert (await memory.search_memory(app_name=name, user_id="alice", query="Lyon warehouse")).memories == []
