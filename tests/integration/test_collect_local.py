"""The behaviour collector against the real llama.cpp server: probes, logprobs, prompt cache.

Tiny on purpose: two questions, two short traces each. It checks what only a real server shows:
continued segments and probes reuse the slot's prompt cache, every generated token carries a
logprob and a DeepConf confidence, and a resumed collection redoes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder import Orchestrator
from ponder.behaviour.datasets import Item
from ponder.behaviour.records import ModelInfo, read_collection
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector

pytestmark = pytest.mark.integration

ITEMS = [
    Item("a", "Tom has 3 boxes of 4 apples. How many apples does he have?", "12"),
    Item("b", "A pen costs 2 dollars. How much do 5 pens cost?", "10"),
]


async def test_collect_on_the_real_server(local_backend, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps({"question": i.question, "answer": i.gold}) + "\n" for i in ITEMS)
    )
    strat = BehaviourCollector(k=2, max_tokens=96, probe_every=32, seed=5)
    manifest = build_manifest(strat, ModelInfo(name="default"), data, 2, None)
    orch = Orchestrator(local_backend)
    out = tmp_path / "c"
    summary = await collect(ITEMS, out, orch, strat, manifest, progress=False)
    assert summary.collected == 2 and not summary.failed
    assert summary.cache_hit_rate > 0.5, summary.line()  # segments and probes share the prefix
    _, records = read_collection(out)
    samples = [s for r in records for s in r.samples]
    assert len(samples) == 4
    for s in samples:
        assert s.error is None
        assert s.tokens > 0 and len(s.lp) == s.tokens and len(s.conf) == s.tokens
        assert all(x <= 0.0 for x in s.lp) and all(c >= 0.0 for c in s.conf)
        assert s.critique_p_yes is None or 0.0 <= s.critique_p_yes <= 1.0
        if s.tokens > 32:
            assert s.probes and s.probes[0].at >= 32  # probed after the first full segment
    assert any(p.answer for s in samples for p in s.probes)  # probes answer in the cue's box
    again = await collect(ITEMS, out, orch, strat, manifest, progress=False)
    assert again.collected == 0 and again.done_before == 2
