"""``summarize`` in the thinking format, with a fake thinker: each window thinks inside
``<think>``, the summary is made of the window's thinking, the restart thinks from question +
summary, ``thinking_tokens`` bounds all windows' thinking, every call (summary and answer
included) holds ``checkpoint_tokens``, and the answer is read after the thinking is closed, never
from it. No network: ``FakeBackend`` counts one token per word."""

from __future__ import annotations

import pytest

from ponder import FakeBackend, Orchestrator
from ponder.backends.base import Capabilities
from ponder.errors import CapabilityMissing, ConfigError
from ponder.orchestrator.policy import RunLimits
from ponder.orchestrator.session import Session
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.protocol.thinking_budget import ThinkingBudget
from ponder.strategies import SummarizingReasoner, build_strategy

QUESTION = "Tom has 3 boxes with 4 apples each and eats 2. How many apples are left?"
OPEN, CLOSE = "<think>\n", "</think>"
SUMMARY = "Established: 3*4 = 12 apples. Remaining: subtract 2."


class Thinker:
    """Thinks ``think`` words per window (``w0 w1 ...``, with a wrong ``\\boxed{99}`` in the
    middle), then stops (``closes``: writes ``</think>`` and an answer, ignoring ``stop``);
    summarizes in a fixed text; answers ``\\boxed{10}`` after a closed thinking."""

    def __init__(self, think: int = 10_000, closes: bool = False) -> None:
        self.think = think
        self.closes = closes

    def __call__(self, request: GenerationRequest, i: int) -> Choice:
        prefix = request.assistant_prefix or ""
        cap = request.params.max_tokens
        if request.purpose == "summarize":
            return Choice(SUMMARY, "stop", len(SUMMARY.split()))
        if request.purpose == "answer":
            return Choice("So 12 - 2 = 10. \\boxed{10}", "stop", 6)
        assert prefix.startswith(OPEN) and CLOSE not in prefix
        done = len(prefix.split()) - 1
        words = [f"w{j}" if j != 20 else "\\boxed{99}" for j in range(done, self.think)]
        if len(words) > cap:
            return Choice(" " * bool(done) + " ".join(words[:cap]), "length", cap)
        tail = f" {CLOSE} \\boxed{{10}}" if self.closes else ""
        text = " " * bool(done) + " ".join(words) + tail
        return Choice(text, "stop", len(words) + 2 * self.closes)


def strategy(**kw: object) -> SummarizingReasoner:
    base: dict[str, object] = {
        "thinking": True,
        "checkpoint_tokens": 300,
        "summary_max_tokens": 40,
        "answer_tokens": 40,
        "min_window_tokens": 32,
        "max_summaries": 3,
    }
    return SummarizingReasoner(**{**base, **kw})  # type: ignore[arg-type]


def calls_of(backend: FakeBackend, purpose: str) -> list[GenerationRequest]:
    return [r for r in backend.requests if r.purpose == purpose]


async def test_windows_think_inside_the_markers_and_continue_their_own_thinking():
    backend = FakeBackend(Thinker())
    await Orchestrator(backend).run(strategy(thinking_tokens=600), QUESTION)
    reason = calls_of(backend, "reason")
    assert all(r.assistant_prefix and r.assistant_prefix.startswith(OPEN) for r in reason)
    assert all(r.params.stop == (CLOSE,) for r in reason)
    first, second = reason[0], reason[1]
    assert first.assistant_prefix == OPEN and first.params.max_tokens == 32  # short: measures
    assert second.assistant_prefix is not None
    assert second.assistant_prefix.startswith(OPEN + "w0 w1") and second.assistant_prefix.endswith(
        " w31"
    )
    assert second.messages == first.messages


async def test_the_summary_is_made_of_the_thinking_and_the_restart_thinks_from_it():
    backend = FakeBackend(Thinker())
    result = await Orchestrator(backend).run(strategy(thinking_tokens=600), QUESTION)
    [summary_call, *_] = calls_of(backend, "summarize")
    user = str((summary_call.messages or ())[-1]["content"])
    assert "w0 w1 w2" in user and "\\boxed{99}" in user  # the window's thinking, raw
    assert summary_call.assistant_prefix == "<think>\n\n</think>\n\n"  # written as an answer
    restarts = [r for r in calls_of(backend, "reason") if r.assistant_prefix == OPEN][1:]
    assert restarts, "a second window opened a new thinking"
    restart_user = str((restarts[0].messages or ())[-1]["content"])
    assert SUMMARY in restart_user and QUESTION in restart_user and "w5 " not in restart_user
    assert result.outcome.data["summaries"][0] == SUMMARY
    [note, *_] = [e for e in result.trace.of_type("decision") if e["event"] == "checkpoint"]
    assert note["dropped_reasoning"].startswith("w0 w1")


@pytest.mark.parametrize("total", [100, 250, 600, 1000])
@pytest.mark.parametrize("checkpoint", [260, 300, 400])
async def test_total_thinking_and_every_call_stay_within_their_bounds(total, checkpoint):
    backend = FakeBackend(Thinker())
    s = strategy(thinking_tokens=total, checkpoint_tokens=checkpoint)
    result = await Orchestrator(backend).run(s, QUESTION)
    thought = result.usage.by_purpose["reason"].completion_tokens
    assert thought == result.outcome.data["reasoning_tokens"] <= total
    assert result.usage.peak_context_tokens <= checkpoint
    for e in result.trace.of_type("completion"):
        assert e["prompt_tokens"] + e["completion_tokens"] <= checkpoint
    assert result.answer == "10"
    assert result.outcome.data["stop_reason"] in ("thinking_budget", "max_summaries")
    assert total - thought < 32 + 16 or result.outcome.data["stop_reason"] == "max_summaries"


