"""The test-time-scaling plot: accuracy against mean tokens per question, one point per config.

Each point carries its 95% Wilson interval as an error bar, and the accuracy axis starts at 0, so
points whose intervals overlap do not look far apart through a zoomed axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ponder.errors import InputError


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configs no cheaper config matches in accuracy, cheapest first."""
    front: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: (r["mean_total_tokens"], -r["accuracy"])):
        if not front or r["accuracy"] > front[-1]["accuracy"]:
            front.append(r)
    return front


def pyplot(hint: str = "") -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend, or an ``InputError`` saying how to
    install it (``hint``: how to do without, e.g. " (or pass --no-plot)")."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(f"plotting needs matplotlib: pip install 'ponder[plot]'{hint}") from None
    return plt


def save_figure(plt: Any, fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (its folder made), close it and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_scaling(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Write a PNG of accuracy vs. mean tokens/question. Needs ``pip install ponder[plot]``."""
    plt = pyplot(" (or pass --no-plot)")
    pts = [r for r in rows if r.get("n")]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    top = 0.0
    for r in sorted(pts, key=lambda r: r["mean_total_tokens"]):
        x, y = r["mean_total_tokens"], 100 * r["accuracy"]
        lo, hi = (100 * v for v in r.get("ci95") or (r["accuracy"], r["accuracy"]))
        top = max(top, hi)
        ax.errorbar(
            [x], [y], yerr=[[max(0.0, y - lo)], [max(0.0, hi - y)]], fmt="o", ms=6, capsize=3, lw=1
        )
        ax.annotate(r["config"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    front = pareto_front(pts)
    if len(front) > 1:
        ax.plot(
            [r["mean_total_tokens"] for r in front],
            [100 * r["accuracy"] for r in front],
            alpha=0.4,
            linestyle="--",
            label="best accuracy for the tokens",
        )
        ax.legend(loc="best", fontsize=8)
    if pts and all(r["mean_total_tokens"] > 0 for r in pts):
        ax.set_xscale("log")
    ax.set_xlabel("mean tokens per question (prompt + completion)")
    ax.set_ylim(0, min(100.0, max(10.0, top * 1.1 + 2)))
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_title(title or "Accuracy vs. test-time compute")
    ax.grid(True, alpha=0.3)
    return save_figure(plt, fig, path)
