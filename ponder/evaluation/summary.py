"""Summaries of per-question records: accuracy, tokens, wall time, oracle pass@k."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean, median
from typing import Any


def summarize(name: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row of the summary table for config ``name``."""
    n = len(records)
    if n == 0:
        return {"config": name, "n": 0}
    row: dict[str, Any] = {
        "config": name,
        "n": n,
        "accuracy": sum(bool(r.get("correct")) for r in records) / n,
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


COLUMNS = (
    ("config", "config", "{}"),
    ("n", "n", "{}"),
    ("accuracy", "accuracy", "{:.1%}"),
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
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = [
        "| " + " | ".join(c[1] for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for r in rows:
        cells = [fmt.format(r[key]) if r.get(key) is not None else "–" for key, _, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
