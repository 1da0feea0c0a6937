import pytest

from ponder import FakeBackend, OpenAICompatibleBackend, Orchestrator
from ponder.backends.base import Capabilities
from ponder.errors import CapabilityMissing, ConfigError
from ponder.protocol.actions import Fork, Outcome, Task
from ponder.protocol.requests import GenerationRequest
from ponder.protocol.strategy import Strategy
from ponder.strategies import SummarizingReasoner, build_strategy

QUESTION = "Tom has 3 boxes with 4 apples each and eats 2. How many apples are left?"
LONG = " ".join(f"step{i}" for i in range(400))


def responder(request: GenerationRequest, i: int) -> str:
    """Long rambling reasoning until a summary is in the prompt; then a short answer."""
    user = str((request.messages or ())[-1]["content"])
    if request.purpose == "summarize":
        return "Established: 3*4 = 12 apples. Remaining: subtract 2. Candidate \\boxed{10}"
    if "Summary of your progress" in user:
        return "From the summary, 12 - 2 = 10. \\boxed{10}"
    return LONG


async def test_answer_in_first_window_needs_no_summary():
    backend = FakeBackend(["3*4 = 12, 12-2 = 10. \\boxed{10}"])
    result = await Orchestrator(backend).run(SummarizingReasoner(checkpoint_tokens=500), QUESTION)
    assert result.answer == "10"
    assert result.usage.calls == 1
    assert result.outcome.data["summaries"] == []
    assert result.outcome.data["stop_reason"] == "answered"


async def test_checkpoint_summarizes_and_restarts_from_question_plus_summary():
    backend = FakeBackend(responder)
    strategy = SummarizingReasoner(
        checkpoint_tokens=400, summary_max_tokens=40, max_summaries=3, continuation=False
    )
    result = await Orchestrator(backend).run(strategy, QUESTION)
    assert result.answer == "10"
    purposes = [r.purpose for r in backend.requests]
    assert purposes == ["reason", "summarize", "reason"]
    restart = str((backend.requests[2].messages or ())[-1]["content"])
    assert "Established: 3*4 = 12" in restart and QUESTION in restart
    assert "step5" not in restart  # the raw trace was dropped, not carried over
    # the summarizer saw the raw reasoning
    assert "step5" in str((backend.requests[1].messages or ())[-1]["content"])
    [note] = [e for e in result.trace.of_type("decision") if e["event"] == "checkpoint"]
    assert note["dropped_reasoning"].startswith("step0 step1")
    assert "Candidate" in note["summary"]
    assert result.usage.by_purpose["summarize"].calls == 1
    assert len(result.outcome.data["windows"]) == 2


async def test_window_calls_stay_under_checkpoint():
    backend = FakeBackend(responder)
    strategy = SummarizingReasoner(checkpoint_tokens=400, summary_max_tokens=40, max_summaries=2)
    result = await Orchestrator(backend).run(strategy, QUESTION)
    for e in result.trace.of_type("completion"):
        if e["purpose"] == "reason":
            assert e["prompt_tokens"] + e["completion_tokens"] <= 400


async def test_summary_calls_fit_the_same_limit_as_reasoning_calls():
    backend = FakeBackend(responder)
    strategy = SummarizingReasoner(checkpoint_tokens=400, summary_max_tokens=40, max_summaries=2)
    result = await Orchestrator(backend).run(strategy, QUESTION)
    assert result.usage.by_purpose["summarize"].calls == 1
    assert result.usage.peak_context_tokens <= 400
    summary_call = [e for e in result.trace.of_type("completion") if e["purpose"] == "summarize"]
    assert summary_call[0]["prompt_tokens"] + 40 <= 400
    # without the reserve the window fills the limit and the summary call overflows it
    loose = strategy.model_copy(update={"reserve_for_summary": False})
    result2 = await Orchestrator(FakeBackend(responder)).run(loose, QUESTION)
    assert result2.usage.peak_context_tokens > 400


async def test_a_limit_too_small_for_window_and_summary_is_flagged_in_the_trace():
    long_question = QUESTION + " " + " ".join(f"fact{i}" for i in range(300))
    strategy = SummarizingReasoner(checkpoint_tokens=400, summary_max_tokens=40, max_summaries=1)
    result = await Orchestrator(FakeBackend(responder)).run(strategy, long_question)
    flags = [
        e for e in result.trace.of_type("decision") if e["event"] == "summary_may_exceed_limit"
    ]
    assert flags and flags[0]["window"] == 0 and flags[0]["reasoning_budget"] < 64
    ok = await Orchestrator(FakeBackend(responder)).run(strategy, QUESTION)
    assert not [e for e in ok.trace.of_type("decision") if e["event"] == "summary_may_exceed_limit"]


async def test_last_window_is_not_reserved_for_a_summary():
    backend = FakeBackend(lambda r, i: "Progress: 12." if r.purpose == "summarize" else LONG)
    strategy = SummarizingReasoner(checkpoint_tokens=400, summary_max_tokens=40, max_summaries=1)
    result = await Orchestrator(backend).run(strategy, QUESTION)
    first, last = result.outcome.data["windows"]
    assert first["generated_tokens"] < last["generated_tokens"]
    assert last["context_tokens"] >= 400 - 16  # the last window may use the whole limit


