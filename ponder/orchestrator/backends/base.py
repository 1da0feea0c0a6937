"""The one seam between Ponder and a model: the ``Backend`` protocol.

Implement ``generate`` (and optionally ``count_tokens`` / ``capabilities``) to plug in any model.
Reward models implement ``reward`` instead (see ``reward.RewardModelBackend``); every other
backend refuses it with ``CapabilityMissing``.
A backend translates upstream failures into ``ponder.errors.BackendError`` subclasses and marks
which are retryable; the orchestrator owns the retry loop, budget and accounting.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache

from ponder.errors import CapabilityMissing
from ponder.orchestrator.requests import (
    Completion,
    GenerationRequest,
    Message,
    Reward,
    RewardRequest,
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

    async def reward(self, request: RewardRequest) -> Reward:
        """Score ``request.messages`` with a reward model. Only reward backends implement it."""
        raise CapabilityMissing(
            f"the {self.name!r} backend serving role {request.role!r} lacks capability 'reward' "
            "(scoring with a reward model); give that role a reward model, e.g. roles: "
            f"{{{request.role}: {{kind: reward_model, base_url: http://host:8000}}}}"
        )

    async def capabilities(self) -> Capabilities:
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


@lru_cache(maxsize=1)
def _tiktoken_encoding() -> object | None:
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # no network for the encoding file, or not installed
        return None


def estimate_tokens(text: str) -> int:
    """Token count with tiktoken's cl100k_base when its encoding is available, else a
    deliberately high estimate (one token per 3 characters) so budgets stay on the safe side."""
    enc = _tiktoken_encoding()
    if enc is not None:
        return len(enc.encode(text, disallowed_special=()))  # type: ignore[attr-defined]
    return math.ceil(len(text) / 3)


CHAT_OVERHEAD_PER_MESSAGE = 8
CHAT_TEMPLATE_SLACK = 32
"""Tokens a chat template may add beyond its per-message markup (BOS, a default system prompt
or date line some templates inject, the assistant header)."""


def bound_tokens(text: str) -> int:
    """A safe upper bound on the tokens of ``text`` for any byte-level BPE or byte-fallback
    vocabulary: its UTF-8 bytes (every token covers at least one byte). One token per
    *character* is not safe: a CJK character is often 2-3 tokens. Lone surrogates count 3."""
    return len(text.encode("utf-8", "surrogatepass"))


def bound_chat_tokens(messages: tuple[Message, ...] | list[Message]) -> int:
    """A safe upper bound on a chat prompt: content bytes, role markup and template slack."""
    total = CHAT_TEMPLATE_SLACK
    for m in messages:
        content = m.get("content")
        text = content if isinstance(content, str) else str(content or "")
        total += CHAT_OVERHEAD_PER_MESSAGE + bound_tokens(text) + bound_tokens(str(m.get("role")))
    return total


def bound_prompt_tokens(request: GenerationRequest) -> int:
    """``bound_tokens`` of a raw prompt, or ``bound_chat_tokens`` of a chat (+ its prefix)."""
    if request.prompt is not None:
        return bound_tokens(request.prompt) + 1
    prefix = bound_tokens(request.assistant_prefix) if request.assistant_prefix else 0
    tools = bound_tokens(repr(request.tools)) if request.tools else 0
    return bound_chat_tokens(request.messages or ()) + prefix + tools


def estimate_chat_tokens(messages: tuple[Message, ...] | list[Message]) -> int:
    total = 0
    for m in messages:
        total += CHAT_OVERHEAD_PER_MESSAGE + estimate_tokens(str(m.get("content") or ""))
    return total + 4
