"""What a run gives back: ``RunResult``, the answer plus everything needed to account for it.

Use it to read a run's answer, its ``usage`` (tokens, calls, time), its ``trace`` and the
strategy's full ``outcome``; ``to_dict()`` is the JSON shape ``ponder run --json`` and the proxy
report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ponder.orchestrator.report import RunReport
from ponder.orchestrator.trace import Trace
from ponder.orchestrator.usage import Usage
from ponder.protocol.actions import Outcome


@dataclass
class RunResult:
    """The answer of one run plus everything needed to account for it."""

    answer: str | None
    text: str
    budget_limited: bool
    usage: Usage
    trace: Trace
    outcome: Outcome
    backends: dict[str, dict[str, object]] = field(default_factory=dict)
    """What served each role (``Backend.describe()``, e.g. the local backend's runtime, and the
    ``capabilities`` it reported at the end of the run: what it learned, such as a refused n)."""
    report: RunReport = field(default_factory=RunReport)
    """Why the run stopped, samples drawn and used, budget left (``ponder.orchestrator.report``)."""

    @property
    def run_id(self) -> str:
        return self.trace.run_id

    @property
    def p_correct(self) -> float | None:
        """A calibrated P(the answer is correct), set by chains with a DRR judge (else None)."""
        p = self.outcome.data.get("p_correct")
        return float(p) if p is not None else None

    @property
    def abstained(self) -> bool:
        """True when the chain withheld its answer (``abstain_below``); the answer is None."""
        return bool(self.outcome.data.get("abstained"))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "run_id": self.run_id,
            "answer": self.answer,
            "text": self.text,
            "budget_limited": self.budget_limited,
            "usage": self.usage.to_dict(),
            "outcome": self.outcome.to_dict(),
            "backends": self.backends,
        }
        if self.p_correct is not None:
            d["p_correct"] = self.p_correct
        if self.abstained:
            d["abstained"] = True
        return d
