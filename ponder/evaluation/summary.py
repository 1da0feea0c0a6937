"""Summaries of per-question records: accuracy (with its 95% Wilson interval), tokens, wall time,
oracle pass@k, and a paired comparison of each config against a baseline on the same questions
(questions won / lost, exact McNemar p)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import mean, median
from typing import Any

from ponder.behaviour.stats import paired, wilson


def summarize(name: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row of the summary table for config ``name``."""
    n = len(records)
    if n == 0:
        return {"config": name, "n": 0}
    correct = sum(bool(r.get("correct")) for r in records)
    lo, hi = wilson(correct, n)
    row: dict[str, Any] = {
        "config": name,
        "n": n,
        "correct": correct,
        "accuracy": correct / n,
        "ci95": [lo, hi],
        "mean_prompt_tokens": mean(r.get("prompt_tokens", 0) for r in records),
        "mean_completion_tokens": mean(r.get("completion_tokens", 0) for r in records),
        "mean_total_tokens": mean(r.get("total_tokens", 0) for r in records),
        "mean_calls": mean(r.get("calls", 0) for r in records),
        "median_wall_s": median(r.get("wall_time_s", 0.0) for r in records),
        "sum_wall_s": sum(r.get("wall_time_s", 0.0) for r in records),
        "errors": sum(1 for r in records if r.get("error")),
    }
    with_samples = [r for r in records if "oracle" in r]
    if with_samples:
        row["oracle_pass_at_k"] = sum(bool(r["oracle"]) for r in with_samples) / len(with_samples)
        row["mean_samples"] = mean(len(r.get("samples", [])) for r in with_samples)
    return row


def add_paired(
    rows: Sequence[dict[str, Any]],
    records: Mapping[str, Sequence[dict[str, Any]]],
    baseline: str,
) -> None:
    """Set ``row["vs_baseline"]`` on every row but the baseline's: won / lost / exact p on the
    questions both configs answered (``records`` maps config name to its records)."""
    base = {str(r["id"]): bool(r.get("correct")) for r in records.get(baseline, [])}
    for row in rows:
        if row["config"] == baseline or not base:
            continue
        mine = {str(r["id"]): bool(r.get("correct")) for r in records.get(row["config"], [])}
        pr = paired(mine, base)
        row["vs_baseline"] = {
            "baseline": baseline,
            "n": pr.n,
            "won": pr.won,
            "lost": pr.lost,
            "p_value": pr.p_value,
            "text": f"{pr.text()} vs {baseline}",
        }


def _ci_text(row: dict[str, Any]) -> str | None:
    ci = row.get("ci95")
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else None


def _paired_text(row: dict[str, Any]) -> str | None:
    vs = row.get("vs_baseline")
    return vs["text"] if vs else None


DERIVED = {"ci95_text": _ci_text, "paired_text": _paired_text}

COLUMNS = (
    ("config", "config", "{}"),
    ("n", "n", "{}"),
    ("accuracy", "accuracy", "{:.1%}"),
    ("ci95_text", "95% CI (Wilson)", "{}"),
    ("paired_text", "paired: won/lost (McNemar p)", "{}"),
    ("oracle_pass_at_k", "pass@k (oracle)", "{:.1%}"),
    ("mean_samples", "samples/q", "{:.1f}"),
    ("mean_prompt_tokens", "prompt tok/q", "{:.0f}"),
    ("mean_completion_tokens", "completion tok/q", "{:.0f}"),
    ("mean_calls", "calls/q", "{:.1f}"),
    ("median_wall_s", "median wall s/q", "{:.1f}"),
    ("elapsed_s", "elapsed s", "{:.0f}"),
    ("errors", "errors", "{}"),
)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of summary rows (columns absent from every row are left out)."""
    rows = [{**r, **{k: f(r) for k, f in DERIVED.items() if f(r) is not None}} for r in rows]
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = [
        "| " + " | ".join(c[1] for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for r in rows:
        cells = [fmt.format(r[key]) if r.get(key) is not None else "–" for key, _, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
