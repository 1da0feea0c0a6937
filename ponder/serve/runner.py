"""Run the proxy with uvicorn: in the foreground (``serve``) or in a background thread.

Use ``ServerThread(config)`` as a context manager to host the proxy inside a Python process (tests,
benchmarks, notebooks); ``.base_url`` is where OpenAI clients point. Start-up: the server listens
while the backends start (``/ready`` 503 ``starting``), then waits for them and for the chains'
capability check, and stops with that error if either fails (a refused chain is one clear
``ConfigError``, not a traceback). Shutdown is graceful: ``ProxyServer`` gives in-flight runs and
pass-through requests ``shutdown_grace_s`` to finish while it still answers (``/ready`` 503
``draining``, new requests 503 ``shutting_down``), then cancels them so their clients are answered
(a JSON 503 ``shutting_down``, or an error event ending a stream), then stops accepting and
uvicorn closes the connections.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from ponder.backends.base import Backend
from ponder.backends.local.server import HttpAddress, free_port
from ponder.errors import PonderError
from ponder.serve.app import create_app
from ponder.serve.config import ServeConfig
from ponder.serve.telemetry import configure_tracing, replica_name

START_TIMEOUT_S = 120.0
ANSWER_AFTER_DRAIN_S = 5
"""How long uvicorn waits, after the drain, for handlers to write their 503s."""


class ProxyServer(uvicorn.Server):
    """uvicorn's server: ready once the proxy's backends have started (``ready``), stopping
    with their error (``serve`` raises it); draining the proxy's runs first when it shuts
    down."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app
        self.ready = False
        self.failure: BaseException | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        started = getattr(self.app.state, "backends_started", None)
        if started is None or self.should_exit:
            return
        try:
            await started()
        except Exception as exc:  # a backend did not start, or a chain was refused
            self.failure = exc
            self.should_exit = True
            return
        self.ready = True

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        await super().serve(sockets=sockets)
        if self.failure is not None:
            raise self.failure

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain = getattr(self.app.state, "drain", None)
        if drain is not None:  # still listening: /ready says draining, new requests 503
            await drain()
        for server in self.servers:  # then stop accepting
            server.close()
        await super().shutdown(sockets=sockets)


def proxy_server(
    config: ServeConfig,
    *,
    backend: Backend | None = None,
    port: int | None = None,
    log_level: str = "info",
) -> ProxyServer:
    app = create_app(config, backend=backend)
    return ProxyServer(uvicorn_config(config, app=app, port=port, log_level=log_level), app)


def uvicorn_config(
    config: ServeConfig,
    *,
    backend: Backend | None = None,
    port: int | None = None,
    log_level: str = "info",
    app: FastAPI | None = None,
) -> uvicorn.Config:
    return uvicorn.Config(
        app or create_app(config, backend=backend),
        host=config.host,
        port=config.port if port is None else port,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.shutdown_grace_s) + ANSWER_AFTER_DRAIN_S,
        timeout_keep_alive=30,
        limit_concurrency=None,
        server_header=False,
    )


def serve(config: ServeConfig, *, log_level: str = "info") -> None:
    """Serve in the foreground until SIGINT/SIGTERM (exporting traces over OTLP when the
    ``OTEL_*`` variables say so: ``ponder.serve.telemetry.configure_tracing``)."""
    configure_tracing(replica_name(config.telemetry))
    proxy_server(config, log_level=log_level).run()


class ServerThread(HttpAddress):
    """The proxy in a daemon thread with its own event loop, on ``port`` (default: a free one;
    the config's port is not used)."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        backend: Backend | None = None,
        port: int | None = None,
        log_level: str = "warning",
    ) -> None:
        self.port = port or free_port(config.host)
        self.host = config.host
        self.server = proxy_server(config, backend=backend, port=self.port, log_level=log_level)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ponder-serve", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # noqa: BLE001  (start() re-raises it)
            self.error = exc

    def start(self) -> ServerThread:
        """Start the server and wait until it is ready (its backends started, every chain
        passed the capability check); raises the ``PonderError`` that stopped it (e.g. the
        ``ConfigError`` refusing a chain), else a ``RuntimeError``."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.ready:
            if not self._thread.is_alive():
                if isinstance(self.error, PonderError):
                    raise self.error
                raise RuntimeError("ponder serve exited during start-up (see its log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ponder serve did not start within {START_TIMEOUT_S}s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
