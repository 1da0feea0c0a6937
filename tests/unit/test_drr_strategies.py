"""DRR live strategies with FakeBackend, one stepped by hand, and replay == live."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ponder.backends.fake import FakeBackend
from ponder.behaviour.datasets import Item
from ponder.behaviour.records import ModelInfo, read_collection
from ponder.errors import ConfigError
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.learning.drr.replay import dm_sample, dm_sample_think, dm_think, score_collection
from ponder.orchestrator.engine import Orchestrator
from ponder.protocol.actions import Generate, Note, Task
from ponder.protocol.requests import Choice, Completion, GenerationRequest
from ponder.strategies.drr import Feedback, StopSampling, StopThinking
from ponder.strategies.registry import build_strategy
from tests.unit.drr_helpers import (
    agree_dm,
    check_feedback_keeps_its_answer_under_budget,
    manifest,
    reasoner,
)


@pytest.fixture
def dm_path(tmp_path: Path) -> str:
    return str(agree_dm(manifest(probe_every=4, max_tokens=12, k=4)).save(tmp_path / "dm.json"))


async def test_stop_thinking_stops_when_the_dm_is_sure(dm_path: str) -> None:
    s = StopThinking(dm=dm_path, threshold=0.5, probe_every=4, max_tokens=12)
    r = await Orchestrator(FakeBackend(reasoner)).run(s, Task("q?"))
    assert r.answer == "5" and r.outcome.data["early"] and r.outcome.data["stopped_at"] == 8
    assert r.outcome.confidence == pytest.approx(0.8808, abs=1e-3)
    assert r.usage.completion_tokens == 8 + 2  # two segments + two one-token probes
    late = s.model_copy(update={"threshold": 0.95})
    r2 = await Orchestrator(FakeBackend(reasoner)).run(late, Task("q?"))
    assert not r2.outcome.data["early"] and r2.outcome.data["stopped_at"] == 10
    assert r2.answer == "5"


async def test_abstain_below_withholds_the_answer(dm_path: str) -> None:
    s = StopThinking(dm=dm_path, threshold=0.99, abstain_below=0.95, probe_every=4, max_tokens=12)
    r = await Orchestrator(FakeBackend(reasoner)).run(s, Task("q?"))
    assert r.answer is None and r.outcome.data["abstained"]
    assert r.outcome.data["withheld_answer"] == "5" and r.outcome.confidence is not None


async def test_stop_sampling_stops_once_the_majority_is_trusted(dm_path: str) -> None:
    # seeds 0, 1, 2, 3 answer 5, 7, 5, 7: no majority is trusted (2:1 -> P 0.15), all 4 drawn
    s = StopSampling(dm=dm_path, k=4, threshold=0.6, probe_every=4, max_tokens=12)
    r = await Orchestrator(FakeBackend(reasoner)).run(s, Task("q?"))
    assert r.outcome.data["drawn"] == 4 and r.answer == "5"
    same = build_strategy(
        {
            "name": "drr_sample",
            "dm": dm_path,
            "k": 4,
            "threshold": 0.6,
            "probe_every": 4,
            "max_tokens": 12,
            "round_size": 2,
            "seed": 0,
            "think_threshold": 0.5,
        }
    )
    r2 = await Orchestrator(FakeBackend(reasoner)).run(same, Task("q?"))
    assert r2.outcome.data["drawn"] == 4 and r2.outcome.confidence is not None
    assert all(x.data["early"] and x.data["stopped_at"] == 8 for x in r2.outcome.samples)
    # a reasoner that always answers 5: two agreeing samples are trusted (P 0.62)
    steady = StopSampling(dm=dm_path, k=4, threshold=0.6, probe_every=4, max_tokens=12, seed=0)
    r3 = await Orchestrator(FakeBackend(always_five)).run(steady, Task("q?"))
    assert r3.outcome.data["drawn"] == 2 and r3.answer == "5"
    assert r3.outcome.confidence == pytest.approx(0.6225, abs=1e-3)


def always_five(request: GenerationRequest, i: int) -> Choice:
    params = dataclasses.replace(request.params, seed=0)
    return reasoner(dataclasses.replace(request, params=params), i)


async def test_feedback_loops_while_the_judge_scores_low(dm_path: str) -> None:
    # the DM scores the final answer 0.88 (it repeats the last probe): no feedback at 0.5 ...
    fb = Feedback(dm=dm_path, threshold=0.5, rounds=2, probe_every=4, max_tokens=12)
    r = await Orchestrator(FakeBackend(reasoner)).run(fb, Task("q?"))
    assert len(r.outcome.data["rounds"]) == 1 and r.answer == "5"
    # ... but two re-examinations at 0.95, each seeing the previous answer
    back = FakeBackend(reasoner)
    r2 = await Orchestrator(back).run(fb.model_copy(update={"threshold": 0.95}), Task("q?"))
    assert len(r2.outcome.data["rounds"]) == 3
    last = [q for q in back.requests if q.purpose == "reason"][-1]
    assert "Re-examine" in last.messages[-1]["content"]
    assert last.messages[-2]["role"] == "assistant"
    # self-critique judge: P(yes) = 0.8; no probes are drawn
    crit = Feedback(judge="self_critique", threshold=0.9, rounds=1, probe_every=4, max_tokens=12)
    back = FakeBackend(reasoner)
    r3 = await Orchestrator(back).run(crit, Task("q?"))
    assert [h["score"] for h in r3.outcome.data["rounds"]] == pytest.approx([0.8, 0.8], abs=1e-3)
    assert not any(q.purpose == "probe" for q in back.requests)


def test_stop_thinking_stepped_by_hand(dm_path: str) -> None:
    flow = StopThinking(dm=dm_path, threshold=0.5, probe_every=4, max_tokens=12).flow(Task("q?"))
    seg = next(flow)
    assert isinstance(seg, Generate) and seg.requests[0].params.max_tokens == 4
    top = [{"a": -0.1}]
    four = Choice("a b c d", "length", 4, token_logprobs=[-0.1] * 4, top_logprobs=top * 4)
    probe = flow.send([Completion([four], prompt_tokens=5)])
    assert probe.requests[0].purpose == "probe"
    note = flow.send([Completion([Choice("3", "stop", 1)], prompt_tokens=5)])
    assert isinstance(note, Note) and note.data["p"] < 0.5 and not note.data["stop"]
    seg2 = flow.send(None)
    assert seg2.requests[0].assistant_prefix == "a b c d"
    flow.send([Completion([four], prompt_tokens=5)])
    note2 = flow.send([Completion([Choice("3", "stop", 1)], prompt_tokens=5)])
    assert note2.data["stop"]
    with pytest.raises(StopIteration) as done:
        flow.send(None)
    assert done.value.value.answer == "3" and done.value.value.confidence > 0.5


def test_refuses_a_dm_of_other_settings(dm_path: str) -> None:
    with pytest.raises(ConfigError, match="probe_every"):
        StopThinking(dm=dm_path, probe_every=64)
    StopThinking(dm=dm_path, probe_every=64, allow_other_reasoner=True)
    with pytest.raises(ConfigError, match="no default DM|not found"):
        build_strategy({"name": "drr_think", "dm": "/nonexistent/dm.json"})


async def test_replay_and_live_agree(tmp_path: Path) -> None:
    """Collect with the scripted reasoner, replay the DM policies, run them live: same."""
    col = BehaviourCollector(k=4, max_tokens=12, probe_every=4, self_critique=False)
    data = tmp_path / "data.jsonl"
    data.write_text('{"question": "q?", "answer": "#### 5"}\n', encoding="utf-8")
    m = build_manifest(col, ModelInfo(name="fake"), data, 1, None)
    await collect(
        [Item("1", "q?", "5")],
        tmp_path / "c",
        Orchestrator(FakeBackend(reasoner)),
        col,
        m,
        progress=False,
    )
    manifest_, records = read_collection(tmp_path / "c")
    dm = agree_dm(manifest_)
    path = str(dm.save(tmp_path / "dm.json"))
    [q] = score_collection(dm, records, 12)
    for i, t in enumerate(q.traces):
        rep = dm_think(t, 0.5)
        live = StopThinking(dm=path, threshold=0.5, probe_every=4, max_tokens=12, seed=i)
        r = await Orchestrator(FakeBackend(reasoner)).run(live, Task("q?"))
        assert r.answer == t.states[rep.stopped_at].answer
        assert r.usage.completion_tokens == rep.tokens
    rep = dm_sample(q, dm, 0.6)
    live_s = StopSampling(dm=path, k=4, threshold=0.6, probe_every=4, max_tokens=12)
    r = await Orchestrator(FakeBackend(reasoner)).run(live_s, Task("q?"))
    assert r.outcome.data["drawn"] == rep.stopped_at
    assert r.usage.completion_tokens == rep.tokens
    both = dm_sample_think(q, dm, 0.6, 0.5)
    live_b = live_s.model_copy(update={"think_threshold": 0.5})
    rb = await Orchestrator(FakeBackend(reasoner)).run(live_b, Task("q?"))
    assert rb.outcome.data["drawn"] == both.stopped_at
    assert rb.usage.completion_tokens == both.tokens < rep.tokens


async def test_calibrated_confidence_reaches_results_records_and_the_proxy(dm_path: str) -> None:
    from ponder.evaluation.records import make_record
    from ponder.serve.responses import ponder_field

    s = StopThinking(dm=dm_path, threshold=0.5, probe_every=4, max_tokens=12)
    r = await Orchestrator(FakeBackend(reasoner)).run(s, Task("q?"))
    assert r.p_correct == pytest.approx(0.8808, abs=1e-3) and not r.abstained
    assert r.to_dict()["p_correct"] == r.p_correct
    item = Item("1", "q?", "5")
    assert make_record("drr", item, r)["p_correct"] == r.p_correct
    assert ponder_field("drr", [r], r.usage)["p_correct"] == [r.p_correct]
    shy = s.model_copy(update={"threshold": 0.99, "abstain_below": 0.95})
    r2 = await Orchestrator(FakeBackend(reasoner)).run(shy, Task("q?"))
    assert r2.abstained and r2.answer is None and r2.to_dict()["abstained"]
    rec = make_record("drr", item, r2)
    assert rec["abstained"] and rec["prediction"] is None and not rec["correct"]
    # a chain without a DM carries no p_correct
    from ponder.strategies.cot import ChainOfThought

    plain = await Orchestrator(FakeBackend(["\\boxed{5}"])).run(ChainOfThought(), Task("q?"))
    assert plain.p_correct is None and "p_correct" not in plain.to_dict()
    assert "p_correct" not in ponder_field("cot", [plain], plain.usage)


async def test_failures_are_typed(dm_path: str) -> None:
    from ponder.errors import AllSamplesFailed, AuthenticationFailed

    def refuse(request: GenerationRequest, i: int) -> Choice:
        raise AuthenticationFailed("401")

    s = StopThinking(dm=dm_path, probe_every=4, max_tokens=12)
    with pytest.raises(AuthenticationFailed):
        await Orchestrator(FakeBackend(refuse)).run(s, Task("q?"))
    many = StopSampling(dm=dm_path, k=2, probe_every=4, max_tokens=12)
    with pytest.raises(AllSamplesFailed):
        await Orchestrator(FakeBackend(refuse)).run(many, Task("q?"))
    # a budget cut after the first probe answers with that probe, marked budget-limited
    r = await Orchestrator(FakeBackend(reasoner), budget_tokens=120).run(
        s.model_copy(update={"threshold": 0.99}), Task("q?")
    )
    assert r.budget_limited


async def test_feedback_keeps_its_finished_answer_when_the_budget_cuts_a_later_round(
    dm_path: str,
) -> None:
    fb = Feedback(dm=dm_path, threshold=0.95, rounds=2, probe_every=4, max_tokens=12)
    # room for the first round and not for the first segment of the re-examination
    await check_feedback_keeps_its_answer_under_budget(fb, reasoner)
