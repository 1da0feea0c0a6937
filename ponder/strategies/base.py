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

The vocabulary (actions, ``Task``, ``Outcome``) lives in ``ponder.protocol``; it is re-exported
here so ``from ponder.strategies.base import Outcome`` keeps working.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ponder.protocol.actions import (
    Action,
    CallTool,
    Flow,
    Fork,
    Generate,
    GenerateResults,
    Note,
    Outcome,
    Score,
    Task,
    ToolCall,
    ToolResult,
)

__all__ = [
    "Action",
    "CallTool",
    "Flow",
    "Fork",
    "Generate",
    "GenerateResults",
    "Note",
    "Outcome",
    "Score",
    "Strategy",
    "Task",
    "ToolCall",
    "ToolResult",
]


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
