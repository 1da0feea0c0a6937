"""Stepping a flow: send each result into a strategy's generator and perform what it yields.

Use ``drive(calls, flow, span)`` to run one sans-I/O flow to its ``Outcome`` against a run's
``RunCalls``; the engine calls it once per run, and a ``Fork`` calls it again for each sub-flow
(span ``"0/3"`` is sub-flow 3 of the first fork). This module decides what each action means;
``ponder.orchestrator.calls`` makes the calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from ponder.orchestrator import step_spans
from ponder.orchestrator.calls import RunCalls
from ponder.orchestrator.thinking_bound import generate
from ponder.protocol.actions import (
    CallTool,
    Flow,
    FlowSteps,
    Fork,
    Generate,
    Note,
    Outcome,
    Score,
)


async def drive(calls: RunCalls, flow: Flow, span: str) -> Outcome:
    """Step a strategy's generator until it returns, performing each action it yields."""
    with FlowSteps(flow) as steps:
        for action in steps:
            steps.reply = await step_spans.step(action, span, _perform_action(calls, action, span))
    return steps.outcome


async def _perform_action(calls: RunCalls, action: Any, span: str) -> Any:
    if isinstance(action, Generate):
        return await _model_calls(calls, action.requests, span, partial(generate, calls))
    if isinstance(action, Fork):
        calls.trace.record("fork", span, label=action.label, size=len(action.flows))
        prefix = f"{span}/" if span else ""
        results = await asyncio.gather(
            *(
                step_spans.flow(action.label, i, f"{prefix}{i}", drive(calls, f, f"{prefix}{i}"))
                for i, f in enumerate(action.flows)
            ),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r  # cancellation and interrupts are not sample failures
        return results
    if isinstance(action, Note):
        calls.trace.record("decision", span, event=action.event, **action.data)
        return None
    if isinstance(action, Score):
        return await _model_calls(calls, action.requests, span, calls.score)
    if isinstance(action, CallTool):
        tools = (step_spans.tool_call(c.name, span, calls.call_tool(c, span)) for c in action.calls)
        return list(await asyncio.gather(*tools))
    raise TypeError(
        f"a strategy yielded {action!r}; expected Generate, Fork, Note, Score or CallTool"
    )


async def _model_calls(
    calls: RunCalls, requests: Sequence[Any], span: str, make: Callable[[Any, str], Awaitable[Any]]
) -> list[Any]:
    """Make ``requests`` concurrently, each as a model call under its span (generation or score)."""
    made = (
        step_spans.model_call(calls.orch.backend_for(r.role), r, span, make(r, span))
        for r in requests
    )
    return list(await asyncio.gather(*made))
