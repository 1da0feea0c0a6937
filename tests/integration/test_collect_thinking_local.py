"""A thinking-format collection on the real llama.cpp server: probes inside the thinking, the cap
closed by forcing, the answer graded from the answer part.

The embedded Qwen2.5 0.5B served in the thinking format (``backend: {kind: local, thinking:
true}``; a prompted instruct model, not a trained reasoner). Tiny on purpose (one question, one
trace, a 96-token thinking cap probed every 32 tokens, a 64-token answer): the CPUs are shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.answers import extract_answer
from ponder.behaviour.datasets import Item
from ponder.behaviour.records import ModelInfo, read_collection
from ponder.cli.collect import thinking_settings
from ponder.config import ChainConfig
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector

pytestmark = pytest.mark.integration

ITEM = Item(
    "pens",
    "A shop sells pens at 3 dollars each. Tom buys 7 pens and a notebook for 5 dollars. "
    "How much does he pay?",
    "26",
)
CAP, EVERY, ANSWER = 96, 32, 64


async def test_a_thinking_collection_probes_inside_the_thinking(tmp_path: Path) -> None:
    cfg = ChainConfig.from_dict(
        {
            "backend": {"kind": "local", "thinking": True, "threads": 1, "n_parallel": 1},
            "thinking": {"answer_lead": "answer_lead"},  # as examples/chains/think_collect.yaml
        }
    )
    strat = BehaviourCollector(
        k=1,
        probe_every=EVERY,
        seed=1,
        **thinking_settings(cfg, CAP, ANSWER, 320),
    )
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": ITEM.question, "answer": ITEM.gold}) + "\n")
    manifest = build_manifest(strat, ModelInfo(name="default"), data, 1, None)
    assert manifest.settings["max_tokens"] == CAP and "think_first_system" in manifest.templates
    assert "answer_lead" in manifest.templates
    out = tmp_path / "c"
    async with cfg.session() as session:
        summary = await collect([ITEM], out, session, strat, manifest, progress=False)
    assert summary.collected == 1 and not summary.failed, summary.line()
    print(summary.line())
    _, [rec] = read_collection(out)
    [s] = rec.samples
    print(json.dumps(s.model_dump(exclude={"lp", "conf"}), indent=1)[:3000], rec.wall_s)
    assert s.error is None and s.thinking and s.thinking_tokens is not None
    assert 0 < s.thinking_tokens <= CAP
    assert s.tokens - s.thinking_tokens <= ANSWER and len(s.lp) == s.tokens
    if s.thinking_tokens > EVERY:  # probed inside the thinking, at every segment's end
        assert s.probes and all(p.thinking_tokens == p.at for p in s.probes)
        assert [p.at for p in s.probes][: s.thinking_tokens // EVERY] == [
            EVERY * (i + 1) for i in range(s.thinking_tokens // EVERY)
        ]
        assert all(p.at <= s.thinking_tokens for p in s.probes)
    assert s.thinking_cut == (s.thinking_tokens >= CAP)
    assert "</think>" not in s.text and "<think>" not in s.text
    assert s.answer == extract_answer(s.text)  # graded from the answer part only
    assert s.text.strip()  # the model answered after its thinking
    assert s.text.startswith("The final answer is \\boxed{") and s.answer is not None, s.text
