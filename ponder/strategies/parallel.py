"""Parallel sampling: k samples of any inner strategy, then one aggregator.

Use it for self-consistency (``aggregator: majority``), weighted voting, best-of-n or SSA::

    strategy:
      name: sample
      k: 8
      seed: 1234                 # sample i uses seed 1234 + i (random, and recorded, if unset)
      inner: {name: cot, temperature: 0.7, max_tokens: 320}
      aggregator: {name: majority}

Failed samples are recorded in the trace and the rest are aggregated; only when every sample
failed is the run an error (``AllSamplesFailed`` with all causes). Under a token budget that
cannot fit ``k`` samples, the most that fit are drawn and aggregated, and the outcome says so
(``data["samples_asked"]``, ``data["samples_drawn"]``, ``budget_limited``).
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from ponder.aggregator.registry import AggregatorField, build_aggregator
from ponder.protocol.actions import Flow, Note, Outcome, Task
from ponder.protocol.strategy import Strategy
from ponder.strategies.registry import StrategyField, build_strategy, register_strategy
from ponder.strategies.sampling import (
    budget_data,
    draw,
    ensure_some_answer,
    sampling_tools_unsupported,
)

if TYPE_CHECKING:
    from ponder.aggregator.base import Aggregator

SEED_RANGE = 2**31 - 1024


def _default_inner() -> Strategy:
    return build_strategy({"name": "cot", "temperature": 0.7})


def resolve_seed(seed: int | None) -> int:
    return seed if seed is not None else random.randrange(SEED_RANGE)


class SampleAndAggregate(Strategy):
    """What ``sample`` and ``adaptive`` share: they draw samples of ``inner`` and aggregate them
    with ``aggregator`` (fields each declares), so they send requests to the roles of both and
    take an agent's turn when both can."""

    if TYPE_CHECKING:  # declared by each subclass, with its default
        inner: Strategy
        aggregator: Aggregator

    def roles(self) -> set[str]:
        return self.inner.roles() | self.aggregator.roles()

    def tools_unsupported(self) -> str | None:
        return sampling_tools_unsupported(self, self.inner, self.aggregator)

    def aggregated(self, task: Task, samples: list[Outcome]) -> Generator[Any, Any, Outcome]:
        """The aggregator's outcome over ``samples`` (a sub-flow): it carries them, and is
        budget-limited if one of them was."""
        out = yield from self.aggregator.flow(task, samples)
        out.samples = samples
        out.budget_limited = out.budget_limited or any(s.budget_limited for s in samples)
        return out


@register_strategy
class ParallelSample(SampleAndAggregate):
    """Draw ``k`` samples of ``inner`` and aggregate them."""

    name: ClassVar[str] = "sample"

    k: int = Field(8, ge=1, le=256)
    inner: StrategyField = Field(default_factory=_default_inner)
    aggregator: AggregatorField = Field(default_factory=lambda: build_aggregator("majority"))
    seed: int | None = None
    mode: Literal["auto", "n", "fork"] = "auto"

    def flow(self, task: Task) -> Flow:
        base = resolve_seed(self.seed)
        yield Note("sampling", {"k": self.k, "base_seed": base, "mode": self.mode})
        samples = yield from draw(self.inner, task, 0, self.k, base, self.mode)
        empty = ensure_some_answer(samples)
        if empty is not None:
            return empty
        out = yield from self.aggregated(task, samples)
        out.data.setdefault("base_seed", base)
        out.data.update(budget_data(samples, self.k))
        return out
