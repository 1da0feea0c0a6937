"""The engine: drives sans-I/O strategies and performs every call they ask for.

``Orchestrator`` is the one-run engine that ``Session`` (``ponder.orchestrator.session``)
extends; use a ``Session``, the public object (``ponder.Session``), unless you start and close
the backends yourself and want nothing else. ``Orchestrator(backend).run(strategy, question)``
(async) makes one ``RunCalls`` per run (``ponder.orchestrator.calls``: budget, retries,
concurrency, usage, trace) and steps the strategy's flow with ``drive``
(``ponder.orchestrator.drive``); the data it takes and gives (``RunLimits``, ``RetryPolicy``,
``RunResult``) lives in ``policy.py`` and ``result.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from ponder.backends.base import Backend
from ponder.errors import ConfigError, InputError, RunTimeout
from ponder.orchestrator.calls import RunCalls
from ponder.orchestrator.capabilities import check_capabilities
from ponder.orchestrator.drive import drive
from ponder.orchestrator.policy import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RETRY,
    DEFAULT_TOOL_TIMEOUT_S,
    RetryPolicy,
    RunLimits,
)
from ponder.orchestrator.report import run_report
from ponder.orchestrator.result import RunResult
from ponder.orchestrator.run_span import start_run
from ponder.orchestrator.trace import Trace
from ponder.protocol.actions import Task

if TYPE_CHECKING:  # the engine runs any flow; it needs no strategy class at run time
    from ponder.protocol.strategy import Strategy

# The data the engine takes and gives, importable from here too (older imports name this module).
__all__ = [
    "DEFAULT_TOOL_TIMEOUT_S",
    "Orchestrator",
    "RetryPolicy",
    "RunLimits",
    "RunResult",
    "served_by",
]


class Orchestrator:
    """Runs strategies against one or more backends.

    ``backends`` maps a role ("default", "aggregator", ...) to a backend; a single backend is the
    "default" role. ``budget_tokens`` and ``timeout_s`` are the default ``RunLimits`` of each run;
    ``run(..., limits=...)`` overrides them per run. One orchestrator can run many questions
    concurrently; each run has its own budget and trace, and all share ``max_concurrency`` calls
    in flight (or the ``semaphore`` given). It neither starts nor closes its backends: for that,
    and as the public object, use ``ponder.Session``, which extends it.
    """

    def __init__(
        self,
        backends: Backend | Mapping[str, Backend],
        *,
        budget_tokens: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout_s: float | None = None,
        semaphore: asyncio.Semaphore | None = None,
        tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    ) -> None:
        self.backends: dict[str, Backend] = (
            {"default": backends} if isinstance(backends, Backend) else dict(backends)
        )
        if "default" not in self.backends:
            raise ConfigError("backends", "a 'default' backend is required")
        self.limits = RunLimits(total_tokens=budget_tokens, timeout_s=timeout_s)
        self.retry = retry
        self.max_concurrency = max_concurrency
        self._semaphore = semaphore or asyncio.Semaphore(max_concurrency)
        self.tool_timeout_s = tool_timeout_s

    @property
    def budget_tokens(self) -> int | None:
        return self.limits.total_tokens

    @property
    def timeout_s(self) -> float | None:
        return self.limits.timeout_s

    def backend_for(self, role: str) -> Backend:
        return self.backends.get(role) or self.backends["default"]

    async def run(
        self,
        strategy: Strategy,
        question: str | Task,
        *,
        trace: Trace | None = None,
        limits: RunLimits | None = None,
    ) -> RunResult:
        task = Task(question) if isinstance(question, str) else question
        if not task.question or not task.question.strip():
            raise InputError("the question is empty")
        limits = limits or self.limits
        state = RunCalls(self, trace or Trace(), limits)
        span = start_run(strategy, state.trace, limits.total_tokens)
        state.trace.record(
            "run_start", "", strategy=strategy.model_dump(), question=task.question, **span.ids()
        )
        t0 = time.perf_counter()
        timeout_s = limits.timeout_s
        try:
            await check_capabilities(strategy, self.backends, limits.thinking)  # before any call
            coro = span.within(drive(state, strategy.flow(task), ""))
            try:
                outcome = await (asyncio.wait_for(coro, timeout_s) if timeout_s else coro)
            except TimeoutError:
                if timeout_s is None:
                    raise
                raise RunTimeout(timeout_s) from None
        except BaseException as exc:
            state.usage.wall_time_s = time.perf_counter() - t0
            state.trace.record("run_error", "", error=f"{type(exc).__name__}: {exc}")
            span.fail(exc)
            raise
        state.usage.wall_time_s = time.perf_counter() - t0
        limited = outcome.budget_limited or state.budget_hit
        outcome.budget_limited = limited
        served = {role: await served_by(b) for role, b in self.backends.items()}  # after calls
        report = run_report(strategy, outcome, state.usage, state.budget, limited)
        state.trace.record(
            "run_end",
            "",
            answer=outcome.answer,
            budget_limited=limited,
            usage=state.usage.to_dict(),
            backends=served,
            report=report.to_dict(),
        )
        span.end(report, state.usage, outcome.answer)
        return RunResult(
            answer=outcome.answer,
            text=outcome.text,
            budget_limited=limited,
            usage=state.usage,
            trace=state.trace,
            outcome=outcome,
            backends=served,
            report=report,
        )


async def served_by(backend: Backend) -> dict[str, object]:
    """``backend.describe()`` plus the capabilities it knows (``None`` fields left out)."""
    caps = {k: v for k, v in asdict(await backend.capabilities()).items() if v is not None}
    return {**backend.describe(), "capabilities": caps}
