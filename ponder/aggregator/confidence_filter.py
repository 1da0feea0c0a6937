"""Confidence-filtered voting (DeepConf offline, Fu et al. 2025).

Use ``confidence_filter`` when the samples carry token logprobs (``inner: {name: cot, logprobs:
true}``): it keeps the ``keep`` fraction (η) of answered samples with the highest trace
confidence by ``measure`` (``lowest_group``, ``bottom10``, ``tail`` or ``mean``; see
``ponder.confidence``) and votes among them, each vote weighted by that confidence (or
uniformly). DeepConf's two settings are ``keep: 0.1`` (aggressive) and ``keep: 0.9``::

    aggregator: {name: confidence_filter, measure: lowest_group, keep: 0.9}

Answers are grouped by equivalence as in ``majority``. Confidences from the top-k alternatives
(the default of ``cot``) are positive and weigh as they are; where a backend gave only the chosen
token's logprob the measure is a mean logprob and weighs ``exp(value)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from ponder.aggregator.base import Aggregator, valid
from ponder.aggregator.registry import register_aggregator
from ponder.aggregator.voting import Group, group_answers, weighted_outcome
from ponder.confidence import MEASURES
from ponder.errors import AllSamplesFailed, ConfigError, NoAnswer
from ponder.protocol.actions import Outcome, Task, failure_of

Measure = Literal["mean", "lowest_group", "bottom10", "tail"]
assert set(MEASURES) == set(Measure.__args__)  # type: ignore[attr-defined]


def sample_confidence(sample: Outcome, measure: str) -> float | None:
    """The sample's trace confidence by ``measure`` (``None`` if it has none)."""
    tc = sample.data.get("trace_confidence")
    if not isinstance(tc, dict):
        return None
    v = tc.get(measure)
    return float(v) if v is not None else None


def vote_weight(value: float, source: str | None) -> float:
    """A positive vote weight from a confidence value (see the module doc)."""
    return math.exp(value) if source == "chosen" else max(value, 0.0)


def source_of(samples: Sequence[Outcome]) -> str | None:
    """The one confidence source of the samples; mixing two scales is refused."""
    sources = {
        str(s.data["confidence_source"])
        for s in samples
        if "trace_confidence" in s.data and s.data.get("confidence_source")
    }
    if len(sources) > 1:
        raise ConfigError(
            "aggregator",
            f"samples mix confidence sources {sorted(sources)}; their scales are not comparable",
        )
    return next(iter(sources), None)


def keep_count(answered: int, keep: float) -> int:
    """How many of ``answered`` samples the top-η filter keeps (at least one; half rounds up)."""
    return max(1, min(answered, math.floor(keep * answered + 0.5)))


def confidence_groups(
    samples: Sequence[Outcome], indices: Sequence[int], measure: str, uniform: bool = False
) -> list[Group]:
    """Answer groups of ``samples[indices]`` with confidence-weighted (or counted) votes."""
    source = source_of(samples)
    picked = [samples[i] for i in indices]
    groups = group_answers(picked)
    for g in groups:
        g.members = [indices[m] for m in g.members]
        if uniform:
            g.weight = float(len(g.members))
        else:
            g.weight = sum(
                vote_weight(c, source)
                for c in (sample_confidence(samples[i], measure) for i in g.members)
                if c is not None
            )
    return groups


def require_confidence(samples: Sequence[Outcome], who: str) -> None:
    if not any("trace_confidence" in s.data for _, s in valid(samples)):
        raise ConfigError(
            "inner.logprobs",
            f"{who} needs each sample's trace confidence: set logprobs: true on the inner "
            "strategy (cot), on a backend that returns logprobs",
        )


@register_aggregator
class ConfidenceFiltered(Aggregator):
    """Keep the top ``keep`` fraction of samples by ``measure``; confidence-weighted vote."""

    name: ClassVar[str] = "confidence_filter"

    measure: Measure = "lowest_group"
    keep: float = Field(0.9, gt=0.0, le=1.0)
    weighting: Literal["confidence", "uniform"] = "confidence"

    def choose(self, task: Task, samples: Sequence[Outcome]) -> Outcome:
        answered = valid(samples)
        if not answered:
            raise AllSamplesFailed([failure_of(s) for s in samples] or [NoAnswer()])
        require_confidence(samples, f"aggregator {self.name!r}")

        def key(item: tuple[int, Outcome]) -> float:
            c = sample_confidence(item[1], self.measure)
            return c if c is not None else -math.inf

        ranked = sorted(answered, key=key, reverse=True)  # stable: ties keep sample order
        n = keep_count(len(ranked), self.keep)
        kept = sorted(i for i, _ in ranked[:n])
        groups = confidence_groups(samples, kept, self.measure, self.weighting == "uniform")
        if all(g.weight == 0 for g in groups):  # e.g. every kept sample lacked a confidence
            for g in groups:
                g.weight = float(len(g.members))
        best = max(groups, key=lambda g: g.weight)
        return weighted_outcome(
            samples,
            groups,
            best,
            self.name,
            measure=self.measure,
            kept=kept,
            threshold=key(ranked[n - 1]),
        )
