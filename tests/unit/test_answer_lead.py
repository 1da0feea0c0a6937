"""The answer lead: budget forcing writes it after the closing marker when Ponder closes a thinking
(the engine's budget, the thinking-format collector and ``drr_think`` alike), so a prompted model
that stops or rambles after ``</think>`` answers; a bad lead is a config error naming the field."""

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
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.session import Session
from ponder.prompts.loader import template_hash
from ponder.protocol.forcing import forced_choice, forcing_step
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.strategies.cot import ChainOfThought
from ponder.strategies.thinking_trace import ThinkingSettings

LEAD = "The final answer is \\boxed{"
CLOSE = "\n</think>\n\n"


def test_the_shipped_lead_is_written_after_a_closing_ponder_makes() -> None:
    req = GenerationRequest(messages=({"role": "user", "content": "Q"},))
    ended = Choice("", "stop", 5, reasoning="a b \\boxed{3}", reasoning_tokens=5, seed=1)
    step = forcing_step(req, ended, 20, lead=LEAD)
    assert step is not None
    assert step.request.assistant_prefix == "<think>\na b \\boxed{3}" + CLOSE + LEAD
    got = forced_choice(ended, Choice("3}.", "stop", 2), step.cut, lead=LEAD)
    assert got.text == LEAD + "3}." and got.completion_tokens == 7  # the lead is prompt, not output
    # an answer under way just continues: no lead in the prefix nor the text
    answering = Choice("so the", "length", 7, reasoning="a b", reasoning_tokens=5)
    step = forcing_step(req, answering, 20, lead=LEAD)
    assert step is not None and not step.request.assistant_prefix.endswith(LEAD)
    assert (
        forced_choice(answering, Choice(" end", "stop", 1), False, lead=LEAD).text == "so the end"
    )
    # a model that closes its thinking again after the lead: the answer is what follows it
    again = forced_choice(
        ended, Choice("4} wait\n</think>\n\n\\boxed{5}", "stop", 9), False, lead=LEAD
    )
    assert again.text == "\\boxed{5}"


def _closer(request: GenerationRequest, i: int) -> Choice:
    """A prompted model that ends inside its thinking, then answers only if led."""
    prefix = request.assistant_prefix or ""
    if "</think>" in prefix:
        return Choice("7}." if prefix.endswith("{") else "Hope this helps!", "stop", 3)
    return Choice("", "stop", 4, reasoning="so it is \\boxed{7}", reasoning_tokens=4)


@pytest.mark.parametrize("lead, answer", [("answer_lead", "7"), (None, None)])
async def test_a_chain_budget_with_a_lead_gets_an_answer_the_model_would_not_write(
    lead: str | None, answer: str | None
) -> None:
    thinking: dict[str, object] = {"answer_tokens": 16}
    if lead is not None:
        thinking["answer_lead"] = lead
    cfg = ChainConfig.from_dict({"thinking_budget": 64, "thinking": thinking})
    limits = cfg.limits()
    assert limits.thinking is not None
    assert limits.thinking.answer_lead == (LEAD if lead else "")
    async with Session(FakeBackend(_closer)) as s:
        r = await s.run(ChainOfThought(max_tokens=128), "Q?", limits=limits)
    assert r.answer == answer  # the thinking's \boxed{7} is never graded
    [event] = r.trace.of_type("thinking_bound")
    assert ("answer_lead" in json.dumps(event)) is bool(lead)


def test_a_lead_that_is_not_a_template_without_variables_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        ChainConfig.from_dict({"thinking": {"answer_lead": "no_such_lead"}})
    assert info.value.field == "thinking.answer_lead" and "answer_lead" in str(info.value)
    with pytest.raises(ConfigError) as info:
        ThinkingSettings(answer_lead="cot_user")  # it uses {{ question }}
    assert info.value.field == "strategy.thinking.answer_lead"
    assert "question" in str(info.value)


def _responder(request: GenerationRequest, i: int) -> Choice:
    if request.purpose == "probe":
        return Choice("4", "stop", 1)
    if request.purpose == "critique":
        return Choice("yes", "stop", 1, top_logprobs=[{"yes": -0.2, "no": -1.8}])
    if request.purpose == "answer":
        return _closer(request, i)
    return Choice("x is \\boxed{7}", "stop", 4, token_logprobs=[-0.5] * 4)


async def test_a_collection_with_a_lead_records_it_and_grades_the_led_answer(
    tmp_path: Path,
) -> None:
    cfg = ChainConfig.from_dict(
        {
            "backend": {"kind": "local", "thinking": True},
            "thinking": {"answer_tokens": 16, "answer_lead": "answer_lead"},
        }
    )
    settings = thinking_settings(cfg, 32, None, 512)
    assert settings["thinking"].answer_lead == "answer_lead"
    strat = BehaviourCollector(k=1, probe_every=16, seed=0, **settings)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "x\n#### 7"}) + "\n")
    manifest = build_manifest(strat, ModelInfo(name="fake", sha256="abc"), data, 1, None)
    assert manifest.settings["thinking"]["answer_lead"] == "answer_lead"
    assert manifest.templates["answer_lead"] == template_hash("answer_lead")
    out = tmp_path / "c"
    orch = Orchestrator(FakeBackend(_responder))
    await collect([Item("0", "q", "7")], out, orch, strat, manifest, progress=False)
    _, [rec] = read_collection(out)
    [smp] = rec.samples
    assert smp.text == LEAD + "7}." and smp.answer == "7" and smp.correct
    assert smp.thinking == "x is \\boxed{7}"
