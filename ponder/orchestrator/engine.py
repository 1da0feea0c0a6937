"""The orchestrator: drives sans-I/O strategies and performs every call they ask for.

Use ``Orchestrator(backend).run(strategy, question)`` (async) or ``ponder.run(...)`` (sync).
Because every request passes through ``_RunState.perform`` (generation) or ``_RunState.score``
(reward models), this is the one place that enforces the token budget, limits concurrency,
retries, counts tokens and writes the trace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ponder.errors import BackendError, BudgetExhausted, ConfigError, InputError, PonderError
from ponder.orchestrator.backends.base import Backend, estimate_chat_tokens
from ponder.orchestrator.budget import TokenBudget
from ponder.orchestrator.requests import (
    GenerationFailure,
    GenerationRequest,
    Result,
    RewardFailure,
    RewardRequest,
    RewardResult,
)
from ponder.orchestrator.trace import Trace
from ponder.orchestrator.usage import Usage
from ponder.strategies.base import Flow, Fork, Generate, Note, Outcome, Score, Strategy, Task

DEFAULT_MAX_CONCURRENCY = 16
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of retryable backend errors (429, 5xx, timeouts, connection errors)."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter_s: float = 0.5


NO_RETRY = RetryPolicy(max_attempts=1)


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
    """What served each role (``Backend.describe()``), e.g. the local backend's runtime."""

    @property
    def run_id(self) -> str:
        return self.trace.run_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "answer": self.answer,
            "text": self.text,
            "budget_limited": self.budget_limited,
            "usage": self.usage.to_dict(),
            "outcome": self.outcome.to_dict(),
            "backends": self.backends,
        }


class Orchestrator:
    """Runs strategies against one or more backends.

    ``backends`` maps a role ("default", "aggregator", ...) to a backend; a single backend is the
    "default" role. ``budget_tokens`` caps prompt + completion tokens of every call in a run.
    One orchestrator can run many questions concurrently; each run has its own budget and trace.
    """

    def __init__(
        self,
        backends: Backend | Mapping[str, Backend],
        *,
        budget_tokens: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy = RetryPolicy(),
        timeout_s: float | None = None,
    ) -> None:
        self.backends: dict[str, Backend] = (
            {"default": backends} if isinstance(backends, Backend) else dict(backends)
        )
        if "default" not in self.backends:
            raise ConfigError("backends", "a 'default' backend is required")
        if budget_tokens is not None and budget_tokens <= 0:
            raise ConfigError("budget.total_tokens", f"must be positive, got {budget_tokens}")
        self.budget_tokens = budget_tokens
        self.retry = retry
        self.timeout_s = timeout_s
        self._semaphore = asyncio.Semaphore(max_concurrency)

    def backend_for(self, role: str) -> Backend:
        return self.backends.get(role) or self.backends["default"]

    async def run(
        self, strategy: Strategy, question: str | Task, *, trace: Trace | None = None
    ) -> RunResult:
        task = Task(question) if isinstance(question, str) else question
        if not task.question or not task.question.strip():
            raise InputError("the question is empty")
        state = _RunState(self, trace or Trace())
        state.trace.record("run_start", "", strategy=strategy.model_dump(), question=task.question)
        t0 = time.perf_counter()
        try:
            coro = state.drive(strategy.flow(task), "")
            outcome = await (asyncio.wait_for(coro, self.timeout_s) if self.timeout_s else coro)
        except BaseException as exc:
            state.usage.wall_time_s = time.perf_counter() - t0
            state.trace.record("run_error", "", error=f"{type(exc).__name__}: {exc}")
            raise
        state.usage.wall_time_s = time.perf_counter() - t0
        limited = outcome.budget_limited or state.budget_hit
        outcome.budget_limited = limited
        served = {role: b.describe() for role, b in self.backends.items()}  # after the calls
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
    usage: Usage = field(default_factory=Usage)
    budget: TokenBudget | None = None
    budget_hit: bool = False

    def __post_init__(self) -> None:
        if self.orch.budget_tokens is not None:
            self.budget = TokenBudget(self.orch.budget_tokens)

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
        raise TypeError(f"a strategy yielded {action!r}; expected Generate, Fork, Note or Score")

    async def perform(self, request: GenerationRequest, span: str) -> Result:
        backend = self.orch.backend_for(request.role)
        reserved = 0
        if self.budget is not None:
            prompt_tokens = await backend.count_prompt_tokens(request)
            grant = self._reserve(
                prompt_tokens, request.params.n, request.params.max_tokens, request.purpose, span
            )
            if isinstance(grant, BudgetExhausted):
                return GenerationFailure(request, grant)
            granted, reserved = grant
            if granted < request.params.max_tokens:
                self.budget_hit = True
                request = request.with_params(max_tokens=granted)
        self.trace.record("request", span, **request.describe())
        completion = await self._attempt(lambda: backend.generate(request), reserved, request, span)
        if isinstance(completion, PonderError):
            return GenerationFailure(request, completion)
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
                }
                for c in completion.choices
            ],
        )
        return completion

    async def score(self, request: RewardRequest, span: str) -> RewardResult:
        """One reward-model call, under the same budget, retries, accounting and trace."""
        backend = self.orch.backend_for(request.role)
        reserved = 0
        if self.budget is not None:  # a reward call costs its prompt only, with no completion
            estimate = estimate_chat_tokens(request.messages)
            grant = self._reserve(estimate, 1, 0, request.purpose, span)
            if isinstance(grant, BudgetExhausted):
                return RewardFailure(request, grant)
            reserved = grant[1]
        self.trace.record("reward_request", span, **request.describe())
        reward = await self._attempt(lambda: backend.reward(request), reserved, request, span)
        if isinstance(reward, PonderError):
            return RewardFailure(request, reward)
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

    async def _attempt(
        self,
        call: Callable[[], Awaitable[T]],
        reserved: int,
        request: GenerationRequest | RewardRequest,
        span: str,
    ) -> T | PonderError:
        """Run ``call`` with retries; on failure release the reservation and return the error."""
        try:
            return await self._with_retries(call, span)
        except PonderError as exc:
            if self.budget is not None:
                self.budget.settle(reserved, 0)
            self.usage.failed_calls += 1
            self.trace.record("failure", span, purpose=request.purpose, error=_describe(exc))
            return exc
        except BaseException:
            if self.budget is not None:
                self.budget.settle(reserved, 0)
            raise

    async def _with_retries(self, call: Callable[[], Awaitable[T]], span: str) -> T:
        policy = self.orch.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=policy.initial_backoff_s,
                max=policy.max_backoff_s,
                jitter=policy.jitter_s,
            ),
            retry=retry_if_exception(lambda e: isinstance(e, BackendError) and e.retryable),
            before_sleep=lambda rs: self.trace.record(
                "retry",
                span,
                attempt=rs.attempt_number,
                error=_describe(rs.outcome.exception()) if rs.outcome else None,
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self.orch._semaphore:
                    return await call()
        raise AssertionError("unreachable")  # pragma: no cover


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else ""
