"""Parallel sampling, SSA and the eval harness against the real llama-server + default model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder import Orchestrator
from ponder.aggregator import SSA
from ponder.config import ChainConfig
from ponder.evaluation import EvalJob, evaluate, load_items, select
from ponder.grading import is_equivalent
from ponder.strategies import ChainOfThought, ParallelSample

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


async def test_sample_then_ssa_on_the_real_model(local_backend):
    strat = ParallelSample(
        k=3,
        seed=42,
        inner=ChainOfThought(temperature=0.7, max_tokens=160),
        aggregator=SSA(max_tokens=160, max_candidate_tokens=120),
    )
    result = await Orchestrator(local_backend).run(strat, "What is 15 + 27?")
    samples = result.outcome.samples
    assert [s.data["seed"] for s in samples] == [42, 43, 44]
    assert sum(s.answer is not None for s in samples) >= 1
    assert result.usage.by_purpose["reason"].calls == 3  # llama-server: fanned out, one seed each
    aggregate = result.usage.by_purpose["aggregate"]
    assert aggregate.calls == 1 and aggregate.prompt_tokens > 100
    assert result.answer is not None


async def test_eval_harness_on_two_gsm8k_questions(local_backend, tmp_path):
    items = select(load_items(DATA / "gsm8k" / "test.jsonl"), 2)
    chain = ChainConfig(strategy=ChainOfThought(max_tokens=96))
    rows = await evaluate(
        [EvalJob("greedy", chain)],
        items,
        tmp_path,
        progress=False,
        backends={"default": local_backend},
    )
    recs = [json.loads(line) for line in (tmp_path / "greedy.jsonl").read_text().splitlines()]
    assert {r["id"] for r in recs} == {"0", "1"}
    for r in recs:
        assert r["calls"] == 1 and 0 < r["completion_tokens"] <= 96
        assert r["correct"] == is_equivalent(r["prediction"], r["gold"])
    assert rows[0]["n"] == 2 and 0.0 <= rows[0]["accuracy"] <= 1.0
