"""Drive ``RFTSampler`` over SSA examples into a resumable JSONL of training targets.

Use ``run_rft(...)`` from Python or ``ponder ssa rft`` from the shell, after ``ponder ssa data``.
Examples run a few at a time through one orchestrator (a ``Session``: its budget, retries,
concurrency and usage); each finished example is graded (``select_targets``) and appended as one
line, flushed and fsynced, with its targets (possibly none) and every sample, so a crash or
Ctrl-C loses nothing written. A rerun continues: done example ids are skipped, a last line torn
by a crash is cut and that example redone. A rerun with other settings, another aggregator or
other data into the same file is refused, naming what differs. ``OUT.manifest.json`` carries the
examples' manifest (sampler, template hash, k, truncation), the aggregator model and the
settings; ``summarize_rft(OUT)`` counts the whole file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ponder.behaviour.records import ModelInfo, file_sha256
from ponder.errors import ConfigError, InputError, PonderError
from ponder.evaluation.driver import (
    Bar,
    DriveStats,
    Failed,
    ItemWork,
    ManifestFile,
    Output,
    Remote,
    Write,
    drive,
    run_with,
)
from ponder.jsonl import read_json_lines
from ponder.learning.ssa.data import SSAExample
from ponder.learning.ssa.rft import Fallback, RFTSampler, select_targets
from ponder.orchestrator.engine import Orchestrator
from ponder.protocol.actions import Task
from ponder.protocol.requests import SamplingParams

FORMAT = "ponder.ssa-rft/1"


class RFTSettings(BaseModel):
    """How targets are sampled and kept (recorded in the manifest; a resume must match)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(4, ge=1, le=64)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, gt=0)
    seed: int = 0
    cap: int = Field(2, ge=1)
    fallback: Fallback = "candidate"
    role: str = "aggregator"

    def sampler(self, example: SSAExample) -> RFTSampler:
        """The strategy that samples the aggregator on ``example`` with these settings."""
        params = SamplingParams(
            n=self.n,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            seed=self.seed,
        )
        return RFTSampler(messages=tuple(example.messages), params=params, role=self.role)


def manifest_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".manifest.json")


def example_id(example: SSAExample) -> str:
    """Stable id of one example: its question and a hash of its exact prompt."""
    digest = hashlib.sha256(json.dumps(example.messages, sort_keys=True).encode()).hexdigest()
    return f"{example.question_id}:{digest[:12]}"


def read_ssa_examples(path: str | Path) -> tuple[list[SSAExample], dict[str, Any]]:
    """The examples ``ponder ssa data`` wrote, and their manifest (``{}`` if it is missing)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"SSA examples file {path} does not exist (make it with `ponder ssa data`)"
        )
    examples = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            examples.append(SSAExample(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path} line {i} is not an SSA example: {exc}") from exc
    man = manifest_path(path)
    info = json.loads(man.read_text(encoding="utf-8")) if man.is_file() else {}
    return examples, info


def build_rft_manifest(
    data: str | Path, data_manifest: dict[str, Any], aggregator: ModelInfo, settings: RFTSettings
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "data": {"path": str(data), "sha256": file_sha256(data), "manifest": data_manifest},
        "aggregator": aggregator.model_dump(),
        "settings": settings.model_dump(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def check_resumable(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to append to targets made with other settings, naming what differs."""
    diffs = []
    if old.get("format") != new["format"]:
        diffs.append(f"format ({old.get('format')!r} vs {new['format']!r})")
    if old.get("data", {}).get("sha256") != new["data"]["sha256"]:
        diffs.append(f"data ({old.get('data', {}).get('path')} vs {new['data']['path']})")
    oa, na = old.get("aggregator", {}), new["aggregator"]
    if (oa.get("name"), oa.get("sha256")) != (na["name"], na["sha256"]):
        diffs.append(
            f"aggregator ({oa.get('name')} {oa.get('sha256')} vs {na['name']} {na['sha256']})"
        )
    os_, ns = old.get("settings", {}), new["settings"]
    diffs += [f"{k} ({os_.get(k)!r} vs {ns.get(k)!r})" for k in sorted(ns) if os_.get(k) != ns[k]]
    if diffs:
        raise ConfigError(
            "out",
            "these targets were made with other settings: "
            + "; ".join(diffs)
            + " (use a new --out file, or the original settings to resume)",
        )


