"""The behaviour-data format: one JSONL line per question plus a ``manifest.json`` beside it.

Use ``read_collection(dir)`` to load a collection for training or replay. Every consumer (the DRR
judge, the learned aggregator, SSA training data, replay of stop policies) reads this one format.

A collection directory holds::

    manifest.json    Manifest: the reasoner (model file + sha256), prompt-template hashes,
                     sampling/probe settings, seed, dataset (path, sha256, rows)
    records.jsonl    one QuestionRecord per line, appended as each question finishes

Per sample: the full text, its final answer and whether it is right, ``lp`` (the chosen token's
logprob per generated token), ``conf`` (DeepConf token confidence per token: minus the mean
logprob of the top-k alternatives), ``probes`` (every ``probe_every`` generated tokens the partial
trace was continued with an answer cue; the probe's answer and whether it is right) and
``critique_p_yes`` (the reasoner asked whether its own answer is right: P("yes") from logprobs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ponder.errors import InputError

FORMAT = "ponder.behaviour/1"
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"


class ProbeRecord(BaseModel):
    """An answer forced out of a partial trace after ``at`` generated tokens."""

    at: int
    answer: str | None
    correct: bool
    text: str = ""
    tokens: int = 0


class SampleRecord(BaseModel):
    """One reasoning trace with everything seen along the way."""

    seed: int | None
    text: str
    answer: str | None
    correct: bool
    finish_reason: str | None
    tokens: int
    lp: list[float] = Field(default_factory=list)
    conf: list[float] = Field(default_factory=list)
    probes: list[ProbeRecord] = Field(default_factory=list)
    critique_p_yes: float | None = None
    error: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)


class QuestionRecord(BaseModel):
    """All samples drawn for one labelled question."""

    model_config = ConfigDict(extra="allow")

    id: str
    question: str
    gold: str
    samples: list[SampleRecord]
    greedy: SampleRecord | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    wall_s: float = 0.0


class ModelInfo(BaseModel):
    name: str
    file: str | None = None
    sha256: str | None = None


class DatasetInfo(BaseModel):
    path: str
    sha256: str
    rows: int
    first: int | None = None


class Manifest(BaseModel):
    """What a collection (and every artifact trained on it) describes."""

    format: str = FORMAT
    model: ModelInfo
    templates: dict[str, str]
    settings: dict[str, Any]
    seed: int
    dataset: DatasetInfo
    created: str = ""

    def reasoner_key(self) -> tuple[str | None, str]:
        """What identifies the reasoner: the model file's sha256 (or name) and the templates."""
        ident = self.model.sha256 or self.model.name
        return ident, json.dumps(self.templates, sort_keys=True)

    def same_reasoner(self, other: Manifest) -> bool:
        return self.reasoner_key() == other.reasoner_key()


def read_manifest(directory: str | Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise InputError(f"{directory} is not a behaviour collection: {MANIFEST} is missing")
    return Manifest.model_validate_json(path.read_text(encoding="utf-8"))


def read_records(directory: str | Path) -> list[QuestionRecord]:
    """Every complete line of ``records.jsonl`` (a torn last line, from a crash, is skipped)."""
    path = Path(directory) / RECORDS
    if not path.is_file():
        return []
    out: list[QuestionRecord] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn write: the collector rewrites it on resume
            if line.strip():
                out.append(QuestionRecord.model_validate_json(line))
    return out


def read_collection(directory: str | Path) -> tuple[Manifest, list[QuestionRecord]]:
    """Load a collection: its manifest and its question records, in collection order."""
    return read_manifest(directory), read_records(directory)
