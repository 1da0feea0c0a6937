"""The one seam between Ponder and a model: the ``Backend`` protocol.

Implement ``generate`` (and optionally ``count_tokens`` / ``capabilities``) to plug in any model.
Reward models implement ``reward`` instead (see ``reward.RewardModelBackend``); every other
backend refuses it with ``CapabilityMissing``.
A backend translates upstream failures into ``ponder.errors.BackendError`` subclasses and marks
which are retryable; the orchestrator owns the retry loop, budget and accounting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from ponder.errors import CapabilityMissing
from ponder.protocol.requests import Completion, GenerationRequest, Reward, RewardRequest
from ponder.protocol.tokens import (  # re-exported: their old home
    CHAT_OVERHEAD_PER_MESSAGE,
    CHAT_TEMPLATE_SLACK,
    bound_chat_tokens,
    bound_prompt_tokens,
    bound_tokens,
    estimate_chat_tokens,
    estimate_tokens,
)


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. ``None`` means "not probed yet / unknown"."""

    native_n: bool | None = None
    max_native_n: int | None = None
    logprobs: bool | None = None
    raw_completion: bool | None = None
    tools: bool | None = None
    continuation: bool | None = None
    context_length: int | None = None
    exact_token_count: bool = False
    reward: bool | None = None
    thinking_budget: bool | None = None
    """A native knob bounds thinking (``reasoning_effort``, vLLM's ``thinking_token_budget``,
    llama.cpp's ``thinking_budget_tokens``): the engine sends the budget with the request."""
    budget_forcing: bool | None = None
    """Ponder may bound thinking itself by continuing a cut thinking closed (budget forcing);
    ``None``: as ``continuation``."""


class Backend(ABC):
    """A model behind some endpoint. One required method: ``generate``."""

    name: str = "backend"

    @abstractmethod
    async def generate(self, request: GenerationRequest) -> Completion:
        """Make the call(s) for ``request`` and return all ``request.params.n`` choices."""

    async def count_tokens(self, text: str) -> int:
        """Tokens in ``text``; the default is an estimate (see ``estimate_tokens``)."""
        return estimate_tokens(text)

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Prompt tokens ``request`` will cost, reserved from the budget before the call.

        Must never fall short of what the upstream will count, or the budget is not hard: the
        default is the safe bound ``bound_prompt_tokens``. Backends that can count exactly (a
        tokenizer endpoint, a server-side chat template) override it."""
        return bound_prompt_tokens(request)

    async def prompt_billed_once(self, request: GenerationRequest) -> bool:
        """Whether the upstream bills ``request``'s prompt once for all its ``n`` choices (one
        native-``n`` call) rather than once per choice (``n`` calls).

        The budget reserves the prompt once when true, so it must never be true for a request
        that may be fanned out: the default is true only for ``n == 1``. Backends that know they
        send ``n`` natively override it."""
        return request.params.n == 1

    async def reward(self, request: RewardRequest) -> Reward:
        """Score ``request.messages`` with a reward model. Only reward backends implement it."""
        raise CapabilityMissing(
            f"the {self.name!r} backend serving role {request.role!r} lacks capability 'reward' "
            "(scoring with a reward model); give that role a reward model, e.g. roles: "
            f"{{{request.role}: {{kind: reward_model, base_url: http://host:8000}}}}"
        )

    async def capabilities(self) -> Capabilities:
        """What this backend can do, as far as it knows (``None``: unknown). Recorded for each
        role in ``RunResult.backends`` and the trace's ``run_end`` (``ponder run --json``)."""
        return Capabilities()

    def describe(self) -> dict[str, object]:
        """What serves this backend, for the trace and ``--json`` (no secrets); e.g. the local
        backend adds which llama.cpp runtime it runs."""
        return {"backend": self.name}

    async def start(self) -> object:
        """Prepare for calls (start a process, load an engine). Optional; calls start lazily."""
        return self

    async def aclose(self) -> None:  # noqa: B027  (optional hook, deliberately empty)
        """Release connections and processes. Safe to call twice."""

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = [
    "CHAT_OVERHEAD_PER_MESSAGE",
    "CHAT_TEMPLATE_SLACK",
    "Backend",
    "Capabilities",
    "bound_chat_tokens",
    "bound_prompt_tokens",
    "bound_tokens",
    "estimate_chat_tokens",
    "estimate_tokens",
]
