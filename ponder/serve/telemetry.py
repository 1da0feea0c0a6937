"""How operators watch the proxy: its ``telemetry`` settings, the replica it is, OpenTelemetry
tracing of each request, and what a response tells (headers and the ``ponder`` object).

- ``TelemetryConfig``: the serve file's ``telemetry:`` section (replica name, ``/metrics`` on or
  off, whether message content goes into spans).
- ``replica_name`` / ``trace_dir``: ``$PONDER_REPLICA`` (else ``telemetry.replica``, else the host
  name) labels this replica's metrics and spans; a replica named explicitly writes its JSONL
  traces under ``<trace_dir>/<replica>/``, so replicas sharing a volume never mix files.
- ``configure_tracing``: ``ponder serve`` installs an SDK ``TracerProvider`` exporting over OTLP
  when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set, ``ponder[otel]`` and
  an OTLP exporter are installed and nothing else (``opentelemetry-instrument``, FastAPI's own
  ``FASTAPI_OTEL_AUTO_CONFIGURE``) sets one up.
- ``ObserveMiddleware``: the request counters of ``ProxyMetrics``, and ``ponder.*`` attributes on
  the request's SERVER span (FastAPI's own OpenTelemetry span, which continues an incoming
  ``traceparent``; the chain's spans are its descendants).
- ``answer_headers`` / ``run_fields``: the ``x-ponder-*`` headers and the extra fields of a chain
  answer's ``ponder`` object.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, field_validator

from ponder.orchestrator import telemetry as run_telemetry
from ponder.orchestrator.result import RunResult
from ponder.orchestrator.usage import PurposeUsage
from ponder.serve.metrics import NO_CHAIN, ProxyMetrics

log = logging.getLogger("ponder.serve")

REPLICA_ENV = "PONDER_REPLICA"
CHAIN_SCOPE_KEY = "ponder.chain"
"""Where the chat route leaves the request's chain label in the ASGI scope."""
CHAT_PATH = "/v1/chat/completions"
UNTRACED = ("/health", "/ready", "/metrics")
CHAIN_HEADER = "x-ponder-chain"
TOTAL_TOKENS_HEADER = "x-ponder-total-tokens"
CALLS_HEADER = "x-ponder-upstream-calls"
STOP_HEADER = "x-ponder-stop-reason"
_REPLICA = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class TelemetryConfig(BaseModel):
    """The serve file's ``telemetry:`` section."""

    model_config = ConfigDict(extra="forbid")

    replica: str | None = None
    """This replica's name (``$PONDER_REPLICA`` wins): the ``replica`` label of every metric,
    ``ponder.replica`` on spans, and a subfolder of ``trace_dir``."""
    metrics: bool = True
    """Serve ``GET /metrics`` (Prometheus text format)."""
    record_content: bool | None = None
    """Put messages and answers in spans (``None``: only when
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``)."""

    @field_validator("replica")
    @classmethod
    def _replica_name(cls, v: str | None) -> str | None:
        if v is not None and not _REPLICA.fullmatch(v):
            raise ValueError("a replica name is 1-64 letters, digits, '_', '.', ':' or '-'")
        return v


def explicit_replica(config: TelemetryConfig) -> str | None:
    """The replica named by ``$PONDER_REPLICA`` or the config, if any (checked)."""
    name = os.environ.get(REPLICA_ENV) or config.replica
    if name and not _REPLICA.fullmatch(name):
        from ponder.errors import ConfigError

        raise ConfigError(REPLICA_ENV, f"{name!r} is not a replica name (letters, digits, _.:-)")
    return name or None


def replica_name(config: TelemetryConfig) -> str:
    return explicit_replica(config) or socket.gethostname() or "ponder"


def trace_dir(base: str | None, config: TelemetryConfig) -> str | None:
    """Where this replica writes its JSONL traces: ``base``, or ``base/<replica>`` when the
    replica is named."""
    replica = explicit_replica(config)
    if not base or not replica:
        return base
    return str(Path(base) / replica)


def run_scope(chain: str, strategy: str, config: TelemetryConfig, replica: str) -> Any:
    """The telemetry scope of a chain request's runs."""
    return run_telemetry.RunScope(
        chain=chain,
        record_content=config.record_content,
        attributes={"ponder.replica": replica, "ponder.strategy": strategy},
    )


# -- tracing setup ---------------------------------------------------------------------------------


