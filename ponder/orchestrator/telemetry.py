"""OpenTelemetry spans of a run, its strategy steps and every model call (GenAI conventions).

Optional and lazy: ``opentelemetry-api`` is imported at the first run, never by ``import
ponder``; without it every helper here only passes its work through. With the API but no SDK
configured the spans are the API's no-op spans, yet an incoming trace context (the proxy's
``traceparent``) still reaches the upstream. Configure an SDK ``TracerProvider`` (``ponder
serve`` does from the ``OTEL_*`` variables) to record::

    invoke_workflow <chain|strategy>   one run (engine): ponder.chain, ponder.strategy,
                                       ponder.run_id, budget, stop reason, samples, usage
      ponder.step <generate|fork|score|call_tool>   each action the flow yields
        ponder.flow <label>            each sub-flow of a fork (a sample, a trace)
        chat <model>                   each model call (CLIENT; text_completion for raw
                                       prompts): gen_ai.request.*, gen_ai.response.*,
                                       gen_ai.usage.*, ponder.role, ponder.purpose
        reward <model>                 each reward-model call
        execute_tool <name>            each tool call

The run's trace events that have no span of their own (``retry``, ``failure``,
``budget_exhausted``, ``decision``) become events of the span current when they happen. Message
content and answers are not recorded unless ``RunScope.record_content`` or the GenAI convention's
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` says so; errors are recorded by type
only (an upstream's message may echo a key).

The engine and ``drive`` call ``start_run``, ``step``, ``flow``, ``model_call`` and ``tool_call``;
``model_call`` also counts each call's tokens by role (``Usage.by_role``) and tells trace
listeners which role and model a call is for (``current_call``), traced or not. The proxy sets
``set_scope`` (chain name, content setting, extra attributes) in the task that runs a request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Mapping
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ponder.orchestrator.report import RunReport
from ponder.protocol.actions import CallTool, Fork, Generate, Score, ToolResult
from ponder.protocol.requests import Completion, GenerationRequest, Reward, RewardRequest

if TYPE_CHECKING:
    from ponder.backends.base import Backend
    from ponder.orchestrator.calls import RunCalls
    from ponder.orchestrator.trace import Trace
    from ponder.orchestrator.usage import Usage

T = TypeVar("T")
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRACER_NAME = "ponder"
MIRRORED_EVENTS = ("retry", "failure", "budget_exhausted", "decision")
Attr = str | bool | int | float


@dataclass(frozen=True)
class RunScope:
    """What the caller of a run adds to its spans: the chain name, whether message content is
    recorded (``None``: the env variable decides) and fixed attributes (e.g. ``ponder.replica``)."""

    chain: str | None = None
    record_content: bool | None = None
    attributes: Mapping[str, Attr] = field(default_factory=dict)

    @property
    def content(self) -> bool:
        if self.record_content is not None:
            return self.record_content
        return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class CallInfo:
    """The model call in progress in this task: its role, purpose and (configured) model."""

    role: str
    purpose: str
    model: str


_scope: ContextVar[RunScope] = ContextVar("ponder_run_scope", default=RunScope())  # noqa: B039
_call: ContextVar[CallInfo | None] = ContextVar("ponder_model_call", default=None)


def set_scope(scope: RunScope) -> None:
    """Set the scope of the runs this task starts from now on (a task's own context)."""
    _scope.set(scope)


def current_call() -> CallInfo | None:
    """The model call in progress where a trace event is being recorded (``None`` outside one)."""
    return _call.get()


# -- the optional API ------------------------------------------------------------------------------

_api: Any = None  # the ``opentelemetry.trace`` module once looked up; False when not installed
_tracer: tuple[Any, Any] | None = None  # (provider, tracer)


def _trace_api() -> Any:
    global _api
    if _api is None:
        try:
            from opentelemetry import trace
        except ImportError:
            _api = False
        else:
            _api = trace
    return _api or None


def tracer() -> Any:
    """Ponder's tracer from the global provider, or ``None`` without ``opentelemetry-api``."""
    global _tracer
    api = _trace_api()
    if api is None:
        return None
    provider = api.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, api.get_tracer(TRACER_NAME, _version(), tracer_provider=provider))
    return _tracer[1]


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ponder")
    except PackageNotFoundError:
        return None


