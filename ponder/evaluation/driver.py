"""The one resumable driver: run items a few at a time, append one JSON line per finished item.

``ponder eval`` (``evaluation.runner``), ``ponder collect`` (``learning.collect.collector``) and
``ponder ssa rft`` (``learning.ssa.rft_run``) all use it; each supplies only what differs:

- ``Output``: where the lines go, an optional manifest beside them (written atomically on the
  first start; on a resume, ``check`` sees the one already there and raises to refuse), and which
  rows already there count as done (``done_if``);
- ``run(item)``: run one item (usually ``orchestrator.run``) and return ``Write(line)`` (the
  exact line to append: each caller keeps its own serialization, so files stay byte-compatible)
  or ``Failed(why)`` (nothing written; a rerun redoes the item). An exception stops the whole run:
  the items still in flight are cancelled and nothing more is written.

``drive(items, output, run, id_of=...)`` cuts a line torn by a crash, skips the ids already done
(and repeated ids), runs the rest at most ``at_once`` at a time with a progress bar, appends each
line flushed and fsynced, and returns ``DriveStats`` (written, failed, token counts, wall time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from ponder.jsonl import cut_torn_tail, read_json_lines, write_line
from ponder.orchestrator.usage import Usage

T = TypeVar("T")


@dataclass(frozen=True)
class ManifestFile:
    """What a resumable output is made with: ``text`` is written to ``path`` on the first start;
    on a resume ``check`` gets the text already there and raises (a ``ConfigError``) to refuse."""

    path: Path
    text: str
    check: Callable[[str], None]


def _any_row(row: dict[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Output:
    """A resumable JSONL file (``records``), maybe with a manifest beside it."""

    records: Path
    manifest: ManifestFile | None = None
    done_if: Callable[[dict[str, Any]], bool] = _any_row
    """Which complete rows already in ``records`` count as done (their ``id`` is skipped)."""
    sealed: tuple[Path, ...] = ()
    """Read-only files (``*.jsonl.gz`` chunks) whose rows count as done too."""

    def check(self) -> None:
        """Refuse (raise) a resume the manifest forbids, touching nothing: call it before
        starting a model, so a wrong directory costs nothing."""
        m = self.manifest
        if m is not None and m.path.is_file():
            m.check(m.path.read_text(encoding="utf-8"))

    def open(self) -> set[str]:
        """Check or write the manifest, cut a torn last line; the ids already done."""
        self.records.parent.mkdir(parents=True, exist_ok=True)
        m = self.manifest
        if m is not None:
            if m.path.is_file():
                m.check(m.path.read_text(encoding="utf-8"))
            else:
                m.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = m.path.with_name(m.path.name + ".tmp")
                tmp.write_text(m.text, encoding="utf-8")
                tmp.replace(m.path)
        cut_torn_tail(self.records)
        return {
            str(r["id"])
            for path in (*self.sealed, self.records)
            for r in read_json_lines(path)
            if "id" in r and self.done_if(r)
        }


@dataclass(frozen=True)
class Write:
    """Append ``line`` (one JSON document, no newline); ``usage`` feeds the token counts."""

    line: str
    usage: Usage | None = None


@dataclass(frozen=True)
class Failed:
    """Nothing written for this item (a rerun redoes it); ``why`` is reported."""

    why: str

    @classmethod
    def of(cls, exc: BaseException) -> Failed:
        return cls(f"{type(exc).__name__}: {exc}")


@dataclass
class DriveStats:
    """What one ``drive`` call did."""

    total: int
    done_before: int
    """Ids already in the file when it started (some may not be among the items)."""
    pending: int
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    wall_s: float = 0.0

    @property
    def tok_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(frozen=True)
class Bar:
    """The progress bar: its label, unit, and what it shows after each written line."""

    desc: str
    unit: str = "it"
    postfix: Callable[[DriveStats], dict[str, str]] | None = None
    enabled: bool = True


async def drive(
    items: Sequence[T],
    output: Output,
    run: Callable[[T], Awaitable[Write | Failed]],
    *,
    id_of: Callable[[T], str],
    at_once: int = 2,
    bar: Bar | None = None,
) -> DriveStats:
    """Run the items not yet in ``output`` through ``run`` and append their lines; see the
    module doc."""
    done = output.open()
    pending: dict[str, T] = {}
    for item in items:
        key = id_of(item)
        if key not in done:
            pending.setdefault(key, item)
    stats = DriveStats(total=len(items), done_before=len(done), pending=len(pending))
    spec = bar or Bar("run")
    progress = _bar(spec, len(items), len(items) - len(pending))
    gate = asyncio.Semaphore(max(1, at_once))
    t0 = time.perf_counter()
    f: TextIO = output.records.open("a", encoding="utf-8")

    async def one(key: str, item: T) -> None:
        async with gate:
            result = await run(item)
        if isinstance(result, Failed):
            stats.failed.append((key, result.why))
            progress.update(1)
            return
        write_line(f, result.line)  # no await from here on: counts and file agree
        stats.written += 1
        if result.usage is not None:
            stats.completion_tokens += result.usage.completion_tokens
            stats.prompt_tokens += result.usage.prompt_tokens
            stats.cached_prompt_tokens += result.usage.cached_prompt_tokens
        stats.wall_s = time.perf_counter() - t0
        progress.update(1)
        if spec.postfix is not None:
            progress.set_postfix(spec.postfix(stats))

    tasks = [asyncio.ensure_future(one(key, item)) for key, item in pending.items()]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:  # one item stopped the run: nothing more starts or is written
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        stats.wall_s = time.perf_counter() - t0
        f.close()
        progress.close()
    return stats


def _bar(spec: Bar, total: int, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=spec.desc, unit=spec.unit, disable=not spec.enabled
    )
