"""The proxy's Prometheus metrics (``GET /metrics``), with ``prometheus_client``.

One ``ProxyMetrics`` per app, in its own registry: each replica exposes its own series, all
labelled ``replica``. Every label value is bounded: chain names from the serve file (or
``(passthrough)`` / ``(none)``), roles and model names the operator configured (a model a client
names that the upstream is not configured with is ``(other)``), HTTP status codes, stop reasons
and error types from Ponder's code. A client's free-text ``model`` never becomes a label.

What is counted and how (docs/serve.md has the table for dashboards):

- ``ponder_requests_total``, ``ponder_request_duration_seconds``: every chat request, by the ASGI
  middleware of ``ponder.serve.telemetry`` (status as answered; 499 when the client left).
- Run, call and token series: from each run's trace events (``run_listener``, attached to the
  run's ``Trace``), so they count failed and cancelled runs too; the role of each call comes from
  ``ponder.orchestrator.telemetry.current_call``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ponder.orchestrator.telemetry import current_call
from ponder.orchestrator.trace import TraceListener

log = logging.getLogger("ponder.serve")

PASSTHROUGH = "(passthrough)"
"""The ``chain`` label of a request passed through to the upstream."""
NO_CHAIN = "(none)"
"""The ``chain`` label of a request refused before a chain was known (auth, bad JSON, an
unknown chain name)."""
OTHER_MODEL = "(other)"
"""The ``model`` label of calls to an upstream model the serve file does not name."""
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

RoleLabels = Callable[[str], tuple[str, str]]
"""A run's role -> its ``(role, model)`` labels."""


