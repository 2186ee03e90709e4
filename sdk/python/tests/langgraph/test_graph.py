"""A real two-node LangGraph graph checkpointed in ctxmesh: it stops at an
interrupt, the server restarts, the graph resumes, then travels back in time
(replays from an earlier checkpoint, forks with ``update_state``)."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from ctxmesh import Client
from ctxmesh.langgraph import CtxmeshSaver

if TYPE_CHECKING:
    from ctxmesh_server import CtxmeshServer


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def first(state: State) -> dict[str, Any]:
    return {"items": ["first"]}


def second(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "approve?", "seen": list(state["items"])})
    return {"items": [f"second:{answer}"]}


def build(saver: CtxmeshSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=saver)


def test_graph_resumes_after_restart_and_travels_in_time(fresh_server: "CtxmeshServer", context_id: str) -> None:
    server = fresh_server
    config: dict[str, Any] = {"configurable": {"thread_id": "order-42"}}

    saver = CtxmeshSaver(server.url, token=server.admin_token, context=context_id)
    graph = build(saver)
    result = graph.invoke({"items": ["start"]}, config)
    assert result["items"] == ["start", "first"]
    assert result["__interrupt__"][0].value == {"question": "approve?", "seen": ["start", "first"]}
    before_restart = graph.get_state(config)
    assert before_restart.next == ("second",)
    saver.close()

    # The server goes down and comes back; a new process (new saver, new
    # graph) picks the thread up where it stopped.
    server.restart()
    saver = CtxmeshSaver(server.url, token=server.admin_token, context=context_id)
    graph = build(saver)
    state = graph.get_state(config)
    assert state.next == ("second",)
    assert state.values["items"] == ["start", "first"]
    assert state.config["configurable"]["checkpoint_id"] == before_restart.config["configurable"]["checkpoint_id"]
    assert state.tasks[0].interrupts[0].value["question"] == "approve?"

    result = graph.invoke(Command(resume="yes"), config)
    assert result["items"] == ["start", "first", "second:yes"]
    final = graph.get_state(config)
    assert final.next == ()

    # History, newest first: input (-1), before first (0), before second (1), done (2).
    history = list(graph.get_state_history(config))
    assert [h.metadata["step"] for h in history] == [2, 1, 0, -1]
    assert history[0].config["configurable"]["checkpoint_id"] == final.config["configurable"]["checkpoint_id"]
    before_first = next(h for h in history if h.next == ("first",))
    before_second = next(h for h in history if h.next == ("second",))
    assert before_second.values["items"] == ["start", "first"]

    # Replay from an earlier checkpoint: "first" runs again, "second" asks again.
    replay = graph.invoke(None, before_first.config)
    assert replay["items"] == ["start", "first"]
    assert "__interrupt__" in replay
    replayed = graph.get_state(config)
    assert replayed.next == ("second",)
    assert replayed.parent_config is not None
    assert replayed.parent_config["configurable"]["checkpoint_id"] != before_second.config["configurable"]["checkpoint_id"]
    assert replayed.config["configurable"]["checkpoint_id"] > final.config["configurable"]["checkpoint_id"]
    result = graph.invoke(Command(resume="replayed"), config)
    assert result["items"] == ["start", "first", "second:replayed"]

    # Fork: edit the state as it was before "second", then run from there.
    fork_config = graph.update_state(before_second.config, {"items": ["edited"]})
    forked = graph.get_state(fork_config)
    assert forked.values["items"] == ["start", "first", "edited"]
    assert forked.next == ("second",)
    assert forked.parent_config is not None
    assert (
        forked.parent_config["configurable"]["checkpoint_id"]
        == before_second.config["configurable"]["checkpoint_id"]
    )
    graph.invoke(None, fork_config)
    result = graph.invoke(Command(resume="fork"), config)
    assert result["items"] == ["start", "first", "edited", "second:fork"]

    # The original branch is untouched.
    original = graph.get_state(final.config)
    assert original.values["items"] == ["start", "first", "second:yes"]
    assert len(list(graph.get_state_history(config))) > len(history)
    saver.close()

    # What a ctxmesh reader sees: one checkpoint entry per checkpoint of the thread.
    with Client(server.url, server.admin_token) as client:
        page = client.request("GET", f"/v1/contexts/{context_id}/entries", params={"prefix": "checkpoints/order-42/", "limit": 1000})
        keys = [e["key"] for e in page["entries"]]
        assert len(keys) == len(list(build(CtxmeshSaver(server.url, token=server.admin_token, context=context_id)).get_state_history(config)))
        assert all(k.startswith("checkpoints/order-42/~/") for k in keys)


async def test_async_graph_resumes_after_restart(fresh_server: "CtxmeshServer", context_id: str) -> None:
    server = fresh_server
    config: dict[str, Any] = {"configurable": {"thread_id": "async thread/1"}}

    saver = CtxmeshSaver(server.url, token=server.admin_token, context=context_id)
    graph = build(saver)
    result = await graph.ainvoke({"items": ["start"]}, config)
    assert "__interrupt__" in result
    await saver.aclose()

    server.restart(kill=True)  # a crash: acknowledged checkpoints survive it
    saver = CtxmeshSaver(server.url, token=server.admin_token, context=context_id)
    graph = build(saver)
    assert (await graph.aget_state(config)).next == ("second",)
    result = await graph.ainvoke(Command(resume="ok"), config)
    assert result["items"] == ["start", "first", "second:ok"]

    history = [h async for h in graph.aget_state_history(config)]
    assert [h.metadata["step"] for h in history] == [2, 1, 0, -1]
    before_second = next(h for h in history if h.next == ("second",))
    fork_config = await graph.aupdate_state(before_second.config, {"items": ["edited"]})
    await graph.ainvoke(None, fork_config)
    result = await graph.ainvoke(Command(resume="fork"), config)
    assert result["items"] == ["start", "first", "edited", "second:fork"]
    await saver.aclose()


def test_graph_nodes_share_memories_through_the_store(server: "CtxmeshServer", context_id: str) -> None:
    from langgraph.config import get_store

    from ctxmesh.langgraph import CtxmeshStore

    def remember(state: State) -> dict[str, Any]:
        get_store().put(("users", "alice"), "last", {"items": list(state["items"])})
        return {"items": ["remembered"]}

    def recall(state: State) -> dict[str, Any]:
        item = get_store().get(("users", "alice"), "last")
        assert item is not None
        return {"items": [f"recalled:{len(item.value['items'])}"]}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    store = CtxmeshStore(server.url, token=server.admin_token, context=context_id + "-store")
    saver = CtxmeshSaver(server.url, token=server.admin_token, context=context_id)
    graph = builder.compile(checkpointer=saver, store=store)
    result = graph.invoke({"items": ["a", "b"]}, {"configurable": {"thread_id": "t"}})
    assert result["items"] == ["a", "b", "remembered", "recalled:2"]
    # Another graph (another process) finds the memory in the shared context.
    other = CtxmeshStore(server.url, token=server.admin_token, context=context_id + "-store")
    item = other.get(("users", "alice"), "last")
    assert item is not None and item.value == {"items": ["a", "b"]}
    for closable in (store, saver, other):
        closable.close()
