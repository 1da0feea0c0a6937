"""The orchestrator: drives sans-I/O strategies and performs every call they ask for.

Use ``Orchestrator(backend).run(strategy, question)`` (async) or ``ponder.run(...)`` (sync).
Because every request passes through ``_RunState.perform`` (generation) or ``_RunState.score``
(reward models), this is the one place that enforces the token budget, limits concurrency,
retries, counts tokens and writes the trace.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ponder.backends.base import Backend
from ponder.errors import (
    BackendError,
    BudgetExhausted,
    ConfigError,
    InputError,
    PonderError,
    RunTimeout,
    ToolTimeout,
)
from ponder.orchestrator.budget import TokenBudget
from ponder.orchestrator.trace import Trace
from ponder.orchestrator.usage import Usage
from ponder.protocol.actions import (
    CallTool,
    Flow,
    Fork,
    Generate,
    Note,
    Outcome,
    Score,
    Task,
    ToolCall,
    ToolResult,
)
from ponder.protocol.requests import (
    GenerationFailure,
    GenerationRequest,
    Result,
    RewardFailure,
    RewardRequest,
    RewardResult,
)
from ponder.protocol.tokens import bound_chat_tokens

if TYPE_CHECKING:  # the engine runs any flow; it needs no strategy class at run time
    from ponder.protocol.strategy import Strategy

DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_TOOL_TIMEOUT_S = 30.0
T = TypeVar("T")
R = TypeVar("R", GenerationRequest, RewardRequest)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of retryable backend errors (429, 5xx, timeouts, connection errors).

    A retry waits at least the upstream's Retry-After; one longer than ``max_retry_after_s``
    is not waited for (the call fails at once and the proxy relays the Retry-After)."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter_s: float = 0.5
    max_retry_after_s: float = 30.0


NO_RETRY = RetryPolicy(max_attempts=1)
DEFAULT_RETRY = RetryPolicy()


@dataclass
class RunResult:
    """The answer of one run plus everything needed to account for it."""

    answer: str | None
    text: str
    budget_limited: bool
    usage: Usage
    trace: Trace
    outcome: Outcome
    backends: dict[str, dict[str, object]] = field(default_factory=dict)
    """What served each role (``Backend.describe()``, e.g. the local backend's runtime, and the
    ``capabilities`` it reported at the end of the run: what it learned, such as a refused n)."""

    @property
    def run_id(self) -> str:
        return self.trace.run_id

    @property
    def p_correct(self) -> float | None:
        """A calibrated P(the answer is correct), set by chains with a DRR judge (else None)."""
        p = self.outcome.data.get("p_correct")
        return float(p) if p is not None else None

    @property
    def abstained(self) -> bool:
        """True when the chain withheld its answer (``abstain_below``); the answer is None."""
        return bool(self.outcome.data.get("abstained"))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "run_id": self.run_id,
            "answer": self.answer,
            "text": self.text,
            "budget_limited": self.budget_limited,
            "usage": self.usage.to_dict(),
            "outcome": self.outcome.to_dict(),
            "backends": self.backends,
        }
        if self.p_correct is not None:
            d["p_correct"] = self.p_correct
        if self.abstained:
            d["abstained"] = True
        return d


@dataclass(frozen=True)
class RunLimits:
    """Per-run limits, passed to ``run`` (like pydantic-ai's ``UsageLimits``): a hard cap on
    prompt + completion tokens of every call in the run, and a wall-clock timeout (a
    ``RunTimeout``). ``None`` means no limit."""

    total_tokens: int | None = None
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.total_tokens is not None and self.total_tokens <= 0:
            raise ConfigError("budget.total_tokens", f"must be positive, got {self.total_tokens}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError("timeout_s", f"must be positive, got {self.timeout_s}")


NO_LIMITS = RunLimits()


class Orchestrator:
    """Runs strategies against one or more backends.

    ``backends`` maps a role ("default", "aggregator", ...) to a backend; a single backend is the
    "default" role. ``budget_tokens`` and ``timeout_s`` are the default ``RunLimits`` of each run;
    ``run(..., limits=...)`` overrides them per run. One orchestrator can run many questions
    concurrently; each run has its own budget and trace, and all share ``max_concurrency`` calls
    in flight (or the ``semaphore`` given). For backends started and closed with it, use
    ``ponder.orchestrator.session.Session``.
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
        state = _RunState(self, trace or Trace(), limits)
        state.trace.record("run_start", "", strategy=strategy.model_dump(), question=task.question)
        t0 = time.perf_counter()
        timeout_s = limits.timeout_s
        try:
            coro = state.drive(strategy.flow(task), "")
            try:
                outcome = await (asyncio.wait_for(coro, timeout_s) if timeout_s else coro)
            except TimeoutError:
                if timeout_s is None:
                    raise
                raise RunTimeout(timeout_s) from None
        except BaseException as exc:
            state.usage.wall_time_s = time.perf_counter() - t0
            state.trace.record("run_error", "", error=f"{type(exc).__name__}: {exc}")
            raise
        state.usage.wall_time_s = time.perf_counter() - t0
        limited = outcome.budget_limited or state.budget_hit
        outcome.budget_limited = limited
        served = {role: await served_by(b) for role, b in self.backends.items()}  # after calls
        state.trace.record(
            "run_end",
            "",
            answer=outcome.answer,
            budget_limited=limited,
            usage=state.usage.to_dict(),
            backends=served,
        )
        return RunResult(
            answer=outcome.answer,
            text=outcome.text,
            budget_limited=limited,
            usage=state.usage,
            trace=state.trace,
            outcome=outcome,
            backends=served,
        )


@dataclass
class _RunState:
    orch: Orchestrator
    trace: Trace
    limits: RunLimits = NO_LIMITS
    usage: Usage = field(default_factory=Usage)
    budget: TokenBudget | None = None
    budget_hit: bool = False

    def __post_init__(self) -> None:
        if self.limits.total_tokens is not None:
            self.budget = TokenBudget(self.limits.total_tokens)

    async def drive(self, flow: Flow, span: str) -> Outcome:
        """Step a strategy's generator until it returns, performing each action it yields."""
        value: Any = None
        try:
            while True:
                try:
                    action = flow.send(value)
                except StopIteration as stop:
                    return stop.value
                value = await self._perform_action(action, span)
        finally:
            flow.close()

    async def _perform_action(self, action: Any, span: str) -> Any:
        if isinstance(action, Generate):
            return list(await asyncio.gather(*(self.perform(r, span) for r in action.requests)))
        if isinstance(action, Fork):
            self.trace.record("fork", span, label=action.label, size=len(action.flows))
            prefix = f"{span}/" if span else ""
            results = await asyncio.gather(
                *(self.drive(f, f"{prefix}{i}") for i, f in enumerate(action.flows)),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException) and not isinstance(r, Exception):
                    raise r  # cancellation and interrupts are not sample failures
            return results
        if isinstance(action, Note):
            self.trace.record("decision", span, event=action.event, **action.data)
            return None
        if isinstance(action, Score):
            return list(await asyncio.gather(*(self.score(r, span) for r in action.requests)))
        if isinstance(action, CallTool):
            return list(await asyncio.gather(*(self.call_tool(c, span) for c in action.calls)))
        raise TypeError(
            f"a strategy yielded {action!r}; expected Generate, Fork, Note, Score or CallTool"
        )

    async def call_tool(self, call: ToolCall, span: str) -> ToolResult:
        """Run one tool call off the event loop, under the engine's tool timeout; a timeout or
        an exception comes back as a ``ToolResult`` with an ``error:`` text for the model."""
        timeout_s = self.orch.tool_timeout_s
        t0 = time.perf_counter()
        error: BaseException | None = None
        try:
            text = await asyncio.wait_for(asyncio.to_thread(call.run, call.arguments), timeout_s)
        except TimeoutError:
            error = ToolTimeout(call.name, timeout_s)
            text = f"error: {error}"
        except Exception as exc:  # a tool's failure is information for the model, not a crash
            error = exc
            text = f"error: {type(exc).__name__}: {exc}"
        latency = time.perf_counter() - t0
        self.usage.tool_calls += 1
        self.trace.record(
            "tool",
            span,
            name=call.name,
            latency_s=round(latency, 4),
            **({"error": _describe(error)} if error is not None else {}),
        )
        return ToolResult(call, text, latency, error)

    async def perform(self, request: GenerationRequest, span: str) -> Result:
        backend = self.orch.backend_for(request.role)
        prompt_tokens = 0
        if self.budget is not None:  # a safe upper bound, or exact where the backend counts
            prompt_tokens = await backend.count_prompt_tokens(request)
        p = request.params

        def reserve() -> tuple[GenerationRequest, int] | BudgetExhausted:
            if self.budget is None:
                return request, 0
            grant = self._reserve(prompt_tokens, p.n, p.max_tokens, request.purpose, span)
            if isinstance(grant, BudgetExhausted):
                return grant
            granted, reserved = grant
            if granted < p.max_tokens:
                self.budget_hit = True
                return request.with_params(max_tokens=granted), reserved
            return request, reserved

        got = await self._retrying(backend.generate, reserve, request, span, "request")
        if isinstance(got, BaseException):
            return GenerationFailure(request, got)
        completion, sent, reserved = got
        used = completion.prompt_tokens + completion.completion_tokens
        if self.budget is not None:
            self.budget.settle(reserved, used)
        per_call_prompt = completion.prompt_tokens // max(completion.calls, 1)
        longest = max((c.completion_tokens for c in completion.choices), default=0)
        self.usage.add(
            request.purpose,
            completion.prompt_tokens,
            completion.completion_tokens,
            completion.calls,
            completion.cached_prompt_tokens,
            context=per_call_prompt + longest,
        )
        self.trace.record(
            "completion",
            span,
            purpose=request.purpose,
            model=completion.model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            calls=completion.calls,
            latency_s=round(completion.latency_s, 4),
            choices=[
                {
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "tokens": c.completion_tokens,
                    "seed": c.seed,
                    **({"tool_calls": c.tool_calls} if c.tool_calls else {}),
                    **({"tool_calls_from_text": True} if c.tool_calls_from_text else {}),
                }
                for c in completion.choices
            ],
        )
        return completion

    async def score(self, request: RewardRequest, span: str) -> RewardResult:
        """One reward-model call, under the same budget, retries, accounting and trace."""
        backend = self.orch.backend_for(request.role)
        # a reward call costs its prompt only, with no completion; reserve a safe upper bound
        bound = bound_chat_tokens(request.messages)

        def reserve() -> tuple[RewardRequest, int] | BudgetExhausted:
            if self.budget is None:
                return request, 0
            grant = self._reserve(bound, 1, 0, request.purpose, span)
            return grant if isinstance(grant, BudgetExhausted) else (request, grant[1])

        got = await self._retrying(backend.reward, reserve, request, span, "reward_request")
        if isinstance(got, BaseException):
            return RewardFailure(request, got)
        reward, _, reserved = got
        if self.budget is not None:
            self.budget.settle(reserved, reward.prompt_tokens)
        self.usage.add(request.purpose, reward.prompt_tokens, 0, 1, context=reward.prompt_tokens)
        self.trace.record(
            "reward",
            span,
            purpose=request.purpose,
            model=reward.model,
            score=reward.score,
            prompt_tokens=reward.prompt_tokens,
            calls=1,
            latency_s=round(reward.latency_s, 4),
        )
        return reward

    def _reserve(
        self, prompt_tokens: int, n: int, max_tokens: int, purpose: str, span: str
    ) -> tuple[int, int] | BudgetExhausted:
        """Reserve budget for a call: ``(granted max_tokens, reserved)``, or the refusal."""
        assert self.budget is not None
        try:
            return self.budget.reserve(prompt_tokens, n, max_tokens)
        except BudgetExhausted as exc:
            self.budget_hit = True
            self.trace.record("budget_exhausted", span, purpose=purpose, reason=str(exc))
            return exc

    async def _retrying(
        self,
        call: Callable[[R], Awaitable[T]],
        reserve: Callable[[], tuple[R, int] | BudgetExhausted],
        request: GenerationRequest | RewardRequest,
        span: str,
        event: str,
    ) -> tuple[T, R, int] | PonderError:
        """Make ``call`` with retries: ``(result, request sent, reservation)`` or the error.

        Every attempt takes its own reservation. An attempt that failed after the upstream may
        have generated (``BackendError.generated``: a timeout, a dropped connection, a malformed
        body) is charged its whole reservation, never 0, so retries cannot spend past the budget;
        one refused before generating (429, 5xx, connection refused) is charged nothing. Retries
        wait the policy's jittered backoff, or the upstream's Retry-After when that is longer.
        """
        policy = self.orch.retry
        attempt = 0
        last: BackendError | None = None
        while True:
            attempt += 1
            grant = reserve()
            if isinstance(grant, BudgetExhausted):  # no room for this (or another) attempt
                return self._failed(last or grant, request, span)
            sent, reserved = grant
            if attempt == 1:
                self.trace.record(event, span, **sent.describe())
            try:
                async with self.orch._semaphore:
                    result = await call(sent)
            except PonderError as exc:
                charge = reserved if isinstance(exc, BackendError) and exc.generated else 0
                if self.budget is not None:
                    self.budget.settle(reserved, charge)
                if not (isinstance(exc, BackendError) and exc.retryable):
                    return self._failed(exc, request, span)
                last = exc
                delay = retry_delay(policy, attempt, exc.retry_after_s)
                if attempt >= policy.max_attempts or delay is None:
                    return self._failed(exc, request, span)
                self.trace.record(
                    "retry",
                    span,
                    attempt=attempt,
                    error=_describe(exc),
                    wait_s=round(delay, 3),
                    charged=charge,
                )
                await asyncio.sleep(delay)
                continue
            except BaseException:  # cancelled mid-call: the upstream may have generated
                if self.budget is not None:
                    self.budget.settle(reserved, reserved)
                raise
            return result, sent, reserved

    def _failed(
        self, exc: PonderError, request: GenerationRequest | RewardRequest, span: str
    ) -> PonderError:
        if not isinstance(exc, BudgetExhausted):
            self.usage.failed_calls += 1
            self.trace.record("failure", span, purpose=request.purpose, error=_describe(exc))
        return exc


async def served_by(backend: Backend) -> dict[str, object]:
    """``backend.describe()`` plus the capabilities it knows (``None`` fields left out)."""
    caps = {k: v for k, v in asdict(await backend.capabilities()).items() if v is not None}
    return {**backend.describe(), "capabilities": caps}


def retry_delay(policy: RetryPolicy, attempt: int, retry_after_s: float | None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``: jittered exponential backoff, at least
    the upstream's Retry-After; ``None`` (give up now) when Retry-After passes the policy's cap."""
    backoff = min(policy.max_backoff_s, policy.initial_backoff_s * 2 ** (attempt - 1))
    backoff += random.uniform(0, policy.jitter_s)
    if retry_after_s is None:
        return backoff
    if retry_after_s > policy.max_retry_after_s:
        return None
    return max(backoff, retry_after_s)


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else ""
