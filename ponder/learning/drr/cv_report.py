"""The cross-validation report: each policy's threshold chosen on out-of-fold numbers, and why.

Use ``write_report`` for ``cv.md`` + ``cv.json`` + ``chosen.json`` (what ``ponder drr cv``
writes). The choice is computed in ``ponder.learning.drr.cv_choice`` (``choose``, ``choice_cv``,
``ChosenStops`` -- ``ChosenStops.load(path).threshold("dm_sample_free/r1")`` for a later
held-out test report), the markdown rendered in ``ponder.learning.drr.cv_markdown``; both are
re-exported here. Nothing here looks at a test collection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ponder.learning.drr.costs import SignalCost
from ponder.learning.drr.cv import CVRun
from ponder.learning.drr.cv_choice import (
    CALIBRATED,
    FORMAT,
    Chosen,
    ChosenStops,
    choice_cv,
    choose,
    judge_rows,
    pick,
    summarize,
)
from ponder.learning.drr.cv_markdown import GOAL_TOKENS, GOAL_WALL, format_report


def write_report(
    out: str | Path,
    run: CVRun,
    *,
    margin: float,
    train: Sequence[str],
    seed: int,
    resamples: int,
    signals: Sequence[SignalCost],
    header: Sequence[str] = (),
) -> tuple[str, ChosenStops]:
    """Write ``cv.md``, ``cv.json`` and ``chosen.json`` into ``out``; returns the markdown and
    the choice."""
    chosen = choose(run, margin)
    judges = judge_rows(run, resamples, seed)
    base = run.point(run.baseline)
    stops = ChosenStops(
        train=list(train),
        questions=len(run.questions),
        folds=run.folds,
        seed=seed,
        margin=margin,
        baseline=run.baseline,
        baseline_accuracy=base.accuracy,
        families=run.families,
        free_families=run.free_families,
        chosen=chosen,
    )
    nested = choice_cv(run, margin)
    text = format_report(run, chosen, judges, signals, header, margin, nested)
    d = Path(out).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    (d / "cv.md").write_text(text + "\n", encoding="utf-8")
    (d / "chosen.json").write_text(stops.model_dump_json(indent=2) + "\n", encoding="utf-8")
    full = {
        "format": FORMAT,
        "chosen": stops.model_dump(),
        "judges": list(judges),
        "choice_cv": list(nested),
        "signals": [s.__dict__ for s in signals],
        "folds": run.fold_of,
        "points": [{k: v for k, v in summarize(p, base).items()} for p in run.points],
    }
    (d / "cv.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return text, stops


__all__ = [
    "CALIBRATED",
    "FORMAT",
    "GOAL_TOKENS",
    "GOAL_WALL",
    "Chosen",
    "ChosenStops",
    "choice_cv",
    "choose",
    "pick",
    "format_report",
    "judge_rows",
    "summarize",
    "write_report",
]
