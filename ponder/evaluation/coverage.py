"""Selective answering in ``ponder eval``: the coverage-accuracy curve and the judge's AUROC.

Use ``coverage_rows(records_by_config)`` after an evaluation: for every config whose records
carry a confidence (``p_correct``: the DRR strategies, the ``learned`` aggregator) it reports
how accurate the chain is when it answers only its most confident questions (coverage 100, 90,
80, 70, 50%; ``ponder.behaviour.stats.risk_coverage``) and how well the confidence ranks right
above wrong answers (AUROC with a 95% bootstrap interval over questions, ``auroc_ci``). A
question the chain abstained on counts with the answer it withheld (``withheld_correct``), so
the curve is the chain's, not its abstention rule's. ``format_coverage`` is the Markdown table
(``coverage.md``), ``plot_coverage`` the PNG (``coverage.png``, the ``plot`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ponder.behaviour.stats import COVERAGES, auroc_ci, risk_coverage


def _units(records: Sequence[dict[str, Any]]) -> tuple[list[bool], list[float], list[str]]:
    y, p, ids = [], [], []
    for r in records:
        conf = r.get("p_correct")
        if conf is None or r.get("error"):
            continue
        right = r.get("withheld_correct") if r.get("abstained") else r.get("correct")
        y.append(bool(right))
        p.append(float(conf))
        ids.append(str(r["id"]))
    return y, p, ids


def coverage_row(
    name: str, records: Sequence[dict[str, Any]], resamples: int = 1000
) -> dict[str, Any] | None:
    """The config's coverage curve and AUROC, or ``None`` when no record has a confidence."""
    y, p, ids = _units(records)
    if not y:
        return None
    ci = auroc_ci(y, p, ids, resamples=resamples)
    return {
        "config": name,
        "n": len(y),
        "auroc": ci.auroc,
        "auroc_ci95": [ci.lo, ci.hi],
        "auroc_text": ci.text(),
        "coverage": [
            {"coverage": pt.coverage, "answered": pt.answered, "accuracy": pt.accuracy}
            for pt in risk_coverage(y, p, COVERAGES)
        ],
        "curve": [
            pt.accuracy for pt in risk_coverage(y, p, [i / len(y) for i in range(1, len(y) + 1)])
        ],
    }


def coverage_rows(
    records: Mapping[str, Sequence[dict[str, Any]]], resamples: int = 1000
) -> list[dict[str, Any]]:
    rows = [coverage_row(name, recs, resamples) for name, recs in records.items()]
    return [r for r in rows if r is not None]


def format_coverage(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: accuracy at each coverage (the most confident share answered) and AUROC."""
    head = " | ".join(f"acc@{100 * c:.0f}%" for c in COVERAGES)
    lines = [
        f"| config | n | AUROC [95% CI, by question] | {head} |",
        "|" + "---|" * (3 + len(COVERAGES)),
    ]
    for r in rows:
        cells = " | ".join(
            f"{100 * pt['accuracy']:.1f}% ({pt['answered']})" for pt in r["coverage"]
        )
        lines.append(f"| {r['config']} | {r['n']} | {r['auroc_text']} | {cells} |")
    return "\n".join(lines)


def plot_coverage(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Accuracy of the answered questions against coverage, one line per config."""
    from ponder.evaluation.plot import pyplot, save_figure

    plt = pyplot(" (or pass --no-plot)")
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for r in rows:
        n = len(r["curve"])
        xs = [100 * (i + 1) / n for i in range(n)]
        ax.plot(xs, [100 * a for a in r["curve"]], label=f"{r['config']} (AUROC {r['auroc_text']})")
    ax.set_xlabel("coverage: share of questions answered, most confident first (%)")
    ax.set_ylabel("accuracy of the answered (%)")
    ax.set_xlim(100, 0)
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    ax.set_title("Selective answering: coverage vs accuracy")
    return save_figure(plt, fig, path)


def report_coverage(out: str | Path, rows: Sequence[dict[str, Any]], plot: bool = True) -> str:
    """After ``ponder eval``: read each config's records from ``out``, print nothing, write
    ``coverage.md`` / ``coverage.json`` (and ``coverage.png`` with ``plot``) when some config
    carries a confidence; returns the table ("" when none does)."""
    import json

    from ponder.evaluation.records import read_records

    root = Path(out)
    recs = {r["config"]: read_records(root / f"{r['config']}.jsonl") for r in rows if r.get("n")}
    cov = coverage_rows(recs)
    if not cov:
        return ""
    table = format_coverage(cov)
    (root / "coverage.md").write_text(table + "\n", encoding="utf-8")
    (root / "coverage.json").write_text(json.dumps(cov, indent=1) + "\n", encoding="utf-8")
    if plot:
        plot_coverage(cov, root / "coverage.png")
    return table
