"""The behaviour-data format: one JSONL line per question plus a ``manifest.json`` beside it.

Use ``read_collection(dir)`` to load a collection for training or replay. Every consumer (the DRR
judge, the learned aggregator, SSA training data, replay of stop policies) reads this one format.

A collection directory holds::

    manifest.json    Manifest: the reasoner (model file + sha256), prompt-template hashes,
                     sampling/probe settings, seed, dataset (path, sha256, rows)
    records.jsonl    one QuestionRecord per line, appended as each question finishes
    records-NNNN.jsonl.gz   sealed chunks (optional): earlier records, gzipped, read first and
                     in name order; ``ponder corpus seal`` writes them so a corpus can be
                     committed in pieces that never change once written

Per sample: the full text, its final answer and whether it is right, ``lp`` (the chosen token's
logprob per generated token), ``conf`` (DeepConf token confidence per token: minus the mean
logprob of the top-k alternatives), ``probes`` (every ``probe_every`` generated tokens the partial
trace was continued with an answer cue; the probe's answer and whether it is right) and
``critique_p_yes`` (the reasoner asked whether its own answer is right: P("yes") from logprobs).

A collection made in the thinking format (``ponder collect --thinking-budget N`` on a thinking
backend; the manifest's ``settings.thinking``) also has, per sample, ``thinking`` (the thinking
text), ``thinking_tokens`` (all of it) and ``thinking_cut`` (Ponder closed it at the cap); there
``text`` is the answer part only (what ``answer`` is graded from), ``tokens`` counts thinking and
answer, and each probe's ``thinking_tokens`` is the thinking so far (probes are made inside the
thinking). Those fields are optional: records without them read as before, and readers that do
not know them ignore them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from ponder.errors import InputError
from ponder.jsonl import read_text

FORMAT = "ponder.behaviour/1"
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
SEALED_GLOB = "records-[0-9][0-9][0-9][0-9].jsonl.gz"


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file (a dataset, a model, a projection), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class ProbeRecord(BaseModel):
    """An answer forced out of a partial trace after ``at`` generated tokens."""

    at: int
    answer: str | None = None  # the collector writes records without None fields
    correct: bool
    text: str = ""
    tokens: int = 0
    thinking_tokens: int | None = None
    """Thinking tokens before this probe (thinking-format collections; else absent)."""


class SampleRecord(BaseModel):
    """One reasoning trace with everything seen along the way."""

    seed: int | None = None  # the collector writes records without None fields
    text: str
    answer: str | None = None
    correct: bool
    finish_reason: str | None
    tokens: int
    lp: list[float] = Field(default_factory=list)
    conf: list[float] = Field(default_factory=list)
    probes: list[ProbeRecord] = Field(default_factory=list)
    critique_p_yes: float | None = None
    error: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)
    thinking: str | None = None
    """The thinking text (thinking-format collections; ``text`` is then the answer part)."""
    thinking_tokens: int | None = None
    """How many of ``tokens`` were thinking (thinking-format collections; else absent)."""
    thinking_cut: bool | None = None
    """The thinking reached the cap and Ponder closed it (thinking-format collections)."""


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
    """The reasoner's model: what identifies it is the file's sha256, else its name."""

    name: str
    file: str | None = None
    sha256: str | None = None

    @property
    def id(self) -> str:
        """The reasoner id samples carry (``data["reasoner"]``): the sha256, else the name."""
        return self.sha256 or self.name

    def names(self) -> set[str]:
        """Every string that names this model: its name, sha256, file name and file stem."""
        ids = {self.name, self.sha256 or ""}
        if self.file:
            ids |= {Path(self.file).name, Path(self.file).stem}
        return {i for i in ids if i}

    def describe(self) -> str:
        sha = f" (sha256 {self.sha256[:12]}…)" if self.sha256 else ""
        return f"{self.name}{sha}"


DEFAULT_REASONER = ModelInfo(
    name="qwen2.5-coder-0.5b-instruct",
    file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
"""The embedded default model (``reasoner: default``): the one the shipped artifacts describe.
``ponder.backends.local.model.DEFAULT_MODEL`` takes its name, file and sha256 from here and
fetches and verifies that file."""


class DatasetInfo(BaseModel):
    path: str
    sha256: str
    rows: int
    first: int | None = None
    skip: int = 0
    """The first ``skip`` of those left out (``ponder collect --skip``); written only when set,
    so manifests (and the artifacts that copy them) without it stay byte for byte the same."""

    @model_serializer(mode="wrap")
    def _without_zero_skip(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not self.skip:
            out.pop("skip", None)
        return out


class Manifest(BaseModel):
    """What a collection (and every artifact trained on it) describes."""

    format: str = FORMAT
    model: ModelInfo
    templates: dict[str, str]
    settings: dict[str, Any]
    seed: int
    dataset: DatasetInfo
    created: str = ""

    def reasoner_key(self) -> tuple[str, str]:
        """What identifies the reasoner: the model (``ModelInfo.id``) and the template hashes."""
        return self.model.id, json.dumps(self.templates, sort_keys=True)

    def same_reasoner(self, other: Manifest) -> bool:
        return self.reasoner_key() == other.reasoner_key()

    def reasoner_differences(
        self, other: Manifest, labels: tuple[str, str] = ("this", "other")
    ) -> list[str]:
        """What makes ``other``'s reasoner not this one (empty when ``same_reasoner``); ``labels``
        name the two manifests in the text."""
        a, b = labels
        diffs = []
        if self.model.id != other.model.id:
            diffs.append(f"model {self.model.describe()} ({a}) vs {other.model.describe()} ({b})")
        for name in sorted(self.templates.keys() | other.templates.keys()):
            mine, theirs = self.templates.get(name), other.templates.get(name)
            if mine == theirs:
                continue
            if mine is None or theirs is None:
                diffs.append(f"template {name} only in the {a if theirs is None else b} manifest")
            else:
                diffs.append(f"template {name} {mine} ({a}) vs {theirs} ({b})")
        return diffs


def read_manifest(directory: str | Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise InputError(f"{directory} is not a behaviour collection: {MANIFEST} is missing")
    return Manifest.model_validate_json(path.read_text(encoding="utf-8"))


def sealed_chunks(directory: str | Path) -> list[Path]:
    """The sealed ``records-NNNN.jsonl.gz`` chunks of a collection, in order."""
    return sorted(Path(directory).glob(SEALED_GLOB))


def chunk_lines(path: str | Path) -> list[str]:
    """The non-blank lines of one sealed chunk."""
    return [line for line in read_text(path).splitlines() if line.strip()]


def record_lines(directory: str | Path) -> list[str]:
    """Every complete record line of a collection, unparsed: the sealed chunks' lines, then
    those of ``records.jsonl`` (a torn last line, from a crash, is skipped)."""
    out = [line for chunk in sealed_chunks(directory) for line in chunk_lines(chunk)]
    path = Path(directory) / RECORDS
    if not path.is_file():
        return out
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # torn write: the collector rewrites it on resume
            if line.strip():
                out.append(line.rstrip("\n"))
    return out


def read_records(directory: str | Path) -> list[QuestionRecord]:
    """The sealed chunks' records, then every complete line of ``records.jsonl`` (a torn last
    line, from a crash, is skipped)."""
    return [QuestionRecord.model_validate_json(line) for line in record_lines(directory)]


def read_collection(directory: str | Path) -> tuple[Manifest, list[QuestionRecord]]:
    """Load a collection: its manifest and its question records, in collection order."""
    return read_manifest(directory), read_records(directory)


def in_dataset_order(records: list[QuestionRecord]) -> list[QuestionRecord]:
    """The records by dataset row when every id is one (``ponder collect`` ids are row numbers;
    a collection stores them in the order they finished), else as stored: so "the first 100
    test questions" are the dataset's first 100, whatever order they were collected in."""
    rows = list(records)
    if all(r.id.isdigit() for r in rows):
        rows.sort(key=lambda r: int(r.id))
    return rows


def first_in_dataset(records: list[QuestionRecord], n: int | None) -> list[QuestionRecord]:
    """The records of the dataset's first ``n`` collected questions (all when ``n`` is None),
    kept in their stored order."""
    if n is None:
        return list(records)
    wanted = {r.id for r in in_dataset_order(records)[:n]}
    return [r for r in records if r.id in wanted]
