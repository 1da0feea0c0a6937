"""The DRR discriminative model (DM) as a small versioned JSON artifact.

Use ``DM.load(path)`` (or ``load_dm("default")`` for the packaged one) and ``dm.p_checkpoint(
state)`` / ``dm.p_majority(answers, scores)`` at inference; ``ponder drr train`` writes one.
An artifact holds two scorers, each a feature list, a model (logistic regression or a small
gradient-boosted tree ensemble, evaluated here in plain Python: no scikit-learn at inference)
and a Platt calibration, plus the ``Manifest`` of the collection it was trained on.
``dm.check_reasoner(manifest)`` (and the live strategies, via ``check_settings``) refuse to
judge a reasoner other than that one unless told to. Loading, saving and those checks are the
artifact base's (``ponder.behaviour.artifact``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from ponder.behaviour.artifact import Artifact
from ponder.behaviour.records import Manifest
from ponder.errors import ConfigError, InputError
from ponder.stopping.features import (
    CHECKPOINT_FEATURES,
    SAMPLING_FEATURES,
    CheckpointState,
    checkpoint_features,
    sampling_features,
)

FORMAT = "ponder.dm/1"
ARTIFACTS = Path(__file__).parent / "artifacts"
DEFAULT_ARTIFACT = ARTIFACTS / "default.json"


class Linear(BaseModel):
    kind: Literal["logistic"] = "logistic"
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def raw(self, x: Sequence[float]) -> float:
        return self.intercept + sum(
            c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.scale, strict=True)
        )


class Tree(BaseModel):
    """One regression tree in array form (sklearn's ``tree_``): leaves have ``feature == -1``."""

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    value: list[float]

    def predict(self, x: Sequence[float]) -> float:
        node = 0
        while self.feature[node] >= 0:
            go_left = x[self.feature[node]] <= self.threshold[node]
            node = self.left[node] if go_left else self.right[node]
        return self.value[node]


class Boosted(BaseModel):
    kind: Literal["gbt"] = "gbt"
    init: float
    learning_rate: float
    trees: list[Tree]

    def raw(self, x: Sequence[float]) -> float:
        return self.init + self.learning_rate * sum(t.predict(x) for t in self.trees)


class Scorer(BaseModel):
    """Features -> model raw score -> Platt calibration -> P(correct)."""

    features: list[str]
    model: Linear | Boosted = Field(discriminator="kind")
    platt_a: float = 1.0
    platt_b: float = 0.0
    cv: dict[str, Any] = Field(default_factory=dict)

    def p(self, x: Sequence[float]) -> float:
        z = self.platt_a * self.model.raw(x) + self.platt_b
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


class DM(Artifact):
    """A trained DRR judge; see the module doc."""

    FORMAT: ClassVar[str] = FORMAT
    KIND: ClassVar[str] = "DM"
    FIELD: ClassVar[str] = "dm"
    DEFAULT: ClassVar[Path | None] = DEFAULT_ARTIFACT
    TRAIN: ClassVar[str] = "ponder drr collect + train"
    OVERRIDE: ClassVar[str] = "pass allow_other_reasoner / --allow-other-reasoner"

    format: str = FORMAT
    created: str = ""
    manifest: Manifest
    checkpoint: Scorer
    sampling: Scorer | None = None
    train: dict[str, Any] = Field(default_factory=dict)

    def validate_loaded(self, path: str) -> None:
        if tuple(self.checkpoint.features) != CHECKPOINT_FEATURES or (
            self.sampling is not None and tuple(self.sampling.features) != SAMPLING_FEATURES
        ):
            raise InputError(f"{path}: its feature list differs from this Ponder's; retrain it")

    @property
    def max_tokens(self) -> int:
        return int(self.manifest.settings.get("max_tokens", 320))

    @property
    def k(self) -> int:
        return int(self.manifest.settings.get("k", 8))

    def p_checkpoint(self, state: CheckpointState) -> float:
        """P(the trace's current answer is correct) at this checkpoint."""
        return self.checkpoint.p(checkpoint_features(state))

    def p_majority(self, answers: Sequence[str | None], scores: Sequence[float]) -> float:
        """P(the majority of these samples is correct); ``scores`` are their checkpoint P's."""
        if self.sampling is None:
            raise ConfigError("dm", "this DM has no sampling scorer; retrain it (ponder drr train)")
        return self.sampling.p(sampling_features(answers, scores, self.k))

    def check_settings(
        self, templates: dict[str, str], probe_every: int, allow_other: bool = False
    ) -> None:
        """Refuse live settings whose prompts or probe spacing differ from the training data."""
        self.check_live(templates, {"probe_every": probe_every}, allow_other)


def load_dm(ref: str) -> DM:
    """``"default"`` (the packaged DM for the default model) or a path to an artifact."""
    if ref == "default":
        if not DEFAULT_ARTIFACT.is_file():
            raise ConfigError(
                "dm",
                "no default DM ships in this build yet; train one with "
                "`ponder drr train --data DIR --out FILE` and pass dm: FILE (docs/stopping.md)",
            )
        return DM.load(DEFAULT_ARTIFACT)
    return DM.load(ref)
