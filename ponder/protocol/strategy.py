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

The vocabulary the flow speaks (actions, ``Task``, ``Outcome``) is in ``ponder.protocol.actions``;
this module holds only the interface a strategy implements.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ponder.errors import ConfigError
from ponder.named_registry import format_validation_error
from ponder.protocol.actions import Flow, Task
from ponder.protocol.requests import GenerationRequest
from ponder.protocol.requirements import Requirement

__all__ = ["Requirement", "SingleCall", "Strategy"]


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

    def requires(self) -> tuple[Requirement, ...]:
        """Backend capabilities this strategy itself (not its children: the check walks them)
        cannot run without, e.g. ``Requirement.of("continuation")``. A chain whose backends lack
        one is refused before its first call (``ponder serve`` at startup); the default: none."""
        return ()

    def check_backend(self, thinking_template: str | None) -> None:
        """Refuse (``ConfigError``) a chain whose default backend this strategy, as configured,
        cannot use: ``thinking_template`` is the think-first template of a local backend serving
        the thinking format, ``None`` for a local one that does not (the chain checks local
        backends only). The default: any."""
        return None

    def tools_unsupported(self) -> str | None:
        """Why this strategy cannot take an agent's turn (the client's ``tools`` and a
        transcript with tool turns), or ``None`` when it can. The proxy answers such a request
        to a chain that cannot with a 400 naming the chain and this reason, never dropping the
        tools silently. Strategies that send ``Task.messages``/``Task.tools`` as they are
        (``cot``, and ``sample``/``adaptive`` over it) override it."""
        return f"strategy {self.name!r} does not send the client's tools to the model"

    def with_seed(self, seed: int) -> Strategy:
        """This strategy drawing with ``seed`` (a copy): how parallel sampling gives sample ``i``
        its own seed. The default sets a declared ``seed`` field and leaves a strategy without
        one as it is; override it where a seed means more (e.g. the inner strategy's)."""
        if "seed" in type(self).model_fields:
            return self.model_copy(update={"seed": seed})
        return self

    def with_max_tokens(self, max_tokens: int) -> Strategy:
        """This strategy with its per-call ``max_tokens`` set (``ponder run --max-tokens``),
        validated; a ``ConfigError`` for a strategy that declares no ``max_tokens``."""
        if "max_tokens" not in type(self).model_fields:
            raise ConfigError("max_tokens", f"does not apply to strategy {self.name!r}")
        try:
            return type(self).model_validate({**self.model_dump(), "max_tokens": max_tokens})
        except ValidationError as exc:
            raise format_validation_error(exc, "") from None


class SingleCall(ABC):
    """Declares that a strategy's whole flow is one generation request (``cot``), so parallel
    sampling draws k samples as ONE request with ``n=k`` (native ``n`` where the backend has it)
    instead of k forked flows. Mix it into a ``Strategy`` and implement ``request``."""

    @abstractmethod
    def request(self, task: Task) -> GenerationRequest:
        """The one request this strategy's flow makes for ``task``."""
