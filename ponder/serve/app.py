"""The FastAPI app of ``ponder serve``: an OpenAI-compatible proxy that runs strategy chains.

Use ``create_app(ServeConfig(...))`` and serve it with any ASGI server (``ponder serve`` uses
uvicorn; ``ponder.serve.ServerThread`` runs it in a thread). Routes: ``POST /v1/chat/completions``,
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus). ``backend=`` replaces the
configured upstream with a ready ``Backend`` for chain runs (tests pass a ``FakeBackend``).
``GET|HEAD /health`` is liveness, ``GET|HEAD /ready`` readiness (for load balancers).

This file is the factory and the routes only: the shared state is in ``state.py``, the checks
every request passes in ``guards.py``, reading a chain request in ``chain_request.py``, running it
and answering in ``chain_run.py``, pass-through in ``passthrough.py``, and what operators watch
(spans, metrics) in ``telemetry.py`` and ``metrics.py``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ponder.backends.base import Backend
from ponder.secrets import redacting_logs
from ponder.serve.chain_request import resolve_chain
from ponder.serve.chain_run import run_chain
from ponder.serve.config import CHAIN_PREFIX, ServeConfig
from ponder.serve.errors import ApiError
from ponder.serve.guards import check_auth, check_limits, read_body
from ponder.serve.metrics import PASSTHROUGH, ProxyMetrics
from ponder.serve.parsing import parse_chat_request
from ponder.serve.passthrough import forward_chat
from ponder.serve.passthrough_run import pass_through
from ponder.serve.reasoning import without_history_thinking
from ponder.serve.replica import ReplicaHeader
from ponder.serve.state import ProxyState
from ponder.serve.telemetry import (
    CHAIN_SCOPE_KEY,
    ObserveMiddleware,
    explicit_replica,
    replica_name,
)

log = logging.getLogger("ponder.serve")


def create_app(config: ServeConfig, *, backend: Backend | None = None) -> FastAPI:
    holder: dict[str, ProxyState] = {}
    metrics = ProxyMetrics(replica_name(config.telemetry), config.chain_names())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ProxyState(config, backend, metrics)
        holder["state"] = state
        with redacting_logs(state.secrets):  # HTTP clients log each upstream URL they call
            started = False
            try:
                state.begin_start()  # backends start and chains are checked; /ready says when
                started = True
                yield
            finally:
                if started:
                    await state.drain(config.shutdown_grace_s)
                await state.http.aclose()
                await state.close_roles()
                if backend is None:
                    await state.upstream.aclose()
                await state.backends.aclose()  # each shared backend closes once

    app = FastAPI(
        title="ponder serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )

    async def drain() -> None:
        """Called by the server at SIGTERM/SIGINT, before it cancels request tasks: runs get
        ``shutdown_grace_s``, then are cancelled and their clients answered 503."""
        if "state" in holder:
            await holder["state"].drain(config.shutdown_grace_s)

    app.state.drain = drain
    app.add_middleware(ObserveMiddleware, metrics=metrics)
    if named := explicit_replica(config.telemetry):
        app.add_middleware(ReplicaHeader, replica=named)  # x-ponder-replica on every answer

    async def backends_started() -> None:
        """Returns once the backends have started and every chain passed the capability
        check (``ProxyState.begin_start``); raises what stopped them (``ProxyServer`` stops
        with it, so a refused chain is one clear error)."""
        await holder["state"].wait_started()

    app.state.backends_started = backends_started
    app.state.readiness = lambda: holder["state"].readiness() if "state" in holder else "starting"

    def st() -> ProxyState:
        return holder["state"]

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            exc.body(), status_code=exc.status, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = ApiError(
            exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None
        )
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> dict[str, Any]:
        """Liveness: 200 while the process serves (see ``/ready`` for readiness)."""
        s = st()
        return {
            "status": "ok",
            "ready": s.readiness() == "ready",
            "runs_in_flight": s.active_runs,
            "chains": config.chain_names(),
        }

    @app.api_route("/ready", methods=["GET", "HEAD"])
    async def ready() -> JSONResponse:
        """Readiness, for load balancers: 200 ``ready`` once the backends have started and
        every chain passed the capability check; 503 ``starting``, ``draining`` (shutting
        down) or ``failed``."""
        state = st().readiness()
        if state == "ready":
            return JSONResponse({"status": state})
        return JSONResponse({"status": state}, status_code=503, headers={"retry-after": "5"})

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        if not config.telemetry.metrics:
            raise ApiError(404, "metrics are off (telemetry.metrics: false)", code="not_found")
        check_auth(st().proxy_key, request)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        s = st()
        check_auth(s.proxy_key, request)
        names = [f"{CHAIN_PREFIX}{c}" for c in config.chain_names()]
        if s.upstream.default_model:
            names += [f"{CHAIN_PREFIX}{c}/{s.upstream.default_model}" for c in config.chain_names()]
            if s.upstream.base_url:
                names.append(s.upstream.default_model)
        now = int(time.time())
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": now, "owned_by": "ponder"} for n in names
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        s = st()
        await s.until_started()  # a request that comes while the backends start waits
        check_auth(s.proxy_key, request)
        body = await read_body(request, config.limits.max_body_bytes)
        req = parse_chat_request(body)
        req, body = without_history_thinking(req, body, config.reasoning)
        check_limits(config.limits, req)
        chain = resolve_chain(config, req)
        request.scope[CHAIN_SCOPE_KEY] = chain[0] if chain else PASSTHROUGH  # metric label
        if chain is None:
            return await pass_through(
                s, request, forward_chat(s.http, s.upstream, req, body, s.secrets)
            )
        name, spec, upstream_model = chain
        return await run_chain(s, request, req, name, spec, upstream_model)

    return app