async def test_the_answer_comes_after_the_closed_thinking_never_from_it():
    backend = FakeBackend(Thinker())
    result = await Orchestrator(backend).run(strategy(thinking_tokens=200), QUESTION)
    [answer] = calls_of(backend, "answer")
    assert answer.assistant_prefix is not None
    assert answer.assistant_prefix.startswith(OPEN) and answer.assistant_prefix.endswith(
        f"\n{CLOSE}\n\n"
    )
    assert result.answer == "10"  # the \boxed{99} inside the thinking is not read
    assert result.outcome.data["reasoning"].startswith("w0")
    silent = FakeBackend(lambda r, i: "" if r.purpose == "answer" else Thinker()(r, i))
    none = await Orchestrator(silent).run(strategy(thinking_tokens=200), QUESTION)
    assert none.answer is None


async def test_an_answer_lead_follows_the_closed_thinking_and_starts_the_answer():
    def led(r: GenerationRequest, i: int) -> Choice:
        if r.purpose == "answer":  # a prompted model that answers only when led
            prefix = r.assistant_prefix or ""
            return Choice("10}." if prefix.endswith("{") else "Hope this helps!", "stop", 3)
        return Thinker()(r, i)

    backend = FakeBackend(led)
    result = await Orchestrator(backend).run(
        strategy(thinking_tokens=200, answer_lead="answer_lead"), QUESTION
    )
    [answer] = calls_of(backend, "answer")
    assert answer.assistant_prefix is not None
    assert answer.assistant_prefix.endswith(f"\n{CLOSE}\n\nThe final answer is \\boxed{{")
    assert result.answer == "10" and result.text == "The final answer is \\boxed{10}."
    plain = await Orchestrator(FakeBackend(led)).run(strategy(thinking_tokens=200), QUESTION)
    assert plain.answer is None  # the \boxed{99} in the thinking is still never read
    with pytest.raises(ConfigError) as info:
        strategy(answer_lead="no_such_template")
    assert info.value.field == "strategy.answer_lead"


async def test_a_thinking_the_model_ends_is_answered_without_a_summary():
    for model in (Thinker(think=50), Thinker(think=50, closes=True)):
        backend = FakeBackend(model)
        result = await Orchestrator(backend).run(strategy(), QUESTION)
        assert [r.purpose for r in backend.requests] == ["reason", "reason", "answer"]
        assert result.outcome.data["stop_reason"] == "answered"
        assert result.outcome.data["summaries"] == []
        assert CLOSE not in result.outcome.data["reasoning"]
        assert result.answer == "10"


async def test_without_a_thinking_budget_the_windows_bound_it():
    backend = FakeBackend(Thinker())
    result = await Orchestrator(backend).run(strategy(max_summaries=2), QUESTION)
    assert result.outcome.data["stop_reason"] == "max_summaries"
    assert len(result.outcome.data["summaries"]) == 2
    assert len(result.outcome.data["windows"]) == 3
    assert result.usage.peak_context_tokens <= 300
    last = result.outcome.data["windows"][-1]
    assert last["context_tokens"] <= 300 - 40 - 8  # the last window kept the answer's room
    assert result.answer == "10"


async def test_the_engines_per_call_budget_leaves_the_windows_alone():
    backend = FakeBackend(Thinker())
    async with Session(backend) as session:
        limits = RunLimits(thinking=ThinkingBudget(16, answer_tokens=8))
        result = await session.run(strategy(thinking_tokens=400), QUESTION, limits=limits)
    assert not result.trace.of_type("thinking_bound")  # every call continues a prefix
    assert result.outcome.data["reasoning_tokens"] > 300


async def test_a_run_budget_cut_gives_no_answer_from_the_thinking():
    backend = FakeBackend(Thinker())
    result = await Orchestrator(backend, budget_tokens=250).run(strategy(), QUESTION)
    assert result.budget_limited
    assert result.answer is None
    assert result.outcome.data["stop_reason"] == "budget"


async def test_thinking_needs_continuation_and_plain_mode_refuses_an_all_thinking_reply():
    no_cont = FakeBackend(Thinker(), capabilities=Capabilities(continuation=False))
    with pytest.raises(CapabilityMissing, match="continuation"):
        async with Session(no_cont) as session:
            await session.run(strategy(), QUESTION)
    cut = FakeBackend([Choice("", "length", 64, reasoning="w0 w1")])
    with pytest.raises(ValueError, match="thinking: true"):
        await Orchestrator(cut).run(SummarizingReasoner(checkpoint_tokens=600), QUESTION)


def test_config_errors_name_the_fields():
    with pytest.raises(ConfigError, match="thinking_tokens"):
        build_strategy({"name": "summarize", "thinking_tokens": 500})
    with pytest.raises(ConfigError, match="answer_tokens .* checkpoint_tokens"):
        build_strategy({"name": "summarize", "thinking": True, "checkpoint_tokens": 300})
    s = build_strategy(
        {"name": "summarize", "thinking": True, "thinking_tokens": 2048, "answer_tokens": 128}
    )
    assert isinstance(s, SummarizingReasoner) and s.thinking and s.thinking_tokens == 2048
