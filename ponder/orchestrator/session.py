"""A long-lived session: backends by role, started and closed once, one concurrency limit and
one retry policy shared by every run; per-run limits passed to ``run``.

Use a ``Session`` whenever more than one run shares backends (an evaluation, a proxy, a
notebook)::

    async with Session.from_config(ChainConfig.load("chain.yaml")) as session:
        a = await session.run(strategy, "What is 17 * 23?")
        b = await session.run(strategy, task, limits=RunLimits(total_tokens=4000, timeout_s=60))

``ponder.arun``, ``ponder eval`` and ``ponder serve`` all run through one. ``using(default=b)``
gives a view with another default backend that shares the session's limit, retries and roles
(the proxy serves each upstream model name this way) and owns nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Protocol

from ponder.backends.base import Backend
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.policy import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RETRY,
    DEFAULT_TOOL_TIMEOUT_S,
    NO_LIMITS,
    RetryPolicy,
    RunLimits,
)


class _Retry(Protocol):
    def policy(self) -> RetryPolicy: ...


class SessionConfig(Protocol):
    """What a session is built from: ``ponder.config.ChainConfig`` (and the proxy's chains)."""

    max_concurrency: int
    tool_timeout_s: float

    @property
    def retry(self) -> _Retry: ...

    def build_backends(self) -> dict[str, Backend]: ...

    def limits(self) -> RunLimits: ...


class Session(Orchestrator):
    """An ``Orchestrator`` that owns its backends' lifetime (an async context manager).

    Entering starts every backend once (slow set-up happens here, not in a run's wall time);
    leaving closes the backends it owns (``owns_backends``, true unless they were given by a
    caller who closes them). ``limits`` are the default ``RunLimits`` of each run."""

    def __init__(
        self,
        backends: Backend | Mapping[str, Backend],
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy = DEFAULT_RETRY,
        limits: RunLimits = NO_LIMITS,
        owns_backends: bool = True,
        semaphore: asyncio.Semaphore | None = None,
        tool_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    ) -> None:
        super().__init__(
            backends,
            budget_tokens=limits.total_tokens,
            timeout_s=limits.timeout_s,
            max_concurrency=max_concurrency,
            retry=retry,
            semaphore=semaphore,
            tool_timeout_s=tool_timeout_s,
        )
        self.limits = limits  # all of them, the thinking budget too
        self.owns_backends = owns_backends
        self._started = False

    @classmethod
    def from_config(
        cls, config: SessionConfig, backends: Mapping[str, Backend] | None = None
    ) -> Session:
        """The session for a chain: its backends (built here unless ``backends`` are given, then
        the caller closes them), its ``max_concurrency``, ``retry`` and default limits."""
        return cls(
            dict(backends) if backends is not None else config.build_backends(),
            max_concurrency=config.max_concurrency,
            retry=config.retry.policy(),
            limits=config.limits(),
            owns_backends=backends is None,
            tool_timeout_s=config.tool_timeout_s,
        )

    def using(self, **backends: Backend) -> Session:
        """A view of this session with some roles served by other backends (``default=...``):
        it shares the concurrency limit, retries and limits, and closes nothing."""
        view = Session(
            {**self.backends, **backends},
            max_concurrency=self.max_concurrency,
            retry=self.retry,
            limits=self.limits,
            owns_backends=False,
            semaphore=self._semaphore,
            tool_timeout_s=self.tool_timeout_s,
        )
        view._started = True
        return view

    async def start(self) -> Session:
        if not self._started:
            self._started = True
            for b in _distinct(self.backends.values()):
                await b.start()
        return self

    async def aclose(self) -> None:
        if self.owns_backends:
            for b in _distinct(self.backends.values()):
                await b.aclose()

    async def __aenter__(self) -> Session:
        try:
            return await self.start()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _distinct(backends: Iterable[Backend]) -> list[Backend]:
    """Each backend once, though several roles may share one."""
    out: list[Backend] = []
    for b in backends:
        if not any(b is o for o in out):
            out.append(b)
    return out
