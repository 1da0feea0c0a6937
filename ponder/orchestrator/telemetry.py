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

Three modules, one job each:

- this one: the scope of the runs a task starts (``set_scope``, ``RunScope``), the model call in
  progress (``current_call``), and the lazily looked-up API the span modules build on (``tracer``,
  ``new_span``, ``mark_error``). Use it to set a scope (the proxy, per request) or to ask which
  role and model a trace event belongs to (trace listeners such as the proxy's metrics).
- ``ponder.orchestrator.run_span``: the span of one run (``start_run``), used by the engine.
- ``ponder.orchestrator.step_spans``: the spans of each step, sub-flow, model call and tool call
  (``step``, ``flow``, ``model_call``, ``tool_call``), used by ``drive``; ``model_call`` also
  sets the call in progress (``current_call``), traced or not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRACER_NAME = "ponder"
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


def current_scope() -> RunScope:
    """The scope of the runs this task starts (the default one unless ``set_scope`` was called)."""
    return _scope.get()


def current_call() -> CallInfo | None:
    """The model call in progress where a trace event is being recorded (``None`` outside one)."""
    return _call.get()


@contextmanager
def in_call(info: CallInfo) -> Iterator[None]:
    """Make ``info`` the model call in progress (``current_call``) for the ``with`` block."""
    token = _call.set(info)
    try:
        yield
    finally:
        _call.reset(token)


# -- the optional API ------------------------------------------------------------------------------

_api: Any = None  # the ``opentelemetry.trace`` module once looked up; False when not installed
_tracer: tuple[Any, Any] | None = None  # (provider, tracer)


def trace_api() -> Any:
    """The ``opentelemetry.trace`` module, or ``None`` without ``opentelemetry-api``."""
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
    api = trace_api()
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


def client_kind() -> Any:
    """``SpanKind.CLIENT`` (only called once ``tracer()`` found the API)."""
    return trace_api().SpanKind.CLIENT


def mark_error(span: Any, exc: BaseException) -> None:
    """Mark ``span`` failed by the error's type only (an upstream message may echo a secret)."""
    name = type(exc).__name__
    span.set_attribute("error.type", name)
    span.set_status(trace_api().Status(trace_api().StatusCode.ERROR, name))


def new_span(name: str, attributes: dict[str, Any], kind: Any = None) -> Any:
    """A context manager making a new current span (or nothing, without the API)."""
    t = tracer()
    if t is None:
        return nullcontext(None)
    kw: dict[str, Any] = {"attributes": clean(attributes), "record_exception": False}
    if kind is not None:
        kw["kind"] = kind
    return t.start_as_current_span(name, **kw)


def clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` without the ``None`` values (OTel refuses them)."""
    return {k: v for k, v in attributes.items() if v is not None}
