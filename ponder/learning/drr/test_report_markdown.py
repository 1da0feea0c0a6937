"""The held-out test report's markdown (``report.md``): tables a person reads, with goal checks.

Use ``format_report(report)`` on the dict ``test_report_tables.held_out_report`` returns (the
same dict ``report.json`` holds). Rendering only: every number comes from ``test_report_tables``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f}%"


def _acc(acc: float | None, interval: Sequence[float]) -> str:
    if acc is None:
        return "–"
    return f"{acc:.1%} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def _setting(r: dict[str, Any]) -> str:
    if r["threshold"] is None:
        return "none within the margin"
    s = f"{r['threshold']:g}"
    if r["give_up_below"] is not None:
        s += f", give up < {r['give_up_below']:g} after {r['give_up_after']}"
    return s


def _policy_goal(r: dict[str, Any], base: float, margin: float) -> str:
    t, g = r["test"], r["goal"]
    diff = 100 * (t["accuracy"] - base)
    within = "within" if g["accuracy_ok"] else "beyond"
    why = [
        f"accuracy {diff:+.1f} pts ({within} -{100 * margin:g})",
        f"total tokens {_pct(t['total_pct'])} ({'<=' if g['tokens_ok'] else '>'} 40%)",
    ]
    return f"**{'met' if g['met'] else 'missed'}**: " + ", ".join(why)


def policies_table(t: dict[str, Any], margin: float) -> list[str]:
    b = t["baseline"]
    pq = b["per_question"]
    lines = [
        f"Baseline {b['label']} (maj@k): {_acc(b['accuracy'], b['interval'])} on {b['n']} "
        f"questions; per question {pq['completion']:,.0f} completion + {pq['prompt']:,.0f} "
        f"prompt tokens, {pq['calls']:.1f} calls. Costs below are % of maj@k's on the same "
        "questions; wall = the sum over rounds of the round's longest sample (tokens).",
        "",
        "| policy | chosen on train | CV on train: accuracy, total | test accuracy [95% CI] | "
        "won/lost vs maj@k (p) | samples | completion | prompt | total | calls | wall: path "
        "tokens | goal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in t["policies"]:
        cv = f"{r['cv']['accuracy']:.1%}, {_pct(r['cv']['total_pct'])}"
        head = f"| {r['policy']} | {_setting(r)} | {cv} |"
        if r["status"] != "replayed":
            lines.append(f"{head} {r['status']} | – | – | – | – | – | – | – | – | – |")
            continue
        s = r["test"]
        lines.append(
            f"{head} {_acc(s['accuracy'], s['interval'])} | {s['won']}/{s['lost']} "
            f"({s['p_value']:.2g}) | {s['mean_samples']:.2f} | {_pct(s['completion_pct'])} | "
            f"{_pct(s['prompt_pct'])} | {_pct(s['total_pct'])} | {_pct(s['calls_pct'])} | "
            f"{_pct(s['path_tokens_pct'])} | {_policy_goal(r, b['accuracy'], margin)} |"
        )
    return lines


def _met(m: bool | None) -> str:
    return "–" if m is None else ("**met**" if m else "missed")


def judges_table(t: dict[str, Any]) -> list[str]:
    lines = [
        "| judge | units | AUROC [95% CI] | ECE | goal: AUROC >= 0.85 and ECE <= 0.05 |",
        "|---|---|---|---|---|",
    ]
    for r in t["judges"]:
        e = "–" if r["ece"] is None else f"{r['ece']:.3f}"
        lines.append(
            f"| {r['judge']} | {r['units']} ({r['questions']} q) | {r['text']} | {e} | "
            f"{_met(r['goal_met'])} |"
        )
    return lines


def aggregation_table(t: dict[str, Any]) -> list[str]:
    lines = [
        "| aggregator (all k samples) | accuracy [95% CI] | won/lost vs majority (p) | "
        "majority -> oracle gap closed | goal: >= 1/2 closed, p < 0.05 |",
        "|---|---|---|---|---|",
    ]
    for r in t["aggregation"]:
        if "status" in r:
            lines.append(f"| {r['aggregator']} | {r['status']} | – | – | – |")
            continue
        gap = "–" if r["gap_closed"] is None else f"{r['gap_closed']:.0%}"
        lines.append(
            f"| {r['aggregator']} | {_acc(r['accuracy'], r['interval'])} | "
            f"{r['won']}/{r['lost']} ({r['p_value']:.2g}) | {gap} | {_met(r['goal_met'])} |"
        )
    return lines


def selective_table(t: dict[str, Any]) -> list[str]:
    lines = [
        "| confidence in maj@k's answer | threshold (fixed on train) | train coverage | test "
        "coverage | accuracy answered [95% CI] | full coverage | gain | goal: >= +6 pts | "
        "at exactly 80% test coverage (reference) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in t["selective"]:
        gain = "–" if r["gain"] is None else f"{100 * r['gain']:+.1f} pts"
        at = r["accuracy_at_test_coverage"]
        ref = "–" if at is None else f"{at:.1%} ({r['answered_at_test_coverage']} answered)"
        lines.append(
            f"| {r['confidence']} | {r['threshold']:.3f} {r['threshold_from']} | "
            f"{r['train_coverage']:.0%} | {r['test_coverage']:.0%} ({r['answered']}/{r['n']}) | "
            f"{_acc(r['accuracy'], r['interval'])} | {r['full_accuracy']:.1%} | {gain} | "
            f"{_met(r['goal_met'])} | {ref} |"
        )
    return lines


def _sections(t: dict[str, Any], margin: float, level: str) -> list[str]:
    return [
        f"{level} Stop policies at the thresholds chosen on train",
        "",
        *policies_table(t, margin),
        "",
        f"{level} Judges on test (AUROC 95% CI: a bootstrap over questions)",
        "",
        *judges_table(t),
        "",
        f"{level} Aggregating all k samples",
        "",
        *aggregation_table(t),
        "",
        f"{level} Selective answering (maj@k's answer; abstain below the train threshold)",
        "",
        *selective_table(t),
    ]


def format_report(report: dict[str, Any]) -> str:
    """``report.md``: the header, then policies, judges, aggregation and selective answering on
    every test question, then (``--subset-first``) the same on the first N."""
    tr, te, ch, tn = report["train"], report["test"], report["chosen"], report["trained"]
    plain = "" if te["probes"] else f"; PLAIN: no probes ({te['why_no_probes']})"
    plain += "" if te["critique"] else ", no self-critique"
    lines = [
        "# Held-out test report: every knob fixed on train",
        "",
        f"- train: {', '.join(tr['dirs']) or '–'} ({tr['questions']} questions): the DM with "
        f"probes ({', '.join(tn['families'])}), the probe-free DM "
        f"({', '.join(tn['free_families'])}) and the learned aggregator "
        f"({', '.join(tn['learned_features'])}) trained on all of them",
        f"- test: {te['dir'] or '–'} ({te['questions']} questions, k = {te['k']}{plain})",
        f"- chosen: {ch['path'] or '–'} (`ponder drr cv` on {ch['questions']} train questions, "
        f"{ch['folds']} folds, seed {ch['seed']}, margin {ch['margin']:g}): each policy's "
        "threshold and futility stop; nothing here is chosen on test",
        f"- selective answering: each threshold answers {100 * report['goals']['coverage']:.0f}% "
        "of the train questions (the probe-free DM's confidences out-of-fold: a DM trained on "
        "the other folds of chosen.json's folds)",
        *(f"- note: {n}" for n in report["notes"]),
        *(f"- plot: {p}" for p in report["plots"]),
        "",
        *_sections(report["all"], ch["margin"], "##"),
    ]
    sub = report.get("subset")
    if sub:
        lines += [
            "",
            f"## The same on the first {sub['questions']} test questions",
            "",
            *_sections(sub, ch["margin"], "###"),
        ]
    return "\n".join(lines)


__all__ = [
    "aggregation_table",
    "format_report",
    "judges_table",
    "policies_table",
    "selective_table",
]
