"""The proxy's upstream: backends for chain runs (one per upstream model name) and the raw HTTP
target for pass-through.

An ``openai`` upstream gets one ``OpenAICompatibleBackend`` per model a client names
(``ponder:cot/gpt-x`` runs the chain against ``gpt-x``); a ``local`` upstream starts the embedded
llama-server once and serves every name with it; any other backend kind (or an injected
``Backend``, as tests do) serves chains only. Everything is built inside the server's event loop.
The backends come from the proxy's ``BackendPool``, so a chain role configured exactly as the
upstream (say both ``{kind: local}``) shares its backend instead of starting a second one.

At most ``MAX_UPSTREAM_MODELS`` model backends are kept: a new name evicts the least recently
used one, which is closed once the runs that hold it (``lease``) end, so no client can lock
others out of new model names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from ponder.backends.base import Backend
from ponder.backends.openai_compat import split_base_url
from ponder.config import BackendConfig, LocalBackendConfig, OpenAIBackendConfig
from ponder.secrets import url_secrets, without_userinfo
from ponder.serve.backend_pool import BackendPool

MAX_UPSTREAM_MODELS = 32


class Upstream:
    def __init__(
        self,
        config: BackendConfig | None = None,
        backend: Backend | None = None,
        pool: BackendPool | None = None,
    ) -> None:
        if (config is None) == (backend is None):
            raise ValueError("give exactly one of config or backend")
        self.config = config
        self.pool = pool if pool is not None else BackendPool()
        """Where model backends come from (and go back to): the proxy's shared pool."""
        self._fixed = backend
        self._by_model: OrderedDict[str, Backend] = OrderedDict()
        self._users: dict[int, int] = {}
        self._evicted: list[Backend] = []
        self._lock = asyncio.Lock()
        self.base_url: str | None = None
        """Where pass-through sends requests (``endpoint``), without any ``user:password@``."""
        self.api_key: str | None = None
        self.url_secrets: list[str] = []
        self.default_model: str | None = None
        if isinstance(config, OpenAIBackendConfig):
            url = config.base_url or os.environ.get("OPENAI_BASE_URL") or ""
            self.url_secrets = [
                s
                for u in (url, config.tokenize_url, config.apply_template_url)
                for s in url_secrets(u)
            ]
            if url:
                split_base_url(url)  # warns, once, of credentials in the URL that are not sent
            self.base_url = without_userinfo(url).rstrip("/") or None
            self.api_key = os.environ.get(config.api_key_env)
            self.default_model = config.model or os.environ.get("PONDER_MODEL")
        elif isinstance(config, LocalBackendConfig):
            self.default_model = "local"

    @property
    def secrets(self) -> list[str | None]:
        return [self.api_key, *self.url_secrets]

    @property
    def addresses(self) -> list[str]:
        """The upstream's URLs (internal addresses a client must not be shown)."""
        cfg = self.config
        urls = [self.base_url]
        if isinstance(cfg, OpenAIBackendConfig):
            urls += [cfg.base_url, cfg.tokenize_url, cfg.apply_template_url]
        return [u for u in urls if u]

    def endpoint(self, path: str) -> str:
        """``base_url`` + ``path`` (e.g. ``/chat/completions``), its query kept after the path."""
        assert self.base_url is not None
        parts = urlsplit(self.base_url)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, fragment=""))

    async def start(self) -> None:
        """Start what needs starting (the local llama-server) so the first request is not slow."""
        if self._fixed is not None:
            await self._fixed.start()
            return
        if isinstance(self.config, LocalBackendConfig):
            backend = await self.backend_for(None)
            await self.pool.start(backend)
            server = getattr(backend, "server", None)
            if server is not None:
                self.base_url = server.base_url

    @contextlib.asynccontextmanager
    async def lease(self, model: str | None) -> AsyncIterator[Backend]:
        """The backend for ``model``, held for the block (an evicted one closes after it)."""
        backend = await self.backend_for(model)
        self._users[id(backend)] = self._users.get(id(backend), 0) + 1
        try:
            yield backend
        finally:
            left = self._users[id(backend)] - 1
            if left:
                self._users[id(backend)] = left
            else:
                del self._users[id(backend)]
                if backend in self._evicted:
                    self._evicted.remove(backend)
                    await self.pool.release(backend)

    async def backend_for(self, model: str | None) -> Backend:
        if self._fixed is not None:
            return self._fixed
        assert self.config is not None
        is_openai = isinstance(self.config, OpenAIBackendConfig)
        key = (model or self.default_model or "") if is_openai else ""
        async with self._lock:
            backend = self._by_model.get(key)
            if backend is not None:
                self._by_model.move_to_end(key)
                return backend
            while len(self._by_model) >= MAX_UPSTREAM_MODELS:
                _, old = self._by_model.popitem(last=False)
                if self._users.get(id(old)):
                    self._evicted.append(old)  # closed when its last run ends
                else:
                    await self.pool.release(old)
            cfg = self.config
            if isinstance(cfg, OpenAIBackendConfig) and key:
                cfg = cfg.model_copy(update={"model": key})
            backend = self.pool.acquire(cfg)
            self._by_model[key] = backend
        return backend

    async def aclose(self) -> None:
        owned = [*self._by_model.values(), *self._evicted]
        self._by_model.clear()
        self._evicted = []
        for b in owned:
            await self.pool.release(b)
