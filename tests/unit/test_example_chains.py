"""Every ready-made chain in examples/chains/ loads and validates (no model is started), so the
DRR examples stay runnable as the strategies change."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.config import ChainConfig

CHAINS = sorted((Path(__file__).resolve().parents[2] / "examples" / "chains").glob("*.yaml"))
DRR = {
    "drr_sample",
    "drr_think",
    "drr_feedback",
    "drr_feedback_probe_free",
    "drr_abstain",
    "drr_escalate",
    "drr_bayes",
    "drr_bayes_probe_free",
    "drr_think_thinking",
}


def test_the_drr_examples_exist() -> None:
    assert {p.stem for p in CHAINS} >= DRR


@pytest.mark.parametrize("path", CHAINS, ids=lambda p: p.stem)
def test_every_example_chain_validates(path: Path) -> None:
    chain = ChainConfig.load(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), f"{path.name} should say what it does and what it costs"
    if path.stem == "drr_abstain":
        assert chain.strategy.abstain_below == 0.3  # type: ignore[attr-defined]
    if path.stem == "drr_escalate":
        assert chain.strategy.roles() == {"default", "escalate"}
        assert "escalate" in chain.roles
    if path.stem == "drr_bayes_probe_free":
        strategy = chain.strategy
        assert strategy.probes is False  # type: ignore[attr-defined]
        dm = strategy.judge_model()  # type: ignore[attr-defined]
        assert dm.probe_free and "votes" not in dm.feature_families
    if path.stem == "drr_feedback_probe_free":
        strategy = chain.strategy
        assert strategy.plain_rounds() and strategy.requires() == ()  # type: ignore[attr-defined]
        assert strategy.judge_model().probe_free  # type: ignore[attr-defined]
    if path.stem == "drr_think_thinking":
        strategy = chain.strategy
        assert strategy.thinking is not None and strategy.dynasor_agree() == 3  # type: ignore[attr-defined]
        assert chain.backend.thinking  # type: ignore[attr-defined]
