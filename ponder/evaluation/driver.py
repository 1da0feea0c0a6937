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

To run the items elsewhere (``ponder.scale``: a Ray actor pool), each caller writes its item work
as an ``ItemWork`` (a picklable ``work(orchestrator, item)``) and passes, instead of ``run``, a
``Remote``: it runs the pending items where it likes and yields ``(id, result)`` as each finishes.
This process stays the only writer, so the file, the resume and the counts are the same either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar, runtime_checkable

from ponder.jsonl import cut_torn_tail, read_json_lines, write_line
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.usage import Usage

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


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


class ItemWork(Protocol[T_contra]):
    """What to do with one item given the engine: ``await work(orchestrator, item)``. A picklable
    object (a frozen dataclass of settings), so ``ponder.scale`` can run it in another process."""

    async def __call__(self, orchestrator: Orchestrator, item: T_contra, /) -> Write | Failed: ...


@runtime_checkable
class Remote(Protocol[T_contra]):
    """Runs the pending items somewhere else (``ponder.scale``'s Ray pool) and yields each
    ``(id, result)`` as it finishes; ``in_flight()`` is how many run now. Every pending id must
    come back once (a remote that lost one yields it as ``Failed``)."""

    def results(
        self, pending: Mapping[str, T_contra]
    ) -> AsyncIterator[tuple[str, Write | Failed]]: ...

    def in_flight(self) -> int: ...


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
    in_flight: int = 0
    """Items running now (while the run goes on)."""

    @property
    def per_min(self) -> float:
        """Items finished (written or failed) per minute so far."""
        done = self.written + len(self.failed)
        return 60.0 * done / self.wall_s if self.wall_s else 0.0

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
    run: Callable[[T], Awaitable[Write | Failed]] | Remote[T],
    *,
    id_of: Callable[[T], str],
    at_once: int = 2,
    bar: Bar | None = None,
) -> DriveStats:
    """Run the items not yet in ``output`` through ``run`` (here, at most ``at_once`` at a time,
    or a ``Remote``) and append their lines; see the module doc."""
    done = output.open()
    pending: dict[str, T] = {}
    for item in items:
        key = id_of(item)
        if key not in done:
            pending.setdefault(key, item)
    stats = DriveStats(total=len(items), done_before=len(done), pending=len(pending))
    spec = bar or Bar("run")
    progress = _bar(spec, len(items), len(items) - len(pending))
    t0 = time.perf_counter()
    seen: set[str] = set()
    f: TextIO = output.records.open("a", encoding="utf-8")

    def record(key: str, result: Write | Failed) -> None:
        if key in seen or key not in pending:  # a remote's duplicate: written once, never twice
            return
        seen.add(key)
        stats.wall_s = time.perf_counter() - t0
        if isinstance(result, Failed):
            stats.failed.append((key, result.why))
        else:
            write_line(f, result.line)  # no await from here on: counts and file agree
            stats.written += 1
            if result.usage is not None:
                stats.completion_tokens += result.usage.completion_tokens
                stats.prompt_tokens += result.usage.prompt_tokens
                stats.cached_prompt_tokens += result.usage.cached_prompt_tokens
        stats.in_flight = run.in_flight() if isinstance(run, Remote) else stats.in_flight
        progress.update(1)
        progress.set_postfix({**_progress(stats), **(spec.postfix(stats) if spec.postfix else {})})

    source = (
        run.results(pending)
        if isinstance(run, Remote)
        else _here(pending, run, max(1, at_once), stats)
    )
    try:
        async for key, result in source:
            record(key, result)
    finally:
        close = getattr(source, "aclose", None)
        if close is not None:  # a write that failed stops the items still running too
            await close()
        stats.wall_s = time.perf_counter() - t0
        stats.in_flight = 0
        f.close()
        progress.close()
    for key in pending.keys() - seen:  # a remote that lost an item: reported, never dropped
        stats.failed.append((key, "lost: no result came back for it"))
    return stats


async def _here(
    pending: Mapping[str, T],
    run: Callable[[T], Awaitable[Write | Failed]],
    at_once: int,
    stats: DriveStats,
) -> AsyncIterator[tuple[str, Write | Failed]]:
    """Run the items in this process, ``at_once`` at a time; yield each result as it finishes.
    An exception stops the run: the items still in flight are cancelled."""
    gate = asyncio.Semaphore(at_once)

    async def one(key: str, item: T) -> tuple[str, Write | Failed]:
        async with gate:
            stats.in_flight += 1
            try:
                return key, await run(item)
            finally:
                stats.in_flight -= 1

    tasks = [asyncio.ensure_future(one(key, item)) for key, item in pending.items()]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:  # one item stopped the run (or the caller left): nothing more starts or is written
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_with(
    work: ItemWork[T],
    orchestrator: Orchestrator | None,
    elsewhere: Callable[[ItemWork[T]], Remote[T]] | None,
) -> Callable[[T], Awaitable[Write | Failed]] | Remote[T]:
    """What ``drive`` runs: ``work`` on ``orchestrator`` here, or the ``Remote`` that
    ``elsewhere`` makes of it (``ponder.scale``)."""
    if elsewhere is not None:
        return elsewhere(work)
    if orchestrator is None:
        raise TypeError("give an orchestrator, or `elsewhere` to run the items on")

    async def here(item: T) -> Write | Failed:
        return await work(orchestrator, item)

    return here


def _progress(s: DriveStats) -> dict[str, str]:
    """What every bar shows: failed, in flight, items per minute, tokens generated."""
    return {
        "failed": str(len(s.failed)),
        "in_flight": str(s.in_flight),
        "per_min": f"{s.per_min:.1f}",
        "tokens": str(s.completion_tokens),
    }


def _bar(spec: Bar, total: int, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=spec.desc, unit=spec.unit, disable=not spec.enabled
    )
