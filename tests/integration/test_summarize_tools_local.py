"""ReSum-style checkpoints, continuation and the tool loop against the real default model."""

from __future__ import annotations

import pytest

from ponder import OpenAICompatibleBackend, Orchestrator
from ponder.protocol.requests import GenerationRequest, SamplingParams
from ponder.strategies import SummarizingReasoner, ToolLoop

pytestmark = pytest.mark.integration

COUNT = ({"role": "user", "content": "Count from 1 to 10, separated by commas."},)
QUESTION = (
    "A baker makes 3 batches of 24 cookies each day for 5 days, sells 250 cookies and gives "
    "away 40. How many cookies are left?"
)


def _continue_request() -> GenerationRequest:
    return GenerationRequest(
        messages=COUNT,
        assistant_prefix="1, 2, 3, 4, 5,",
        params=SamplingParams(max_tokens=6, temperature=0.0),
    )


async def test_continuation_through_the_chat_template(local_backend):
    completion = await local_backend.generate(_continue_request())
    assert completion.choices[0].text.lstrip().startswith("6"), completion.choices[0].text
    plain = await local_backend.count_prompt_tokens(GenerationRequest(messages=COUNT))
    assert completion.prompt_tokens > plain  # the prefix was part of the prompt


async def test_continuation_by_assistant_prefill(local_backend):
    await local_backend.start()
    prefill = OpenAICompatibleBackend(
        base_url=local_backend.server.base_url, model="local", continuation="prefill"
    )
    try:
        completion = await prefill.generate(_continue_request())
    finally:
        await prefill.aclose()
    assert completion.choices[0].text.lstrip().startswith("6"), completion.choices[0].text


async def test_summarizing_reasoner_checkpoints_and_restarts(local_backend):
    strategy = SummarizingReasoner(
        checkpoint_tokens=320, max_summaries=1, summary_max_tokens=48, min_window_tokens=32
    )
    result = await Orchestrator(local_backend).run(strategy, QUESTION)
    # every call, the summary call included, fits the working-context limit
    calls = result.trace.of_type("completion")
    assert {e["purpose"] for e in calls} == {"reason", "summarize"}
    for e in calls:
        assert e["prompt_tokens"] + e["completion_tokens"] <= 320, e
    assert result.usage.peak_context_tokens <= 320
    [checkpoint] = [e for e in result.trace.of_type("decision") if e["event"] == "checkpoint"]
    assert checkpoint["dropped_reasoning"] and checkpoint["summary"]
    restarts = [
        e
        for e in result.trace.of_type("request")
        if e["purpose"] == "reason" and checkpoint["summary"] in e["messages"][-1]["content"]
    ]
    assert restarts, "the second window must restart from question + summary"
    assert result.usage.by_purpose["summarize"].calls == 1


async def test_tool_loop_calls_the_calculator(local_backend):
    strategy = ToolLoop(tools=("calculator",), max_turns=3, max_tokens=96)
    result = await Orchestrator(local_backend).run(
        strategy, "Use the calculator tool to compute 1234 * 5678."
    )
    first = result.trace.of_type("request")[0]
    assert first["tools"] == ["calculator"]
    calls = [e for e in result.trace.of_type("decision") if e["event"] == "tool_call"]
    assert calls, f"the model made no tool call: {result.text!r}"
    assert calls[0]["tool"] == "calculator"
    assert calls[0]["result"] == "7006652"
