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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from ponder.behaviour.artifact import Artifact
from ponder.behaviour.records import Manifest
from ponder.errors import ConfigError, InputError
from ponder.stopping.features import (
    BASE_FAMILIES,
    SAMPLING_FEATURES,
    CheckpointState,
    checkpoint_feature_names,
    checkpoint_features,
    sampling_features,
)

FORMAT = "ponder.dm/1"
PROBE_FAMILIES: tuple[str, ...] = ("votes", "thinking")
"""Checkpoint families read off probe answers (their agreement, stability): a DM with one of
them needs probed traces. ``confidence`` and ``length`` read the trace itself."""
PROBE_FREE_FAMILIES: tuple[str, ...] = ("confidence", "length")
"""The default families of a probe-free DM (``ponder drr train --no-probes``)."""
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


class HiddenSpec(BaseModel):
    """What a DM with the ``hidden`` family was trained on: the sidecar's projection and size."""

    projection: str
    dims: int


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
    families: list[str] | None = None
    """The checkpoint scorer's feature families; ``None``: the three base ones (every artifact
    made before the ``hidden`` family)."""
    hidden: HiddenSpec | None = None
    checkpoint_fallback: Scorer | None = None
    """With ``hidden``: the same scorer trained without it, for states with no hidden state
    available (a live backend that exposes no embeddings); see ``without_hidden``."""
    probe_free: bool | None = None
    """``True``: trained on finished traces as one call generates them (no segments, no probe
    answers; ``ponder drr train --no-probes``), for ``drr_sample``/``drr_bayes`` with
    ``probes: false``. ``None``: trained on probed traces (every earlier artifact)."""

    @model_serializer(mode="wrap")
    def _omit_unset_families(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An artifact on the base families is written exactly as before they existed."""
        data: dict[str, Any] = handler(self)
        for key in ("families", "hidden", "checkpoint_fallback", "probe_free"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    def validate_loaded(self, path: str) -> None:
        fams = self.feature_families
        want = checkpoint_feature_names(fams, self.hidden_dims)
        base = checkpoint_feature_names([f for f in fams if f != "hidden"])
        if (
            self.checkpoint.features != want
            or (self.sampling is not None and tuple(self.sampling.features) != SAMPLING_FEATURES)
            or (self.needs_hidden and self.hidden is None)
            or (self.checkpoint_fallback is not None and self.checkpoint_fallback.features != base)
        ):
            raise InputError(f"{path}: its feature list differs from this Ponder's; retrain it")
        if self.probe_free and set(fams) & set(PROBE_FAMILIES):
            raise InputError(f"{path}: a probe-free DM with the votes family; retrain it")

    @property
    def feature_families(self) -> tuple[str, ...]:
        return tuple(self.families) if self.families is not None else BASE_FAMILIES

    @property
    def needs_probes(self) -> bool:
        """Whether it judges probed traces (it was not trained probe-free)."""
        return not self.probe_free

    def check_probes(self, probes: bool) -> None:
        """Refuse to judge traces generated otherwise than its training traces: a probed-trace
        DM (its families name ``votes``, the probe answers' agreement, and its states carry
        probe answers) with ``probes: false``, or a probe-free DM with probes on."""
        if probes == self.needs_probes:
            return
        fams = ", ".join(self.feature_families)
        if not probes:
            why = (
                f"its families ({fams}) include votes, read off probe answers"
                if set(self.feature_families) & set(PROBE_FAMILIES)
                else f"it was trained on probed traces' checkpoints (families {fams})"
            )
            raise ConfigError(
                "dm",
                f"probes: false judges one-call traces with no probe answers, and this DM needs "
                f"probes: {why}; train a probe-free one (ponder drr train --no-probes, families "
                "confidence,length) or leave probes on",
            )
        raise ConfigError(
            "dm",
            f"this DM was trained probe-free (one-call traces, families {fams}): use it with "
            "probes: false (drr_sample, drr_bayes), or train one on probed traces",
        )

    @property
    def needs_hidden(self) -> bool:
        return "hidden" in self.feature_families

    @property
    def hidden_dims(self) -> int:
        return self.hidden.dims if self.hidden is not None else 0

    def without_hidden(self) -> DM:
        """This judge without the ``hidden`` family: its fallback scorer (itself when it never
        needed hidden states). A DM trained with ``hidden`` and no fallback is refused."""
        if not self.needs_hidden:
            return self
        if self.checkpoint_fallback is None:
            raise ConfigError(
                "dm",
                "this DM needs the reasoner's hidden states, which this backend does not expose, "
                "and carries no fallback scorer; retrain it (ponder drr train --families ...)",
            )
        return self.model_copy(
            update={
                "families": [f for f in self.feature_families if f != "hidden"],
                "checkpoint": self.checkpoint_fallback,
                "checkpoint_fallback": None,
                "hidden": None,
            }
        )

    @property
    def max_tokens(self) -> int:
        return int(self.manifest.settings.get("max_tokens", 320))

    @property
    def k(self) -> int:
        return int(self.manifest.settings.get("k", 8))

    def p_checkpoint(self, state: CheckpointState) -> float:
        """P(the trace's current answer is correct) at this checkpoint."""
        fams = None if self.families is None else self.feature_families
        return self.checkpoint.p(checkpoint_features(state, fams, self.hidden_dims))

    def p_majority(self, answers: Sequence[str | None], scores: Sequence[float]) -> float:
        """P(the majority of these samples is correct); ``scores`` are their checkpoint P's."""
        if self.sampling is None:
            raise ConfigError("dm", "this DM has no sampling scorer; retrain it (ponder drr train)")
        return self.sampling.p(sampling_features(answers, scores, self.k))

    def check_settings(
        self,
        templates: dict[str, str],
        probe_every: int | None,
        allow_other: bool = False,
        thinking: Mapping[str, Any] | None = None,
    ) -> None:
        """Refuse live settings whose prompts or probe spacing differ from the training data
        (``probe_every`` ``None``: a probe-free run, whose traces have no segments). With
        ``thinking`` (a thinking-format run: its ``ThinkingSettings`` and ``max_tokens``, the
        thinking's cap) those are compared too, and ``templates`` should name the think-first
        template."""
        spacing = {} if probe_every is None else {"probe_every": probe_every}
        self.check_live(templates, {**spacing, **(thinking or {})}, allow_other)

    def check_thinking(self, thinking: Mapping[str, Any] | None) -> None:
        """Refuse to judge traces in another format than its training traces': a DM trained on
        a thinking-format collection (its manifest's ``settings.thinking``) on plain traces, or
        the other way round (``thinking``: the live run's settings, ``None`` for plain). Not
        waived by ``allow_other_reasoner``: the states differ in kind, not in degree."""
        trained = self.manifest.settings.get("thinking")
        if bool(trained) == (thinking is not None):
            return
        if trained:
            template = trained.get("template", "think_first_system")
            raise ConfigError(
                "dm",
                f"this DM was trained on a thinking-format collection (settings.thinking "
                f"{trained}, template {template}, thinking capped at {self.max_tokens}) and this "
                "run reasons in plain traces: set the strategy's thinking (with a backend with "
                "thinking: true), or use a DM trained on a plain collection",
            )
        raise ConfigError(
            "dm",
            f"this DM was trained on plain traces (no settings.thinking in its manifest) and this "
            f"run reasons in the thinking format ({dict(thinking or {})}): train one on a "
            "thinking collection (ponder collect --thinking-budget N, then ponder drr train), or "
            "unset the strategy's thinking (with a backend without thinking: true)",
        )


PACKAGED: dict[str, Path] = {
    "default": DEFAULT_ARTIFACT,
    "probe-free": ARTIFACTS / "probe-free.json",
}
"""Packaged DMs by name: ``default`` (probed traces) and ``probe-free`` (``probes: false``)."""


def load_dm(ref: str) -> DM:
    """A packaged DM by name (``"default"``, ``"probe-free"``; see ``PACKAGED``) or a path to an
    artifact."""
    packaged = PACKAGED.get(ref)
    if packaged is not None:
        if not packaged.is_file():
            raise ConfigError(
                "dm",
                f"no {ref!r} DM ships in this build; train one with "
                "`ponder drr train --data DIR --out FILE` and pass dm: FILE (docs/stopping.md)",
            )
        return DM.load(packaged)
    return DM.load(ref)
