"""What a run did, in the few numbers an operator watches: why it stopped, samples, budget left.

``run_report`` reads a finished run (its strategy, ``Outcome``, ``Usage`` and budget) and gives a
``RunReport``; the engine puts it on ``RunResult.report``, in the trace's ``run_end`` event and on
the run's span, and the proxy shows it in the ``ponder`` object and counts it in ``/metrics``.

``stop_reason`` is one of ``STOP_REASONS`` (a bounded set, safe as a metric label), first that
applies: ``budget`` (the token budget cut the run), ``abstained`` (a judge withheld the answer),
``early_stop`` (a stop policy ended sampling or a trace before the plan: adaptive consistency,
DeepConf, DRR), ``length`` (the answer hit ``max_tokens``), ``no_answer`` (nothing extractable),
``complete``.

``tokens_saved`` is an estimate, from the same run only: each planned sample not drawn would have
cost the mean completion tokens of those drawn, and each trace a stop policy cut would have run
as long as the mean of the traces that finished (0 where no trace finished to compare with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ponder.orchestrator.budget import TokenBudget
from ponder.orchestrator.usage import Usage
from ponder.protocol.actions import Outcome

STOP_REASONS = ("budget", "abstained", "early_stop", "length", "no_answer", "complete")


@dataclass(frozen=True)
class RunReport:
    stop_reason: str = "complete"
    samples_planned: int = 0
    """Samples the strategy meant to draw (its ``k``; 1 for a single chain of thought)."""
    samples_drawn: int = 0
    samples_used: int = 0
    """Samples that gave an answer (the ones that could vote)."""
    early_stop: bool = False
    tokens_saved: int = 0
    budget_left: int | None = None
    """Tokens of the run's budget not spent (``None``: no budget)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stopped_early(o: Outcome) -> bool:
    """A trace a stop policy ended: DRR marks ``early``; DeepConf sets ``stopped_at``."""
    if "early" in o.data:
        return bool(o.data["early"])
    return o.data.get("stopped_at") is not None


def _tokens(o: Outcome) -> int | None:
    t = o.data.get("tokens", o.data.get("stopped_at"))
    return t if isinstance(t, int) and not isinstance(t, bool) else None


def _planned(strategy: object) -> int:
    """The strategy's ``k``, looking through wrappers (an ``inner`` without a ``k`` of its own,
    such as the proxy's client options); 1 when it draws one sample."""
    for _ in range(4):
        k = getattr(strategy, "k", None)
        if isinstance(k, int) and not isinstance(k, bool) and k > 0:
            return k
        strategy = getattr(strategy, "inner", None)
        if strategy is None:
            break
    return 1


def run_report(
    strategy: object,
    outcome: Outcome,
    usage: Usage,
    budget: TokenBudget | None,
    budget_limited: bool,
) -> RunReport:
    samples = outcome.samples or ([outcome] if usage.calls or usage.failed_calls else [])
    planned = max(_planned(strategy), len(samples))
    drawn = len(samples)
    used = sum(1 for s in samples if s.answer is not None and s.error is None)
    if not outcome.samples:
        used = 1 if outcome.answer is not None else 0
    stopped = [s for s in samples if _stopped_early(s)]
    undrawn = planned - drawn if drawn else 0
    early = not budget_limited and (bool(stopped) or (planned > 1 and 0 < drawn < planned))
    saved = 0
    if early:
        known = [t for s in samples if (t := _tokens(s)) is not None]
        finished = [t for s in samples if not _stopped_early(s) and (t := _tokens(s)) is not None]
        mean_drawn = sum(known) / len(known) if known else usage.completion_tokens / max(drawn, 1)
        saved = round(undrawn * mean_drawn)
        if finished:
            full = sum(finished) / len(finished)
            saved += round(sum(max(0.0, full - (_tokens(s) or 0)) for s in stopped))
    if budget_limited:
        reason = "budget"
    elif outcome.data.get("abstained"):
        reason = "abstained"
    elif early:
        reason = "early_stop"
    elif outcome.data.get("finish_reason") == "length":
        reason = "length"
    elif outcome.answer is None:
        reason = "no_answer"
    else:
        reason = "complete"
    return RunReport(
        stop_reason=reason,
        samples_planned=planned,
        samples_drawn=drawn,
        samples_used=used,
        early_stop=early,
        tokens_saved=saved,
        budget_left=budget.total_tokens - budget.spent if budget is not None else None,
    )