def _client_kind() -> Any:
    return _trace_api().SpanKind.CLIENT


def _error(span: Any, exc: BaseException) -> None:
    """Mark ``span`` failed by the error's type only (an upstream message may echo a secret)."""
    name = type(exc).__name__
    span.set_attribute("error.type", name)
    span.set_status(_trace_api().Status(_trace_api().StatusCode.ERROR, name))


def _span(name: str, attributes: dict[str, Any], kind: Any = None) -> Any:
    """A context manager making a new current span (or nothing, without the API)."""
    t = tracer()
    if t is None:
        return nullcontext(None)
    kw: dict[str, Any] = {"attributes": _clean(attributes), "record_exception": False}
    if kind is not None:
        kw["kind"] = kind
    return t.start_as_current_span(name, **kw)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def backend_model(backend: Backend) -> str:
    """The model a backend is configured to call (its name when it names none)."""
    model = getattr(backend, "model", None)
    if isinstance(model, str) and model:
        return model
    described = backend.describe().get("model")
    return str(described) if described else backend.name


# -- the run ---------------------------------------------------------------------------------------


class RunSpan:
    """The span of one run (``invoke_workflow``); inert without the API."""

    def __init__(self, span: Any, trace: Trace) -> None:
        self.span = span
        self._trace = trace
        self._listener = trace.listener
        self.content = _scope.get().content
        if span is not None and span.is_recording():
            previous = trace.listener

            def listen(event: dict[str, Any]) -> None:
                if previous is not None:
                    previous(event)
                _mirror(event, self.content)

            trace.listener = listen

    def ids(self) -> dict[str, str]:
        """``otel_trace_id`` (and ``otel_span_id`` when recorded) for the trace's ``run_start``:
        the ids that tie the JSONL trace to the OTel trace (and so to ``x-ponder-trace-id``)."""
        api = _trace_api()
        if self.span is None or api is None:
            return {}
        ctx = self.span.get_span_context()
        if not ctx.is_valid:
            return {}
        ids = {"otel_trace_id": api.format_trace_id(ctx.trace_id)}
        if self.span.is_recording():
            ids["otel_span_id"] = api.format_span_id(ctx.span_id)
        return ids

    def within(self, coro: Awaitable[T]) -> Awaitable[T]:
        """``coro`` run with this span current (so steps and calls become its children)."""
        if self.span is None:
            return coro
        return _within(self.span, coro)

    def end(self, report: RunReport, usage: Usage, answer: str | None) -> None:
        if self.span is None:
            return
        self.span.set_attributes(
            _clean(
                {
                    "ponder.stop_reason": report.stop_reason,
                    "ponder.samples.planned": report.samples_planned,
                    "ponder.samples.drawn": report.samples_drawn,
                    "ponder.samples.used": report.samples_used,
                    "ponder.early_stop": report.early_stop,
                    "ponder.tokens_saved": report.tokens_saved,
                    "ponder.budget.left": report.budget_left,
                    "ponder.calls": usage.calls,
                    "ponder.failed_calls": usage.failed_calls,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "ponder.answered": answer is not None,
                    "ponder.answer": answer if self.content else None,
                }
            )
        )
        self._close()

    def fail(self, exc: BaseException) -> None:
        if self.span is None:
            return
        _error(self.span, exc)
        self._close()

    def _close(self) -> None:
        self._trace.listener = self._listener
        self.span.end()


async def _within(span: Any, coro: Awaitable[T]) -> T:
    with _trace_api().use_span(span, end_on_exit=False, record_exception=False):
        return await coro


