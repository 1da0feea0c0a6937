"""The behaviour collector: probes, logprob features, self-critique, grading and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.backends.fake import FakeBackend
from ponder.behaviour.datasets import Item
from ponder.behaviour.records import ModelInfo, read_collection
from ponder.confidence import token_confidence
from ponder.errors import ConfigError
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.orchestrator.engine import Orchestrator, RetryPolicy
from ponder.protocol.actions import Fork, Generate, Task
from ponder.protocol.requests import Choice, Completion, GenerationRequest
from ponder.strategies.probed_trace import p_yes, probe_answer


def _choice(text: str, tokens: int, finish: str = "length") -> Choice:
    return Choice(
        text=text,
        finish_reason=finish,
        completion_tokens=tokens,
        token_logprobs=[-0.5] * tokens,
        top_logprobs=[{"a": -0.5, "b": -1.5}] * tokens,
    )


def test_measures() -> None:
    assert token_confidence({"a": -1.0, "b": -3.0}) == 2.0
    assert p_yes({"yes": 0.0, "No": 0.0}) == pytest.approx(0.5)
    assert p_yes({"maybe": -0.1}) is None
    assert probe_answer("18") == "18"
    assert probe_answer("\\frac{1}{2}} so") == "\\frac{1}{2}"


def test_trace_flow_stepped_by_hand() -> None:
    """Step one trace with next/send (no event loop): segment, probe, segment, critique."""
    strat = BehaviourCollector(k=1, max_tokens=8, probe_every=4, seed=3)
    flow = strat.trace_flow(Task("q?"), seed=3, temperature=0.7)
    seg1 = next(flow)
    assert isinstance(seg1, Generate)
    req: GenerationRequest = seg1.requests[0]
    assert req.assistant_prefix == "" and req.params.max_tokens == 4 and req.params.seed == 3
    assert req.params.logprobs and req.params.top_logprobs == 5
    probe = flow.send([Completion([_choice("one two", 4)], prompt_tokens=10)])
    preq = probe.requests[0]
    assert preq.purpose == "probe" and preq.params.temperature == 0.0
    assert preq.assistant_prefix.startswith("one two") and preq.assistant_prefix.endswith("{")
    seg2 = flow.send([Completion([_choice("7", 1, "stop")], prompt_tokens=12)])
    assert seg2.requests[0].assistant_prefix == "one two"
    assert seg2.requests[0].params.max_tokens == 4
    crit = flow.send([Completion([_choice(" so \\boxed{9}", 3, "stop")], prompt_tokens=12)])
    creq = crit.requests[0]
    assert creq.purpose == "critique" and creq.messages[-2]["content"] == "one two so \\boxed{9}"
    yes = Choice("yes", "stop", 1, top_logprobs=[{"yes": -0.1, "no": -2.4}])
    with pytest.raises(StopIteration) as stop:
        flow.send([Completion([yes], prompt_tokens=20)])
    out = stop.value.value
    log = out.data["trace"]
    assert out.answer == "9"
    assert [p["answer"] for p in log.probes] == ["7"]
    assert log.tokens == 7 and len(log.lp) == 7 and log.conf[0] == 1.0
    assert 0.85 < log.critique_p_yes < 0.95


def test_cut_trace_is_probed_at_the_cut() -> None:
    strat = BehaviourCollector(k=1, max_tokens=4, probe_every=4, self_critique=False)
    flow = strat.trace_flow(Task("q?"), seed=0, temperature=0.7)
    next(flow)
    probe = flow.send([Completion([_choice("a b c d", 4)], prompt_tokens=5)])
    assert probe.requests[0].purpose == "probe"
    with pytest.raises(StopIteration) as stop:
        flow.send([Completion([_choice("5", 1, "stop")], prompt_tokens=5)])
    assert stop.value.value.data["trace"].probes[0]["at"] == 4


def test_flow_forks_k_traces_with_seeds() -> None:
    strat = BehaviourCollector(k=3, seed=10, greedy=True)
    fork = next(strat.flow(Task("q")))
    assert isinstance(fork, Fork) and len(fork.flows) == 4


def _responder(request: GenerationRequest, i: int) -> Choice:
    if request.purpose == "probe":
        return Choice("4", "stop", 1)
    if request.purpose == "critique":
        return Choice("yes", "stop", 1, top_logprobs=[{"yes": -0.2, "no": -1.8}])
    if not request.assistant_prefix:  # first segment
        return _choice("two plus two", 3)
    seed = request.params.seed or 0
    return _choice(f" is \\boxed{{{4 if seed % 2 == 0 else 5}}}", 3, "stop")


async def test_collect_writes_grades_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"q{i}", "answer": "x\n#### 4"}) + "\n" for i in range(3))
    )
    items = [Item(str(i), f"q{i}", "4") for i in range(3)]
    strat = BehaviourCollector(k=2, max_tokens=8, probe_every=3)
    manifest = build_manifest(strat, ModelInfo(name="fake", sha256="abc"), data, 3, None)
    orch = Orchestrator(FakeBackend(_responder))
    out = tmp_path / "c"
    s1 = await collect(items[:2], out, orch, strat, manifest, progress=False)
    assert s1.collected == 2
    # a crash mid-write leaves a torn line: it is dropped and that question redone
    with (out / "records.jsonl").open("a") as f:
        f.write('{"id": "2", "quest')
    s2 = await collect(items, out, orch, strat, manifest, progress=False)
    assert s2.done_before == 2 and s2.collected == 1
    man, recs = read_collection(out)
    assert [r.id for r in recs] == ["0", "1", "2"]
    assert man.model.sha256 == "abc" and man.settings["k"] == 2
    s = recs[0].samples
    assert [x.correct for x in s] == [True, False]  # seeds 0 and 1
    assert s[0].probes[0].correct and s[0].critique_p_yes == pytest.approx(0.832, abs=1e-3)
    other = build_manifest(strat.model_copy(update={"k": 3}), ModelInfo(name="fake"), data, 3, None)
    with pytest.raises(ConfigError, match="k \\(2 vs 3\\)"):
        await collect(items, out, orch, strat, other, progress=False)


def _failing(exc: Exception, on_seed: int) -> object:
    def responder(request: GenerationRequest, i: int) -> Choice:
        if request.purpose == "reason" and (request.params.seed or 0) == on_seed:
            raise exc
        return _responder(request, i)

    return responder


async def test_question_with_a_failed_trace_is_not_written_and_redone(tmp_path: Path) -> None:
    from ponder.errors import UpstreamServerError

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q0", "answer": "#### 4"}) + "\n")
    items = [Item("0", "q0", "4"), Item("1", "q1", "4")]
    strat = BehaviourCollector(k=2, max_tokens=8, probe_every=3, self_critique=False)
    manifest = build_manifest(strat, ModelInfo(name="fake"), data, 1, None)
    out = tmp_path / "c"
    orch = Orchestrator(
        FakeBackend(_failing(UpstreamServerError("boom", status=500), on_seed=1)),
        retry=RetryPolicy(max_attempts=1),
    )
    s1 = await collect(items, out, orch, strat, manifest, progress=False)
    assert s1.collected == 0 and [q for q, _ in s1.failed] == ["0", "1"]
    assert "UpstreamServerError" in s1.failed[0][1]
    assert read_collection(out)[1] == []  # nothing half-written
    s2 = await collect(
        items, out, Orchestrator(FakeBackend(_responder)), strat, manifest, progress=False
    )
    assert s2.collected == 2 and not s2.failed


async def test_unfixable_failure_stops_the_collection(tmp_path: Path) -> None:
    from ponder.errors import CapabilityMissing

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q0", "answer": "#### 4"}) + "\n")
    items = [Item(str(i), f"q{i}", "4") for i in range(5)]
    strat = BehaviourCollector(k=2, max_tokens=8, probe_every=3, self_critique=False)
    manifest = build_manifest(strat, ModelInfo(name="fake"), data, 1, None)
    backend = FakeBackend(_failing(CapabilityMissing("no continuation"), on_seed=0))
    with pytest.raises(CapabilityMissing, match="no continuation"):
        await collect(
            items,
            tmp_path / "c",
            Orchestrator(backend),
            strat,
            manifest,
            questions_at_once=1,
            progress=False,
        )
    assert read_collection(tmp_path / "c")[1] == []
