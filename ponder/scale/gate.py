"""A cluster-wide cap on requests in flight to one endpoint, with a shared pause on 429/503.

Use it when many Ray workers call one server (a vLLM fleet behind one URL): ``EndpointGate`` is an
async Ray actor, named after the endpoint's public URL in the ``ponder`` namespace, made once by
the driver (``gate_for``); each worker wraps the backend that calls that URL in a
``GatedBackend``, which takes a permit from the gate before every generation and gives it back
after. So ``cap`` calls at most are in flight from the whole cluster, however many workers.

Retrying stays the orchestrator's (``RunCalls``: jittered backoff, at least the upstream's
``Retry-After``); the gate only keeps the *other* workers from piling on: a 429 or 503 a worker
sees pauses new permits for everyone for its ``Retry-After`` (else a backoff of 0.5 s doubling to
8 s, reset by a success). A permit is a lease: one whose worker died is taken back after
``lease_s`` (the backend's timeout and a margin), so a killed worker cannot shrink the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any

from ponder.backends.base import Backend, Capabilities
from ponder.errors import BackendError
from ponder.protocol.requests import Completion, GenerationRequest, Reward, RewardRequest

NAMESPACE = "ponder"
PAUSE_ON = (429, 503)
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 8.0


class EndpointGate:
    """The gate's state (a Ray actor class; also usable in-process for tests): at most ``cap``
    leases out, none granted while paused."""

    def __init__(self, cap: int, lease_s: float = 630.0) -> None:
        self.cap = max(1, cap)
        self.lease_s = lease_s
        self.leases: dict[int, float] = {}  # lease id -> expiry (monotonic)
        self.paused_until = 0.0
        self.pause_s = 0.0
        self.peak = 0
        self.granted = 0
        self._ids = itertools.count(1)
        self._changed: asyncio.Condition | None = None

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _expire(self, now: float) -> None:
        for lease, until in list(self.leases.items()):
            if until <= now:
                del self.leases[lease]

    async def acquire(self) -> int:
        """Wait for a permit; its lease id (give it to ``release``)."""
        cond = self._cond()
        async with cond:
            while True:
                now = time.monotonic()
                self._expire(now)
                wait = self.paused_until - now
                if wait <= 0 and len(self.leases) < self.cap:
                    lease = next(self._ids)
                    self.leases[lease] = now + self.lease_s
                    self.granted += 1
                    self.peak = max(self.peak, len(self.leases))
                    return lease
                timeout = wait if wait > 0 else min(self.leases.values()) - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cond.wait(), timeout=max(0.01, timeout))

    async def release(
        self, lease: int, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        """Give the permit back; ``status`` 429/503 pauses every worker (see the module doc)."""
        cond = self._cond()
        async with cond:
            self.leases.pop(lease, None)
            if status in PAUSE_ON:
                self.pause_s = min(MAX_PAUSE_S, self.pause_s * 2 or FIRST_PAUSE_S)
                pause = retry_after_s if retry_after_s is not None else self.pause_s
                self.paused_until = max(self.paused_until, time.monotonic() + pause)
            elif status is None:
                self.pause_s = 0.0
            cond.notify_all()

    async def stats(self) -> dict[str, Any]:
        return {
            "cap": self.cap,
            "in_flight": len(self.leases),
            "peak": self.peak,
            "granted": self.granted,
        }


def gate_name(public_url: str) -> str:
    return f"ponder-gate:{public_url}"


def gate_for(ray: Any, public_url: str, cap: int, lease_s: float) -> Any:
    """The gate of ``public_url`` (made here if no run made it yet; an existing one keeps its
    cap). The driver calls it, so the gate lives as long as the driver."""
    actor = ray.remote(num_cpus=0, max_concurrency=10_000)(EndpointGate)
    return actor.options(
        name=gate_name(public_url), namespace=NAMESPACE, get_if_exists=True, lifetime=None
    ).remote(cap, lease_s)


class GatedBackend(Backend):
    """``inner`` with every generation (and reward) call behind the cluster's ``gate``."""

    def __init__(self, inner: Backend, gate: Any) -> None:
        self.inner = inner
        self.gate = gate
        self.name = inner.name

    async def _through(self, call: Any) -> Any:
        lease = await self.gate.acquire.remote()
        status: int | None = None
        retry_after: float | None = None
        try:
            return await call()
        except BackendError as exc:
            status, retry_after = exc.status or -1, exc.retry_after_s
            raise
        except BaseException:
            status = -1
            raise
        finally:
            self.gate.release.remote(lease, status, retry_after)  # not awaited: no extra wait

    async def generate(self, request: GenerationRequest) -> Completion:
        result: Completion = await self._through(lambda: self.inner.generate(request))
        return result

    async def reward(self, request: RewardRequest) -> Reward:
        result: Reward = await self._through(lambda: self.inner.reward(request))
        return result

    async def count_tokens(self, text: str) -> int:
        return await self.inner.count_tokens(text)

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return await self.inner.count_prompt_tokens(request)

    async def prompt_billed_once(self, request: GenerationRequest) -> bool:
        return await self.inner.prompt_billed_once(request)

    async def capabilities(self) -> Capabilities:
        return await self.inner.capabilities()

    def describe(self) -> dict[str, object]:
        return self.inner.describe()

    async def start(self) -> object:
        return await self.inner.start()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:  # anything else the inner backend offers
        return getattr(self.inner, name)
