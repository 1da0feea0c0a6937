"""``drr_think`` live in the thinking format: segments and probes inside the thinking, the DM
(or Dynasor's agreement) judging each checkpoint, a stopped thinking closed and answered, the
format checked against the DM and the backend, and replay == live on a scripted thinker."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.backends.fake import FakeBackend
from ponder.behaviour.datasets import Item
from ponder.behaviour.records import ModelInfo, read_collection
from ponder.config import ChainConfig
from ponder.errors import ConfigError
from ponder.grading import is_equivalent
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.learning.drr.replay import dm_think, dynasor, score_collection
from ponder.learning.drr.think_policies import dm_policy, dynasor_policy
from ponder.orchestrator.engine import Orchestrator
from ponder.prompts.loader import template_hash
from ponder.protocol.actions import Task
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.strategies.drr import StopThinking
from ponder.strategies.thinking_trace import ThinkingSettings
from tests.unit.drr_helpers import agree_dm, manifest

PROBES = {0: ["3", "5", "5"], 1: ["7", "7"], 2: ["4", "6", "8"], 3: ["5", "5", "5"]}
"""The scripted thinker's probe answers per seed, after each 4-token thinking segment."""
ANSWERS = {0: "So \\boxed{5}.", 1: "So \\boxed{7}.", 2: "I am not sure.", 3: "\\boxed{5}"}
THINKING = ThinkingSettings(answer_tokens=6)
TOP = [{"a": -0.2, "b": -1.6}]


