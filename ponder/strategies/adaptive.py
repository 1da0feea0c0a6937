"""Adaptive sampling: draw in rounds and stop once the answers agree enough.

The baseline a learned stop model must beat. Rounds follow ``schedule`` (cumulative sample
counts, default 2, 4, 8 up to ``k``); after each round, if the share of answered samples that
agree with the most common answer is at least ``threshold`` (and at least ``min_agree`` samples
agree), sampling stops and the aggregator runs over everything drawn::

    strategy: {name: adaptive, k: 8, threshold: 0.75, inner: {name: cot, temperature: 0.7}}

Sample ``i`` uses seed ``seed + i``, the same as ``sample`` does, so an adaptive run draws a
prefix of the samples a fixed-k run with the same seed would draw.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ponder.aggregator.registry import AggregatorField, build_aggregator
from ponder.aggregator.voting import group_answers
from ponder.protocol.actions import Flow, Note, Outcome, Task
from ponder.strategies.parallel import SampleAndAggregate, _default_inner, resolve_seed
from ponder.strategies.registry import StrategyField, register_strategy
from ponder.strategies.sampling import budget_data, draw, ensure_some_answer


def doubling(k: int, first: int = 2) -> list[int]:
    """2, 4, 8, ... capped at and ending with ``k``."""
    out, n = [], max(1, first)
    while n < k:
        out.append(n)
        n *= 2
    return [*out, k]


def should_stop(samples: list[Outcome], threshold: float, min_agree: int) -> tuple[bool, float]:
    groups = group_answers(samples)
    answered = sum(len(g.members) for g in groups)
    top = max((len(g.members) for g in groups), default=0)
    share = top / answered if answered else 0.0
    return (top >= min_agree and share >= threshold), share


@register_strategy
class AdaptiveSample(SampleAndAggregate):
    """Sample in rounds until agreement reaches ``threshold`` or ``k`` samples are drawn."""

    name: ClassVar[str] = "adaptive"

    k: int = Field(8, ge=1, le=256)
    threshold: float = Field(0.75, gt=0.0, le=1.0)
    min_agree: int = Field(2, ge=1)
    schedule: list[int] | None = None
    inner: StrategyField = Field(default_factory=_default_inner)
    aggregator: AggregatorField = Field(default_factory=lambda: build_aggregator("majority"))
    seed: int | None = None
    mode: Literal["auto", "n", "fork"] = "auto"

    @model_validator(mode="after")
    def _schedule_valid(self) -> AdaptiveSample:
        if self.schedule is not None:
            s = self.schedule
            if (
                not s
                or any(b <= a for a, b in zip(s, s[1:], strict=False))
                or s[0] < 1
                or s[-1] > self.k
            ):
                raise ValueError(f"must be increasing counts between 1 and k={self.k}, got {s}")
        return self

    def flow(self, task: Task) -> Flow:
        base = resolve_seed(self.seed)
        schedule = self.schedule or doubling(self.k)
        yield Note("sampling", {"k": self.k, "base_seed": base, "schedule": schedule})
        samples: list[Outcome] = []
        share = 0.0
        for target in schedule:
            more = yield from draw(
                self.inner, task, len(samples), target - len(samples), base, self.mode
            )
            samples.extend(more)
            stop, share = should_stop(samples, self.threshold, self.min_agree)
            yield Note(
                "adaptive_round",
                {"drawn": len(samples), "agreement": round(share, 4), "stop": stop},
            )
            if stop:
                break
        empty = ensure_some_answer(samples)
        if empty is not None:
            return empty
        out = yield from self.aggregated(task, samples)
        out.data.update({"base_seed": base, "drawn": len(samples), "agreement": share})
        out.data.update(budget_data(samples, len(samples)))
        return out