def start_run(strategy: Any, trace: Trace, budget_tokens: int | None) -> RunSpan:
    """Start the span of a run of ``strategy`` recorded in ``trace`` (not yet current)."""
    t = tracer()
    if t is None:
        return RunSpan(None, trace)
    scope = _scope.get()
    strategy_name = str(getattr(strategy, "name", type(strategy).__name__))
    name = scope.chain or strategy_name
    attributes = {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": name,
        "ponder.chain": scope.chain,
        "ponder.strategy": strategy_name,
        **scope.attributes,
        "ponder.run_id": trace.run_id,
        "ponder.budget.total_tokens": budget_tokens,
    }
    span = t.start_span(f"invoke_workflow {name}", attributes=_clean(attributes))
    return RunSpan(span, trace)


def _mirror(event: dict[str, Any], content: bool) -> None:
    """A trace event with no span of its own, as an event of the current span."""
    kind = event.get("type")
    if kind not in MIRRORED_EVENTS:
        return
    attrs: dict[str, Attr] = {"ponder.span": str(event.get("span", ""))}
    for k, v in event.items():
        if k in ("run_id", "seq", "t", "type", "span"):
            continue
        if k == "error":  # "ClassName: message": the type only
            attrs["error.type"] = str(v).split(":", 1)[0]
        elif k == "event":
            attrs["ponder.decision"] = str(v)
        elif isinstance(v, bool | int | float) or (content and isinstance(v, str)):
            attrs[f"ponder.{k}"] = v
    api = _trace_api()
    if api is not None:
        api.get_current_span().add_event(f"ponder.{kind}", attrs)


# -- steps and calls -------------------------------------------------------------------------------


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
    with _span(f"ponder.step {kind}", attributes):
        return await coro


async def flow(label: str, index: int, span: str, coro: Awaitable[T]) -> T:
    """Drive one sub-flow of a fork under a ``ponder.flow`` span."""
    if tracer() is None:
        return await coro
    attributes = {"ponder.span": span, "ponder.flow.index": index, "ponder.fork.label": label}
    with _span(f"ponder.flow {label or 'fork'}", attributes):
        return await coro


async def model_call(
    calls: RunCalls, request: GenerationRequest | RewardRequest, span: str, coro: Awaitable[T]
) -> T:
    """Make one model call (``coro``) as a GenAI client span, counting its tokens by role."""
    backend = calls.orch.backend_for(request.role)
    model = backend_model(backend)
    token = _call.set(CallInfo(request.role, request.purpose, model))
    try:
        if tracer() is None:
            result = await coro
        else:
            content = _scope.get().content
            name, attributes = _call_attributes(request, backend, model, span, content)
            with _span(name, attributes, _client_kind()) as s:
                result = await coro
                _call_result(s, result, content)
        _count_role(calls.usage, request.role, result)
        return result
    finally:
        _call.reset(token)


async def tool_call(name: str, span: str, coro: Awaitable[ToolResult]) -> ToolResult:
    """Run one tool call under an ``execute_tool`` span."""
    if tracer() is None:
        return await coro
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "ponder.span": span,
    }
    with _span(f"execute_tool {name}", attributes) as s:
        result = await coro
        if result.error is not None:
            _error(s, result.error)
        return result


def _count_role(usage: Usage, role: str, result: object) -> None:
    if isinstance(result, Completion):
        usage.add_role(role, result.prompt_tokens, result.completion_tokens, result.calls)
    elif isinstance(result, Reward):
        usage.add_role(role, result.prompt_tokens, 0, 1)


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
        if request.messages is not None:
            attrs["gen_ai.input.messages"] = _messages_json(request.messages)
        else:
            attrs["gen_ai.input.messages"] = _messages_json(
                [{"role": "user", "content": request.prompt or ""}]
            )
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
        span.set_attributes(_clean(attrs))
    elif isinstance(result, Reward):
        span.set_attributes(
            _clean(
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
            _error(span, error)


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
