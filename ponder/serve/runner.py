"""Run the proxy with uvicorn: in the foreground (``serve``) or in a background thread.

Use ``ServerThread(config)`` as a context manager to host the proxy inside a Python process (tests,
benchmarks, notebooks); ``.base_url`` is where OpenAI clients point. Shutdown is graceful: uvicorn
stops accepting, in-flight requests get ``shutdown_grace_s`` to finish, then are cancelled.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from ponder.orchestrator.backends.base import Backend
from ponder.orchestrator.backends.local.server import free_port
from ponder.serve.app import create_app
from ponder.serve.config import ServeConfig

START_TIMEOUT_S = 120.0


def uvicorn_config(
    config: ServeConfig,
    *,
    backend: Backend | None = None,
    port: int | None = None,
    log_level: str = "info",
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config, backend=backend),
        host=config.host,
        port=config.port if port is None else port,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.shutdown_grace_s) or None,
        timeout_keep_alive=30,
        limit_concurrency=None,
        server_header=False,
    )


def serve(config: ServeConfig, *, log_level: str = "info") -> None:
    """Serve in the foreground until SIGINT/SIGTERM."""
    uvicorn.Server(uvicorn_config(config, log_level=log_level)).run()


class ServerThread:
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
        self.server = uvicorn.Server(
            uvicorn_config(config, backend=backend, port=self.port, log_level=log_level)
        )
        self._thread = threading.Thread(target=self.server.run, name="ponder-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive():
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
