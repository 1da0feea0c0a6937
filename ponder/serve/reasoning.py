"""What the proxy does with a reasoning model's thinking (docs/reasoning.md).

Backends give each completion's thinking apart from its answer (``Choice.reasoning``; ``cot``
keeps it in ``Outcome.data["reasoning"]``). The proxy answers a chain request with the thinking of
the sample its chain chose (``chosen_thinking``), in the message fields clients read
(``reasoning_content`` for DeepSeek-style clients, ``reasoning`` for vLLM-style ones; both by
default), streamed as deltas before the answer. Earlier assistant turns a client sends back carry
their thinking too; DeepSeek's API rejects those fields, so they are dropped before a request goes
upstream (``without_history_thinking``), chains and pass-through alike, unless ``keep_history``.
Settings: ``ServeConfig.reasoning`` (``ReasoningConfig``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.protocol.actions import Outcome

if TYPE_CHECKING:
    from ponder.serve.parsing import ChatRequest

ReasoningField = Literal["reasoning_content", "reasoning"]
REASONING_FIELDS: tuple[ReasoningField, ...] = ("reasoning_content", "reasoning")


class ReasoningConfig(BaseModel):
    """``reasoning:`` in the serve config."""

    model_config = ConfigDict(extra="forbid")

    fields: list[ReasoningField] = Field(
        default_factory=lambda: list(REASONING_FIELDS), min_length=1
    )
    """The message fields a chain's answer carries its thinking in (and its stream's deltas)."""
    chain_thinking: bool = True
    """A chain's final message carries the chosen sample's thinking; ``false``: none."""
    keep_history: bool = False
    """Send ``reasoning_content``/``reasoning`` of earlier assistant turns upstream as the client
    sent them (by default they are dropped: DeepSeek's API rejects them)."""


DEFAULT_REASONING = ReasoningConfig()


def chosen_thinking(outcome: Outcome) -> str | None:
    """The thinking behind a run's answer: the outcome's own (``data["reasoning"]``), else that
    of the sample its aggregator chose (``data["chosen"]``), else of a sample whose text it
    answered with; ``None`` when there is none (a new text, e.g. SSA's, or no thinking)."""
    own = outcome.data.get("reasoning")
    if isinstance(own, str):
        return own or None
    samples = outcome.samples
    chosen = outcome.data.get("chosen")
    if isinstance(chosen, int) and not isinstance(chosen, bool) and 0 <= chosen < len(samples):
        return chosen_thinking(samples[chosen])
    for s in samples:
        if s.text and s.text == outcome.text and s.answer == outcome.answer:
            return chosen_thinking(s)
    return None


def thinking_fields(thinking: str | None, config: ReasoningConfig) -> dict[str, str]:
    """The message fields that carry ``thinking`` (none when there is none or it is off)."""
    if not thinking or not config.chain_thinking:
        return {}
    return {name: thinking for name in config.fields}


def without_history_thinking(
    req: ChatRequest, body: bytes, config: ReasoningConfig
) -> tuple[ChatRequest, bytes]:
    """``req`` (and the ``body`` pass-through forwards) without the thinking fields of earlier
    assistant turns, unless ``config.keep_history``. A request with none is returned as it came
    (the body byte for byte)."""
    if config.keep_history or not any(_has_thinking(m) for m in req.messages):
        return req, body
    messages = [
        {k: v for k, v in m.items() if k not in REASONING_FIELDS} if _has_thinking(m) else m
        for m in req.messages
    ]
    raw: dict[str, Any] = {**req.raw, "messages": messages}
    return replace(req, raw=raw, messages=messages), json.dumps(raw).encode()


def _has_thinking(message: dict[str, Any]) -> bool:
    return message.get("role") == "assistant" and any(k in message for k in REASONING_FIELDS)
