import pytest

from ponder import FakeBackend, Orchestrator
from ponder.errors import AllSamplesFailed, ConfigError, UpstreamServerError
from ponder.orchestrator import RetryPolicy
from ponder.protocol.actions import Generate, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams
from ponder.protocol.strategy import Strategy
from ponder.strategies import AdaptiveSample, ParallelSample, build_strategy

NO_RETRY = RetryPolicy(max_attempts=1)


async def test_single_call_inner_uses_one_request_with_n_and_records_seeds():
    backend = FakeBackend(lambda req, i: ["\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{3}"][i % 3])
    strat = build_strategy(
        {"name": "sample", "k": 6, "seed": 100, "inner": {"name": "cot", "temperature": 0.7}}
    )
    result = await Orchestrator(backend).run(strat, "q")
    [req] = backend.requests
    assert req.params.n == 6 and req.params.seed == 100 and req.params.temperature == 0.7
    assert result.answer == "1/2"  # 1/2 and 0.5 are one vote: 4 against 2
    assert [s.data["seed"] for s in result.outcome.samples] == list(range(100, 106))
    assert result.usage.completion_tokens == 6


class TwoStep(Strategy):
    """A multi-step inner strategy: draft, then finish; has a seed like real strategies."""

    name = "two-step-test"
    seed: int | None = None

    def flow(self, task: Task):
        p = SamplingParams(seed=self.seed, temperature=0.7)
        [draft] = yield Generate.of(GenerationRequest(prompt="draft", params=p))
        if not isinstance(draft, Completion):
            raise draft.error
        [final] = yield Generate.of(GenerationRequest(prompt=draft.text, params=p))
        if not isinstance(final, Completion):
            raise final.error
        return Outcome(answer=final.text.split()[-1], text=final.text)


async def test_multi_step_inner_is_forked_with_seed_base_plus_i():
    def respond(req, i):
        if req.prompt == "draft":
            return f"draft-{req.params.seed}"
        return f"final {7 if req.params.seed != 12 else 9}"

    backend = FakeBackend(respond)
    result = await Orchestrator(backend).run(ParallelSample(k=3, seed=10, inner=TwoStep()), "q")
    assert result.answer == "7"
    assert sorted(s.data["seed"] for s in result.outcome.samples) == [10, 11, 12]
    assert sorted(r.params.seed for r in backend.requests) == [10, 10, 11, 11, 12, 12]
    assert len(result.trace.of_type("fork")) == 1


async def test_random_base_seed_is_recorded_for_reproduction():
    backend = FakeBackend(lambda req, i: "\\boxed{1}")
    result = await Orchestrator(backend).run(ParallelSample(k=2), "q")
    base = result.outcome.data["base_seed"]
    assert isinstance(base, int)
    [note] = [e for e in result.trace.of_type("decision") if e["event"] == "sampling"]
    assert note["base_seed"] == base


async def test_failed_samples_are_recorded_and_the_rest_aggregated():
    def respond(req, i):
        if req.prompt == "draft" and req.params.seed == 1:
            raise UpstreamServerError("boom")
        return "final 5"

    backend = FakeBackend(respond)
    strat = ParallelSample(k=3, seed=0, inner=TwoStep(), mode="fork")
    result = await Orchestrator(backend, retry=NO_RETRY).run(strat, "q")
    assert result.answer == "5"
    failed = [e for e in result.trace.of_type("decision") if e["event"] == "sample_failed"]
    assert [e["seed"] for e in failed] == [1]
    assert "UpstreamServerError" in failed[0]["why"]
    assert result.outcome.samples[1].answer is None


async def test_samples_without_an_answer_are_failures_too():
    backend = FakeBackend(lambda req, i: ["no idea", "\\boxed{8}"][i])
    result = await Orchestrator(backend).run(ParallelSample(k=2, seed=0), "q")
    assert result.answer == "8"
    failed = [e for e in result.trace.of_type("decision") if e["event"] == "sample_failed"]
    assert len(failed) == 1 and failed[0]["why"] == "no extractable answer"


async def test_all_samples_failed_carries_every_cause():
    backend = FakeBackend(lambda req, i: UpstreamServerError(f"down {req.params.seed}"))
    strat = ParallelSample(k=3, seed=0, inner=TwoStep())
    with pytest.raises(AllSamplesFailed) as exc:
        await Orchestrator(backend, retry=NO_RETRY).run(strat, "q")
    assert len(exc.value.causes) == 3
    assert all("down" in str(c) for c in exc.value.causes)


async def test_whole_n_request_failure_raises_all_samples_failed():
    backend = FakeBackend(lambda req, i: UpstreamServerError("down"))
    with pytest.raises(AllSamplesFailed) as exc:
        await Orchestrator(backend, retry=NO_RETRY).run(ParallelSample(k=4, seed=0), "q")
    assert len(exc.value.causes) == 4


async def test_adaptive_stops_early_when_samples_agree():
    backend = FakeBackend(lambda req, i: "\\boxed{4}")
    result = await Orchestrator(backend).run(AdaptiveSample(k=8, seed=5), "q")
    assert result.answer == "4"
    assert len(result.outcome.samples) == 2 and result.outcome.data["drawn"] == 2
    assert [r.params.n for r in backend.requests] == [2]


async def test_adaptive_keeps_drawing_while_samples_disagree():
    backend = FakeBackend(lambda req, i: f"\\boxed{{{req.params.seed + i}}}")
    result = await Orchestrator(backend).run(AdaptiveSample(k=8, seed=0), "q")
    assert [r.params.n for r in backend.requests] == [2, 2, 4]
    assert [r.params.seed for r in backend.requests] == [0, 2, 4]
    assert [s.answer for s in result.outcome.samples] == [str(i) for i in range(8)]
    rounds = [e for e in result.trace.of_type("decision") if e["event"] == "adaptive_round"]
    assert [e["drawn"] for e in rounds] == [2, 4, 8]


def test_adaptive_schedule_is_validated():
    with pytest.raises(ConfigError) as exc:
        build_strategy({"name": "adaptive", "k": 4, "schedule": [2, 8]})
    assert exc.value.field == "strategy"
    with pytest.raises(ConfigError) as exc2:
        build_strategy({"name": "sample", "aggregator": {"name": "nope"}})
    assert exc2.value.field == "strategy.aggregator.name"
    assert "majority" in str(exc2.value)
