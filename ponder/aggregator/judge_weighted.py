"""``judge_weighted``: majority vote where each vote counts its judge's P(correct).

Use it where the samples carry a judge's per-sample P(correct): the traces of ``drr_sample`` /
``drr_bayes`` (each trace's DM P at its end, ``data["p"]``), or samples given a
``data["p_correct"]`` by whatever produced them::

    strategy: {name: drr_sample, dm: default, k: 8, threshold: 0.8,
               aggregator: {name: judge_weighted}}

Each answer group weighs ``sum(max(floor, p) ** power)`` over its members; the heaviest wins
(ties: the group seen first). ``Outcome.confidence`` is the winner's share of the weight. A sample
without a P is refused (``missing: refuse``, the default, with the reason) or counted as
``floor`` (``missing: floor``). ``power: 0`` is plain majority.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from ponder.aggregator.base import Aggregator, valid
from ponder.aggregator.registry import register_aggregator
from ponder.aggregator.voting import group_answers, weighted_outcome
from ponder.errors import AllSamplesFailed, ConfigError, NoAnswer
from ponder.protocol.actions import Outcome, Task, failure_of

P_KEYS = ("p_correct", "p")


def sample_p(s: Outcome) -> float | None:
    """A sample's judge P(correct): ``data["p_correct"]``, else ``data["p"]``."""
    for key in P_KEYS:
        v = s.data.get(key)
        if v is not None:
            return float(v)
    return None


@register_aggregator
class JudgeWeighted(Aggregator):
    """Votes weighted by each sample's judge P(correct) (see the module doc)."""

    name: ClassVar[str] = "judge_weighted"

    power: float = Field(1.0, ge=0.0)
    floor: float = Field(0.02, ge=0.0, le=1.0)
    missing: Literal["refuse", "floor"] = "refuse"

    def choose(self, task: Task, samples: Sequence[Outcome]) -> Outcome:
        if not valid(samples):
            raise AllSamplesFailed([failure_of(s) for s in samples] or [NoAnswer()])
        groups = group_answers(samples)
        weights: dict[int, float] = {}
        for g in groups:
            for i in g.members:
                p = sample_p(samples[i])
                if p is None and self.missing == "refuse":
                    raise ConfigError(
                        "aggregator.missing",
                        "judge_weighted needs each sample's judge P(correct) (data['p_correct'] "
                        "or data['p']: drr_sample and drr_bayes traces carry it); these samples "
                        "have none. Use it inside a judged strategy, or set missing: floor",
                    )
                weights[i] = max(self.floor, p if p is not None else 0.0) ** self.power
            g.weight = sum(weights[i] for i in g.members)
        best = max(groups, key=lambda g: g.weight)  # first on ties
        return weighted_outcome(samples, groups, best, self.name)
