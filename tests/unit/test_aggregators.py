import pytest

from ponder import FakeBackend, Orchestrator
from ponder.aggregator import (
    SSA,
    BestOfN,
    LLMSelect,
    Majority,
    Scorer,
    Weighted,
    aggregator_names,
    build_aggregator,
)
from ponder.aggregator.candidates import TRUNCATION_MARK, candidate_views
from ponder.aggregator.llm_select import parse_pick
from ponder.errors import AllSamplesFailed, ConfigError, UnknownNameError, UpstreamServerError
from ponder.evaluation.offline import Replay
from ponder.protocol.actions import Outcome, Task

TASK = Task("What is one half?")


def outs(*answers, conf=None, scores=None):
    res = []
    for i, a in enumerate(answers):
        data = {"score": scores[i]} if scores else {}
        c = conf[i] if conf else None
        res.append(Outcome(answer=a, text=f"reasoning {i} \\boxed{{{a}}}", confidence=c, data=data))
    return res


def test_majority_counts_equivalent_forms_as_one_vote():
    out = Majority().choose(TASK, outs("3", "1/2", "3", "0.5", "\\frac{1}{2}"))
    assert out.answer == "1/2"
    assert out.data["votes"] == {"3": 2.0, "1/2": 3.0}
    assert out.confidence == pytest.approx(3 / 5)


def test_majority_ignores_unanswered_and_raises_when_none_answered():
    assert Majority().choose(TASK, outs(None, "7", None)).answer == "7"
    with pytest.raises(AllSamplesFailed) as exc:
        Majority().choose(TASK, outs(None, None))
    assert len(exc.value.causes) == 2


def test_weighted_by_confidence_can_overrule_the_majority():
    samples = outs("5", "5", "9", conf=[-3.0, -3.0, -0.01])
    assert Majority().choose(TASK, samples).answer == "5"
    assert Weighted(by="confidence").choose(TASK, samples).answer == "9"


def test_weighted_without_weights_falls_back_to_majority():
    out = Weighted(by="confidence").choose(TASK, outs("5", "5", "9"))
    assert out.answer == "5"
    assert "fallback" in out.data


async def test_best_of_n_with_precomputed_scores():
    agg = Replay(aggregator=BestOfN(), samples=tuple(outs("5", "5", "9", scores=[0.1, 0.2, 0.9])))
    result = await Orchestrator(FakeBackend([])).run(agg, "q")
    assert result.answer == "9"
    assert result.usage.calls == 0


def double_score(question, text, answer):
    return float(answer) * 2


async def test_best_of_n_with_function_scorer():
    scorer = Scorer(kind="function", function="tests.unit.test_aggregators:double_score")
    agg = Replay(aggregator=BestOfN(scorer=scorer), samples=tuple(outs("5", "2", "9", "1")))
    result = await Orchestrator(FakeBackend([])).run(agg, "q")
    assert result.answer == "9"
    assert result.outcome.data["scores"] == [10.0, 4.0, 18.0, 2.0]


def test_function_scorer_that_cannot_be_imported_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot import"):
        Scorer(kind="function", function="no_such_module_xyz:f")


async def test_judge_scorer_goes_to_the_aggregator_backend():
    sampler = FakeBackend([])
    judge = FakeBackend(lambda req, i: "9" if "answer: 7" in req.messages[0]["content"] else "2")
    agg = build_aggregator({"name": "weighted", "by": "score", "scorer": {"kind": "judge"}})
    strat = Replay(aggregator=agg, samples=tuple(outs("3", "3", "7")))
    result = await Orchestrator({"default": sampler, "aggregator": judge}).run(strat, "q")
    assert result.answer == "7"  # 9 > 2 + 2
    assert len(judge.requests) == 3 and not sampler.requests
    assert {r.purpose for r in judge.requests} == {"judge"}


async def test_judge_scorer_failing_on_every_candidate_fails_the_run_with_the_cause():
    judge = FakeBackend(lambda req, i: UpstreamServerError("judge at http://judge:9/v1 said 500"))
    agg = build_aggregator({"name": "best_of_n", "scorer": {"kind": "judge"}})
    strat = Replay(aggregator=agg, samples=tuple(outs("3", "7")))
    with pytest.raises(UpstreamServerError, match="http://judge:9/v1"):
        await Orchestrator({"default": FakeBackend([]), "aggregator": judge}).run(strat, "q")


