"""OpenTelemetry spans of each step a run's flow takes: actions, sub-flows, model and tool calls.

Use these where a flow is driven (``ponder.orchestrator.drive``): ``step`` wraps each action a
flow yields (``ponder.step <generate|fork|score|call_tool>``), ``flow`` each sub-flow of a fork
(``ponder.flow <label>``), ``model_call`` each model call (a GenAI CLIENT span ``chat <model>``,
``text_completion <model>`` or ``reward <model>``) and ``tool_call`` each tool call
(``execute_tool <name>``). ``model_call`` also sets the call in progress
(``telemetry.current_call``), traced or not; ``RunCalls`` counts its tokens (``Usage``).
Without ``opentelemetry-api`` each only awaits its work; the run's own span is
``ponder.orchestrator.run_span``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ponder.orchestrator.telemetry import (
    CallInfo,
    clean,
    client_kind,
    current_scope,
    in_call,
    mark_error,
    new_span,
    tracer,
)
from ponder.protocol.actions import CallTool, Fork, Generate, Score, ToolResult
from ponder.protocol.requests import Completion, GenerationRequest, Reward, RewardRequest

if TYPE_CHECKING:
    from ponder.backends.base import Backend

T = TypeVar("T")


def backend_model(backend: Backend) -> str:
    """The model a backend is configured to call (its name when it names none)."""
    model = getattr(backend, "model", None)
    if isinstance(model, str) and model:
        return model
    described = backend.describe().get("model")
    return str(described) if described else backend.name


async def step(action: Any, span: str, coro: Awaitable[T]) -> T:
    """Perform one action a flow yielded under a ``ponder.step`` span."""
    kinds = {Generate: "generate", Fork: "fork", Score: "score", CallTool: "call_tool"}
    kind = kinds.get(type(action))
    if kind is None or tracer() is None:
        return await coro
    size = len(getattr(action, "requests", None) or getattr(action, "flows", None) or ())
    if isinstance(action, CallTool):
        size = len(action.calls)
    attributes = {
        "ponder.span": span,
        "ponder.step.size": size,
        "ponder.fork.label": getattr(action, "label", None) if isinstance(action, Fork) else None,
    }
    with new_span(f"ponder.step {kind}", attributes):
        return await coro


async def flow(label: str, index: int, span: str, coro: Awaitable[T]) -> T:
    """Drive one sub-flow of a fork under a ``ponder.flow`` span."""
    if tracer() is None:
        return await coro
    attributes = {"ponder.span": span, "ponder.flow.index": index, "ponder.fork.label": label}
    with new_span(f"ponder.flow {label or 'fork'}", attributes):
        return await coro


async def model_call(
    backend: Backend,
    request: GenerationRequest | RewardRequest,
    span: str,
    coro: Awaitable[T],
) -> T:
    """Make one model call (``coro``) to ``backend`` as a GenAI client span."""
    model = backend_model(backend)
    with in_call(CallInfo(request.role, request.purpose, model)):
        if tracer() is None:
            result = await coro
        else:
            content = current_scope().content
            name, attributes = _call_attributes(request, backend, model, span, content)
            with new_span(name, attributes, client_kind()) as s:
                result = await coro
                _call_result(s, result, content)
        return result


async def tool_call(name: str, span: str, coro: Awaitable[ToolResult]) -> ToolResult:
    """Run one tool call under an ``execute_tool`` span."""
    if tracer() is None:
        return await coro
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "ponder.span": span,
    }
    with new_span(f"execute_tool {name}", attributes) as s:
        result = await coro
        if result.error is not None:
            mark_error(s, result.error)
        return result


def _call_attributes(
    request: GenerationRequest | RewardRequest,
    backend: Backend,
    model: str,
    span: str,
    content: bool,
) -> tuple[str, dict[str, Any]]:
    common: dict[str, Any] = {
        "gen_ai.provider.name": backend.name,
        "gen_ai.request.model": model,
        "ponder.role": request.role,
        "ponder.purpose": request.purpose,
        "ponder.span": span,
    }
    if isinstance(request, RewardRequest):
        attrs = {"gen_ai.operation.name": "reward", **common}
        if content:
            attrs["gen_ai.input.messages"] = _messages_json(request.messages)
        return f"reward {model}", attrs
    p = request.params
    op = "chat" if request.messages is not None else "text_completion"
    attrs = {
        "gen_ai.operation.name": op,
        **common,
        "gen_ai.request.max_tokens": p.max_tokens,
        "gen_ai.request.temperature": p.temperature,
        "gen_ai.request.top_p": p.top_p,
        "gen_ai.request.seed": p.seed,
        "gen_ai.request.choice.count": p.n if p.n != 1 else None,
        "gen_ai.request.stop_sequences": list(p.stop) if p.stop else None,
    }
    if content:
        messages = request.messages
        if messages is None:
            messages = ({"role": "user", "content": request.prompt or ""},)
        attrs["gen_ai.input.messages"] = _messages_json(messages)
    return f"{op} {model}", attrs


def _call_result(span: Any, result: object, content: bool) -> None:
    if span is None:
        return
    if isinstance(result, Completion):
        attrs: dict[str, Any] = {
            "gen_ai.response.model": result.model or None,
            "gen_ai.response.finish_reasons": [c.finish_reason or "" for c in result.choices],
            "gen_ai.usage.input_tokens": result.prompt_tokens,
            "gen_ai.usage.output_tokens": result.completion_tokens,
            "gen_ai.usage.cache_read.input_tokens": result.cached_prompt_tokens or None,
            "ponder.upstream_calls": result.calls,
        }
        if content:
            attrs["gen_ai.output.messages"] = json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": c.text}],
                        "finish_reason": c.finish_reason,
                    }
                    for c in result.choices
                ]
            )
        span.set_attributes(clean(attrs))
    elif isinstance(result, Reward):
        span.set_attributes(
            clean(
                {
                    "gen_ai.response.model": result.model or None,
                    "gen_ai.usage.input_tokens": result.prompt_tokens,
                    "ponder.reward.score": result.score,
                }
            )
        )
    else:
        error = getattr(result, "error", None)
        if isinstance(error, BaseException):
            mark_error(span, error)


def _messages_json(messages: Any) -> str:
    """Messages in the GenAI conventions' shape (role + text parts), as JSON."""
    out = []
    for m in messages or ():
        body = m.get("content") if isinstance(m, Mapping) else m
        if isinstance(body, str):
            parts: Any = [{"type": "text", "content": body}]
        else:
            parts = body
        out.append({"role": m.get("role") if isinstance(m, Mapping) else None, "parts": parts})
    return json.dumps(out, default=str)
