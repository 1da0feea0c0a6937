"""Holding every call of a run to its thinking budget (``RunLimits.thinking``).

Use ``generate(calls, request, span)`` in place of ``RunCalls.perform`` for a strategy's
generation requests (``drive`` does, for every ``Generate``): without a thinking budget it is
``perform``; with one, each fresh chat call is bounded by the first mechanism its backend has
(``Backend.capabilities``), so every strategy (``cot``, ``sample``, ``summarize``, ...) is bounded
the same way and stays sans-I/O:

- ``native``: the upstream's own knob (``Capabilities.thinking_budget``): the budget rides on the
  request (``GenerationRequest.thinking``) and the backend sends ``reasoning_effort``, vLLM's
  ``thinking_token_budget`` or llama.cpp's ``thinking_budget_tokens``. The reported reasoning
  tokens say whether it reached the budget (hidden reasoning is counted this way too);
- ``forcing``: the call is made with ``max_tokens`` = the thinking's share
  (``think_tokens``: the budget, keeping the answer's allowance inside the call's own
  ``max_tokens``); a choice cut mid-thought (or whose thinking the model ended without closing
  it) is continued with the closing marker appended (``assistant_prefix``), so the model answers
  in what is left of ``max_tokens``. Each call goes
  through ``perform`` (budget, retries, usage, trace), so the run's hard token budget holds and
  every token is counted once.

Continuations a strategy asks for itself (``assistant_prefix``: deepconf segments, DRR probes,
summaries) and raw completions are left alone: they carry their own ``max_tokens``. A
``thinking_bound`` trace event records, per bounded request, the mechanism, the budget and each
choice's thinking tokens, whether it was cut, and (forcing) whether Ponder closed the thinking;
each choice carries ``thinking_bound`` and ``thinking_cut`` (``cot`` keeps them in
``Outcome.data``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ponder.errors import CapabilityMissing
from ponder.orchestrator.calls import RunCalls
from ponder.orchestrator.capabilities import HOW_TO_GET, has
from ponder.protocol.forcing import ForcingStep, forced_choice, forcing_step
from ponder.protocol.requests import Choice, Completion, GenerationRequest, Result
from ponder.protocol.thinking import DEFAULT_MARKERS, Markers
from ponder.protocol.thinking_budget import ThinkingBudget, think_tokens

__all__ = ["bounded", "generate"]


def bounded(request: GenerationRequest) -> bool:
    """Whether a thinking budget applies to ``request``: a fresh chat call (not a raw
    completion, not a continuation of an assistant message)."""
    if not request.is_chat or request.assistant_prefix is not None:
        return False
    return not (request.messages and request.messages[-1].get("role") == "assistant")


async def generate(calls: RunCalls, request: GenerationRequest, span: str) -> Result:
    """``calls.perform(request)``, held to the run's thinking budget (see the module doc)."""
    budget = calls.limits.thinking
    if budget is None or not bounded(request):
        return await calls.perform(request, span)
    backend = calls.orch.backend_for(request.role)
    caps = await backend.capabilities()
    if caps.thinking_budget:
        return await _native(calls, request, span, budget)
    if has(caps, "budget_forcing") is False:  # the run's capability check refuses it first
        raise CapabilityMissing(
            f"the {backend.name!r} backend serving role {request.role!r} cannot bound thinking "
            f"(a budget of {budget.tokens} tokens): {HOW_TO_GET['thinking_budget']}, or "
            f"{HOW_TO_GET['budget_forcing']}"
        )
    markers = getattr(backend, "thinking_markers", None) or DEFAULT_MARKERS
    return await _forcing(calls, request, span, budget, markers)


async def _native(
    calls: RunCalls, request: GenerationRequest, span: str, budget: ThinkingBudget
) -> Result:
    result = await calls.perform(replace(request, thinking=budget), span)
    if isinstance(result, Completion):
        for ch in result.choices:
            ch.thinking_bound = "native"
            ch.thinking_cut = ch.reasoning_tokens >= budget.tokens
        _record(calls, span, request, "native", budget, result.choices)
    return result


async def _forcing(
    calls: RunCalls,
    request: GenerationRequest,
    span: str,
    budget: ThinkingBudget,
    markers: Markers,
) -> Result:
    max_tokens = request.params.max_tokens
    first = await calls.perform(
        request.with_params(max_tokens=think_tokens(max_tokens, budget)), span
    )
    if not isinstance(first, Completion):
        return first
    lead = budget.answer_lead
    steps = [forcing_step(request, ch, max_tokens, markers, lead) for ch in first.choices]
    made = [s for s in steps if s is not None]
    rests = await asyncio.gather(*(calls.perform(s.request, span) for s in made))
    done = dict(zip((id(s) for s in made), rests, strict=True))
    choices: list[Choice] = []
    parts = [first]
    for ch, step in zip(first.choices, steps, strict=True):
        if step is None:  # finished by itself (or hidden thinking cut: nothing to continue)
            cut = ch.finish_reason == "length" and not ch.text
            choices.append(forced_choice(ch, None, cut, markers))
            continue
        rest = done[id(step)]
        if isinstance(rest, Completion) and rest.choices:
            parts.append(rest)
            choices.append(forced_choice(ch, rest.choices[0], step.cut, markers, lead))
        else:  # the continuation failed (the run's budget, the upstream): the first call stands
            choices.append(forced_choice(ch, None, step.cut, markers))
    closed = [s is not None and not ch.text for ch, s in zip(first.choices, steps, strict=True)]
    _record(calls, span, request, "forcing", budget, choices, made, closed)
    return Completion(
        choices=choices,
        prompt_tokens=sum(p.prompt_tokens for p in parts),
        calls=sum(p.calls for p in parts),
        model=first.model,
        latency_s=first.latency_s + max((p.latency_s for p in parts[1:]), default=0.0),
        cached_prompt_tokens=sum(p.cached_prompt_tokens for p in parts),
        asked_n=first.asked_n,
    )


def _record(
    calls: RunCalls,
    span: str,
    request: GenerationRequest,
    mechanism: str,
    budget: ThinkingBudget,
    choices: list[Choice],
    steps: list[ForcingStep] | None = None,
    closed: list[bool] | None = None,
) -> None:
    calls.trace.record(
        "thinking_bound",
        span,
        purpose=request.purpose,
        mechanism=mechanism,
        budget=budget.describe(),
        **({"continuations": len(steps)} if steps is not None else {}),
        choices=[
            {
                "reasoning_tokens": c.reasoning_tokens,
                "cut": c.thinking_cut,
                "tokens": c.completion_tokens,
                "finish_reason": c.finish_reason,
                **({"closed": closed[i]} if closed is not None else {}),
            }
            for i, c in enumerate(choices)
        ],
    )
