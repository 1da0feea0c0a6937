"""The cross-validation report: each policy's threshold chosen on out-of-fold numbers, and why.

Use ``choose(run, margin)`` on a ``cv.CVRun`` for the thresholds (per policy, the cheapest --
fewest completion tokens -- whose out-of-fold accuracy is within ``margin`` of maj@k's),
``ChosenStops`` for the small JSON a later held-out test report takes as fixed inputs
(``ChosenStops.load(path).threshold("dm_sample_free/r1")``), and ``write_report`` for
``cv.md`` + ``cv.json`` + ``chosen.json``. Nothing here looks at a test collection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ponder.behaviour.stats import auroc_ci, ece, paired, wilson
from ponder.learning.drr.costs import Cost, SignalCost, format_signal_costs
from ponder.learning.drr.cv import CVRun, Point

FORMAT = "ponder.drr-cv/1"
GOAL_TOKENS = 40.0
GOAL_WALL = 60.0
CALIBRATED = ("DM with", "DM without", "sampling DM")


class Chosen(BaseModel):
    """One policy's chosen threshold and its out-of-fold numbers (percentages of maj@k)."""

    policy: str
    threshold: float | None
    """``None``: no threshold came within the margin (the numbers are its most accurate one's)."""
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


def choose(run: CVRun, margin: float) -> list[Chosen]:
    """Per policy: the cheapest threshold within ``margin`` of maj@k's out-of-fold accuracy."""
    base = run.point(run.baseline)
    keys: list[str] = []
    for p in run.points:
        if p.key not in keys:
            keys.append(p.key)
    out = []
    for key in keys:
        pts = [p for p in run.points if p.key == key]
        ok = [p for p in pts if p.accuracy >= base.accuracy - margin - 1e-9]
        if ok:
            best = min(ok, key=lambda p: (p.total().completion, p.total().prompt, -p.accuracy))
        else:
            best = max(pts, key=lambda p: (p.accuracy, -p.total().completion))
        s = summarize(best, base)
        fields = {f: s[f] for f in Chosen.model_fields if f in s}
        out.append(Chosen(**{**fields, "policy": key, "threshold": best.param if ok else None}))
    return out


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


def _judge(rows: Sequence[dict[str, Any]], start: str) -> str:
    return next((r["text"] for r in rows if r["judge"].startswith(start)), "–")


def _f(x: float | None, fmt: str = "{:.0f}%") -> str:
    return "–" if x is None else fmt.format(x)


