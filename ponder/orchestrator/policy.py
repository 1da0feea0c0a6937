"""The rules a run is held to, as plain data: its limits and the retry policy.

Use ``RunLimits`` to cap one run (tokens, wall clock) and ``RetryPolicy`` to say how an engine
retries a backend's retryable errors; ``retry_delay`` is the one rule for how long a retry waits.
Nothing here performs a call: the engine (``ponder.orchestrator.engine``) reads these.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ponder.errors import ConfigError
from ponder.protocol.thinking_budget import ThinkingBudget

DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_TOOL_TIMEOUT_S = 30.0


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


@dataclass(frozen=True)
class RunLimits:
    """Per-run limits, passed to ``run`` (like pydantic-ai's ``UsageLimits``): a hard cap on
    prompt + completion tokens of every call in the run, a wall-clock timeout (a
    ``RunTimeout``), and the thinking budget of each call (``ponder.orchestrator.thinking_bound``).
    ``None`` means no limit."""

    total_tokens: int | None = None
    timeout_s: float | None = None
    thinking: ThinkingBudget | None = None

    def __post_init__(self) -> None:
        if self.total_tokens is not None and self.total_tokens <= 0:
            raise ConfigError("budget.total_tokens", f"must be positive, got {self.total_tokens}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError("timeout_s", f"must be positive, got {self.timeout_s}")


NO_LIMITS = RunLimits()
