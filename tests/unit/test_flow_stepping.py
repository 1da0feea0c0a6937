"""Flows stepped by hand with ``next``/``send``, the way httpx tests ``auth_flow``: no event
loop, no backend; each test plays the engine. Also: the engine performs ``CallTool`` (timeout,
trace, usage), and a ``function`` scorer's callable is resolved once, at config load."""

from __future__ import annotations

import json
import time

import pytest

from ponder import FakeBackend, Orchestrator
from ponder.aggregator import scorers
from ponder.aggregator.scorers import Scorer
from ponder.aggregator.voting import Majority
from ponder.errors import ConfigError, ToolTimeout
from ponder.protocol import (
    CallTool,
    Choice,
    Completion,
    Fork,
    Generate,
    GenerationRequest,
    Note,
    Outcome,
    Task,
    ToolResult,
)
from ponder.strategies import ToolLoop
from ponder.strategies.cot import ChainOfThought
from ponder.strategies.parallel import ParallelSample
from ponder.tools.base import Tool


def completion(*choices: Choice) -> Completion:
    return Completion(choices=list(choices), prompt_tokens=5)


def text(t: str) -> Choice:
    return Choice(text=t, finish_reason="stop", completion_tokens=len(t.split()))


def tool_call(name: str, args: dict) -> Choice:
    fn = {"name": name, "arguments": json.dumps(args)}
    return Choice(
        "", "tool_calls", 3, tool_calls=[{"id": "c1", "type": "function", "function": fn}]
    )


def test_cot_is_one_generate_then_its_outcome() -> None:
    flow = ChainOfThought(max_tokens=50).flow(Task("What is 2+2?"))
    action = next(flow)
    assert isinstance(action, Generate) and len(action.requests) == 1
    assert action.requests[0].params.max_tokens == 50
    with pytest.raises(StopIteration) as stop:
        flow.send([completion(text("so \\boxed{4}"))])
    assert isinstance(stop.value.value, Outcome) and stop.value.value.answer == "4"


def test_parallel_sampling_forks_then_aggregates_what_it_is_sent() -> None:
    flow = ParallelSample(k=3, seed=0, mode="fork", aggregator=Majority()).flow(Task("q"))
    action = next(flow)
    while not isinstance(action, Fork):  # notes before the fork, if any
        action = flow.send(None)
    assert len(action.flows) == 3
    samples = [Outcome("4", "a"), Outcome("5", "b"), Outcome("4", "c")]
    with pytest.raises(StopIteration) as stop:
        action = flow.send(samples)
        while True:  # the aggregator's notes
            assert isinstance(action, Note)
            action = flow.send(None)
    assert stop.value.value.answer == "4"


def test_tool_loop_yields_call_tool_and_never_runs_the_tool_itself() -> None:
    ran: list[object] = []
    tool = Tool.from_function(lambda expression: ran.append(expression) or "4", name="calculator")
    flow = ToolLoop(tools=(tool,)).flow(Task("What is 2+2?"))
    action = next(flow)
    assert isinstance(action, Generate)
    action = flow.send([completion(tool_call("calculator", {"expression": "2+2"}))])
    assert isinstance(action, CallTool) and [c.name for c in action.calls] == ["calculator"]
    assert ran == []  # sans-I/O: the flow asked; whoever drives it performs the call
    [call] = action.calls
    action = flow.send([ToolResult(call, "4")])
    assert isinstance(action, Note) and action.data["result"] == "4"
    action = flow.send(None)
    assert isinstance(action, Generate)
    assert action.requests[0].messages[-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "name": "calculator",
        "content": "4",
    }
    with pytest.raises(StopIteration) as stop:
        flow.send([completion(text("\\boxed{4}"))])
    assert stop.value.value.answer == "4"


async def test_the_engine_times_out_a_slow_tool_and_the_model_reads_the_error() -> None:
    def slow(expression: str) -> str:
        """Sleeps."""
        time.sleep(0.5)
        return "4"

    def respond(request: GenerationRequest, i: int) -> object:
        tools = [m for m in request.messages or () if m["role"] == "tool"]
        return tool_call("slow", {"expression": "2+2"}) if not tools else tools[-1]["content"]

    orch = Orchestrator(FakeBackend(respond), tool_timeout_s=0.05)
    t0 = time.perf_counter()
    result = await orch.run(ToolLoop(tools=(Tool.from_function(slow),)), "q")
    assert time.perf_counter() - t0 < 0.4  # the run did not wait for the tool
    assert "did not return within 0.05s" in result.text
    [event] = result.trace.of_type("tool")
    assert event["name"] == "slow" and ToolTimeout.__name__ in event["error"]
    assert result.usage.tool_calls == 1


def test_function_scorer_is_resolved_once_at_config_load(monkeypatch) -> None:
    scorer = Scorer(kind="function", function="tests.unit.test_flow_stepping:by_length")

    def no_import(*a: object, **k: object) -> None:
        raise AssertionError("the scorer imported its function again while scoring")

    monkeypatch.setattr(scorers, "load_callable", no_import)
    flow = scorer.score(Task("q"), [Outcome("4", "abcd"), Outcome(None, "x")])
    with pytest.raises(StopIteration) as stop:
        next(flow)
    assert stop.value.value == [4.0, None]


def by_length(question: str, text: str, answer: str | None) -> float:
    return float(len(text))


def test_a_declared_single_call_inner_is_drawn_as_one_request_with_n() -> None:
    flow = ParallelSample(k=4, seed=7, inner=ChainOfThought(temperature=0.7)).flow(Task("q"))
    action = next(flow)
    assert isinstance(action, Note) and action.event == "sampling"
    action = flow.send(None)
    assert isinstance(action, Generate) and len(action.requests) == 1
    assert action.requests[0].params.n == 4 and action.requests[0].params.seed == 7


def test_seeds_and_max_tokens_go_through_the_declared_interface() -> None:
    assert ChainOfThought().with_seed(3).seed == 3  # type: ignore[attr-defined]
    assert ChainOfThought().with_max_tokens(9).max_tokens == 9  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="does not apply to strategy 'sample'"):
        ParallelSample().with_max_tokens(9)


def test_a_score_is_a_typed_field_of_the_outcome() -> None:
    [scored] = scorers.with_scores([Outcome("4", "t", error=ValueError("kept"))], [0.5])
    assert scored.score == 0.5 and isinstance(scored.error, ValueError)  # its failure survives
    assert Outcome("4", "t", data={"score": "0.25"}).score == 0.25  # offline sets as before