def thinker(request: GenerationRequest, i: int) -> Choice:
    """Seed ``s`` thinks in words ``ws`` (seed 1 closes its thinking after 8 tokens, the others
    reach the cap of 12); a probe answers ``PROBES[s]`` by the words so far; the answer part
    after the closed thinking is ``ANSWERS[s]`` (3 tokens)."""
    prefix = request.assistant_prefix or ""
    assert prefix.startswith("<think>\n")
    words = prefix.split("\n\n")[0].split()[1:]
    seed = int(words[0][1:]) if words else (request.params.seed or 0)
    if request.purpose == "probe":
        assert "</think>" not in prefix  # made inside the thinking
        return Choice(PROBES[seed][len(words) // 4 - 1], "stop", 1, token_logprobs=[-0.1])
    if request.purpose == "critique":
        return Choice("yes", "stop", 1, top_logprobs=[{"yes": -0.2, "no": -1.8}])
    if request.purpose == "answer":
        assert prefix.endswith("</think>\n\n") and request.params.seed == seed
        return Choice(ANSWERS[seed], "stop", 3, token_logprobs=[-0.3] * 3, top_logprobs=TOP * 3)
    assert request.params.stop == ("</think>",)
    if seed == 1 and len(words) >= 8:  # it ends its thinking (the stop string is cut off)
        return Choice(" done", "stop", 1, token_logprobs=[-0.2], top_logprobs=TOP)
    text = f" w{seed}" * 4
    return Choice(text, "length", 4, token_logprobs=[-0.2] * 4, top_logprobs=TOP * 4)


def live(**kw: object) -> StopThinking:
    base: dict[str, object] = {"max_tokens": 12, "probe_every": 4, "thinking": THINKING}
    return StopThinking(**{**base, **kw})


async def _collection(tmp_path: Path):  # type: ignore[no-untyped-def]
    col = BehaviourCollector(k=4, max_tokens=12, probe_every=4, thinking=THINKING)
    data = tmp_path / "data.jsonl"
    data.write_text('{"question": "q?", "answer": "#### 5"}\n', encoding="utf-8")
    m = build_manifest(col, ModelInfo(name="fake"), data, 1, None)
    orch = Orchestrator(FakeBackend(thinker))
    await collect([Item("1", "q?", "5")], tmp_path / "c", orch, col, m, progress=False)
    return read_collection(tmp_path / "c")


async def test_replay_and_live_agree_in_the_thinking_format(tmp_path: Path) -> None:
    """Collect once; replay ``dm_think@t`` and ``dynasor@m``; run ``drr_think`` live with the same
    seeds: the same stop point, answer and tokens (live adds the answer written after a stop)."""
    man, records = await _collection(tmp_path)
    assert man.settings["thinking"]["answer_tokens"] == 6 and "think_first_system" in man.templates
    dm = agree_dm(man)
    path = str(dm.save(tmp_path / "dm.json"))
    [q] = score_collection(dm, records, 12)
    assert [t.sample.seed for t in q.traces] == [0, 1, 2, 3]
    early = 0
    for t in q.traces:
        last = len(t.states) - 1
        runs = [(dm_think(t, th), dm_policy(th)(t), {"threshold": th}) for th in (0.5, 0.95)]
        runs += [
            (dynasor(t, m), dynasor_policy(m)(t), {"stop": "dynasor", "agree": m}) for m in (2, 3)
        ]
        for unit, stop, knobs in runs:
            s = live(dm=path, seed=t.sample.seed, **knobs)
            r = await Orchestrator(FakeBackend(thinker)).run(s, Task("q?"))
            d = r.outcome.data
            assert d["early"] == (unit.stopped_at < last), (t.sample.seed, knobs)
            assert d["stopped_at"] == stop.thinking  # thinking tokens at the stop
            assert r.answer == t.states[unit.stopped_at].answer
            assert is_equivalent(r.answer, "5") == unit.correct == stop.correct
            extra = d["answer_tokens"] if d["early"] else 0  # replay charges no answer at a stop
            assert r.usage.completion_tokens == unit.tokens + extra
            if d["early"]:
                early += 1
                assert d["answer_tokens"] == 3 and r.outcome.text == ANSWERS[t.sample.seed]
                assert d["probe"] == r.answer
            if "threshold" in knobs:
                assert d["p"] == pytest.approx(t.p[unit.stopped_at])
    assert early >= 4  # the stops are exercised, not only full thinking


async def test_a_stop_closes_the_thinking_and_answers_within_the_allowance() -> None:
    back = FakeBackend(thinker)
    s = live(stop="dynasor", agree=2, seed=0)
    r = await Orchestrator(back).run(s, Task("q?"))
    purposes = [q.purpose for q in back.requests]
    # seed 0: probes 3, 5, 5: the last two agree at the cap's probe (12 thinking tokens), a
    # checkpoint as in replay, so the thinking is closed there and answered
    assert purposes == ["reason", "probe", "reason", "probe", "reason", "probe", "answer"]
    answer = back.requests[-1]
    assert answer.assistant_prefix == "<think>\n" + ("w0 " * 12).strip() + "\n</think>\n\n"
    assert answer.params.max_tokens == 6  # the answer's allowance
    assert r.answer == "5" and r.outcome.data["stopped_at"] == 12
    assert r.outcome.data["answer_part"] == "5" and r.outcome.confidence is None
    capped = await Orchestrator(FakeBackend(thinker)).run(
        live(stop="dynasor", agree=2, seed=2), Task("q?")
    )
    # seed 2 never agrees: the thinking runs to its cap and the answer part has no answer; as
    # the collection grades it, the cap's probe does not stand in for it
    assert capped.answer is None and not capped.outcome.data["early"]
    forced = await Orchestrator(FakeBackend(thinker)).run(
        live(stop="dynasor", agree=2, seed=3, stop_answer="forced"), Task("q?")
    )
    assert forced.outcome.data["early"] and forced.outcome.data["stopped_at"] == 8
    assert forced.answer == forced.outcome.data["answer_part"] == "5"


def test_the_format_is_checked_against_the_dm(tmp_path: Path) -> None:
    thinking_man = manifest(probe_every=4, max_tokens=12)
    thinking_man.settings["thinking"] = THINKING.model_dump(mode="json")
    thinking_man.templates["think_first_system"] = template_hash("think_first_system")
    think_dm = str(agree_dm(thinking_man).save(tmp_path / "t.json"))
    plain_dm = str(agree_dm(manifest(probe_every=4, max_tokens=12)).save(tmp_path / "p.json"))
    live(dm=think_dm)  # fits
    with pytest.raises(ConfigError, match="trained on a thinking-format collection") as e:
        StopThinking(dm=think_dm, max_tokens=12, probe_every=4)
    assert e.value.field == "dm"
    with pytest.raises(ConfigError, match="trained on plain traces") as e:
        live(dm=plain_dm)
    assert e.value.field == "dm"
    with pytest.raises(ConfigError, match=r"max_tokens \(16 vs 12 in training\)"):
        live(dm=think_dm, max_tokens=16)
    with pytest.raises(ConfigError, match="answer_tokens"):
        live(dm=think_dm, thinking=ThinkingSettings(answer_tokens=9))
    # even allow_other_reasoner does not waive the format
    with pytest.raises(ConfigError, match="thinking-format collection"):
        StopThinking(dm=think_dm, max_tokens=12, probe_every=4, allow_other_reasoner=True)
    live(stop="dynasor", dm="no/such/dm.json")  # Dynasor reads no DM


def test_the_format_is_checked_against_the_backend(tmp_path: Path) -> None:
    strategy = {"name": "drr_think", "stop": "dynasor", "max_tokens": 12, "probe_every": 4}
    think = {"kind": "local", "thinking": True}
    ChainConfig.from_dict({"backend": think, "strategy": {**strategy, "thinking": {}}})
    ChainConfig.from_dict({"backend": {"kind": "local"}, "strategy": strategy})
    with pytest.raises(ConfigError, match="need a backend serving") as e:
        ChainConfig.from_dict(
            {"backend": {"kind": "local"}, "strategy": {**strategy, "thinking": {}}}
        )
    assert e.value.field == "strategy.thinking"
    with pytest.raises(ConfigError, match="reasons in plain traces"):
        ChainConfig.from_dict({"backend": think, "strategy": strategy})
