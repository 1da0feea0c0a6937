"""The stop-thinking report's result and its two renderings: markdown and a JSON-ready dict.

Use ``ThinkReport`` as what ``think_report`` returns: ``markdown()`` for ``think_report.md`` (the
margin, the knobs chosen on train with their grids, the test table against full thinking, the
notes), ``to_dict()`` for ``think_report.json``. Rendering only: the numbers are computed in
``think_policies`` (the choice on train), ``think_rows`` (the test rows) and ``think_report``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ponder.learning.drr.think_policies import Chosen
from ponder.learning.drr.think_rows import Row


@dataclass
class ThinkReport:
    """What ``think_report`` measured; ``markdown()`` and ``to_dict()`` are the two outputs."""

    margin: float
    train: dict[str, Any]
    test: dict[str, Any]
    choices: list[Chosen]
    rows: list[Row]
    dm: dict[str, Any]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "train": self.train,
            "test": self.test,
            "dm": self.dm,
            "chosen_on_train": [asdict(c) for c in self.choices],
            "test_rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
        }

    def markdown(self) -> str:
        m = self.margin
        lines = [
            "# Stop thinking: replay on held-out questions",
            "",
            f"**Non-inferiority margin: {m:.3g} accuracy ({100 * m:g} points) against full "
            f"thinking.** A policy is non-inferior when the lower end of the 95% interval of its "
            f"accuracy minus full's is above -{m:.3g}.",
            "",
            f"- train: {_describe(self.train)}",
            f"- test: {_describe(self.test)}",
            f"- DM: families {', '.join(self.dm['families'])}; knobs cross-fitted on train by "
            f"question ({self.dm['folds']} folds)",
            "",
            "## Chosen on train",
            "",
            "| policy | chosen | within margin on train | grid (knob: accuracy, thinking) |",
            "|---|---|---|---|",
        ]
        for c in self.choices:
            grid = "; ".join(
                f"{x.knob:g}: {x.accuracy:.3f}, {x.thinking:.0f}" for x in c.candidates
            )
            lines.append(
                f"| {c.policy} | {c.knob:g} | {'yes' if c.within_margin else 'no'} | {grid} |"
            )
        full_acc = self.train.get("full_accuracy")
        if full_acc is not None:
            lines += ["", f"Full thinking's train accuracy: {full_acc:.3f}."]
        lines += [
            "",
            "## Test",
            "",
            "| policy | traces | accuracy [95%] | vs full [95%] | non-inferior | won/lost | "
            "McNemar p | thinking tokens | saved | generated tokens |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.policy} | {r.traces} | {r.accuracy:.3f} [{r.ci95[0]:.3f}, {r.ci95[1]:.3f}]"
                f" | {r.diff:+.3f} [{r.diff_ci95[0]:+.3f}, {r.diff_ci95[1]:+.3f}] | "
                f"{'yes' if r.non_inferior else 'no'} | {r.won}/{r.lost} | {r.mcnemar_p:.3g} | "
                f"{r.thinking:.1f} | {r.thinking_saved:.0%} | {r.generated:.1f} |"
            )
        lines += ["", "## Notes", "", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"


def _describe(c: dict[str, Any]) -> str:
    return (
        f"{c['path']} ({c['questions']} questions, {c['traces']} traces; thinking cap "
        f"{c['cap']}, probes every {c['probe_every']}; {c['format']})"
    )


__all__ = ["ThinkReport"]
