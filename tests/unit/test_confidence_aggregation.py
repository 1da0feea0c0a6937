"""Trace confidence on outcomes, and confidence-filtered voting (DeepConf offline)."""

from __future__ import annotations

import pytest

from ponder import FakeBackend, Orchestrator
from ponder.aggregator import ConfidenceFiltered, build_aggregator
from ponder.confidence import (
    bottom_fraction,
    choice_confidences,
    first_window_below,
    group_confidences,
    lowest_group,
    percentile,
    tail_confidence,
    token_confidence,
    trace_confidence,
)
from ponder.errors import CapabilityMissing, ConfigError
from ponder.protocol.actions import Outcome, Task
from ponder.protocol.requests import Choice
from ponder.strategies import ChainOfThought, ParallelSample

TASK = Task("q")


def test_token_and_group_measures_on_a_known_sequence():
    assert token_confidence({"a": -1.0, "b": -3.0}) == 2.0
    conf = [5.0, 5.0, 1.0, 1.0, 5.0, 5.0]
    assert group_confidences(conf, 2) == [5.0, 3.0, 1.0, 3.0, 5.0]
    assert lowest_group(conf, 2) == 1.0
    assert bottom_fraction(conf, 2, 0.4) == 2.0  # the two lowest groups: 1 and 3
    assert tail_confidence(conf, 2) == 5.0
    tc = trace_confidence(conf, window=2, tail=2)
    assert (tc.mean, tc.lowest_group, tc.tail) == (pytest.approx(11 / 3), 1.0, 5.0)
    assert trace_confidence([]).mean is None


def test_first_window_below_and_percentile():
    conf = [5.0] * 4 + [0.0] * 4 + [5.0] * 4
    assert first_window_below(conf, 3.0, window=4) == 6  # window ending at token 6: mean 2.5
    assert first_window_below(conf, 3.0, window=4, after=8) == 9  # only windows ending at 9..
    assert first_window_below(conf, 3.0, window=4, after=10) is None  # 11, 12: 3.75, 5
    assert first_window_below([0.0] * 3, 3.0, window=4) is None  # shorter than one window
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0


def test_choice_confidences_prefer_top_logprobs():
    assert choice_confidences([-0.5], [{"a": -0.5, "b": -1.5}]) == ([1.0], "top_logprobs")
    assert choice_confidences([-0.5, -0.25], None) == ([-0.5, -0.25], "chosen")
    assert choice_confidences(None, None) == ([], None)


def _choice(text: str, conf: float, n: int = 4) -> Choice:
    return Choice(
        text=text,
        finish_reason="stop",
        completion_tokens=n,
        token_logprobs=[-0.1] * n,
        top_logprobs=[{"a": -conf, "b": -conf}] * n,
    )


async def test_cot_puts_trace_confidence_on_outcome_and_trace():
    backend = FakeBackend([_choice("so \\boxed{7}", 3.0)])
    result = await Orchestrator(backend).run(ChainOfThought(logprobs=True), "q")
    assert backend.requests[0].params.top_logprobs == 5
    data = result.outcome.data
    assert data["confidence_source"] == "top_logprobs"
    assert data["trace_confidence"]["lowest_group"] == pytest.approx(3.0)
    notes = [e for e in result.trace.events if e.get("event") == "trace_confidence"]
    assert notes and notes[0]["lowest_group"] == pytest.approx(3.0)


async def test_sample_outcomes_carry_trace_confidence():
    backend = FakeBackend(lambda req, i: _choice(f"\\boxed{{{i}}}", 1.0 + i))
    strategy = ParallelSample(k=3, seed=1, inner=ChainOfThought(logprobs=True, temperature=0.7))
    result = await Orchestrator(backend).run(strategy, "q")
    lows = [s.data["trace_confidence"]["lowest_group"] for s in result.outcome.samples]
    assert lows == pytest.approx([1.0, 2.0, 3.0])


@pytest.mark.parametrize("k", [1, 3])
async def test_backend_without_logprobs_is_a_clear_error(k):
    backend = FakeBackend(lambda req, i: Choice("\\boxed{1}", "stop", 3))
    strategy = (
        ChainOfThought(logprobs=True)
        if k == 1
        else ParallelSample(k=k, seed=1, inner=ChainOfThought(logprobs=True, temperature=0.7))
    )
    with pytest.raises(CapabilityMissing, match="capability 'logprobs'"):
        await Orchestrator(backend).run(strategy, "q")


def outcomes(answers, lows):
    return [
        Outcome(
            answer=a,
            text=f"\\boxed{{{a}}}",
            data={
                "trace_confidence": {"mean": c, "lowest_group": c, "bottom10": c, "tail": c},
                "confidence_source": "top_logprobs",
            },
        )
        for a, c in zip(answers, lows, strict=True)
    ]


def test_filter_keeps_the_confident_minority():
    # majority says 5 (four weak traces); the two confident traces say 9
    samples = outcomes(["5", "5", "5", "5", "9", "9"], [1.0, 1.2, 1.1, 0.9, 4.0, 3.5])
    assert build_aggregator("majority").choose(TASK, samples).answer == "5"
    out = ConfidenceFiltered(keep=0.3).choose(TASK, samples)
    assert out.answer == "9"
    assert out.data["kept"] == [4, 5]
    # keeping all, the weighted vote still counts 4.4 for 5 against 7.5 for 9
    assert ConfidenceFiltered(keep=1.0).choose(TASK, samples).answer == "9"
    assert ConfidenceFiltered(keep=1.0, weighting="uniform").choose(TASK, samples).answer == "5"


def test_filter_from_config_and_errors():
    agg = build_aggregator({"name": "confidence_filter", "measure": "tail", "keep": 0.1})
    assert isinstance(agg, ConfidenceFiltered) and agg.measure == "tail"
    with pytest.raises(ConfigError, match="logprobs: true"):
        agg.choose(TASK, [Outcome(answer="1", text="")])
    with pytest.raises(ConfigError):
        build_aggregator({"name": "confidence_filter", "measure": "median"})


def test_chosen_logprob_confidences_weigh_by_exp():
    samples = outcomes(["1", "2", "2"], [-0.1, -2.0, -2.0])
    for s in samples:
        s.data["confidence_source"] = "chosen"
    # exp(-0.1)=0.90 vs 2*exp(-2)=0.27
    assert ConfidenceFiltered(keep=1.0).choose(TASK, samples).answer == "1"


def test_vllm_top_logprobs_become_token_confidence():
    from dataclasses import dataclass

    from ponder.backends.vllm_engine import _top_logprobs

    @dataclass
    class Lp:
        logprob: float
        decoded_token: str | None = None

    # vLLM: top-2 plus the sampled token (id 9) outside them
    pos = {1: Lp(-0.1, "a"), 2: Lp(-2.5, "b"), 9: Lp(-4.0, "z")}
    [top] = _top_logprobs([pos], 2)
    assert top == {"a": -0.1, "b": -2.5}
    assert choice_confidences([-4.0], [top])[0] == [pytest.approx(1.3)]
