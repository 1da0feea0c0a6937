"""The judge at inference: the Bayesian stop, judge-weighted votes, SSA with scores, escalation,
and their replay against ``drr_sample`` and ``adaptive`` on the fixture collection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from ponder import ChainConfig, FakeBackend, Orchestrator
from ponder.aggregator import SSA, build_aggregator
from ponder.errors import ConfigError, PonderError
from ponder.protocol.actions import Flow, Outcome, Task
from ponder.protocol.strategy import Strategy
from ponder.stopping.bayes import betainc, judge_weights, weighted_stay, weighted_votes
from ponder.stopping.features import beta_stay
from ponder.strategies.cot import ChainOfThought
from ponder.strategies.drr_bayes import bayes_pick, bayes_score
from ponder.strategies.escalate import Escalate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "behaviour"


def test_weighted_stay_is_adaptive_consistency_for_unit_weights() -> None:
    scipy = pytest.importorskip("scipy.special")
    for top, second in [(1, 0), (3, 1), (5, 2), (2, 2), (8, 0), (6, 3)]:
        assert weighted_stay([top, second, 0]) == pytest.approx(beta_stay(top, second), abs=1e-12)
    for a, b in [(2.3, 1.7), (10.5, 0.2), (0.3, 9.0), (50.0, 45.0)]:
        assert betainc(a, b, 0.5) == pytest.approx(float(scipy.betainc(a, b, 0.5)), rel=1e-9)
    assert weighted_stay([]) == 0.0
    with pytest.raises(ValueError):
        weighted_stay([1.0], prior=0)


def test_judge_weights_move_evidence_between_answers() -> None:
    assert judge_weights([0.1, None, 0.3], floor=0.05) == [0.1, 0.05, 0.3]
    norm = judge_weights([0.1, 0.3], normalize=True)
    assert sum(norm) == pytest.approx(2.0) and norm[1] == pytest.approx(3 * norm[0])
    groups = weighted_votes(["8", "7", "7", None], [0.9, 0.1, 0.2, 0.5])
    assert [(g.answer, g.members) for g in groups] == [("8", (0,)), ("7", (1, 2))]
    # one confident sample outweighs two doubted ones: the leader is the judge's, not the count's
    assert bayes_pick(["8", "7", "7"], [0.9, 0.1, 0.2], floor=0.02) == "8"
    assert bayes_score(["8"], [0.9], 1.0, 0.02, min_samples=2) == 0.0
    agree = bayes_score(["7", "7", "7"], [0.5, 0.5, 0.5], 1.0, 0.02, 2)
    split = bayes_score(["7", "8", "7"], [0.5, 0.5, 0.5], 1.0, 0.02, 2)
    assert agree > split


def _samples(ps: list[float | None], answers: list[str]) -> list[Outcome]:
    return [
        Outcome(answer=a, text=f"reasoning {i}", data={} if p is None else {"p": p})
        for i, (a, p) in enumerate(zip(answers, ps, strict=True))
    ]


def test_judge_weighted_votes_and_refuses_samples_without_a_judge() -> None:
    agg = build_aggregator({"name": "judge_weighted"})
    out = agg.choose(Task("q"), _samples([0.9, 0.1, 0.2], ["8", "7", "7"]))
    assert out.answer == "8" and out.confidence == pytest.approx(0.9 / 1.2)
    assert (
        build_aggregator({"name": "judge_weighted", "power": 0})
        .choose(Task("q"), _samples([0.9, 0.1, 0.2], ["8", "7", "7"]))
        .answer
        == "7"
    )  # power 0: plain majority
    with pytest.raises(ConfigError, match="aggregator.missing: judge_weighted needs"):
        agg.choose(Task("q"), _samples([0.9, None], ["8", "7"]))
    floor = build_aggregator({"name": "judge_weighted", "missing": "floor"})
    assert floor.choose(Task("q"), _samples([0.9, None], ["8", "7"])).answer == "8"
    with pytest.raises(PonderError, match="missing"):
        build_aggregator({"name": "judge_weighted", "missing": "guess"})


def test_config_errors_name_the_field_and_the_choices() -> None:
    with pytest.raises(PonderError, match="prior"):
        ChainConfig.from_dict({"strategy": {"name": "drr_bayes", "prior": 0}})
    with pytest.raises(PonderError, match="judge_weighted"):  # the valid names are listed
        ChainConfig.from_dict({"strategy": {"name": "drr_sample", "aggregator": "judge_weigted"}})
    with pytest.raises(PonderError, match="below"):
        ChainConfig.from_dict(
            {"strategy": {"name": "escalate", "below": 2, "inner": "cot", "then": "cot"}}
        )


def test_ssa_shows_the_judge_scores_only_when_asked() -> None:
    samples = _samples([0.31, None], ["3", "4"])
    off = SSA().request(Task("q?"), samples)[0].messages[1]["content"]
    on = SSA(judge_scores=True).request(Task("q?"), samples)[0].messages[1]["content"]
    line = "A trained judge's estimate that candidate 1 is right: 0.31\n"
    assert line not in off and line in on
    assert on.replace(line, "") == off  # the only difference


class Judged(Strategy):
    """A test stand-in: answers ``answer`` with ``confidence`` (and its samples)."""

    name: ClassVar[str] = "_judged"
    answer: str | None = "5"
    confidence: float | None = 0.2

    def flow(self, task: Task) -> Flow:
        samples = [Outcome(answer="5", text="a"), Outcome(answer="7", text="b")]
        return Outcome(answer=self.answer, text="x", confidence=self.confidence, samples=samples)
        yield  # pragma: no cover


def _run(strategy: Strategy) -> tuple[Outcome, FakeBackend, FakeBackend]:
    small = FakeBackend(["\\boxed{5}"] * 3)
    big = FakeBackend(["the larger model says \\boxed{7}"] * 3)
    result = asyncio.run(Orchestrator({"default": small, "escalate": big}).run(strategy, "q"))
    return result.outcome, small, big


def test_escalation_hands_doubted_questions_to_the_larger_role() -> None:
    cot = ChainOfThought(max_tokens=32)
    out, small, big = _run(Escalate(inner=Judged(confidence=0.2), then=cot, below=0.5))
    assert out.answer == "7" and out.data["escalated"] and out.data["first_answer"] == "5"
    assert [r.role for r in big.requests] == ["escalate"] and not small.requests
    out, _, big = _run(Escalate(inner=Judged(confidence=0.8), then=cot, below=0.5))
    assert out.answer == "5" and out.data["escalated"] is False and not big.requests
    # an abstention escalates too; the withheld answer is kept as the first answer
    out, _, _ = _run(Escalate(inner=Judged(answer=None, confidence=0.9), then=cot))
    assert out.data["why"] == "no answer" and out.answer == "7"
    # a failed escalation keeps the first outcome as it was
    out, _, _ = _run(Escalate(inner=Judged(confidence=0.1), then=Judged(answer=None)))
    assert out.answer == "5" and out.data["escalation_failed"] == "no answer"
    # role: default keeps the same model (more samples instead of a larger one)
    out, small, big = _run(Escalate(inner=Judged(), then=cot, role="default"))
    assert small.requests and not big.requests
    assert Escalate(inner=Judged(), then=cot).roles() == {"default", "escalate"}
    drr = ChainConfig.from_dict({"strategy": {"name": "drr_think", "dm": "default"}}).strategy
    [req] = Escalate(inner=Judged(), then=drr).requires()
    assert req.role == "escalate" and req.any_of == ("continuation",)


def test_escalation_can_pool_both_stages_samples() -> None:
    then = ChainConfig.from_dict(
        {"strategy": {"name": "sample", "k": 3, "seed": 1, "inner": {"name": "cot"}}}
    ).strategy
    out, _, big = _run(Escalate(inner=Judged(), then=then, pool=True))
    assert out.data["pooled"] == 5 and out.answer == "7"  # 5, 7 + three 7s


def test_replay_compares_the_bayes_stop_with_drr_sample_and_adaptive() -> None:
    from ponder.behaviour.records import read_collection
    from ponder.learning.drr.compare import bayes, compare_stops
    from ponder.learning.drr.replay import fixed, score_collection
    from ponder.stopping.model import load_dm

    dm = load_dm("default")
    manifest, records = read_collection(FIXTURES / "train")
    scored = score_collection(dm, records, 320)
    runs = {r.label: r for r in compare_stops(dm, scored)}
    for name in ("fixed@8", "adaptive@0.75", "dm_sample@0.5", "bayes@0.9", "judge_vote@8"):
        assert len(runs[name].units) == len(scored) == 8
    # a stricter posterior never stops earlier
    strict, loose = runs["bayes@0.99"].units, runs["bayes@0.7"].units
    assert all(a.stopped_at <= b.stopped_at for a, b in zip(loose, strict, strict=True))
    q = scored[0]
    assert bayes(q, 0.0).stopped_at == 2  # min_samples
    assert bayes(q, 1.0).stopped_at == len(q.traces)
    assert runs["fixed@8"].units == [fixed(s, 8) for s in scored]
