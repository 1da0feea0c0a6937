"""``learned``: pick the answer group a small trained model scores highest, with P(correct).

Use it after training an artifact on a behaviour collection of *train* questions
(``ponder aggregate train --collection DIR --out model.json``, or ``train_artifact``)::

    aggregator: {name: learned, artifact: model.json, reasoner: default}

Each answer group of the sample set gets features (``learned_features``) and a logistic score;
the best-scoring group wins and ``Outcome.confidence`` is its calibrated P(correct) (a Platt map
fitted on out-of-fold picks at training time). The artifact is one small JSON file: feature
names, scaler, coefficients, calibration, and the training collection's ``Manifest``. Inference
is plain Python (no scikit-learn needed).

An artifact describes one reasoner. It refuses (``ReasonerMismatch``) samples from another: the
samples name their reasoner when they come from a collection (``data["reasoner"]``), otherwise
the config must (``reasoner``: the model's sha256 or name, or ``default`` for the embedded default
model, ``ponder.behaviour.records.DEFAULT_REASONER``). ``allow_other_reasoner: true`` overrides
both checks. Loading, saving and the checks are the artifact base's (``ponder.behaviour.artifact``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from ponder.aggregator.base import Aggregator, valid
from ponder.aggregator.learned_features import group_features
from ponder.aggregator.registry import register_aggregator
from ponder.behaviour.artifact import Artifact, ReasonerMismatch
from ponder.behaviour.records import DEFAULT_REASONER, Manifest
from ponder.errors import AllSamplesFailed, ConfigError, NoAnswer
from ponder.protocol.actions import Outcome, Task, failure_of

ARTIFACT_FORMAT = "ponder.learned_aggregator/1"
DEFAULT_ARTIFACT = Path(__file__).with_name("artifacts") / "learned-default.json"
"""Where a default artifact for the default model ships (``artifact: default``), when it does."""


class Calibration(BaseModel):
    """P(correct of the pick) = sigmoid(a * score_logit + b)."""

    a: float = 1.0
    b: float = 0.0


class LearnedArtifact(Artifact):
    """The saved model (see the module doc); ``manifest`` is the training collection's."""

    FORMAT: ClassVar[str] = ARTIFACT_FORMAT
    KIND: ClassVar[str] = "learned aggregator"
    FIELD: ClassVar[str] = "aggregator.artifact"
    DEFAULT: ClassVar[Path | None] = DEFAULT_ARTIFACT
    TRAIN: ClassVar[str] = "ponder aggregate train --collection DIR --out FILE"
    JSON_INDENT: ClassVar[int | None] = 1

    format: str = ARTIFACT_FORMAT
    families: list[str]
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    calibration: Calibration = Field(default_factory=Calibration)
    confidence_source: str | None = None
    manifest: Manifest
    training: dict[str, object] = Field(default_factory=dict)

    def logit(self, row: dict[str, float]) -> float:
        z = self.intercept
        for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True):
            z += c * (row[name] - m) / s
        return z

    def p_correct(self, logit: float) -> float:
        return _sigmoid(self.calibration.a * logit + self.calibration.b)

    def reasoner_ids(self) -> set[str]:
        return self.manifest.model.names()


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def load_artifact(path: str | Path) -> LearnedArtifact:
    """The artifact at ``path`` (``"default"``: the one shipped for the default model)."""
    return LearnedArtifact.load(path)


@register_aggregator
class LearnedAggregator(Aggregator):
    """Score each answer group with a trained artifact; pick the best; calibrated P(correct)."""

    name: ClassVar[str] = "learned"

    artifact: str
    reasoner: str | None = None
    allow_other_reasoner: bool = False

    def load(self) -> LearnedArtifact:
        return load_artifact(self.artifact)

    def check_manifest(self, manifest: Manifest) -> None:
        """Refuse samples of the reasoner ``manifest`` describes unless it is the artifact's."""
        self.load().check_reasoner(manifest, self.allow_other_reasoner, label=self.artifact)

    def _check_samples(self, art: LearnedArtifact, samples: Sequence[Outcome]) -> None:
        if self.allow_other_reasoner:
            return
        named = {str(s.data["reasoner"]) for s in samples if s.data.get("reasoner")}
        if not named and self.reasoner is not None:
            named = {DEFAULT_REASONER.id if self.reasoner == "default" else self.reasoner}
        if not named:
            raise ReasonerMismatch(
                "aggregator.reasoner",
                f"{self.artifact} judges samples of model {art.manifest.model.describe()} only, "
                "and these samples do not say which model made them: set reasoner: <model "
                "sha256 or name> (reasoner: default for the embedded default model), or "
                "allow_other_reasoner: true",
            )
        art.check_names(named, label=self.artifact, field="aggregator.reasoner")

    def choose(self, task: Task, samples: Sequence[Outcome]) -> Outcome:
        if not valid(samples):
            raise AllSamplesFailed([failure_of(s) for s in samples] or [NoAnswer()])
        art = self.load()
        self._check_samples(art, samples)
        sources = {s.data.get("confidence_source") for s in samples if s.answer is not None}
        if "confidence" in art.families and art.confidence_source not in sources:
            raise ConfigError(
                "aggregator.artifact",
                f"{self.artifact} was trained on {art.confidence_source!r} confidences; these "
                f"samples have {sorted(str(x) for x in sources)} (set logprobs: true and "
                "top_logprobs as in the training collection)",
            )
        groups, rows = group_features(samples, len(samples), art.families)
        logits = [art.logit(r) for r in rows]
        best = max(range(len(groups)), key=lambda j: logits[j])  # first on ties
        g = groups[best]
        p = art.p_correct(logits[best])
        return Outcome(
            answer=g.answer,
            text=samples[g.members[0]].text,
            confidence=p,
            data={
                "aggregator": self.name,
                "p_correct": round(p, 4),
                "scores": {
                    gr.answer: round(_sigmoid(z), 4) for gr, z in zip(groups, logits, strict=True)
                },
                "chosen": g.members[0],
            },
        )
