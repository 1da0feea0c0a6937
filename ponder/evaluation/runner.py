"""Run chain configs over a dataset, concurrently, resumably, writing one JSONL line per question.

Use ``await evaluate(configs, items, out_dir)``: for each named config it skips questions already
in ``out_dir/<name>.jsonl``, runs the rest (at most ``concurrency`` at once, with a progress bar),
appends each record as soon as it is done (a crash loses nothing written), and returns one
summary row per config. The resuming is ``ponder.evaluation.driver``'s, as for ``ponder collect``
and ``ponder ssa rft``. Configs with the same backend share one backend (one llama-server).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend
from ponder.behaviour.datasets import Item
from ponder.config import BackendConfig, ChainConfig
from ponder.errors import InputError, PonderError
from ponder.evaluation.driver import Bar, ItemWork, Output, Remote, Write, drive, run_with
from ponder.evaluation.records import error_record, make_record, read_records, record_line
from ponder.evaluation.summary import add_paired, summarize
from ponder.orchestrator.engine import Orchestrator
from ponder.protocol.strategy import Strategy

StrategyFor = Callable[[Item], Strategy]


@dataclass
class EvalJob:
    """One config to evaluate: a ``name`` (output file stem), a chain, maybe a per-item strategy."""

    name: str
    chain: ChainConfig
    strategy_for: StrategyFor | None = None


class BackendPool:
    """Builds each distinct backend config once and closes them all at the end."""

    def __init__(self, given: Mapping[str, Backend] | None = None) -> None:
        self._given = dict(given or {})
        self._built: dict[str, Backend] = {}

    def get(self, cfg: BackendConfig) -> Backend:
        key = json.dumps(cfg.model_dump(), sort_keys=True)
        if key not in self._built:
            self._built[key] = cfg.build()
        return self._built[key]

    def for_chain(self, chain: ChainConfig) -> dict[str, Backend]:
        if self._given:
            return dict(self._given)
        out = {"default": self.get(chain.backend)}
        out.update({role: self.get(cfg) for role, cfg in chain.roles.items()})
        return out

    async def aclose(self) -> None:
        for b in self._built.values():
            await b.aclose()


def results_output(out_dir: Path, name: str) -> Output:
    """``out_dir/<name>.jsonl``: records of other configs in the same file do not count."""
    return Output(
        records=out_dir / f"{name}.jsonl", done_if=lambda r: r.get("config", name) == name
    )


@dataclass(frozen=True)
class EvalItem:
    """Run one question of config ``name`` and make its record line (an error record when the
    run failed: it counts as wrong). Picklable (without ``strategy_for`` and ``trace_file``):
    ``ponder.scale`` runs it on workers."""

    name: str
    strategy: Strategy
    strategy_for: StrategyFor | None = None
    trace_file: Path | None = None

    async def __call__(self, orchestrator: Orchestrator, item: Item) -> Write:
        strategy = self.strategy_for(item) if self.strategy_for else self.strategy
        start = time.perf_counter()
        try:
            result = await orchestrator.run(strategy, item.question)
            record = make_record(self.name, item, result)
            if self.trace_file is not None:
                with self.trace_file.open("a", encoding="utf-8") as f:
                    f.write(result.trace.to_jsonl())
        except PonderError as exc:  # written as an error record: it counts as wrong
            record = error_record(self.name, item, exc, time.perf_counter() - start)
        return Write(record_line(record))


Elsewhere = Callable[[ItemWork[Item], ChainConfig], Remote[Item]]
"""Runs a config's questions on other machines (``ponder.scale``): given the item work and the
chain whose session runs it, a ``Remote``."""


async def run_job(
    job: EvalJob,
    items: Sequence[Item],
    out_dir: Path,
    orchestrator: Orchestrator | None,
    *,
    concurrency: int = 4,
    progress: bool = True,
    traces: bool = False,
    elsewhere: Elsewhere | None = None,
) -> dict[str, Any]:
    output = results_output(out_dir, job.name)
    trace_file = out_dir / "traces" / f"{job.name}.jsonl" if traces else None
    if trace_file is not None:
        trace_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    work = EvalItem(job.name, job.chain.strategy, job.strategy_for, trace_file)
    there = elsewhere
    one = run_with(work, orchestrator, (lambda w: there(w, job.chain)) if there else None)

    stats = await drive(
        items,
        output,
        one,
        id_of=lambda it: it.id,
        at_once=concurrency,
        bar=Bar(job.name, enabled=progress),
    )
    wanted = {it.id for it in items}
    records = [r for r in read_records(output.records) if r["id"] in wanted]
    row = summarize(job.name, records)
    row["elapsed_s"] = time.perf_counter() - t0
    row["ran_now"] = stats.pending
    return row


async def evaluate(
    jobs: Sequence[EvalJob],
    items: Sequence[Item],
    out_dir: str | Path,
    *,
    concurrency: int = 4,
    progress: bool = True,
    traces: bool = False,
    backends: Mapping[str, Backend] | None = None,
    baseline: str | None = None,
    elsewhere: Elsewhere | None = None,
) -> list[dict[str, Any]]:
    """Evaluate each job in turn over ``items``; returns one summary row per job.

    With more than one job, every row but the baseline's (``baseline``, default the first job)
    gets a paired comparison against it on the same questions (``vs_baseline``). ``elsewhere``
    runs the questions on other machines (``ponder.scale``); no backend starts here then."""
    base = (baseline or jobs[0].name) if len(jobs) > 1 else None
    if base is not None and base not in {j.name for j in jobs}:
        raise InputError(
            f"baseline {base!r} is not one of the configs: {', '.join(j.name for j in jobs)}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pool = BackendPool(backends)
    rows = []
    try:
        for job in jobs:
            if elsewhere is not None:
                rows.append(
                    await run_job(job, items, out, None, progress=progress, elsewhere=elsewhere)
                )
                continue
            # the pool owns the backends (shared by jobs); the session starts them once
            async with job.chain.session(pool.for_chain(job.chain)) as session:
                rows.append(
                    await run_job(
                        job,
                        items,
                        out,
                        session,
                        concurrency=concurrency,
                        progress=progress,
                        traces=traces,
                    )
                )
    finally:
        if backends is None:
            await pool.aclose()
    if base is not None:
        wanted = {it.id for it in items}
        recs = {
            j.name: [r for r in read_records(out / f"{j.name}.jsonl") if r["id"] in wanted]
            for j in jobs
        }
        add_paired(rows, recs, base)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    return rows
