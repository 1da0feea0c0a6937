"""Token estimates and safe bounds: how many tokens a text or a chat prompt costs.

Use ``estimate_tokens`` where a close guess is enough (when to summarize, how much context is
left) and the ``bound_*`` functions where a number must never fall short (the hard budget's
reservation before a call). Nothing here knows a model; backends that can count exactly override
``Backend.count_prompt_tokens``.
"""

from __future__ import annotations

import math
from functools import lru_cache

from ponder.protocol.requests import GenerationRequest, Message


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
    """A safe upper bound on a chat prompt: content bytes, role markup and template slack, plus
    the other fields of an agent's turns (``tool_calls``, ``tool_call_id``, ``name``)."""
    total = CHAT_TEMPLATE_SLACK
    for m in messages:
        content = m.get("content")
        text = content if isinstance(content, str) else str(content or "")
        total += CHAT_OVERHEAD_PER_MESSAGE + bound_tokens(text) + bound_tokens(str(m.get("role")))
        for key, value in m.items():  # an agent's turns: tool_calls, tool_call_id, name
            if key not in ("role", "content") and value is not None:
                total += bound_tokens(repr(value))
        total += CHAT_OVERHEAD_PER_MESSAGE * len(m.get("tool_calls") or ())  # template tags
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
