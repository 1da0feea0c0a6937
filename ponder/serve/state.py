"""What the proxy shares between requests, and how it drains at shutdown.

Use ``ProxyState`` for anything that outlives one request: the config, the upstream, the
pass-through HTTP client, the proxy's key, the per-chain role backends and concurrency limits, the
count of chain runs in flight and their tasks. The app builds one in its lifespan; ``drain`` lets
in-flight runs finish (up to a grace period) before the server closes. All backends (upstream and
roles) come from one ``BackendPool``: one backend per distinct config in the process.

None of it ties a client to this process: every request carries its whole conversation, so any
replica can answer any request. What is per replica (limits, metrics, traces, caches) is listed
in ``ponder.serve.replica``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import httpx

from ponder.backends.base import Backend
from ponder.errors import ConfigError
from ponder.orchestrator.capabilities import missing_capabilities
from ponder.orchestrator.engine import RetryPolicy
from ponder.orchestrator.session import Session
from ponder.secrets import url_secrets
from ponder.serve.backend_pool import BackendPool
from ponder.serve.config import ChainSpec, ServeConfig
from ponder.serve.errors import ApiError, to_api_error
from ponder.serve.metrics import ProxyMetrics
from ponder.serve.telemetry import replica_name, trace_dir
from ponder.serve.trace_files import TraceFiles
from ponder.serve.upstream import Upstream

log = logging.getLogger("ponder.serve")


class ProxyState:
    """What the app shares between requests: config, upstream, pass-through client, run count."""

    def __init__(
        self, config: ServeConfig, backend: Backend | None, metrics: ProxyMetrics | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics or ProxyMetrics(replica_name(config.telemetry))
        self.trace_dir = trace_dir(config.trace_dir, config.telemetry)
        """Where this replica writes run traces (``trace_dir``, per replica when named)."""
        self.trace_files = TraceFiles(
            self.trace_dir, int(config.trace_max_mb * 1_000_000), config.trace_max_files
        )
        """Run traces in ``trace_dir``, the oldest rotated out past ``trace_max_*``."""
        self.backends = BackendPool()
        """One backend per distinct backend config, shared by all chains and roles."""
        self.upstream = (
            Upstream(backend=backend, pool=self.backends)
            if backend is not None
            else Upstream(config.upstream, pool=self.backends)
        )
        self.proxy_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if config.api_key_env and not self.proxy_key:
            raise ConfigError(
                "api_key_env", f"environment variable {config.api_key_env} is not set"
            )
        timeout = getattr(config.upstream, "timeout_s", 600.0)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self.active_runs = 0
        self.tasks: set[asyncio.Future[Any]] = set()
        self.shutting_down = False
        self.starting: asyncio.Future[None] | None = None
        """The backends' start and the chains' capability check (``begin_start``)."""
        self.role_backends: dict[str, dict[str, Backend]] = {
            name: {role: self.backends.acquire(cfg) for role, cfg in spec.roles.items()}
            for name, spec in config.chains.items()
        }
        # one limit per chain across all its requests (not one per request), per replica
        self.semaphores = {
            name: asyncio.Semaphore(spec.max_concurrency) for name, spec in config.chains.items()
        }

    def retry_for(self, spec: ChainSpec) -> RetryPolicy:
        """The chain's own ``retry``, else the serve file's ``retry``, else the defaults."""
        if "retry" in spec.model_fields_set or self.config.retry is None:
            return spec.retry.policy()
        return self.config.retry.policy()

    def session_for(self, chain: str, spec: ChainSpec, default: Backend) -> Session:
        """A session for one request to ``chain``: the chain's role backends (started and closed
        by the proxy), the upstream as default, and the chain's shared concurrency limit."""
        return Session(
            {**self.role_backends.get(chain, {}), "default": default},
            max_concurrency=spec.max_concurrency,
            retry=self.retry_for(spec),
            limits=spec.limits(),
            owns_backends=False,
            semaphore=self.semaphores[chain],
            tool_timeout_s=spec.tool_timeout_s,
        )

    async def start_roles(self) -> None:
        for roles in self.role_backends.values():
            for backend in roles.values():
                await self.backends.start(backend)  # a shared one starts once

    async def close_roles(self) -> None:
        """Give back the role backends; each shared one closes once, with its last holder."""
        roles, self.role_backends = self.role_backends, {}
        for by_role in roles.values():
            for backend in by_role.values():
                await self.backends.release(backend)

    def begin_start(self) -> None:
        """Start the upstream and the role backends and check every chain against them,
        in the background: the server listens meanwhile (``/health`` 200, ``/ready`` 503
        ``starting``; chat requests wait for it). ``ProxyServer`` waits for it and stops with
        its error (a chain its backends cannot run: ``ConfigError``)."""
        self.starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        await self.upstream.start()
        await self.start_roles()
        await self.check_capabilities()
        chains = self.config.chain_names()
        log.info("ponder serve: ready: %d chain(s): %s", len(chains), ", ".join(chains))

    async def wait_started(self) -> None:
        """Returns once the backends have started and every chain passed the check; raises
        what stopped them."""
        if self.starting is not None:
            await asyncio.shield(self.starting)

    async def until_started(self) -> None:
        """For a request: wait while the backends start; a failed start is a JSON 503
        ``not_ready`` (a drain is left to the route: its 503 ``shutting_down``)."""
        if self.starting is not None and not self.starting.done():
            await asyncio.wait({self.starting})
        if self.readiness() == "failed":
            raise ApiError(
                503,
                "this proxy's backends did not start; see its log",
                type_="server_error",
                code="not_ready",
                headers={"retry-after": "5"},
            )

    def readiness(self) -> str:
        """``ready``, ``starting`` (backends starting), ``draining`` (shutting down) or
        ``failed`` (a backend did not start, or a chain was refused)."""
        if self.shutting_down:
            return "draining"
        if self.starting is None or not self.starting.done():
            return "starting"
        if self.starting.cancelled() or self.starting.exception() is not None:
            return "failed"
        return "ready"

    async def check_capabilities(self) -> None:
        """The one startup capability check (``ponder.orchestrator.capabilities``) for every
        chain on the backends that will serve it (its roles, the upstream's default model as
        ``default``): a chain whose strategies need a capability they lack is refused with a
        ``ConfigError`` naming the chain, the strategy, the role and the capability."""
        default = await self.upstream.backend_for(None)
        refused = []
        for name, spec in sorted(self.config.chains.items()):
            backends = {**self.role_backends.get(name, {}), "default": default}
            missing = await missing_capabilities(spec.strategy, backends, spec.thinking_limit())
            if missing:
                why = "; ".join(m.message() for m in missing)
                refused.append((f"chains.{name}", f"chain {name!r} cannot run here: {why}"))
        if len(refused) == 1:
            raise ConfigError(*refused[0])
        if refused:
            raise ConfigError("chains", " | ".join(f"{f}: {r}" for f, r in refused))

    @property
    def secrets(self) -> list[str | None]:
        """Every key this proxy holds, scrubbed from error messages and written traces."""
        role_keys = [
            os.environ.get(env)
            for spec in self.config.chains.values()
            for cfg in spec.roles.values()
            if (env := getattr(cfg, "api_key_env", None))
        ]
        role_urls = [s for u in self._role_urls() for s in url_secrets(u)]
        return [*self.upstream.secrets, self.proxy_key, *role_keys, *role_urls]

    def _role_urls(self) -> list[str]:
        return [
            url
            for spec in self.config.chains.values()
            for cfg in spec.roles.values()
            for attr in ("base_url", "tokenize_url", "apply_template_url", "url")
            if isinstance(url := getattr(cfg, attr, None), str) and url
        ]

    @property
    def addresses(self) -> list[str]:
        """Every backend URL this proxy calls: internal addresses no client is shown."""
        return [*self.upstream.addresses, *self._role_urls()]

    def api_error(self, exc: BaseException) -> ApiError:
        """What a client is answered for a chain run's failure (no key, no internal address)."""
        return to_api_error(exc, self.secrets, self.addresses)

    async def drain(self, grace_s: float) -> None:
        """Let in-flight runs finish for ``grace_s`` seconds, then cancel the rest (their clients
        get a 503 ``shutting_down``, or an error event on a stream). Logs one line."""
        self.shutting_down = True
        if self.starting is not None and not self.starting.done():
            self.starting.cancel()
            await asyncio.gather(self.starting, return_exceptions=True)
        pending = set(self.tasks)
        if not pending:
            return
        log.info("ponder serve: waiting up to %.0fs for %d run(s)", grace_s, len(pending))
        _, still = await asyncio.wait(pending, timeout=grace_s) if grace_s else (set(), pending)
        for t in still:
            t.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
            log.warning(
                "ponder serve: shutting down: cancelled %d run(s) still going after %.0fs "
                "(answered 503 shutting_down)",
                len(still),
                grace_s,
            )