async def test_continuation_continues_the_partial_answer_up_to_the_checkpoint():
    backend = FakeBackend(responder)
    strategy = SummarizingReasoner(checkpoint_tokens=450, summary_max_tokens=40, max_summaries=1)
    result = await Orchestrator(backend).run(strategy, QUESTION)
    first, second = backend.requests[0], backend.requests[1]
    assert first.assistant_prefix is None
    assert second.purpose == "reason" and second.assistant_prefix is not None
    assert second.assistant_prefix.startswith("step0 step1")
    assert second.messages == first.messages
    window = result.outcome.data["windows"][0]
    assert window["calls"] == 2
    assert window["context_tokens"] <= 450
    assert result.answer == "10"


async def test_missing_continuation_capability_is_named():
    backend = FakeBackend(responder, capabilities=Capabilities(continuation=False))
    strategy = SummarizingReasoner(checkpoint_tokens=450, summary_max_tokens=40, max_summaries=1)
    with pytest.raises(CapabilityMissing, match="continuation"):
        await Orchestrator(backend).run(strategy, QUESTION)
    # without continuation the same backend works
    backend2 = FakeBackend(responder, capabilities=Capabilities(continuation=False))
    no_cont = strategy.model_copy(update={"continuation": False})
    result = await Orchestrator(backend2).run(no_cont, QUESTION)
    assert result.answer == "10"
    assert all(r.assistant_prefix is None for r in backend2.requests)


async def test_openai_backend_without_template_refuses_continuation_naming_it():
    backend = OpenAICompatibleBackend(base_url="http://127.0.0.1:9/v1", model="m")
    req = GenerationRequest(messages=({"role": "user", "content": "hi"},), assistant_prefix="Hel")
    with pytest.raises(CapabilityMissing, match="'continuation'"):
        await backend.generate(req)
    assert (await backend.capabilities()).continuation is False
    await backend.aclose()
    with pytest.raises(ConfigError, match="backend.continuation"):
        OpenAICompatibleBackend(base_url="http://x/v1", model="m", continuation="bogus")


async def test_max_summaries_caps_rounds_and_can_be_raised_at_test_time():
    always_long = FakeBackend(
        lambda r, i: "Progress so far: 12 apples." if r.purpose == "summarize" else LONG
    )
    tuned = SummarizingReasoner(
        checkpoint_tokens=380, summary_max_tokens=40, max_summaries=1, continuation=False
    )
    r1 = await Orchestrator(always_long).run(tuned, QUESTION)
    assert r1.outcome.data["stop_reason"] == "max_summaries"
    assert len(r1.outcome.data["summaries"]) == 1
    longer = tuned.model_copy(update={"max_summaries": 3})
    r2 = await Orchestrator(always_long).run(longer, QUESTION)
    assert len(r2.outcome.data["summaries"]) == 3
    assert r2.usage.by_purpose["reason"].calls == 4


async def test_summarize_every_n_generated_tokens():
    backend = FakeBackend(responder)
    strategy = SummarizingReasoner(checkpoint_tokens=None, summarize_every=50, max_summaries=2)
    result = await Orchestrator(backend).run(strategy, QUESTION)
    assert backend.requests[0].params.max_tokens == 50
    assert result.outcome.data["windows"][0]["generated_tokens"] == 50
    assert result.answer == "10"


async def test_composes_under_fork():
    class TwoSamples(Strategy):
        name = "two-summarizers-test"
        inner: SummarizingReasoner

        def flow(self, task: Task):
            outcomes = yield Fork([self.inner.flow(task) for _ in range(2)])
            return Outcome(answer=outcomes[0].answer, text="", samples=list(outcomes))

    strategy = TwoSamples(
        inner=SummarizingReasoner(checkpoint_tokens=400, summary_max_tokens=40, continuation=False)
    )
    result = await Orchestrator(FakeBackend(responder)).run(strategy, QUESTION)
    assert [s.answer for s in result.outcome.samples] == ["10", "10"]
    spans = {e["span"] for e in result.trace.of_type("decision")}
    assert spans == {"0", "1"}


async def test_budget_cut_returns_best_so_far():
    backend = FakeBackend(responder)
    strategy = SummarizingReasoner(
        checkpoint_tokens=400, summary_max_tokens=40, max_summaries=3, continuation=False
    )
    result = await Orchestrator(backend, budget_tokens=200).run(strategy, QUESTION)
    assert result.budget_limited
    assert result.usage.total_tokens <= 200


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="strategy"):
        build_strategy({"name": "summarize", "checkpoint_tokens": None})
    with pytest.raises(ConfigError, match="summary_max_tokens .* checkpoint_tokens"):
        build_strategy({"name": "summarize", "checkpoint_tokens": 300, "summary_max_tokens": 256})
    with pytest.raises(ConfigError, match="max_summaries"):
        build_strategy({"name": "summarize", "max_summaries": -1})
    with pytest.raises(Exception, match="no_such_template"):
        build_strategy({"name": "summarize", "summary_template": "no_such_template"})
    s = build_strategy({"name": "summarize", "checkpoint_tokens": 600, "max_summaries": 2})
    assert isinstance(s, SummarizingReasoner) and s.max_summaries == 2