def configure_tracing(replica: str) -> bool:
    """Install an OTLP-exporting ``TracerProvider`` from the standard ``OTEL_*`` variables; true
    when one was installed. Nothing happens without an OTLP endpoint variable, with
    ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``, or when a provider is already
    set; a missing package is one warning, never a failure. With
    ``FASTAPI_OTEL_AUTO_CONFIGURE=true`` FastAPI sets the exporters up instead (not both)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not any(env.get(e) for e in endpoints):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("ponder serve: OTEL_EXPORTER_OTLP_* is set but ponder[otel] is not installed")
        return False
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # configured already (opentelemetry-instrument, or the host application)
    protocol = env.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[no-redef]
                OTLPSpanExporter,
            )
    except ImportError:
        package = "grpc" if protocol == "grpc" else "http"
        log.warning(
            "ponder serve: no OTLP exporter; pip install opentelemetry-exporter-otlp-proto-%s",
            package,
        )
        return False
    resource = Resource.create({"service.instance.id": replica})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "ponder"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("ponder serve: exporting traces over OTLP (%s)", protocol or "http/protobuf")
    return True


# -- the middleware --------------------------------------------------------------------------------


class ObserveMiddleware:
    """ASGI middleware: the request counters of ``ProxyMetrics`` (chat requests), and the
    request's span annotated with ``ponder.chain``, ``ponder.run_ids`` and ``ponder.replica``.

    The SERVER span itself is FastAPI's own OpenTelemetry span (or an ASGI instrumentation's),
    which continues an incoming ``traceparent``; where there is none (no SDK configured, or a
    FastAPI without native telemetry) the incoming context is made current for the request, so
    the chain's spans still join the client's trace and its ``traceparent`` reaches the upstream.
    ``/health`` and ``/metrics`` are left alone."""

    def __init__(self, app: Any, metrics: ProxyMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in UNTRACED:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status = 500
        span: Any = None

        async def answer(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if span is not None:
                    _annotate(span, scope, message, self.metrics.replica)
            await send(message)

        t0 = time.perf_counter()
        traced = run_telemetry.tracer() is not None
        with _request_context(scope) if traced else nullcontext(None) as current:
            span = current
            try:
                await self.app(scope, receive, answer)
            finally:
                if path == CHAT_PATH:
                    chain = scope.get(CHAIN_SCOPE_KEY) or NO_CHAIN
                    self.metrics.request_done(chain, status, time.perf_counter() - t0)


@contextmanager
def _request_context(scope: Any) -> Iterator[Any]:
    """The request's span: the current one (FastAPI's), else the incoming ``traceparent``'s
    context attached for the request (a non-recording span)."""
    from opentelemetry import context, propagate, trace

    current = trace.get_current_span()
    if current.get_span_context().is_valid:
        yield current
        return
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or ()}
    incoming = propagate.extract(headers)
    token = context.attach(incoming)
    try:
        yield trace.get_current_span(incoming)
    finally:
        context.detach(token)


def _annotate(span: Any, scope: Any, start: Any, replica: str) -> None:
    if not span.is_recording():
        return
    span.set_attribute("ponder.replica", replica)
    chain = scope.get(CHAIN_SCOPE_KEY)
    if chain:
        span.set_attribute("ponder.chain", chain)
    for k, v in start.get("headers") or ():
        if k == b"x-ponder-trace-id":
            span.set_attribute("ponder.run_ids", v.decode("latin-1").split(","))


# -- what an answer tells --------------------------------------------------------------------------


def _header_value(text: str) -> str:
    return quote(text, safe="-_.:/ ,()")


def answer_headers(chain: str, results: list[RunResult] | None = None) -> dict[str, str]:
    """The headers an operator can log: the chain, and for a finished answer its total tokens,
    upstream calls and each run's stop reason."""
    headers = {CHAIN_HEADER: _header_value(chain)}
    if results is not None:
        headers[TOTAL_TOKENS_HEADER] = str(sum(r.usage.total_tokens for r in results))
        headers[CALLS_HEADER] = str(sum(r.usage.calls for r in results))
        headers[STOP_HEADER] = ",".join(r.report.stop_reason for r in results)
    return headers


def run_fields(results: list[RunResult]) -> dict[str, Any]:
    """The ``ponder`` object's fields from each run's report: stop reason, samples drawn and
    used (lists aligned with ``run_ids``), tokens early stops saved, budget left, and usage by
    the backend role the calls asked for."""
    by_role: dict[str, PurposeUsage] = {}
    for r in results:
        for role, part in r.usage.by_role.items():
            total = by_role.setdefault(role, PurposeUsage())
            total.prompt_tokens += part.prompt_tokens
            total.completion_tokens += part.completion_tokens
            total.calls += part.calls
    fields: dict[str, Any] = {
        "stop_reasons": [r.report.stop_reason for r in results],
        "samples_planned": [r.report.samples_planned for r in results],
        "samples_drawn": [r.report.samples_drawn for r in results],
        "samples_used": [r.report.samples_used for r in results],
        "tokens_saved": [r.report.tokens_saved for r in results],
        "usage_by_role": {
            role: {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "calls": u.calls,
            }
            for role, u in by_role.items()
        },
    }
    if any(r.report.budget_left is not None for r in results):
        fields["budget_left"] = [r.report.budget_left for r in results]
    return fields
