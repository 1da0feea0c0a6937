"""``deepconf``: early termination of weak traces, live against FakeBackend and by replay."""

from __future__ import annotations

import pytest

from ponder import FakeBackend, Orchestrator
from ponder.backends.base import Capabilities
from ponder.behaviour.records import QuestionRecord, SampleRecord
from ponder.errors import CapabilityMissing
from ponder.evaluation.early_stop_replay import replay_early_stop
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.strategies import build_strategy
from ponder.strategies.deepconf import DeepConfSample

HIGH, LOW = 5.0, 0.5


def trace(conf: list[float], answer: str) -> tuple[list[float], str]:
    return conf, answer


# seed -> (per-token confidence, answer). Warm-up (seeds 0-3) all confident, answers mixed;
# seed 4 collapses after 20 tokens, seed 5 stays confident.
TRACES = {
    0: trace([HIGH] * 40, "7"),
    1: trace([HIGH] * 40, "7"),
    2: trace([HIGH - 1] * 40, "8"),
    3: trace([HIGH] * 40, "7"),
    4: trace([HIGH] * 20 + [LOW] * 60, "9"),
    5: trace([HIGH] * 40, "7"),
}


def respond(req: GenerationRequest, i: int) -> Choice:
    """Continue the scripted trace of the request's seed from the tokens already in the prefix."""
    seed = (req.params.seed or 0) + i
    conf, answer = TRACES[seed]
    words = ["w"] * (len(conf) - 1) + [f"\\boxed{{{answer}}}"]
    done = len((req.assistant_prefix or "").split())
    part = words[done : done + req.params.max_tokens]
    finish = "stop" if done + len(part) == len(words) else "length"
    return Choice(
        text=" ".join(part) + " ",
        finish_reason=finish,
        completion_tokens=len(part),
        token_logprobs=[-0.1] * len(part),
        top_logprobs=[{"a": -c} for c in conf[done : done + len(part)]],
    )


def strategy(**kw: object) -> DeepConfSample:
    base = {
        "k": 6,
        "warmup": 4,
        "window": 8,
        "segment": 8,
        "batch": 2,
        "seed": 0,
        "percentile": 10.0,
        "consensus": 1.0,
    }
    return DeepConfSample(**{**base, **kw})


async def test_weak_trace_is_stopped_after_its_window_drops():
    backend = FakeBackend(respond)
    result = await Orchestrator(backend).run(strategy(), "q")
    out = result.outcome
    assert out.answer == "7"
    stopped = [s for s in out.samples if s.data.get("stopped_at") is not None]
    assert [s.data["seed"] for s in stopped] == [4]
    # threshold = 10th percentile of warm-up lowest groups (4, 5, 5, 5) = 4.3; seed 4's window
    # ending at token 24 has mean (4*5 + 4*0.5)/8 = 2.75; it is seen at the end of segment 3
    assert out.data["threshold"] == pytest.approx(4.3)
    assert stopped[0].data["stopped_at"] == 22  # first window below 4.3: 20*5..+2 lows
    assert stopped[0].data["tokens"] == 24  # one segment of 8 past token 16
    seg_requests = [r for r in backend.requests if r.params.seed == 4]
    assert len(seg_requests) == 3 and seg_requests[1].assistant_prefix
    assert all(r.params.max_tokens == 8 for r in seg_requests)
    # the server generated 24 of seed 4's 80 tokens
    assert result.usage.completion_tokens == 4 * 40 + 24 + 40
    assert out.data["generated_tokens"] == result.usage.completion_tokens
    events = [e.get("event") for e in result.trace.events]
    assert "deepconf_threshold" in events and "trace_stopped" in events


async def test_consensus_stops_drawing_new_traces():
    backend = FakeBackend(respond)
    result = await Orchestrator(backend).run(strategy(consensus=0.7), "q")
    # warm-up: 7, 7, 8, 7 weighted 15 vs 4 -> share 0.79 >= 0.7: no later trace is drawn
    assert len(result.outcome.samples) == 4
    assert len(backend.requests) == 1 and backend.requests[0].params.n == 4


async def test_needs_logprobs_and_continuation():
    no_lp = FakeBackend(lambda req, i: Choice("\\boxed{1}", "stop", 3))
    with pytest.raises(CapabilityMissing, match="logprobs"):
        await Orchestrator(no_lp).run(strategy(), "q")
    no_cont = FakeBackend(respond, capabilities=Capabilities(continuation=False, logprobs=True))
    with pytest.raises(CapabilityMissing, match="continuation"):
        await Orchestrator(no_cont).run(strategy(), "q")


def test_config_validation():
    assert build_strategy({"name": "deepconf", "k": 8, "warmup": 2}).warmup == 2
    with pytest.raises(Exception, match="warmup"):
        build_strategy({"name": "deepconf", "k": 2, "warmup": 4})


def record(traces: dict[int, tuple[list[float], str]], gold: str) -> QuestionRecord:
    samples = [
        SampleRecord(
            seed=seed,
            text=f"... \\boxed{{{ans}}}",
            answer=ans,
            correct=ans == gold,
            finish_reason="stop",
            tokens=len(conf),
            lp=[-0.1] * len(conf),
            conf=conf,
        )
        for seed, (conf, ans) in sorted(traces.items())
    ]
    return QuestionRecord(id="q1", question="q", gold=gold, samples=samples)


def test_replay_matches_the_live_rule():
    [r] = replay_early_stop([record(TRACES, "7")], strategy())
    assert r.correct and r.answer == "7"
    assert r.stopped == 1 and r.drawn == 6
    assert r.generated_tokens == 4 * 40 + 24 + 40
    assert r.full_tokens == 5 * 40 + 80
    [r2] = replay_early_stop([record(TRACES, "7")], strategy(consensus=0.7))
    assert r2.drawn == 4 and r2.generated_tokens == 160


async def test_fixed_threshold_and_no_consensus_stop():
    backend = FakeBackend(respond)
    # a threshold above every window stops each later trace at its first full window
    s = strategy(threshold=100.0, consensus=None, k=5)
    result = await Orchestrator(backend).run(s, "q")
    [later] = [x for x in result.outcome.samples if not x.data.get("warmup")]
    assert later.data["stopped_at"] == 8 and later.data["tokens"] == 8
    assert result.outcome.data["threshold"] == 100.0


async def test_a_failed_later_trace_does_not_fail_the_run():
    from ponder.errors import BadRequestError

    def flaky(req: GenerationRequest, i: int) -> object:
        if req.params.seed == 4:
            return BadRequestError("boom")
        return respond(req, i)

    result = await Orchestrator(FakeBackend(flaky)).run(strategy(), "q")
    failed = [s for s in result.outcome.samples if s.data.get("error")]
    assert len(failed) == 1 and isinstance(failed[0].error, BadRequestError)
    assert result.outcome.answer == "7"
