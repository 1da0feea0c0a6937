"""The OpenTelemetry span of one run (``invoke_workflow <chain|strategy>``).

Use ``start_run`` where a run starts (the engine does): the ``RunSpan`` it returns gives the ids
for the trace's ``run_start`` (``ids``), makes the span current while the run's flow is driven
(``within``), and closes it with the run's report (``end``) or its error by type (``fail``).
While it is open, the run's trace events that have no span of their own (``retry``, ``failure``,
``budget_exhausted``, ``decision``) become events of the span current when they happen. Inert
without ``opentelemetry-api``; the scope and the lazy API are in ``ponder.orchestrator.telemetry``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from ponder.orchestrator.report import RunReport
from ponder.orchestrator.telemetry import (
    Attr,
    clean,
    current_scope,
    mark_error,
    trace_api,
    tracer,
)

if TYPE_CHECKING:
    from ponder.orchestrator.trace import Trace
    from ponder.orchestrator.usage import Usage

T = TypeVar("T")
MIRRORED_EVENTS = ("retry", "failure", "budget_exhausted", "decision")


class RunSpan:
    """The span of one run (``invoke_workflow``); inert without the API."""

    def __init__(self, span: Any, trace: Trace) -> None:
        self.span = span
        self._trace = trace
        self._listener = trace.listener
        self.content = current_scope().content
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
        api = trace_api()
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
            clean(
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
        mark_error(self.span, exc)
        self._close()

    def _close(self) -> None:
        self._trace.listener = self._listener
        self.span.end()


async def _within(span: Any, coro: Awaitable[T]) -> T:
    with trace_api().use_span(span, end_on_exit=False, record_exception=False):
        return await coro


def start_run(strategy: Any, trace: Trace, budget_tokens: int | None) -> RunSpan:
    """Start the span of a run of ``strategy`` recorded in ``trace`` (not yet current)."""
    t = tracer()
    if t is None:
        return RunSpan(None, trace)
    scope = current_scope()
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
    span = t.start_span(f"invoke_workflow {name}", attributes=clean(attributes))
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
    api = trace_api()
    if api is not None:
        api.get_current_span().add_event(f"ponder.{kind}", attrs)
