import json

import pytest

from ponder import FakeBackend, Orchestrator
from ponder.errors import ConfigError
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.strategies import ToolLoop, build_strategy

QUESTION = "A shop sells 17 boxes of 23 pens. How many pens?"


def call(name: str, args: dict, i: int = 1) -> Choice:
    return Choice(
        text="",
        finish_reason="tool_calls",
        completion_tokens=10,
        tool_calls=[
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ],
    )


def last_tool_result(request: GenerationRequest) -> str | None:
    tools = [m for m in request.messages or () if m["role"] == "tool"]
    return tools[-1]["content"] if tools else None


async def test_calls_a_tool_appends_the_result_and_answers():
    def respond(request: GenerationRequest, i: int):
        result = last_tool_result(request)
        if result is None:
            return call("calculator", {"expression": "17 * 23"})
        return f"The shop has {result} pens. \\boxed{{{result}}}"

    backend = FakeBackend(respond)
    result = await Orchestrator(backend).run(ToolLoop(), QUESTION)
    assert result.answer == "391"
    first, second = backend.requests
    names = {t["function"]["name"] for t in first.tools or ()}
    assert names == {"calculator", "search_problems"}
    roles = [m["role"] for m in second.messages or ()]
    assert roles == ["system", "user", "assistant", "tool"]
    assert second.messages[2]["tool_calls"][0]["id"] == "call_1"
    assert second.messages[3]["tool_call_id"] == "call_1"
    [note] = [e for e in result.trace.of_type("decision") if e["event"] == "tool_call"]
    assert note["tool"] == "calculator" and note["result"] == "391"
    assert result.outcome.data["tool_calls"] == 1
    assert result.outcome.data["stop_reason"] == "answered"


async def test_tool_errors_and_unknown_tools_go_back_to_the_model():
    seen: list[str] = []

    def respond(request: GenerationRequest, i: int):
        result = last_tool_result(request)
        if result is not None:
            seen.append(result)
        if len(seen) == 0:
            return call("calculator", {"expression": "import os"})
        if len(seen) == 1:
            return call("rm_rf", {})
        return "\\boxed{391}"

    result = await Orchestrator(FakeBackend(respond)).run(ToolLoop(), QUESTION)
    assert result.answer == "391"
    assert seen[0].startswith("error: CalculatorError")
    assert seen[1].startswith("error: unknown tool 'rm_rf'; available tools: calculator")


async def test_history_is_summarized_when_context_passes_the_limit():
    def respond(request: GenerationRequest, i: int):
        if request.purpose == "summarize":
            return "Task: pens. Found 17*23 = 391 with the calculator."
        user = str(request.messages[1]["content"])
        if "Summary of your work so far" in user:
            return "From the summary: \\boxed{391}"
        return call("search_problems", {"query": "boxes of pens", "k": 3})

    backend = FakeBackend(respond)
    strategy = ToolLoop(context_limit=150, max_summary_rounds=2)
    result = await Orchestrator(backend).run(strategy, QUESTION)
    assert result.answer == "391"
    purposes = [r.purpose for r in backend.requests]
    assert purposes == ["tool_turn", "summarize", "tool_turn"]
    summarize_prompt = str(backend.requests[1].messages[-1]["content"])
    assert "TOOL RESULT (search_problems)" in summarize_prompt
    restart = backend.requests[2].messages
    assert [m["role"] for m in restart] == ["system", "user"]  # history replaced
    assert "Found 17*23 = 391" in restart[1]["content"]
    [note] = [e for e in result.trace.of_type("decision") if e["event"] == "summarized"]
    assert note["round"] == 1 and note["context_tokens"] > 150
    assert any(m["role"] == "tool" for m in note["dropped_messages"])
    assert result.outcome.data["summaries"] == [
        "Task: pens. Found 17*23 = 391 with the calculator."
    ]


async def test_summary_rounds_are_capped_and_can_be_raised():
    def respond(request: GenerationRequest, i: int):
        if request.purpose == "summarize":
            return "Still searching."
        return call("search_problems", {"query": "pens boxes shop", "k": 3})

    tuned = ToolLoop(context_limit=150, max_summary_rounds=1, max_turns=10)
    r1 = await Orchestrator(FakeBackend(respond)).run(tuned, QUESTION)
    assert r1.outcome.data["stop_reason"] == "context_limit"
    assert len(r1.outcome.data["summaries"]) == 1
    more = tuned.model_copy(update={"max_summary_rounds": 3})
    r2 = await Orchestrator(FakeBackend(respond)).run(more, QUESTION)
    assert len(r2.outcome.data["summaries"]) == 3
    assert r2.answer is None


async def test_max_turns_stops_the_loop():
    backend = FakeBackend(lambda r, i: call("calculator", {"expression": "1+1"}))
    result = await Orchestrator(backend).run(ToolLoop(max_turns=3), QUESTION)
    assert result.outcome.data["stop_reason"] == "max_turns"
    assert len(backend.requests) == 3


async def test_plain_python_functions_are_tools():
    def pens_per_box(brand: str) -> int:
        """Pens in one box of the given brand."""
        return 23

    def respond(request: GenerationRequest, i: int):
        result = last_tool_result(request)
        if result is None:
            return call("pens_per_box", {"brand": "acme"})
        return f"\\boxed{{{17 * int(result)}}}"

    backend = FakeBackend(respond)
    result = await Orchestrator(backend).run(ToolLoop(tools=(pens_per_box,)), QUESTION)
    assert result.answer == "391"
    assert [t["function"]["name"] for t in backend.requests[0].tools or ()] == ["pens_per_box"]


def test_config_names_unknown_tools_and_builds():
    with pytest.raises(ConfigError, match="valid choices: calculator"):
        build_strategy({"name": "tool_loop", "tools": ["calculator", "nope"]})
    s = build_strategy({"name": "tool_loop", "tools": ["calculator"], "context_limit": 512})
    assert isinstance(s, ToolLoop) and s.context_limit == 512


async def test_tool_call_written_as_text_is_run():
    def respond(request: GenerationRequest, i: int):
        result = last_tool_result(request)
        if result is None:
            return (
                '{"name": "calculator", "arguments": '
                '{"expression": "17 * 23", "required": ["expression"]}}'
            )
        return f"\\boxed{{{result}}}"

    result = await Orchestrator(FakeBackend(respond)).run(ToolLoop(), QUESTION)
    assert result.answer == "391"
    [note] = [e for e in result.trace.of_type("decision") if e["event"] == "tool_call"]
    assert note["result"] == "391"
    off = ToolLoop(parse_text_tool_calls=False)
    r2 = await Orchestrator(FakeBackend(respond)).run(off, QUESTION)
    assert r2.outcome.data["tool_calls"] == 0
