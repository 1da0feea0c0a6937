"""Performing the calls of one run: generation, reward and tool calls, with the retry loop.

``RunCalls`` is the per-run state every call touches: the token budget (reserved before a call
leaves, settled after), the ``Usage`` counts, the ``Trace`` and whether the budget cut anything.
Use it through the engine (``Orchestrator.run`` makes one per run, and ``drive`` hands it each
request a flow yields); reach for it directly only to change how one call is made, since this is
the one place that makes calls: ``perform`` (generation), ``score`` (reward models) and
``call_tool``, the first two through ``_retrying``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from ponder.backends.base import Backend
from ponder.errors import BackendError, BudgetExhausted, BudgetTooSmall, PonderError, ToolTimeout
from ponder.orchestrator.budget import Grant, TokenBudget
from ponder.orchestrator.policy import NO_LIMITS, RetryPolicy, RunLimits, retry_delay
from ponder.orchestrator.trace import Trace
from ponder.orchestrator.usage import Usage
from ponder.protocol.actions import ToolCall, ToolResult
from ponder.protocol.requests import (
    GenerationFailure,
    GenerationRequest,
    Result,
    RewardFailure,
    RewardRequest,
    RewardResult,
)
from ponder.protocol.tokens import bound_chat_tokens


class CallSettings(Protocol):
    """What the calls of a run take from the engine that makes them (``Orchestrator``)."""

    tool_timeout_s: float
    retry: RetryPolicy
    _semaphore: asyncio.Semaphore

    def backend_for(self, role: str) -> Backend: ...


T = TypeVar("T")
R = TypeVar("R", GenerationRequest, RewardRequest)


@dataclass
class RunCalls:
    """The calls of one run under ``orch``'s backends, retries, concurrency and tool timeout,
    and this run's ``limits``; ``usage``, ``trace`` and ``budget_hit`` are what they leave."""

    orch: CallSettings
    trace: Trace
    limits: RunLimits = NO_LIMITS
    usage: Usage = field(default_factory=Usage)
    budget: TokenBudget | None = None
    budget_hit: bool = False
    too_small: BudgetTooSmall | None = None
    """The refusal of a generation call the whole budget could never fit, before any call was
    granted: ``perform`` raises it (the run fails saying what one call needs, rather than answer
    empty) and nothing more is granted."""
    granted: int = 0
    """Reservations granted so far in this run."""

    def __post_init__(self) -> None:
        if self.limits.total_tokens is not None:
            self.budget = TokenBudget(self.limits.total_tokens)

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

        async def reserve() -> tuple[GenerationRequest, int] | BudgetExhausted:
            if self.budget is None:
                return request, 0
            once = await backend.prompt_billed_once(request)  # asked per attempt: it may change
            grant = self._reserve(
                lambda b: b.reserve(
                    prompt_tokens, p.n, p.max_tokens, prompt_once=once, min_n=request.min_n
                ),
                request.purpose,
                span,
            )
            if isinstance(grant, BudgetTooSmall) and not self.granted:
                self.too_small = self.too_small or grant  # the run's first call cannot fit
            if isinstance(grant, BudgetExhausted):
                return grant
            if (grant.n, grant.max_tokens) == (p.n, p.max_tokens):
                return request, grant.reserved
            self.budget_hit = True
            self.trace.record(
                "budget_cut",
                span,
                purpose=request.purpose,
                n=grant.n,
                asked_n=p.n,
                max_tokens=grant.max_tokens,
                asked_max_tokens=p.max_tokens,
            )
            return request.with_params(n=grant.n, max_tokens=grant.max_tokens), grant.reserved

        got = await self._retrying(backend.generate, reserve, request, span, "request")
        if isinstance(got, BaseException):
            if got is self.too_small:  # the run cannot make its first call: not an empty answer
                raise got
            return GenerationFailure(request, got)
        completion, sent, reserved = got
        used = completion.prompt_tokens + completion.completion_tokens
        if self.budget is not None:
            self.budget.settle(reserved, used)
        if sent.params.n < p.n:
            completion.asked_n = p.n
        per_call_prompt = completion.prompt_tokens // max(completion.calls, 1)
        longest = max((c.completion_tokens for c in completion.choices), default=0)
        self.usage.add(
            request.purpose,
            completion.prompt_tokens,
            completion.completion_tokens,
            completion.calls,
            completion.cached_prompt_tokens,
            context=per_call_prompt + longest,
            reasoning=completion.reasoning_tokens,
            role=request.role,
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
                    **({"reasoning": c.reasoning} if c.reasoning is not None else {}),
                    **({"reasoning_tokens": c.reasoning_tokens} if c.reasoning_tokens else {}),
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

        async def reserve() -> tuple[RewardRequest, int] | BudgetExhausted:
            if self.budget is None:
                return request, 0
            grant = self._reserve(lambda b: b.reserve(bound, 1, 0), request.purpose, span)
            return grant if isinstance(grant, BudgetExhausted) else (request, grant.reserved)

        got = await self._retrying(backend.reward, reserve, request, span, "reward_request")
        if isinstance(got, BaseException):
            return RewardFailure(request, got)
        reward, _, reserved = got
        if self.budget is not None:
            self.budget.settle(reserved, reward.prompt_tokens)
        self.usage.add(
            request.purpose,
            reward.prompt_tokens,
            0,
            1,
            context=reward.prompt_tokens,
            role=request.role,
        )
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
        self, take: Callable[[TokenBudget], Grant], purpose: str, span: str
    ) -> Grant | BudgetExhausted:
        """Reserve budget for a call (``take`` asks the run's budget): the grant, or the refusal.
        Once the run's first generation call was refused as ``too_small``, so is every call."""
        assert self.budget is not None
        try:
            if self.too_small is not None:  # the run is failing: no call after it
                raise self.too_small
            grant = take(self.budget)
        except BudgetExhausted as exc:
            self.budget_hit = True
            self.trace.record("budget_exhausted", span, purpose=purpose, reason=str(exc))
            return exc
        self.granted += 1
        return grant

    async def _retrying(
        self,
        call: Callable[[R], Awaitable[T]],
        reserve: Callable[[], Awaitable[tuple[R, int] | BudgetExhausted]],
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
            grant = await reserve()
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


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else ""