async def test_judge_scorer_with_some_failures_scores_the_rest():
    def reply(req, i):
        if "answer: 3" in req.messages[0]["content"]:
            return UpstreamServerError("judge at http://judge:9/v1 said 500")
        return "8"

    agg = build_aggregator({"name": "best_of_n", "scorer": {"kind": "judge"}})
    strat = Replay(aggregator=agg, samples=tuple(outs("3", "7")))
    orch = Orchestrator({"default": FakeBackend([]), "aggregator": FakeBackend(reply)})
    result = await orch.run(strat, "q")
    assert result.answer == "7"
    [note] = [e for e in result.trace.of_type("decision") if e["event"] == "judge_scores"]
    assert note["failed"] == 1 and note["scores"] == [None, 8.0]


async def test_ssa_prompt_numbers_candidates_and_routes_to_aggregator_role():
    sampler = FakeBackend([])
    agg_backend = FakeBackend(["Candidates 1 and 3 agree. \\boxed{12}"])
    strat = Replay(aggregator=SSA(), samples=tuple(outs("12", "15", "12", None)))
    result = await Orchestrator({"default": sampler, "aggregator": agg_backend}).run(strat, "q?")
    assert result.answer == "12"
    [req] = agg_backend.requests
    assert req.role == "aggregator" and req.purpose == "aggregate"
    prompt = req.messages[-1]["content"]
    assert prompt.startswith("Question:\nq?")
    for n in (1, 2, 3):
        assert f"=== Candidate {n} ===" in prompt
    assert "Candidate 4" not in prompt  # the unanswered sample is not shown
    assert "Final answer of candidate 2: 15" in prompt
    assert result.usage.by_purpose["aggregate"].calls == 1


async def test_ssa_falls_back_to_majority_when_aggregator_states_no_answer():
    strat = Replay(aggregator=SSA(), samples=tuple(outs("4", "4", "6")))
    result = await Orchestrator(FakeBackend(["I cannot decide."])).run(strat, "q")
    assert result.answer == "4"
    assert "fallback" in result.outcome.data
    assert any(e["event"] == "ssa_fallback" for e in result.trace.of_type("decision"))


async def test_ssa_output_cut_at_max_tokens_counts_only_with_a_boxed_answer():
    """The last number of unfinished reasoning is not an answer: majority decides."""
    strat = Replay(aggregator=SSA(max_tokens=8), samples=tuple(outs("4", "4", "6")))
    cut = "Candidate 1 computes 3 + 3 = 6 and candidate 2 then"  # 12 words: cut at 8
    result = await Orchestrator(FakeBackend([cut])).run(strat, "q")
    assert result.answer == "4"  # not "6", the last number of the cut text
    assert "cut at max_tokens=8" in result.outcome.data["fallback"]
    boxed = "Both agree: \\boxed{4} and so on and on and on and on"
    result = await Orchestrator(FakeBackend([boxed])).run(
        Replay(aggregator=SSA(max_tokens=6), samples=tuple(outs("6", "6", "4"))), "q"
    )
    assert result.answer == "4" and "fallback" not in result.outcome.data  # boxed before the cut


def test_long_candidates_are_truncated_but_keep_their_answer():
    long = Outcome(answer="42", text="step " * 2000 + "so the answer is 42")
    [view] = candidate_views([long], max_candidates=4, max_candidate_tokens=100)
    assert view.truncated and TRUNCATION_MARK in view.reasoning
    assert view.answer == "42"
    assert view.reasoning.endswith("42")
    assert len(view.reasoning) < len(long.text) / 5


def test_candidate_set_is_capped():
    views = candidate_views(outs(*[str(i) for i in range(30)]), 20, 0)
    assert len(views) == 20 and views[-1].number == 20


def test_parse_pick():
    assert parse_pick("Candidate 2 is right. \\boxed{2}", 3) == 2
    assert parse_pick("\\boxed{5}", 3) is None
    assert parse_pick("no idea", 3) is None


async def test_llm_select_returns_the_picked_candidate_answer():
    strat = Replay(aggregator=LLMSelect(), samples=tuple(outs("10", "11", "10")))
    result = await Orchestrator(FakeBackend(["\\boxed{2}"])).run(strat, "q")
    assert result.answer == "11"
    assert result.outcome.data["chosen"] == 1


def test_registry_lists_valid_names_and_paths_errors():
    assert {"majority", "weighted", "best_of_n", "ssa", "llm_select"} <= set(aggregator_names())
    with pytest.raises(UnknownNameError) as exc:
        build_aggregator({"name": "mojority"})
    assert "majority" in str(exc.value) and exc.value.field == "aggregator.name"
    with pytest.raises(ConfigError) as exc2:
        build_aggregator({"name": "ssa", "max_candidates": 0})
    assert exc2.value.field == "aggregator.max_candidates"
