"""Building what is sent to an OpenAI-compatible upstream from a ``GenerationRequest``.

Use it to turn a request into the SDK call's arguments (sampling parameters, logprobs in the chat
or the legacy shape, tools), to fan ``n`` > 1 out as single requests with per-sample seeds and
merge their answers back into one ``Completion``, and to rewrite a request that continues a partial
assistant message (prefilled as a final assistant message, or as a raw completion of the rendered
chat template). Pure functions: sending is ``OpenAICompatibleBackend``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ponder.protocol.requests import Choice, Completion, GenerationRequest
from ponder.protocol.thinking_budget import ThinkingBudget

NATIVE_KNOBS = ("reasoning_effort", "thinking_token_budget", "thinking_budget_tokens")
"""The native thinking-budget knobs an upstream may take: OpenAI's ``reasoning_effort``
(low/medium/high, a hint), vLLM's ``thinking_token_budget`` and llama.cpp's
``thinking_budget_tokens`` (tokens, enforced by the server)."""


def call_kwargs(
    model: str, request: GenerationRequest, extra_body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The keyword arguments of the SDK's ``create`` call, bar ``messages``/``prompt``."""
    p = request.params
    kw: dict[str, Any] = {
        "model": model,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_tokens,
    }
    if p.n != 1:
        kw["n"] = p.n
    if p.stop:
        kw["stop"] = list(p.stop)
    if p.seed is not None:
        kw["seed"] = p.seed
    if p.logprobs:
        if request.is_chat:
            kw["logprobs"] = True
            if p.top_logprobs:
                kw["top_logprobs"] = p.top_logprobs
        else:
            kw["logprobs"] = max(p.top_logprobs, 1)
    if extra_body:
        kw["extra_body"] = extra_body
    if request.is_chat and request.response_format is not None:
        kw["response_format"] = dict(request.response_format)
    if request.is_chat and request.tools:
        kw["tools"] = list(request.tools)
        if request.tool_choice is not None:
            kw["tool_choice"] = request.tool_choice
    return kw


def native_thinking(kw: dict[str, Any], budget: ThinkingBudget, knob: str) -> None:
    """Put ``budget`` in the SDK call's arguments ``kw`` as the upstream's native ``knob``."""
    value: str | int = budget.effort_name if knob == "reasoning_effort" else budget.tokens
    kw["extra_body"] = {**(kw.get("extra_body") or {}), knob: value}


def fan_out_requests(request: GenerationRequest) -> list[GenerationRequest]:
    """``n`` single requests for one with ``n`` > 1, sample ``i`` seeded ``seed + i``."""
    p = request.params
    return [
        request.with_params(n=1, seed=None if p.seed is None else p.seed + i) for i in range(p.n)
    ]


def merge_fanned_out(parts: Sequence[Completion], model: str, latency_s: float) -> Completion:
    """One ``Completion`` of the single requests' answers, in order (``calls``: how many)."""
    return Completion(
        choices=[c for part in parts for c in part.choices],
        prompt_tokens=sum(part.prompt_tokens for part in parts),
        calls=len(parts),
        model=parts[0].model if parts else model,
        latency_s=latency_s,
        cached_prompt_tokens=sum(part.cached_prompt_tokens for part in parts),
    )


def prefill_request(request: GenerationRequest) -> tuple[GenerationRequest, dict[str, Any]]:
    """The request that continues ``assistant_prefix`` sent as a final assistant message, and
    the extra body that asks the server to continue it (llama.cpp; vLLM
    ``continue_final_message``)."""
    messages = list(request.messages or ())
    msgs = (*messages, {"role": "assistant", "content": request.assistant_prefix or ""})
    plain = replace(request, messages=msgs, assistant_prefix=None)
    return plain, {"continue_final_message": True, "add_generation_prompt": False}


def drop_echoed_prefix(choices: list[Choice], prefix: str) -> None:
    """llama.cpp echoes the prefilled text; keep only the new."""
    for choice in choices:
        if prefix and choice.text.startswith(prefix):
            choice.text = choice.text[len(prefix) :]


def raw_continuation(request: GenerationRequest, rendered: str) -> GenerationRequest:
    """The raw completion that continues ``assistant_prefix`` after the chat ``rendered`` by the
    model's template."""
    return GenerationRequest(
        prompt=rendered + (request.assistant_prefix or ""),
        params=request.params,
        role=request.role,
        purpose=request.purpose,
    )
