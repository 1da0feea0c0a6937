"""The training curve of an SSA run, as a PNG: look at a run rather than read its log.

Use ``plot_run(run_dir)`` or ``ponder ssa plot --run DIR`` on a ``ponder ssa train`` or
``ponder ssa grpo`` output (main install plus ``ponder[plot]``; no torch). A ``train`` run plots
the loss per optimizer step; a ``grpo`` run plots the mean reward per step with its moving
average, and the share of groups with signal (rewards not all equal: the only groups that move
the policy) below it. The PNG goes beside the log (``curve.png``) unless ``out`` says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ponder.errors import InputError
from ponder.evaluation.plot import pyplot

TRAIN_LOG = "train_log.jsonl"
GRPO_LOG = "grpo_log.jsonl"
CURVE = "curve.png"


def moving_average(xs: Sequence[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    out: list[float] = []
    total = 0.0
    for i, x in enumerate(xs):
        total += x
        if i >= window:
            total -= xs[i - window]
        out.append(total / min(i + 1, window))
    return out


def read_log(run_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """``("grpo" | "train", entries)`` of the run in ``run_dir``."""
    for kind, name in (("grpo", GRPO_LOG), ("train", TRAIN_LOG)):
        path = run_dir / name
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if not rows:
                raise InputError(f"{path} has no steps yet")
            return kind, rows
    raise InputError(
        f"{run_dir} has no {GRPO_LOG} or {TRAIN_LOG}: pass a `ponder ssa train` or "
        "`ponder ssa grpo` output directory"
    )


def plot_run(run_dir: str | Path, out: str | Path | None = None, window: int = 8) -> Path:
    """Write the run's curve to ``out`` (default ``<run_dir>/curve.png``) and return its path."""
    run = Path(run_dir).expanduser()
    kind, rows = read_log(run)
    plt = pyplot()
    steps = [int(r["step"]) for r in rows]
    path = Path(out).expanduser() if out else run / CURVE
    if kind == "train":
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
        losses = [float(r["loss"]) for r in rows]
        ax.plot(steps, losses, lw=1, alpha=0.5, label="loss")
        ax.plot(steps, moving_average(losses, window), lw=2, label=f"mean of {window} steps")
        ax.set_ylabel("training loss (target tokens)")
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=8)
        ax.set_title(f"ssa train: {run.name}", fontsize=10)
    else:
        fig, (ax, low) = plt.subplots(
            2, 1, figsize=(6.4, 4.8), dpi=120, sharex=True, height_ratios=(3, 1)
        )
        rewards = [float(r["reward"]) for r in rows]
        ax.plot(steps, rewards, "o", ms=3, alpha=0.5, label="mean reward of the step")
        ax.plot(steps, moving_average(rewards, window), lw=2, label=f"mean of {window} steps")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("reward")
        ax.legend(fontsize=8, loc="best")
        ax.set_title(f"ssa grpo: {run.name}", fontsize=10)
        share = [r["groups_with_signal"] / max(1, r["groups"]) for r in rows]
        low.bar(steps, share, width=0.8, color="grey")
        low.set_ylim(0, 1)
        low.set_ylabel("groups with\nsignal", fontsize=8)
        low.set_xlabel("optimizer step")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