def read_rft_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every complete row of a targets file (a torn last line is ignored)."""
    return read_json_lines(path)


@dataclass(kw_only=True)
class RFTSummary(DriveStats):
    """What one ``run_rft`` call did (``summarize_rft`` counts the whole file): the driver's
    counts, and the targets file ``out``."""

    out: Path

    @property
    def processed(self) -> int:
        """Examples written by this call."""
        return self.written

    def line(self) -> str:
        return (
            f"sampled {self.processed} example(s) ({self.done_before} before, "
            f"{len(self.failed)} failed, {self.total} in the data) into {self.out}; "
            f"{self.completion_tokens} generated tokens at {self.tok_s:.1f} tok/s"
        )


def summarize_rft(path: str | Path) -> dict[str, Any]:
    """Counts over the whole targets file: examples, with ≥1 correct aggregator sample, targets
    by source, examples with no target, samples and their tokens, by example kind."""
    rows = read_rft_rows(path)
    by_source: Counter[str] = Counter()
    by_kind: Counter[str] = Counter()
    with_target: Counter[str] = Counter()
    samples = correct = tokens = target_tokens = 0
    any_right = 0
    for r in rows:
        by_kind[r["kind"]] += 1
        graded = r.get("samples", [])
        samples += len(graded)
        right = sum(bool(g["correct"]) for g in graded)
        correct += right
        any_right += right > 0
        tokens += sum(int(g.get("tokens") or 0) for g in graded)
        for t in r.get("targets", []):
            by_source[t["source"]] += 1
            target_tokens += int(t.get("tokens") or 0)
        if r.get("targets"):
            with_target[r["kind"]] += 1
    return {
        "examples": len(rows),
        "with_correct_sample": any_right,
        "with_target": sum(with_target.values()),
        "targets": dict(by_source),
        "samples": samples,
        "correct_samples": correct,
        "sample_tokens": tokens,
        "by_kind": dict(by_kind),
        "with_target_by_kind": dict(with_target),
    }


def summary_text(s: dict[str, Any]) -> str:
    n = s["examples"] or 1
    targets = ", ".join(f"{k} {v}" for k, v in sorted(s["targets"].items())) or "none"
    kinds = ", ".join(
        f"{k} {s['with_target_by_kind'].get(k, 0)}/{v}" for k, v in sorted(s["by_kind"].items())
    )
    right = s["with_correct_sample"]
    return (
        f"{s['examples']} examples; {right} ({right / n:.0%}) "
        f"with ≥1 correct aggregator sample ({s['correct_samples']}/{s['samples']} samples right, "
        f"{s['sample_tokens']} sample tokens); targets: {targets}; "
        f"{s['with_target']} examples with a target (by kind: {kinds})"
    )


def rft_output(out: str | Path, manifest: dict[str, Any]) -> Output:
    """The targets file as a resumable output, its manifest beside it (``OUT.manifest.json``;
    a resume with other data, settings or aggregator is refused by ``check_resumable``)."""
    return Output(
        records=Path(out),
        manifest=ManifestFile(
            path=manifest_path(out),
            text=json.dumps(manifest, indent=2),
            check=lambda text: check_resumable(json.loads(text), manifest),
        ),
    )


@dataclass(frozen=True)
class RFTItem:
    """Sample and grade one example with ``settings``: its row line, or ``Failed``. Picklable:
    ``ponder.scale`` runs it on workers."""

    settings: RFTSettings

    async def __call__(self, orchestrator: Orchestrator, ex: SSAExample) -> Write | Failed:
        settings = self.settings
        user = ex.messages[-1]["content"]
        try:
            result = await orchestrator.run(settings.sampler(ex), Task(user))
        except PonderError as exc:
            return Failed.of(exc)
        outcome = result.outcome
        if outcome.error is not None:
            return Failed(str(outcome.data.get("error")))
        sel = select_targets(
            outcome.samples, ex.gold, user, cap=settings.cap, fallback=settings.fallback
        )
        row = {
            "id": example_id(ex),
            **ex.__dict__,
            "targets": [t.to_dict() for t in sel.targets],
            "samples": sel.graded,
            "usage": result.usage.to_dict(),
        }
        return Write(json.dumps(row, ensure_ascii=False), result.usage)


async def run_rft(
    examples: Sequence[SSAExample],
    out: str | Path,
    orchestrator: Orchestrator | None,
    settings: RFTSettings,
    manifest: dict[str, Any],
    *,
    examples_at_once: int = 2,
    progress: bool = True,
    elsewhere: Callable[[ItemWork[SSAExample]], Remote[SSAExample]] | None = None,
) -> RFTSummary:
    """Sample and grade targets for ``examples`` into ``out`` (resuming); see the module doc.
    ``elsewhere`` runs the examples on other machines (``ponder.scale``; then ``orchestrator``
    is not used and may be None)."""
    out = Path(out)
    work = RFTItem(settings)
    right = {"right": 0, "seen": 0}
    run = run_with(work, orchestrator, elsewhere)
    if not isinstance(run, Remote):
        here = run

        async def counting(ex: SSAExample) -> Write | Failed:
            result = await here(ex)
            if isinstance(result, Write):  # written at once by the driver (no await between)
                right["seen"] += 1
                right["right"] += any(g["correct"] for g in json.loads(result.line)["samples"])
            return result

        run = counting

    def postfix(s: DriveStats) -> dict[str, str]:
        if not right["seen"]:
            return {"tok_s": f"{s.tok_s:.0f}"}
        return {"right": f"{right['right']}/{right['seen']}", "tok_s": f"{s.tok_s:.0f}"}

    stats = await drive(
        examples,
        rft_output(out, manifest),
        run,
        id_of=example_id,
        at_once=examples_at_once,
        bar=Bar("ssa rft", "ex", postfix, progress),
    )
    return RFTSummary(out=out, **vars(stats))
