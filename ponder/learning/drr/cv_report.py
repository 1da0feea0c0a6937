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
    nested: Sequence[dict[str, Any]] = (),
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
        if c.give_up_below is not None:
            th += f", give up < {c.give_up_below:g} after {c.give_up_after}"
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
        "## The choice itself cross-validated",
        "",
        "Per fold, the threshold is picked on the other folds' questions and scored on this "
        "fold's (pooled): what the choosing procedure is worth on questions it did not see.",
        "",
        "| policy | picks per fold | accuracy | won/lost (p) | samples | completion | total | "
        "wall: path tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in nested:
        lines.append(
            f"| {r['policy']} | {'; '.join(r['picks'])} | {r['accuracy']:.1%} | "
            f"{r['won']}/{r['lost']} ({r['p_value']:.2g}) | {r['mean_samples']:.2f} | "
            f"{_f(r['completion_pct'])} | {_f(r['total_pct'])} | {_f(r['path_tokens_pct'])} |"
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
    lines += ["", "## Every point without a futility stop (out-of-fold; all in cv.json)", ""]
    lines += _grid(run)
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
        if p.give_up is not None:
            continue  # in cv.json
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
