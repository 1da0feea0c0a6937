"""Drive ``BehaviourCollector`` over a labelled dataset into a resumable collection directory.

Use ``collect(...)`` from Python or ``ponder collect`` from the shell. Questions run a few at a
time through one orchestrator; each finished question is graded and appended to
``records.jsonl`` as one line (flushed and fsynced), so a crash or Ctrl-C loses nothing written
and a rerun with the same settings continues where it stopped. A rerun with *different*
settings (or another reasoner) into the same directory is refused, naming what differs.
A question whose trace failed (after the orchestrator's retries) is not written but counted as
failed, so a rerun redoes it; a failure no rerun can fix (a missing backend capability, a
rejected key, a config error) stops the whole collection at the first question, writing nothing.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.behaviour.datasets import Item
from ponder.behaviour.records import (
    MANIFEST,
    RECORDS,
    DatasetInfo,
    Manifest,
    ModelInfo,
    ProbeRecord,
    QuestionRecord,
    SampleRecord,
    read_manifest,
    read_records,
)
from ponder.errors import AuthenticationFailed, CapabilityMissing, ConfigError, PonderError
from ponder.grading import is_equivalent
from ponder.jsonl import append_line, cut_torn_tail
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.orchestrator.engine import Orchestrator
from ponder.prompts.loader import load_template
from ponder.protocol.actions import Outcome, Task
from ponder.strategies.probed_trace import TraceLog


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def template_hashes(strategy: BehaviourCollector) -> dict[str, str]:
    return {
        name: hashlib.sha256(load_template(name).source.encode()).hexdigest()[:16]
        for name in strategy.template_names()
    }


def build_manifest(
    strategy: BehaviourCollector,
    model: ModelInfo,
    dataset_path: str | Path,
    rows: int,
    first: int | None,
) -> Manifest:
    settings = strategy.model_dump(exclude={"seed"})
    settings["probe_stop"] = list(strategy.probe_stop)
    return Manifest(
        model=model,
        templates=template_hashes(strategy),
        settings=settings,
        seed=strategy.seed,
        dataset=DatasetInfo(
            path=str(dataset_path), sha256=file_sha256(dataset_path), rows=rows, first=first
        ),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


def check_resumable(old: Manifest, new: Manifest) -> None:
    """Refuse to append to a collection made with other settings, naming what differs."""
    diffs: list[str] = []
    if old.model.sha256 != new.model.sha256 or old.model.name != new.model.name:
        diffs.append(
            f"model ({old.model.name} {old.model.sha256} vs {new.model.name} {new.model.sha256})"
        )
    if old.templates != new.templates:
        diffs.append("prompt templates")
    for key in sorted(set(old.settings) | set(new.settings)):
        if old.settings.get(key) != new.settings.get(key):
            diffs.append(f"{key} ({old.settings.get(key)!r} vs {new.settings.get(key)!r})")
    if old.seed != new.seed:
        diffs.append(f"seed ({old.seed} vs {new.seed})")
    if old.dataset.sha256 != new.dataset.sha256:
        diffs.append(f"dataset ({old.dataset.path} vs {new.dataset.path})")
    if diffs:
        raise ConfigError(
            "out",
            "this collection was made with other settings: "
            + "; ".join(diffs)
            + " (use a new --out directory, or the original settings to resume)",
        )


def _sample(log: TraceLog, answer: str | None, gold: str) -> SampleRecord:
    return SampleRecord(
        seed=log.seed,
        text=log.text,
        answer=answer,
        correct=is_equivalent(answer, gold),
        finish_reason=log.finish_reason,
        tokens=log.tokens,
        lp=log.lp,
        conf=log.conf,
        probes=[
            ProbeRecord(
                at=p["at"],
                answer=p["answer"],
                correct=is_equivalent(p["answer"], gold),
                text=p["text"],
                tokens=p["tokens"],
            )
            for p in log.probes
        ],
        critique_p_yes=log.critique_p_yes,
        error=log.error,
        usage=log.usage,
    )


def _record_of(item: Item, outcome: Outcome, usage: dict[str, Any], wall: float) -> QuestionRecord:
    samples = [_sample(s.data["trace"], s.answer, item.gold) for s in outcome.samples]
    greedy = outcome.data.get("greedy")
    return QuestionRecord(
        id=item.id,
        question=item.question,
        gold=item.gold,
        samples=samples,
        greedy=_sample(greedy.data["trace"], greedy.answer, item.gold) if greedy else None,
        usage=usage,
        wall_s=round(wall, 2),
    )


@dataclass
class CollectSummary:
    """What a ``collect`` call did (this call only, plus the collection's total size)."""

    out: Path
    done_before: int
    collected: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    wall_s: float = 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def line(self) -> str:
        rate = self.completion_tokens / self.wall_s if self.wall_s else 0.0
        return (
            f"collected {self.collected} question(s) ({self.done_before} before, "
            f"{len(self.failed)} failed) into {self.out}; {self.completion_tokens} generated "
            f"tokens at {rate:.1f} tok/s; prompt cache hit rate {self.cache_hit_rate:.0%}"
        )


async def collect(
    items: Sequence[Item],
    out: str | Path,
    orchestrator: Orchestrator,
    strategy: BehaviourCollector,
    manifest: Manifest,
    *,
    questions_at_once: int = 2,
    progress: bool = True,
) -> CollectSummary:
    """Collect behaviour on ``items`` into ``out`` (resuming what is there); see the module doc."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / MANIFEST
    if mpath.is_file():
        check_resumable(read_manifest(out), manifest)
    else:
        tmp = mpath.with_name(MANIFEST + ".tmp")
        tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(mpath)
    rpath = out / RECORDS
    cut_torn_tail(rpath)
    done = {r.id for r in read_records(out)}
    pending = [it for it in items if it.id not in done]
    summary = CollectSummary(out=out, done_before=len(done))
    lock = asyncio.Lock()
    gate = asyncio.Semaphore(max(1, questions_at_once))
    bar = _bar(len(items), len(done), progress)
    t0 = time.perf_counter()

    async def one(item: Item) -> None:
        async with gate:
            t = time.perf_counter()
            try:
                result = await orchestrator.run(strategy, Task(item.question))
            except PonderError as exc:
                summary.failed.append((item.id, f"{type(exc).__name__}: {exc}"))
                bar.update(1)
                return
            problem = _sample_failure(result.outcome)
            if problem is not None:  # not written: a rerun redoes this question
                summary.failed.append((item.id, f"{type(problem).__name__}: {problem}"))
                bar.update(1)
                return
            u = result.usage
            rec = _record_of(item, result.outcome, u.to_dict(), time.perf_counter() - t)
            line = rec.model_dump_json(exclude_none=True)
            async with lock:
                append_line(rpath, line)
                summary.collected += 1
                summary.completion_tokens += u.completion_tokens
                summary.prompt_tokens += u.prompt_tokens
                summary.cached_prompt_tokens += u.cached_prompt_tokens
                summary.wall_s = time.perf_counter() - t0
                bar.update(1)
                rate = summary.completion_tokens / summary.wall_s if summary.wall_s else 0.0
                bar.set_postfix(tok_s=f"{rate:.0f}", cache=f"{summary.cache_hit_rate:.0%}")

    try:
        await asyncio.gather(*(one(it) for it in pending))
    finally:
        summary.wall_s = time.perf_counter() - t0
        bar.close()
    return summary


FATAL = (CapabilityMissing, AuthenticationFailed, ConfigError)
"""Sample failures that every question would meet the same way: the collection stops at once."""


def _sample_failure(outcome: Outcome) -> BaseException | None:
    """The first failure among a question's traces (greedy included), or None if all finished.

    A question with a failed trace is not written (a collection with holes would bias what is
    trained on it); a failure that no rerun can fix (``FATAL``) is raised, stopping the run.
    """
    greedy = outcome.data.get("greedy")
    traces = [*outcome.samples, *([greedy] if greedy is not None else [])]
    first: BaseException | None = None
    for s in traces:
        exc = s.data.get("exception")
        log = s.data.get("trace")
        if exc is None and log is not None and log.error:
            exc = PonderError(log.error)
        if isinstance(exc, FATAL):
            raise exc
        first = first or exc
    return first


def _bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="collect", unit="q", disable=not enabled)
