"""One backend per distinct backend config, shared by every chain and role of one proxy process.

Use ``BackendPool`` wherever the proxy turns a ``BackendConfig`` into a ``Backend``: the upstream
(one per upstream model name) and each chain's role backends. Two chains, or two roles, whose
configs are equal (same kind, model, endpoint, slots, context, runtime, timeouts, ... : the whole
validated config, ``key``) get the same backend object, so two chains on the local model start
one llama-server, and an ``openai`` endpoint named twice shares one connection pool and one
``max_concurrency`` limit. Configs that differ in any field get their own backend.

A backend is built on its first ``acquire``, started at most once (``start``), and closed once,
when the last holder ``release``\\ s it or when the pool closes (``aclose``), whichever is first.
The pool is per process: replicas of the proxy each have their own (docs/scale.md).
"""

from __future__ import annotations

import asyncio
import json

from ponder.backends.base import Backend
from ponder.config import BackendConfig


def config_key(cfg: BackendConfig) -> str:
    """What makes two backend configs the same backend: every field, as canonical JSON."""
    return json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class BackendPool:
    """Backends by config key, reference-counted; each built, started and closed once."""

    def __init__(self) -> None:
        self._by_key: dict[str, Backend] = {}
        self._keys: dict[int, str] = {}
        self._holders: dict[str, int] = {}
        self._starts: dict[str, asyncio.Future[object]] = {}

    def acquire(self, cfg: BackendConfig) -> Backend:
        """The backend for ``cfg``: the pool's one for an equal config, else built now (not
        started: ``start`` or its first call starts it). Pair each with a ``release``."""
        key = config_key(cfg)
        backend = self._by_key.get(key)
        if backend is None:
            backend = cfg.build()
            self._by_key[key] = backend
            self._keys[id(backend)] = key
        self._holders[key] = self._holders.get(key, 0) + 1
        return backend

    async def start(self, backend: Backend) -> None:
        """Start ``backend`` once, however many holders ask (concurrent callers wait for the
        one start; a failed start is raised to each of them)."""
        key = self._keys.get(id(backend))
        if key is None:  # not the pool's
            await backend.start()
            return
        started = self._starts.get(key)
        if started is None:
            started = self._starts[key] = asyncio.ensure_future(backend.start())
        await asyncio.shield(started)

    async def release(self, backend: Backend) -> None:
        """One holder is done with ``backend``; the last one closes it."""
        key = self._keys.get(id(backend))
        if key is None:
            return
        left = self._holders.get(key, 0) - 1
        if left > 0:
            self._holders[key] = left
            return
        await self._close(key)

    async def aclose(self) -> None:
        """Close every backend still held, each once."""
        for key in list(self._by_key):
            await self._close(key)

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, backend: object) -> bool:
        return id(backend) in self._keys

    async def _close(self, key: str) -> None:
        backend = self._by_key.pop(key, None)
        self._holders.pop(key, None)
        started = self._starts.pop(key, None)
        if backend is None:
            return
        del self._keys[id(backend)]
        if started is not None and not started.done():
            started.cancel()
            await asyncio.gather(started, return_exceptions=True)
        await backend.aclose()
