"""The judges shipped for the default model: they load, describe the default reasoner, stay
small, and answer with probabilities."""

from __future__ import annotations

from ponder.aggregator.learned import DEFAULT_ARTIFACT, LearnedAggregator, load_artifact
from ponder.backends.local.model import DEFAULT_MODEL
from ponder.behaviour.outcomes import sample_outcomes
from ponder.behaviour.records import QuestionRecord, SampleRecord
from ponder.protocol.actions import Task
from ponder.stopping.features import CheckpointState
from ponder.stopping.model import DEFAULT_ARTIFACT as DM_ARTIFACT
from ponder.stopping.model import load_dm


def test_default_dm_describes_the_default_model() -> None:
    assert DM_ARTIFACT.stat().st_size < 1_000_000
    dm = load_dm("default")
    assert dm.manifest.model.sha256 == DEFAULT_MODEL.sha256
    assert "train" in dm.manifest.dataset.path  # trained on train questions only
    agree = CheckpointState(64, ("18", "18", "18"), [-0.1] * 64, [2.0] * 64, False, False, 320)
    drift = CheckpointState(64, ("3", "90", "7"), [-2.0] * 64, [0.3] * 64, False, False, 320)
    for state in (agree, drift):
        assert 0.0 <= dm.p_checkpoint(state) <= 1.0


def test_default_learned_aggregator_describes_the_default_model() -> None:
    assert DEFAULT_ARTIFACT.stat().st_size < 1_000_000
    art = load_artifact("default")
    assert art.manifest.model.sha256 == DEFAULT_MODEL.sha256
    assert "train" in art.manifest.dataset.path
    record = QuestionRecord(
        id="q",
        question="2+2?",
        gold="4",
        samples=[
            SampleRecord(
                seed=i,
                text=f"two and two \\boxed{{{a}}}",
                answer=a,
                correct=a == "4",
                finish_reason="stop",
                tokens=40,
                lp=[-0.2] * 40,
                conf=[1.5] * 40,
            )
            for i, a in enumerate(["4", "4", "4", "5"])
        ],
    )
    samples = sample_outcomes(record, art.manifest)
    out = LearnedAggregator(artifact="default", reasoner="default").choose(Task("2+2?"), samples)
    assert out.answer in ("4", "5")
    assert 0.0 <= out.data["p_correct"] <= 1.0
