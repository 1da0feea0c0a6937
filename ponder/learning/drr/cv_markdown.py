"""The cross-validation report's markdown (``cv.md``): tables of the choice, judges and costs.

Use ``format_report(run, chosen, judges, signals, header, margin, nested)`` to render what
``cv_choice`` computed (``choose``, ``judge_rows``, ``choice_cv``) and the signals' costs
(``costs.format_signal_costs``) as markdown; ``cv_report.write_report`` calls it. Rendering
only: every number comes from ``cv_choice``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ponder.learning.drr.costs import SignalCost, format_signal_costs
from ponder.learning.drr.cv import CVRun
from ponder.learning.drr.cv_choice import Chosen, summarize

GOAL_TOKENS = 40.0
GOAL_WALL = 60.0


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


__all__ = ["GOAL_TOKENS", "GOAL_WALL", "format_report"]
