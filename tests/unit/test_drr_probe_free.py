"""``drr_sample``/``drr_bayes`` with ``probes: false``: one call per sample, a probe-free DM,
and replay == live on a deterministic scripted reasoner."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.backends.fake import FakeBackend
from ponder.behaviour.datasets import Item
from ponder.behaviour.records import Manifest, ModelInfo, read_collection
from ponder.errors import ConfigError, InputError, UpstreamServerError
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.learning.drr.compare import bayes
from ponder.learning.drr.replay import dm_sample, score_collection
from ponder.learning.drr.train import train_dm
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.policy import NO_RETRY
from ponder.protocol.actions import Task
from ponder.protocol.requests import Choice, GenerationRequest, SamplingParams
from ponder.stopping.features import SAMPLING_FEATURES, checkpoint_feature_names
from ponder.stopping.model import DM
from ponder.strategies.drr import StopSampling
from ponder.strategies.drr_bayes import BayesStopSampling
from tests.unit.drr_helpers import (
    agree_dm,
    check_feedback_keeps_its_answer_under_budget,
    linear,
    manifest,
    reasoner,
    synthetic,
)

FREE = ("confidence", "length")


def free_dm(m: Manifest | None = None) -> DM:
    """Probe-free: P(correct) rises with the answer's presence; the majority is trusted once
    two samples agree (Beta stay 0.875 -> P 0.62)."""
    return DM(
        manifest=m or manifest(probe_every=4, max_tokens=12, k=4),
        checkpoint=linear(tuple(checkpoint_feature_names(FREE)), {"has_answer": 2.0}, -1.0),
        sampling=linear(SAMPLING_FEATURES, {"beta_stay": 12.0}, -10.0),
        families=list(FREE),
        probe_free=True,
    )


def one_call(request: GenerationRequest, i: int) -> Choice:
    """The scripted reasoner's whole trace in one call: its segments joined, seed ``seed + i``
    (what native ``n`` gives choice ``i``), so the trace is the one the collector recorded."""
    assert request.assistant_prefix is None and request.purpose == "reason"
    seed = (request.params.seed or 0) + i
    text, tokens, lp, top = "", 0, [], []
    while True:
        params = SamplingParams(seed=seed, max_tokens=4)
        seg = GenerationRequest(messages=request.messages, assistant_prefix=text, params=params)
        ch = reasoner(seg, 0)
        text, tokens = text + ch.text, tokens + ch.completion_tokens
        lp += ch.token_logprobs or []
        top += ch.top_logprobs or []
        if ch.finish_reason != "length" or tokens >= request.params.max_tokens:
            finish = ch.finish_reason
            return Choice(text, finish, tokens, token_logprobs=lp, top_logprobs=top, seed=seed)


async def test_probe_free_draws_rounds_in_one_request_each(tmp_path: Path) -> None:
    path = str(free_dm().save(tmp_path / "free.json"))
    s = StopSampling(dm=path, k=4, threshold=0.6, probes=False, max_tokens=12, round_size=2)
    back = FakeBackend(one_call)
    r = await Orchestrator(back).run(s, Task("q?"))
    # seeds 0..3 answer 5, 7, 5, 7: never trusted, two requests of n=2, no probes, no prefixes
    assert r.outcome.data["drawn"] == 4 and r.answer == "5"
    assert [q.params.n for q in back.requests] == [2, 2]
    assert [q.params.seed for q in back.requests] == [0, 2]
    assert all(q.purpose == "reason" and q.assistant_prefix is None for q in back.requests)
    assert all(q.params.logprobs and q.params.top_logprobs == 5 for q in back.requests)
    assert [x.data["seed"] for x in r.outcome.samples] == [0, 1, 2, 3]
    assert r.usage.completion_tokens == 40 and r.usage.calls == 2
    assert s.requires() == ()  # no continuation needed


async def test_probe_free_refuses_a_probed_dm_and_the_other_way(tmp_path: Path) -> None:
    probed = str(agree_dm(manifest(probe_every=4, max_tokens=12, k=4)).save(tmp_path / "p.json"))
    with pytest.raises(ConfigError, match="votes, read off probe answers") as e:
        StopSampling(dm=probed, probes=False, max_tokens=12)
    assert e.value.field == "dm"
    free = str(free_dm().save(tmp_path / "f.json"))
    with pytest.raises(ConfigError, match="trained probe-free"):
        StopSampling(dm=free, probe_every=4, max_tokens=12)
    with pytest.raises(ConfigError, match="think_threshold"):
        StopSampling(dm=free, probes=False, think_threshold=0.5)
    with pytest.raises(ConfigError, match="give_up_below"):
        BayesStopSampling(dm=free, probes=False, max_tokens=12, give_up_below=0.1)
    # probe_every is not checked without probes (the one-call trace has no segments)
    StopSampling(dm=free, probes=False, probe_every=64, max_tokens=12)
    BayesStopSampling(dm=free, probes=False, max_tokens=12)


def test_train_a_probe_free_dm(tmp_path: Path) -> None:
    m, recs = synthetic(tmp_path / "c", questions=20)
    dm = train_dm(m, recs, probes=False)
    assert dm.probe_free and dm.feature_families == FREE and not dm.needs_probes
    assert dm.checkpoint.cv["rows"] == sum(len(q.samples) for q in recs)  # one row per trace
    assert "agree_prev" not in dm.checkpoint.features
    back = DM.load(dm.save(tmp_path / "dm.json"))
    assert back.probe_free and back.feature_families == FREE
    assert "probe_free" not in train_dm(m, recs, sampling=False).model_dump()
    with pytest.raises(InputError, match="votes"):
        train_dm(m, recs, probes=False, families="votes,confidence")


async def test_replay_and_live_agree_without_probes(tmp_path: Path) -> None:
    """Collect (segments + probes) with the scripted reasoner; replay the probe-free policies;
    run them live in one call per round: the same samples drawn, answers and tokens."""
    col = BehaviourCollector(k=4, max_tokens=12, probe_every=4, self_critique=False)
    data = tmp_path / "data.jsonl"
    data.write_text('{"question": "q?", "answer": "#### 5"}\n', encoding="utf-8")
    m = build_manifest(col, ModelInfo(name="fake"), data, 1, None)
    items = [Item("1", "q?", "5")]
    await collect(
        items, tmp_path / "c", Orchestrator(FakeBackend(reasoner)), col, m, progress=False
    )
    manifest_, records = read_collection(tmp_path / "c")
    dm = free_dm(manifest_)
    path = str(dm.save(tmp_path / "dm.json"))
    [q] = score_collection(dm, records, 12)
    assert all(len(t.states) == 1 and t.probe_tokens == 0 for t in q.traces)
    cases = [(0.6, 1, None), (0.6, 2, None), (0.1, 1, None), (0.1, 3, None), (0.9, 1, 0.05)]
    for threshold, round_size, give_up in cases:
        rep = dm_sample(q, dm, threshold, round_size, give_up)
        live = StopSampling(
            dm=path,
            k=4,
            threshold=threshold,
            probes=False,
            max_tokens=12,
            round_size=round_size,
            give_up_below=give_up,
        )
        r = await Orchestrator(FakeBackend(one_call)).run(live, Task("q?"))
        assert r.outcome.data["drawn"] == rep.stopped_at
        # 5 then 7: P(majority right) 0.018 < 0.05 after two samples -> the futility stop
        assert r.outcome.data.get("gave_up", False) == (give_up is not None)
        assert r.usage.completion_tokens == rep.tokens
        assert (r.answer == "5") == rep.correct
        drawn = q.traces[: rep.stopped_at]
        assert [x.data["p"] for x in r.outcome.samples] == pytest.approx([t.p[-1] for t in drawn])
    rb = bayes(q, 0.7)
    live_b = BayesStopSampling(dm=path, k=4, threshold=0.7, probes=False, max_tokens=12)
    r = await Orchestrator(FakeBackend(one_call)).run(live_b, Task("q?"))
    assert r.outcome.data["drawn"] == rb.stopped_at and r.usage.completion_tokens == rb.tokens


async def test_probe_free_feedback_sends_each_round_as_one_request(tmp_path: Path) -> None:
    from ponder.strategies.drr_feedback import Feedback

    path = str(free_dm().save(tmp_path / "free.json"))
    # seed 0 answers 5: P(correct) = sigmoid(2 - 1) = 0.73 at the trace's end
    fb = Feedback(dm=path, probes=False, threshold=0.9, rounds=2, max_tokens=12)
    back = FakeBackend(one_call)
    r = await Orchestrator(back).run(fb, Task("q?"))
    rounds = r.outcome.data["rounds"]
    assert [h["score"] for h in rounds] == pytest.approx([0.7311] * 3, abs=1e-3)
    assert [h["probes"] for h in rounds] == [0, 0, 0] and all(h["tokens"] > 0 for h in rounds)
    assert len(back.requests) == 3 and r.usage.calls == 3  # one plain request a round
    assert all(q.purpose == "reason" and q.assistant_prefix is None for q in back.requests)
    assert "Re-examine" in back.requests[-1].messages[-1]["content"]
    assert back.requests[-1].messages[-2]["role"] == "assistant"
    assert r.answer == "5" and r.p_correct == pytest.approx(0.7311, abs=1e-3)
    assert fb.requires() == ()
    # above the threshold: the first answer stands, one request
    back = FakeBackend(one_call)
    r2 = await Orchestrator(back).run(fb.model_copy(update={"threshold": 0.5}), Task("q?"))
    assert len(r2.outcome.data["rounds"]) == 1 and len(back.requests) == 1
    # a probed DM cannot judge one-call rounds, a probe-free one cannot judge probed ones
    probed = str(agree_dm(manifest(probe_every=4, max_tokens=12, k=4)).save(tmp_path / "p.json"))
    with pytest.raises(ConfigError, match="votes, read off probe answers"):
        Feedback(dm=probed, probes=False, max_tokens=12)
    with pytest.raises(ConfigError, match="trained probe-free"):
        Feedback(dm=path, probe_every=4, max_tokens=12)


async def test_probe_free_feedback_keeps_its_answer_when_a_later_round_fails(
    tmp_path: Path,
) -> None:
    from ponder.strategies.drr_feedback import Feedback

    path = str(free_dm().save(tmp_path / "free.json"))
    fb = Feedback(dm=path, probes=False, threshold=0.9, rounds=2, max_tokens=12)
    # room for the first round and not for the re-examination: the first answer stands, marked
    await check_feedback_keeps_its_answer_under_budget(fb, one_call)

    # a server error on the re-examination: the same, with the error named
    def fails_later(request: GenerationRequest, i: int) -> Choice:
        if len(request.messages or ()) > 2:
            raise UpstreamServerError("upstream 500")
        return one_call(request, i)

    r2 = await Orchestrator(FakeBackend(fails_later), retry=NO_RETRY).run(fb, Task("q?"))
    assert r2.answer == "5" and r2.outcome.data["failed_round"] == 1
    assert "upstream 500" in r2.outcome.data["error"]