def format_report(
    run: CVRun,
    chosen: Sequence[Chosen],
    judges: Sequence[dict[str, Any]],
    signals: Sequence[SignalCost],
    header: Sequence[str],
    margin: float,
) -> str:
    base = run.point(run.baseline)
    b = summarize(base, base)
    lines = [
        "# Grouped cross-validation of the sampling stops (train only)",
        "",
        *header,
        f"- {len(run.questions)} questions in {run.folds} folds by question; per fold both DMs "
        f"are trained on the other folds (with probes: {', '.join(run.families)}; without: "
        f"{', '.join(run.free_families)}) and every policy is replayed on the held-out fold",
        f"- baseline {run.baseline} (maj@{run.k}): {b['accuracy']:.1%} "
        f"[{100 * b['interval'][0]:.1f}, {100 * b['interval'][1]:.1f}]; per question "
        f"{b['per_question']['completion']:,.0f} completion + {b['per_question']['prompt']:,.0f} "
        f"prompt tokens, {b['per_question']['calls']:.1f} calls",
        f"- chosen per policy: the cheapest threshold (completion tokens) whose out-of-fold "
        f"accuracy is >= maj@{run.k}'s - {margin:g}; costs are % of maj@{run.k}'s; wall proxy = "
        "sum over rounds of the round's longest sample (tokens, calls), a round's samples in "
        f"parallel; goal: total tokens <= {GOAL_TOKENS:g}% and wall <= {GOAL_WALL:g}%",
        "",
        "## Chosen thresholds (out-of-fold)",
        "",
        "| policy | threshold | accuracy [95% CI] | won/lost vs maj@k (p) | samples | "
        "completion | prompt | total | calls | wall: path tokens | path calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in chosen:
        th = "none within margin" if c.threshold is None else f"{c.threshold:g}"
        goal = (c.total_pct or 1e9) <= GOAL_TOKENS and (c.path_tokens_pct or 1e9) <= GOAL_WALL
        lines.append(
            f"| {c.policy}{' **goal**' if goal else ''} | {th} | {c.accuracy:.1%} "
            f"[{100 * c.interval[0]:.1f}, {100 * c.interval[1]:.1f}] | "
            f"{c.won}/{c.lost} ({c.p_value:.2g}) | {c.mean_samples:.2f} | "
            f"{_f(c.completion_pct)} | {_f(c.prompt_pct)} | {_f(c.total_pct)} | "
            f"{_f(c.calls_pct)} | {_f(c.path_tokens_pct)} | {_f(c.path_calls_pct)} |"
        )
    lines += [
        "",
        "## Judges (out-of-fold; AUROC 95% CI by a bootstrap over questions)",
        "",
        "| judge | units | AUROC [95% CI] | ECE |",
        "|---|---|---|---|",
    ]
    for r in judges:
        e = "–" if r["ece"] is None else f"{r['ece']:.3f}"
        lines.append(f"| {r['judge']} | {r['units']} ({r['questions']} q) | {r['text']} | {e} |")
    lines += [
        "",
        "## What each signal costs and buys",
        "",
        format_signal_costs(signals, len(run.questions)),
    ]
    lines += _buys(signals, judges)
    lines += ["", "## Every point (out-of-fold)", "", *_grid(run)]
    return "\n".join(lines)


def _buys(signals: Sequence[SignalCost], judges: Sequence[dict[str, Any]]) -> list[str]:
    by = {s.signal: s for s in signals}
    if "probe" not in by:
        return []
    probe, reason = by["probe"], by["reason"]
    one = by.get("reason, one call each (estimated)")
    seg = reason.prompt - one.prompt if one else 0.0
    n1 = one.calls if one else reason.calls
    crit = by.get("critique")
    lines = [
        "",
        "| signal | costs per question | final-answer AUROC with it | without it |",
        "|---|---|---|---|",
        f"| probes (+ the segmenting they need) | {probe.prompt + seg:,.0f} prompt, "
        f"{probe.completion:,.0f} completion tokens, {probe.calls + reason.calls - n1:.1f} extra "
        f"calls | {_judge(judges, 'DM with probes')} | {_judge(judges, 'DM without probes')} |",
        f"| (same, the sampling judge: P(majority right)) | | "
        f"{_judge(judges, 'sampling DM with')} | {_judge(judges, 'sampling DM without')} |",
    ]
    if crit is not None:
        lines.append(
            f"| self-critique (no DM uses it) | {crit.prompt:,.0f} prompt, "
            f"{crit.completion:,.0f} completion tokens, {crit.calls:.1f} calls | "
            f"{_judge(judges, 'self-critique')} (alone, untrained) | – |"
        )
    return lines


def _grid(run: CVRun) -> list[str]:
    base = run.point(run.baseline)
    lines = [
        "| point | accuracy | won/lost | samples | completion | prompt | calls | path tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in run.points:
        s = summarize(p, base)
        lines.append(
            f"| {p.label} | {s['accuracy']:.1%} | {s['won']}/{s['lost']} | "
            f"{s['mean_samples']:.2f} | {_f(s['completion_pct'])} | {_f(s['prompt_pct'])} | "
            f"{_f(s['calls_pct'])} | {_f(s['path_tokens_pct'])} |"
        )
    return lines


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
    text = format_report(run, chosen, judges, signals, header, margin)
    d = Path(out).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    (d / "cv.md").write_text(text + "\n", encoding="utf-8")
    (d / "chosen.json").write_text(stops.model_dump_json(indent=2) + "\n", encoding="utf-8")
    full = {
        "format": FORMAT,
        "chosen": stops.model_dump(),
        "judges": list(judges),
        "signals": [s.__dict__ for s in signals],
        "folds": run.fold_of,
        "points": [{k: v for k, v in summarize(p, base).items()} for p in run.points],
    }
    (d / "cv.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return text, stops


__all__ = [
    "Chosen",
    "ChosenStops",
    "choose",
    "format_report",
    "judge_rows",
    "summarize",
    "write_report",
]
