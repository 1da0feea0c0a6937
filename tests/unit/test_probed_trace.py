"""The one probed-trace loop that the collector, DRR and DeepConf drive, stepped by hand."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from ponder.errors import BudgetExhausted
from ponder.protocol.actions import Generate, Note
from ponder.protocol.requests import (
    Choice,
    Completion,
    GenerationFailure,
    GenerationRequest,
    SamplingParams,
)
from ponder.strategies.probed_trace import Checkpoint, Probe, TraceEnd, TraceLog, probed_trace

MESSAGES = ({"role": "user", "content": "q?"},)
PROBE = Probe(MESSAGES, "so \\boxed{", 4, ("}",))
Trace = Generator[Any, Any, TraceEnd[Any]]


def segment(prefix: str, size: int) -> GenerationRequest:
    return GenerationRequest(
        messages=MESSAGES,
        assistant_prefix=prefix,
        params=SamplingParams(max_tokens=size, logprobs=True, top_logprobs=2),
    )


def seg(words: int, finish: str = "length") -> Completion:
    text = " ".join(f"w{i}" for i in range(words))
    choice = Choice(
        text=" " + text if words else "",
        finish_reason=finish,
        completion_tokens=words,
        token_logprobs=[-0.5] * words,
        top_logprobs=[{"a": -0.5, "b": -1.5}] * words,
    )
    return Completion([choice], prompt_tokens=3)


def answer(text: str) -> Completion:
    return Completion([Choice(text, "stop", 1)], prompt_tokens=3)


def step(flow: Generator[Any, Any, Any], replies: list[Any]) -> tuple[list[Any], Any]:
    """Answer each ``Generate`` with the next of ``replies`` (a ``Note`` with nothing); return
    every action and the loop's return value."""
    actions: list[Any] = []
    queue = iter(replies)
    value: Any = None
    while True:
        try:
            action = flow.send(value)
        except StopIteration as stop:
            return actions, stop.value
        actions.append(action)
        value = [next(queue)] if isinstance(action, Generate) else None


def purposes(actions: list[Any]) -> list[str]:
    return [a.requests[0].purpose for a in actions if isinstance(a, Generate)]


def test_segments_probe_each_unfinished_one_and_the_cut() -> None:
    seen: list[tuple[str | None, bool, bool]] = []

    def hook(at: Checkpoint) -> Generator[Any, Any, None]:
        seen.append((at.answer, at.finished, at.cut))
        return None
        yield  # a sub-flow

    log = TraceLog(seed=1)
    flow: Trace = probed_trace(log, segment, every=4, max_tokens=10, probe=PROBE, checkpoint=hook)
    actions, end = step(flow, [seg(4), answer("7}"), seg(4), answer("8"), seg(2), answer("9")])
    assert isinstance(end, TraceEnd) and end.how == "cut" and end.stop is None
    assert purposes(actions) == ["reason", "probe"] * 3
    sizes = [a.requests[0].params.max_tokens for a in actions if a.requests[0].purpose != "probe"]
    assert sizes == [4, 4, 2]
    assert seen == [("7", False, False), ("8", False, False), ("9", False, True)]
    assert log.tokens == 10 and [p["at"] for p in log.probes] == [4, 8, 10]
    assert log.usage["calls"] == 6


def test_a_finished_trace_is_not_probed_and_without_probe_never() -> None:
    log = TraceLog(seed=None)
    flow: Trace = probed_trace(log, segment, every=4, max_tokens=40, probe=PROBE)
    actions, end = step(flow, [seg(4), answer("7"), seg(2, "stop")])
    assert end.how == "finished" and purposes(actions) == ["reason", "probe", "reason"]
    assert actions[2].requests[0].assistant_prefix == " w0 w1 w2 w3"

    flow = probed_trace(TraceLog(seed=None), segment, every=4, max_tokens=40)
    actions, end = step(flow, [seg(4), seg(0)])  # an empty segment ends the trace too
    assert end.how == "finished" and purposes(actions) == ["reason", "reason"]


def test_the_hook_stops_the_trace_with_its_value() -> None:
    def hook(at: Checkpoint) -> Generator[Any, Any, float | None]:
        if at.log.tokens < 8:
            return None
        yield Note("stop_here", {"at": at.log.tokens})
        return 0.0  # any value but None stops, a falsy one too

    flow: Trace = probed_trace(TraceLog(seed=0), segment, every=4, max_tokens=40, checkpoint=hook)
    actions, end = step(flow, [seg(4), seg(4), seg(4)])
    assert end.how == "stopped" and end.stop == 0.0 and end.log.tokens == 8
    assert isinstance(actions[-1], Note) and purposes(actions) == ["reason", "reason"]


@pytest.mark.parametrize("error", [BudgetExhausted("spent"), RuntimeError("boom")])
def test_a_failed_segment_ends_the_trace_keeping_the_log(error: Exception) -> None:
    log = TraceLog(seed=0)
    flow: Trace = probed_trace(log, segment, every=4, max_tokens=40, probe=PROBE)
    next(flow)
    flow.send([seg(4)])
    nxt = flow.send([answer("7")])
    with pytest.raises(StopIteration) as stop:
        flow.send([GenerationFailure(nxt.requests[0], error)])
    end = stop.value.value
    assert end.how == "failed" and end.failure.error is error
    assert end.failure.budget == isinstance(error, BudgetExhausted)
    assert log.tokens == 4 and len(log.probes) == 1
