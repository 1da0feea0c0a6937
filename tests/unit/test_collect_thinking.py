"""Collecting in the thinking format: segments and probes inside the thinking, the cap closed by
forcing, the answer graded from the answer part only, the manifest naming the format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.backends.fake import FakeBackend
from ponder.behaviour.datasets import Item
from ponder.behaviour.records import ModelInfo, read_collection
from ponder.cli.collect import thinking_settings
from ponder.config import ChainConfig
from ponder.errors import ConfigError
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.learning.drr.states import trace_states
from ponder.orchestrator.engine import Orchestrator
from ponder.prompts.loader import template_hash
from ponder.protocol.actions import Generate, Task
from ponder.protocol.requests import Choice, Completion, GenerationRequest
from ponder.strategies.thinking_trace import ThinkingSettings


def _choice(text: str, tokens: int, finish: str = "length") -> Choice:
    return Choice(
        text=text,
        finish_reason=finish,
        completion_tokens=tokens,
        token_logprobs=[-0.5] * tokens,
        top_logprobs=[{"a": -0.5, "b": -1.5}] * tokens,
    )


def _done(c: Choice) -> list[Completion]:
    return [Completion([c], prompt_tokens=10)]


def _strategy(**kw: object) -> BehaviourCollector:
    base: dict[str, object] = {"k": 1, "max_tokens": 8, "probe_every": 4, "seed": 3}
    return BehaviourCollector(**{**base, "thinking": ThinkingSettings(answer_tokens=6), **kw})


def test_a_thinking_cut_at_the_cap_is_closed_and_answered() -> None:
    flow = _strategy().trace_flow(Task("q?"), seed=3, temperature=0.7)
    seg1: Generate = next(flow)
    req: GenerationRequest = seg1.requests[0]
    assert req.assistant_prefix == "<think>\n"  # the segment continues the opened thinking
    assert req.params.stop == ("</think>",) and req.params.max_tokens == 4
    probe = flow.send(_done(_choice("one two", 4))).requests[0]
    assert probe.purpose == "probe"
    assert probe.assistant_prefix.startswith("<think>\none two\n\n")  # inside the thinking
    assert "</think>" not in probe.assistant_prefix and probe.assistant_prefix.endswith("{")
    seg2 = flow.send(_done(Choice("7", "stop", 1))).requests[0]
    assert seg2.assistant_prefix == "<think>\none two" and seg2.params.max_tokens == 4
    probe2 = flow.send(_done(_choice(" three four", 4))).requests[0]  # the cap: probed there
    assert probe2.purpose == "probe"
    answer = flow.send(_done(Choice("8", "stop", 1))).requests[0]
    assert answer.purpose == "answer"
    assert answer.assistant_prefix == "<think>\none two three four\n</think>\n\n"
    assert answer.params.max_tokens == 6 and answer.params.seed == 3  # the answer's allowance
    assert answer.params.stop == ()
    crit = flow.send(_done(_choice("So \\boxed{9}", 4, "stop"))).requests[0]
    assert crit.purpose == "critique" and crit.assistant_prefix == "<think>\n\n</think>\n\n"
    assert crit.messages[-2]["content"] == "So \\boxed{9}"  # the answer part, not the thinking
    yes = Choice("yes", "stop", 1, top_logprobs=[{"yes": -0.1, "no": -2.4}])
    with pytest.raises(StopIteration) as stop:
        flow.send(_done(yes))
    out = stop.value.value
    log = out.data["trace"]
    assert out.answer == "9" and log.text == "So \\boxed{9}"
    assert log.thinking == "one two three four"
    assert log.thinking_tokens == 8 and log.thinking_cut is True
    assert log.tokens == 12 and len(log.lp) == 12 and len(log.conf) == 12
    assert [(p["at"], p["answer"]) for p in log.probes] == [(4, "7"), (8, "8")]


def test_a_thinking_the_model_ends_is_closed_and_answered_uncut() -> None:
    flow = _strategy().trace_flow(Task("q?"), seed=3, temperature=0.7)
    next(flow)
    # stopped at "</think>" (the stop string) or at its end of text: no probe, the answer next
    answer = flow.send(_done(_choice("x is 3", 3, "stop"))).requests[0]
    assert answer.purpose == "answer"
    assert answer.assistant_prefix == "<think>\nx is 3\n</think>\n\n"
    assert answer.params.max_tokens == 6
    flow.send(_done(_choice("\\boxed{3}", 2, "stop")))  # the critique request
    with pytest.raises(StopIteration) as stop:
        flow.send(_done(Choice("no", "stop", 1, top_logprobs=[{"no": -0.1}])))
    log = stop.value.value.data["trace"]
    assert log.thinking_tokens == 3 and log.thinking_cut is False and log.probes == []
    assert stop.value.value.answer == "3"


def test_a_backend_ignoring_the_stop_string_is_split_at_the_marker() -> None:
    flow = _strategy(self_critique=False).trace_flow(Task("q?"), seed=0, temperature=0.7)
    next(flow)
    with pytest.raises(StopIteration) as stop:
        flow.send(_done(_choice("t</think>\n\nso \\boxed{4}", 3, "stop")))
    out = stop.value.value
    assert out.answer == "4" and out.data["trace"].thinking == "t"


def _responder(request: GenerationRequest, i: int) -> Choice:
    if request.purpose == "probe":
        return Choice("5", "stop", 1)
    if request.purpose == "critique":
        return Choice("yes", "stop", 1, top_logprobs=[{"yes": -0.2, "no": -1.8}])
    if request.purpose == "answer":  # the answer part: no number for odd seeds
        odd = (request.params.seed or 0) % 2
        return _choice("I am not sure." if odd else "So \\boxed{4}.", 4, "stop")
    # thinking segments: a \boxed{4} in the thinking must never be graded
    return _choice(" the answer is \\boxed{4}", 4)


async def test_collect_records_the_thinking_and_grades_the_answer_part(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "x\n#### 4"}) + "\n")
    strat = _strategy(k=2, seed=0)
    manifest = build_manifest(strat, ModelInfo(name="fake", sha256="abc"), data, 1, None)
    assert manifest.settings["thinking"] == {
        "answer_tokens": 6,
        "template": "think_first_system",
        "markers": ["<think>", "</think>"],
        "answer_lead": None,
    }
    assert manifest.templates["think_first_system"] == template_hash("think_first_system")
    out = tmp_path / "c"
    orch = Orchestrator(FakeBackend(_responder))
    s = await collect([Item("0", "q", "4")], out, orch, strat, manifest, progress=False)
    assert s.collected == 1
    man, [rec] = read_collection(out)
    assert man.settings["thinking"]["answer_tokens"] == 6
    right, unsure = rec.samples
    assert right.answer == "4" and right.correct and right.text == "So \\boxed{4}."
    assert unsure.answer is None and not unsure.correct  # the thinking's \boxed{4} is not graded
    for smp in rec.samples:
        assert smp.thinking is not None and "\\boxed{4}" in smp.thinking
        assert smp.thinking_tokens == 8 and smp.thinking_cut is True and smp.tokens == 12
        assert [(p.at, p.thinking_tokens) for p in smp.probes] == [(4, 4), (8, 8)]
    line = (out / "records.jsonl").read_text()
    assert '"thinking_tokens"' in line
    # replay reads the thinking: every state's ``at`` is thinking tokens, cut = the thinking's
    states = trace_states(right, max_tokens=8)
    assert [st.state.at for st in states] == [4, 8, 8]
    assert states[-1].state.cut and states[-1].answer == "4" and states[-1].final


async def test_plain_collections_are_written_as_before(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "4"}) + "\n")
    strat = BehaviourCollector(k=1, max_tokens=8, probe_every=4, self_critique=False)
    manifest = build_manifest(strat, ModelInfo(name="fake"), data, 1, None)
    assert "thinking" not in manifest.settings and "think_first_system" not in manifest.templates
    orch = Orchestrator(FakeBackend(lambda r, i: _choice("\\boxed{4}", 2, "stop")))
    await collect([Item("0", "q", "4")], tmp_path / "c", orch, strat, manifest, progress=False)
    line = (tmp_path / "c" / "records.jsonl").read_text()
    assert "thinking" not in line


def test_the_cli_takes_the_thinking_settings_from_the_chain() -> None:
    thinking = ChainConfig.from_dict(
        {"backend": {"kind": "local", "thinking": True}, "thinking": {"answer_tokens": 96}}
    )
    got = thinking_settings(thinking, 1024, None, 320)
    assert got["max_tokens"] == 1024 and got["thinking"].answer_tokens == 96
    assert got["thinking"].template == "think_first_system"
    budgeted = ChainConfig.from_dict(
        {"backend": {"kind": "local", "thinking": True}, "thinking_budget": 200}
    )
    assert thinking_settings(budgeted, None, 64, 320)["max_tokens"] == 200
    assert thinking_settings(ChainConfig(), None, None, 320) == {}
    with pytest.raises(ConfigError, match="thinking_budget: --thinking-budget collects"):
        thinking_settings(ChainConfig(), 1024, None, 320)
