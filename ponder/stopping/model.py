"""The DRR discriminative model (DM) as a small versioned JSON artifact.

Use ``DM.load(path)`` (or ``load_dm("default")`` for the packaged one) and ``dm.p_checkpoint(
state)`` / ``dm.p_majority(answers, scores)`` at inference; ``ponder drr train`` writes one.
An artifact holds two scorers, each a feature list, a model (logistic regression or a small
gradient-boosted tree ensemble, evaluated here in plain Python: no scikit-learn at inference)
and a Platt calibration, plus the ``Manifest`` of the collection it was trained on.
``dm.check_reasoner(manifest)`` (and the live strategies, via ``check_settings``) refuse to
judge a reasoner other than that one unless told to.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

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


class DM(BaseModel):
    """A trained DRR judge; see the module doc."""

    format: str = FORMAT
    created: str = ""
    manifest: Manifest
    checkpoint: Scorer
    sampling: Scorer | None = None
    train: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> DM:
        p = Path(path).expanduser().resolve()
        if not p.is_file():
            raise InputError(f"DM artifact {p} not found")
        return _load(str(p), p.stat().st_mtime_ns)

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.model_dump_json(), encoding="utf-8")
        tmp.replace(path)
        return path

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

    def check_reasoner(self, manifest: Manifest, allow_other: bool = False) -> None:
        """Refuse a collection (or run) made by another reasoner than the DM was trained on."""
        if allow_other or self.manifest.same_reasoner(manifest):
            return
        mine, theirs = self.manifest, manifest
        raise ConfigError(
            "dm",
            f"this DM was trained on reasoner {mine.model.name} (sha256 {mine.model.sha256}, "
            f"templates {mine.templates}) but is asked to judge {theirs.model.name} "
            f"(sha256 {theirs.model.sha256}, templates {theirs.templates}); its probabilities "
            "describe only its own reasoner. Train a DM on this reasoner (ponder drr collect + "
            "train), or pass allow_other_reasoner / --allow-other-reasoner to use it anyway",
        )

    def check_settings(
        self, templates: dict[str, str], probe_every: int, allow_other: bool = False
    ) -> None:
        """Refuse live settings whose prompts or probe spacing differ from the training data."""
        if allow_other:
            return
        diffs = []
        mine = self.manifest.templates
        for name, h in templates.items():
            if name in mine and mine[name] != h:
                diffs.append(f"template {name}")
            elif name not in mine:
                diffs.append(f"template {name} (not in the DM's manifest)")
        trained = self.manifest.settings.get("probe_every")
        if trained is not None and trained != probe_every:
            diffs.append(f"probe_every ({probe_every} vs {trained} in training)")
        if diffs:
            raise ConfigError(
                "dm",
                "this DM was trained with other settings: "
                + "; ".join(diffs)
                + "; use the training settings or set allow_other_reasoner: true",
            )


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> DM:
    p = Path(path)
    dm = DM.model_validate_json(p.read_text(encoding="utf-8"))
    if dm.format != FORMAT:
        raise InputError(f"{path}: DM format {dm.format!r}, this Ponder reads {FORMAT!r}")
    if tuple(dm.checkpoint.features) != CHECKPOINT_FEATURES or (
        dm.sampling is not None and tuple(dm.sampling.features) != SAMPLING_FEATURES
    ):
        raise InputError(f"{path}: its feature list differs from this Ponder's; retrain it")
    return dm


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
