"""The cross-validation choice: each policy's threshold picked on out-of-fold numbers.

Use ``choose(run, margin)`` on a ``cv.CVRun`` for the thresholds (per policy, the cheapest --
fewest completion tokens -- whose out-of-fold accuracy is within ``margin`` of maj@k's),
``choice_cv`` for that choosing procedure itself cross-validated, ``summarize`` for one point's
numbers against the baseline, ``judge_rows`` for the judges' out-of-fold AUROC/ECE, and
``ChosenStops`` for the small JSON a later held-out test report takes as fixed inputs
(``ChosenStops.load(path).threshold("dm_sample_free/r1")``). Computation only: the markdown is
``cv_markdown``'s, the files ``cv_report.write_report``'s. Nothing here looks at a test collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ponder.behaviour.stats import auroc_ci, ece, paired, wilson
from ponder.learning.drr.costs import Cost
from ponder.learning.drr.cv import CVRun, Point

FORMAT = "ponder.drr-cv/1"
CALIBRATED = ("DM with", "DM without", "sampling DM")


class Chosen(BaseModel):
    """One policy's chosen threshold and its out-of-fold numbers (percentages of maj@k)."""

    policy: str
    threshold: float | None
    """``None``: no threshold came within the margin (the numbers are its most accurate one's)."""
    give_up_below: float | None = None
    give_up_after: int | None = None
    """``drr_sample``'s futility stop, chosen with the threshold (``None``: off)."""
    accuracy: float
    interval: tuple[float, float]
    won: int
    lost: int
    p_value: float
    mean_samples: float
    completion_pct: float | None
    prompt_pct: float | None
    total_pct: float | None
    calls_pct: float | None
    path_tokens_pct: float | None
    path_calls_pct: float | None


class ChosenStops(BaseModel):
    """What ``ponder drr cv`` chose on train: fixed inputs for a later test report."""

    format: str = FORMAT
    train: list[str]
    questions: int
    folds: int
    seed: int
    margin: float
    baseline: str
    baseline_accuracy: float
    families: list[str]
    free_families: list[str]
    chosen: list[Chosen]

    def threshold(self, policy: str) -> float | None:
        """The chosen threshold of ``policy`` (``"dm_sample_free/r1"``), ``None`` if none."""
        for c in self.chosen:
            if c.policy == policy:
                return c.threshold
        raise KeyError(
            f"no policy {policy!r} in the choice; have {[c.policy for c in self.chosen]}"
        )

    @classmethod
    def load(cls, path: str | Path) -> ChosenStops:
        return cls.model_validate_json(Path(path).expanduser().read_text(encoding="utf-8"))


def _pct(a: float, b: float) -> float | None:
    return 100.0 * a / b if b else None


def summarize(pt: Point, base: Point) -> dict[str, Any]:
    """A point's out-of-fold numbers against the baseline on the same questions."""
    c, b = pt.total(), base.total()
    right = sum(pt.correct.values())
    lo, hi = wilson(right, len(pt.correct))
    pr = paired(pt.correct, base.correct)
    return {
        "label": pt.label,
        "policy": pt.key,
        "param": pt.param,
        "give_up": pt.give_up,
        "accuracy": pt.accuracy,
        "interval": (lo, hi),
        "right": right,
        "n": len(pt.correct),
        "won": pr.won,
        "lost": pr.lost,
        "p_value": pr.p_value,
        "mean_samples": sum(pt.drawn.values()) / max(1, len(pt.drawn)),
        "completion_pct": _pct(c.completion, b.completion),
        "prompt_pct": _pct(c.prompt, b.prompt),
        "total_pct": _pct(c.completion + c.prompt, b.completion + b.prompt),
        "calls_pct": _pct(c.calls, b.calls),
        "path_tokens_pct": _pct(c.path_tokens, b.path_tokens),
        "path_calls_pct": _pct(c.path_calls, b.path_calls),
        "per_question": _per_q(c, len(pt.correct)),
    }


