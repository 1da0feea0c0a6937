"""A request's thinking budget on pass-through (``extra_body={"ponder": {"thinking_budget": N}}``).

Pass-through sends the body upstream as the client wrote it, minus the ``ponder`` object, so a
token budget asked there must become the upstream's own knob or be refused -- never silently
dropped. Use ``passthrough_budget(upstream, req)`` for the fields to add to the relayed body:
with ``upstream.thinking_budget: thinking_token_budget`` (vLLM) or ``thinking_budget_tokens``
(llama.cpp) the budget is sent in that field (the smaller of it and any value the client already
put there); any other upstream answers 400 ``capability_missing`` naming what would work (the
upstream's native token knob, ``reasoning_effort``, or a chain, which forces the budget).
``reasoning_effort`` itself is relayed as sent, as before.
"""

from __future__ import annotations

from typing import Any

from ponder.config import OpenAIBackendConfig
from ponder.serve.errors import ApiError
from ponder.serve.parsing import ChatRequest
from ponder.serve.upstream import Upstream

TOKEN_KNOBS = ("thinking_token_budget", "thinking_budget_tokens")
"""The upstream knobs that take a thinking budget in tokens."""


def passthrough_budget(upstream: Upstream, req: ChatRequest) -> dict[str, Any]:
    """The fields that carry the request's ``ponder.thinking_budget`` upstream ({} if none)."""
    tokens = req.ponder.get("thinking_budget")
    if tokens is None:
        return {}
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise ApiError(
            400,
            "ponder.thinking_budget must be a positive integer (thinking tokens per call)",
            param="ponder.thinking_budget",
        )
    cfg = upstream.config
    knob = cfg.thinking_budget if isinstance(cfg, OpenAIBackendConfig) else None
    if knob in TOKEN_KNOBS:
        sent = req.raw.get(knob)
        if isinstance(sent, int) and not isinstance(sent, bool) and 0 < sent < tokens:
            tokens = sent  # the client's own, smaller value stands
        return {knob: tokens}
    raise ApiError(
        400,
        "ponder.thinking_budget cannot be held on pass-through: the upstream has no native "
        f"thinking-token knob (its thinking_budget is {knob!r}; {' or '.join(TOKEN_KNOBS)} "
        "would carry it). Send reasoning_effort instead, or name a chain (model "
        "'ponder:<chain>'), which enforces the budget itself",
        param="ponder.thinking_budget",
        code="capability_missing",
    )
