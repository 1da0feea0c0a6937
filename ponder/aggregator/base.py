"""The aggregator interface: turn k sampled outcomes into one.

Aggregators are sans-I/O like strategies. ``flow(task, samples)`` is a generator that may yield
``Generate``/``Note`` actions (a model-based aggregator asks for calls with ``role="aggregator"``,
which the orchestrator routes to the ``aggregator`` backend of ``ChainConfig.roles``, falling back
to the default one) and returns an ``Outcome``. Pure aggregators (majority, weighted, best-of-n)
never yield a generation; they implement ``choose`` and inherit ``flow``.

Samples without an answer (failed, or no extractable final answer) are passed in but never vote.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ponder.protocol.actions import Flow, Outcome, Task


class Aggregator(BaseModel, ABC):
    """Base class of every aggregator; subclasses set ``name`` and ``choose`` or ``flow``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]

    def choose(self, task: Task, samples: Sequence[Outcome]) -> Outcome:
        """Pick the answer without calling a model. Override this or ``flow``."""
        raise NotImplementedError(f"aggregator {self.name!r} implements neither choose nor flow")

    def flow(self, task: Task, samples: Sequence[Outcome]) -> Flow:
        """The sans-I/O generator; by default it just returns ``choose``."""
        return self.choose(task, samples)
        yield  # pragma: no cover  (makes this a generator)

    def roles(self) -> set[str]:
        """Backend roles this aggregator sends requests to."""
        return set()


def valid(samples: Sequence[Outcome]) -> list[tuple[int, Outcome]]:
    """(index, outcome) of the samples that carry an answer."""
    return [(i, s) for i, s in enumerate(samples) if s.answer is not None]