def _per_q(c: Cost, n: int) -> dict[str, float]:
    n = max(n, 1)
    return {
        "completion": c.completion / n,
        "prompt": c.prompt / n,
        "calls": c.calls / n,
        "path_tokens": c.path_tokens / n,
    }


def _keys(run: CVRun) -> list[str]:
    keys: list[str] = []
    for p in run.points:
        if p.key not in keys:
            keys.append(p.key)
    return keys


def pick(
    pts: Sequence[Point], base: Point, margin: float, qs: Sequence[str] | None = None
) -> tuple[Point, bool]:
    """The cheapest point (completion tokens) whose accuracy on ``qs`` (default: all) is within
    ``margin`` of ``base``'s there; else the most accurate (and ``False``)."""
    qs = list(base.correct) if qs is None else list(qs)

    def acc(p: Point) -> float:
        return sum(p.correct[q] for q in qs) / len(qs) if qs else 0.0

    def cost(p: Point) -> tuple[float, float]:
        c = sum((p.cost[q] for q in qs), Cost())
        return c.completion, c.prompt

    ok = [p for p in pts if acc(p) >= acc(base) - margin - 1e-9]
    if ok:
        return min(ok, key=lambda p: (*cost(p), -acc(p))), True
    return max(pts, key=lambda p: (acc(p), -cost(p)[0])), False


def choose(run: CVRun, margin: float) -> list[Chosen]:
    """Per policy: the cheapest threshold within ``margin`` of maj@k's out-of-fold accuracy."""
    base = run.point(run.baseline)
    out = []
    for key in _keys(run):
        best, ok = pick([p for p in run.points if p.key == key], base, margin)
        s = summarize(best, base)
        fields = {f: s[f] for f in Chosen.model_fields if f in s and f not in ("policy",)}
        g = best.give_up if ok else None
        out.append(
            Chosen(
                **fields,
                policy=key,
                threshold=best.param if ok else None,
                give_up_below=g[0] if g else None,
                give_up_after=g[1] if g else None,
            )
        )
    return out


def choice_cv(run: CVRun, margin: float) -> list[dict[str, Any]]:
    """The choice itself cross-validated: for each fold, ``pick`` on the other folds'
    questions, scored on this fold's; pooled. ``choose``'s numbers are those of the threshold
    picked on all questions, so they flatter it a little; these do not."""
    base = run.point(run.baseline)
    rows = []
    for key in _keys(run):
        pts = [p for p in run.points if p.key == key]
        held = Point(pts[0].policy, pts[0].round_size, float("nan"))
        picks = []
        for f in range(run.folds):
            inside = [q for q in run.questions if run.fold_of[q] == f]
            outside = [q for q in run.questions if run.fold_of[q] != f and q in base.correct]
            best, ok = pick(pts, base, margin, outside)
            picks.append(best.label.split("@", 1)[1] if ok else "none")
            for q in inside:
                if q in best.correct:
                    held.correct[q] = best.correct[q]
                    held.cost[q] = best.cost[q]
                    held.drawn[q] = best.drawn[q]
        rows.append({**summarize(held, base), "policy": key, "picks": picks})
    return rows


def judge_rows(run: CVRun, resamples: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for j in run.judges:
        if not j.y:
            continue
        ci = auroc_ci(j.y, j.p, j.groups, resamples=resamples, seed=seed)
        cal = j.name.startswith(CALIBRATED)
        rows.append(
            {
                "judge": j.name,
                "units": len(j.y),
                "questions": len(set(j.groups)),
                "auroc": ci.auroc,
                "lo": ci.lo,
                "hi": ci.hi,
                "text": ci.text(),
                "ece": ece(j.y, j.p) if cal else None,
            }
        )
    return rows


__all__ = [
    "CALIBRATED",
    "FORMAT",
    "Chosen",
    "ChosenStops",
    "choice_cv",
    "choose",
    "judge_rows",
    "pick",
    "summarize",
]