class ProxyMetrics:
    """The metrics of one proxy replica (``replica`` labels every series)."""

    def __init__(self, replica: str, chains: list[str] | None = None) -> None:
        self.replica = replica
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        chain = ["replica", "chain"]
        call = [*chain, "role", "model"]
        self.requests = Counter(
            "ponder_requests",
            "Chat completion requests answered, by chain and HTTP status",
            [*chain, "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "ponder_request_duration_seconds",
            "Time to answer a chat completion request (to the end of a stream)",
            chain,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.run_seconds = Histogram(
            "ponder_run_duration_seconds",
            "Wall time of one chain run, by outcome (ok, error, timeout, cancelled)",
            [*chain, "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.runs = Counter(
            "ponder_runs",
            "Chain runs finished with an answer, by stop reason",
            [*chain, "stop_reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "ponder_runs_in_flight", "Chain runs executing now", chain, registry=r
        )
        self.tokens = Counter(
            "ponder_tokens",
            "Tokens billed by upstreams (type: input or output)",
            [*call, "type"],
            registry=r,
        )
        self.calls = Counter(
            "ponder_upstream_calls",
            "Upstream model calls, by outcome (ok, or the error type of a call that failed "
            "after its retries)",
            [*call, "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "ponder_upstream_retries",
            "Upstream call attempts retried, by the error type that caused the retry",
            [*call, "reason"],
            registry=r,
        )
        self.budget_cuts = Counter(
            "ponder_budget_cuts", "Chain runs the token budget cut short", chain, registry=r
        )
        self.budget_refusals = Counter(
            "ponder_budget_refused_calls",
            "Model calls not made because the run's token budget could not fit them",
            chain,
            registry=r,
        )
        self.early_stops = Counter(
            "ponder_early_stops",
            "Chain runs a stop policy ended before their plan (adaptive, DeepConf, DRR)",
            chain,
            registry=r,
        )
        self.tokens_saved = Counter(
            "ponder_early_stop_saved_tokens",
            "Completion tokens early stops saved (estimated from the same run's samples)",
            chain,
            registry=r,
        )
        for name in chains or ():  # the series exist (at 0) before the first request
            self.in_flight.labels(replica, name)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def request_done(self, chain: str, status: int, seconds: float) -> None:
        self.requests.labels(self.replica, chain, str(status)).inc()
        self.request_seconds.labels(self.replica, chain).observe(seconds)

    def run_listener(
        self, chain: str, labels: RoleLabels, then: TraceListener | None = None
    ) -> TraceListener:
        """A ``Trace`` listener counting one run's events under ``chain`` (then calling
        ``then``, e.g. the stream's progress feed). It never raises into the run."""
        started: list[float] = []

        def listen(event: dict[str, Any]) -> None:
            try:
                self._count(chain, labels, started, event)
            except Exception:  # a metric must never fail a run
                log.debug("ponder serve: metrics skipped an event", exc_info=True)
            if then is not None:
                then(event)

        return listen

    def _count(
        self, chain: str, labels: RoleLabels, started: list[float], event: dict[str, Any]
    ) -> None:
        kind = event["type"]
        rep = self.replica
        if kind == "run_start":
            started.append(time.perf_counter())
            self.in_flight.labels(rep, chain).inc()
        elif kind in ("run_end", "run_error"):
            if not started:
                return
            self.in_flight.labels(rep, chain).dec()
            outcome = "ok" if kind == "run_end" else _run_error_outcome(event.get("error"))
            seconds = time.perf_counter() - started.pop()
            self.run_seconds.labels(rep, chain, outcome).observe(seconds)
            report = event.get("report") or {}
            if kind == "run_end":
                self.runs.labels(rep, chain, str(report.get("stop_reason", "complete"))).inc()
                if event.get("budget_limited"):
                    self.budget_cuts.labels(rep, chain).inc()
                if report.get("early_stop"):
                    self.early_stops.labels(rep, chain).inc()
                    self.tokens_saved.labels(rep, chain).inc(int(report.get("tokens_saved", 0)))
        elif kind in ("completion", "reward"):
            role, model = self._role(labels)
            self.tokens.labels(rep, chain, role, model, "input").inc(
                int(event.get("prompt_tokens", 0))
            )
            self.tokens.labels(rep, chain, role, model, "output").inc(
                int(event.get("completion_tokens", 0))
            )
            self.calls.labels(rep, chain, role, model, "ok").inc(int(event.get("calls", 1)))
        elif kind == "failure":
            role, model = self._role(labels)
            self.calls.labels(rep, chain, role, model, error_type(event.get("error"))).inc()
        elif kind == "retry":
            role, model = self._role(labels)
            self.retries.labels(rep, chain, role, model, error_type(event.get("error"))).inc()
        elif kind == "budget_exhausted":
            self.budget_refusals.labels(rep, chain).inc()

    @staticmethod
    def _role(labels: RoleLabels) -> tuple[str, str]:
        call = current_call()
        return labels(call.role if call is not None else "default")


def role_labels(
    roles: Mapping[str, Any], default_model: str | None, asked_model: str | None, fixed: bool
) -> RoleLabels:
    """The ``(role, model)`` labels of a chain request's calls. A role the chain configures is
    labelled with its configured model; anything else is served by the upstream, labelled with
    the upstream's configured model, or ``(other)`` when the client named another model of an
    upstream that serves many (``fixed``: one that serves every name with one model)."""
    upstream_model = default_model or "upstream"
    if not fixed and asked_model is not None and asked_model != default_model:
        upstream_model = OTHER_MODEL

    def labels(role: str) -> tuple[str, str]:
        cfg = roles.get(role)
        if cfg is None:
            return "default", upstream_model
        model = getattr(cfg, "model", None)
        return role, str(model) if model else str(getattr(cfg, "kind", role))

    return labels


@functools.cache
def _known_errors() -> frozenset[str]:
    from ponder.errors import PonderError

    seen: set[str] = {"TimeoutError", "CancelledError"}
    todo: list[type] = [PonderError]
    while todo:
        cls = todo.pop()
        seen.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(seen)


def error_type(text: object) -> str:
    """The error type of a trace event's ``"ClassName: message"``: one of Ponder's error classes
    (or ``TimeoutError`` / ``CancelledError``), else ``other``."""
    name = str(text or "").split(":", 1)[0].strip()
    return name if name in _known_errors() else "other"


def _run_error_outcome(text: object) -> str:
    name = error_type(text)
    if name == "CancelledError":
        return "cancelled"
    if name in ("RunTimeout", "TimeoutError"):
        return "timeout"
    return "error"
