"""The sans-I/O strategy interface.

A strategy never calls a model. Its ``flow`` is a generator that *yields actions* and *receives
their results*; the orchestrator performs every action::

    def flow(self, task):
        [result] = yield Generate.of(request)       # -> list[Completion | GenerationFailure]
        outcomes = yield Fork([inner.flow(task) for _ in range(k)])  # -> list[Outcome | Exception]
        yield Note("decision", {"why": ...})        # -> None, recorded in the trace
        rewards = yield Score.of(reward_request)    # -> list[Reward | RewardFailure]
        return Outcome(answer=..., text=...)

``Generate`` asks for calls made concurrently; ``Fork`` runs whole sub-flows concurrently (parallel
sampling over a multi-step reasoner); ``Note`` records a decision; ``Score`` asks reward-model
backends for a score per request. Failures arrive as values (``GenerationFailure``,
``RewardFailure`` or the exception), never thrown into the flow, so a strategy decides what a
failure means. Strategies are pydantic models: the same class is the Python API and the config
schema, and ``ponder.config`` builds them from YAML/JSON by registered ``name``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ponder.orchestrator.requests import GenerationRequest, Result, RewardRequest


@dataclass(frozen=True)
class Task:
    """What a run is asked: the question, and optionally a system prompt override."""

    question: str
    system: str | None = None


@dataclass
class Outcome:
    """What a strategy returns.

    ``answer`` is the extracted final answer (``None`` if none could be found); ``text`` the
    model's final response; ``samples`` the per-sample outcomes a parallel strategy aggregated;
    ``budget_limited`` is true when the token budget cut the work short. ``error`` is the typed
    exception of a failed sample (``data["error"]`` keeps its text for traces); failures travel as
    these objects, never as strings, so the proxy answers each as its cause would.
    """

    answer: str | None
    text: str
    budget_limited: bool = False
    samples: list[Outcome] = field(default_factory=list)
    confidence: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "answer": self.answer,
            "text": self.text,
            "budget_limited": self.budget_limited,
        }
        if self.confidence is not None:
            d["confidence"] = self.confidence
        if self.samples:
            d["samples"] = [s.to_dict() for s in self.samples]
        if self.data:
            d["data"] = self.data
        return d


@dataclass(frozen=True)
class Generate:
    """Perform these requests concurrently; the flow receives one result per request."""

    requests: tuple[GenerationRequest, ...]

    @classmethod
    def of(cls, *requests: GenerationRequest) -> Generate:
        return cls(tuple(requests))


@dataclass(frozen=True)
class Score:
    """Score these conversations with reward models, concurrently; the flow receives one
    ``Reward`` or ``RewardFailure`` per request."""

    requests: tuple[RewardRequest, ...]

    @classmethod
    def of(cls, *requests: RewardRequest) -> Score:
        return cls(tuple(requests))


@dataclass(frozen=True)
class Fork:
    """Run these sub-flows concurrently; the flow receives one ``Outcome`` or exception each."""

    flows: tuple[Flow, ...]
    label: str = "fork"

    def __init__(self, flows: Any, label: str = "fork") -> None:
        object.__setattr__(self, "flows", tuple(flows))
        object.__setattr__(self, "label", label)


@dataclass(frozen=True)
class Note:
    """Record a decision in the trace."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)


Action = Generate | Fork | Note | Score
Flow = Generator[Action, Any, Outcome]
GenerateResults = list[Result]


class Strategy(BaseModel, ABC):
    """Base class of every strategy. Subclasses set ``name`` and implement ``flow``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]

    @abstractmethod
    def flow(self, task: Task) -> Flow:
        """The sans-I/O generator that solves ``task``."""

    def roles(self) -> set[str]:
        """Backend roles this strategy (and its children) sends requests to."""
        return {"default"}
