"""The FastAPI app of ``ponder serve``: an OpenAI-compatible proxy that runs strategy chains.

Use ``create_app(ServeConfig(...))`` and serve it with any ASGI server (``ponder serve`` uses
uvicorn; ``ponder.serve.ServerThread`` runs it in a thread). Routes: ``POST /v1/chat/completions``,
``GET /v1/models``, ``GET /health``. ``backend=`` replaces the configured upstream with a ready
``Backend`` for chain runs (tests pass a ``FakeBackend``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ponder.backends.base import Backend
from ponder.orchestrator.engine import RetryPolicy, RunLimits, RunResult
from ponder.orchestrator.session import Session
from ponder.orchestrator.trace import Trace
from ponder.protocol.actions import Task
from ponder.serve.config import CHAIN_PREFIX, ChainSpec, ServeConfig
from ponder.serve.errors import redact, shutting_down_error, to_api_error
from ponder.serve.passthrough import forward_chat
from ponder.serve.streaming import ProgressFeed, stream_chain
from ponder.serve.upstream import Upstream
from ponder.serve.wire import (
    ApiError,
    ChatRequest,
    chat_completion,
    check_tools,
    message_text,
    new_completion_id,
    parse_chat_request,
)

log = logging.getLogger("ponder.serve")
TRACE_HEADER = "x-ponder-trace-id"


class ProxyState:
    """What the app shares between requests: config, upstream, pass-through client, run count."""

    def __init__(self, config: ServeConfig, backend: Backend | None) -> None:
        self.config = config
        self.upstream = (
            Upstream(backend=backend) if backend is not None else Upstream(config.upstream)
        )
        self.proxy_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        if config.api_key_env and not self.proxy_key:
            from ponder.errors import ConfigError

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
        self.role_backends: dict[str, dict[str, Backend]] = {
            name: {role: cfg.build() for role, cfg in spec.roles.items()}
            for name, spec in config.chains.items()
        }
        # one limit per chain across all its requests (not one per request)
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
                await backend.start()

    async def close_roles(self) -> None:
        for roles in self.role_backends.values():
            for backend in roles.values():
                await backend.aclose()

    @property
    def secrets(self) -> list[str | None]:
        """Every key this proxy holds, scrubbed from error messages and written traces."""
        role_keys = [
            os.environ.get(env)
            for spec in self.config.chains.values()
            for cfg in spec.roles.values()
            if (env := getattr(cfg, "api_key_env", None))
        ]
        return [*self.upstream.secrets, self.proxy_key, *role_keys]


def create_app(config: ServeConfig, *, backend: Backend | None = None) -> FastAPI:
    holder: dict[str, ProxyState] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ProxyState(config, backend)
        holder["state"] = state
        started = False
        try:
            await state.upstream.start()
            await state.start_roles()
            log.info(
                "ponder serve: %d chain(s): %s", len(config.chains), ", ".join(config.chain_names())
            )
            started = True
            yield
        finally:
            if started:
                await _drain(state, config.shutdown_grace_s)
            await state.http.aclose()
            await state.close_roles()
            if backend is None:
                await state.upstream.aclose()

    app = FastAPI(
        title="ponder serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )

    async def drain() -> None:
        """Called by the server at SIGTERM/SIGINT, before it cancels request tasks: runs get
        ``shutdown_grace_s``, then are cancelled and their clients answered 503."""
        if "state" in holder:
            await _drain(holder["state"], config.shutdown_grace_s)

    app.state.drain = drain

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

    @app.get("/health")
    async def health() -> dict[str, Any]:
        s = st()
        return {"status": "ok", "runs_in_flight": s.active_runs, "chains": config.chain_names()}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        s = st()
        _check_auth(s, request)
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
        _check_auth(s, request)
        body = await _read_body(request, config.limits.max_body_bytes)
        req = parse_chat_request(body)
        _check_limits(config, req)
        chain = _resolve_chain(config, req)
        if chain is None:
            return await forward_chat(s.http, s.upstream, req, body, s.secrets)
        name, spec, upstream_model = chain
        return await _run_chain(s, request, req, name, spec, upstream_model)

    return app


def _check_auth(s: ProxyState, request: Request) -> None:
    if s.proxy_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), s.proxy_key.encode()):
        raise ApiError(
            401,
            "invalid or missing API key for this proxy (send 'Authorization: Bearer <key>')",
            type_="authentication_error",
            code="invalid_api_key",
        )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413,
            f"request body of {declared} bytes exceeds the limit of {limit} bytes",
            code="request_too_large",
        )
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise ApiError(
                413, f"request body exceeds the limit of {limit} bytes", code="request_too_large"
            )
        parts.append(part)
    return b"".join(parts)


def _check_limits(config: ServeConfig, req: ChatRequest) -> None:
    lim = config.limits
    if req.n > lim.max_n:
        raise ApiError(
            400,
            f"n={req.n} exceeds this proxy's limit of {lim.max_n}",
            param="n",
            code="n_too_large",
        )
    if req.max_tokens is not None and req.max_tokens > lim.max_tokens:
        raise ApiError(
            400,
            f"max_tokens={req.max_tokens} exceeds this proxy's limit of {lim.max_tokens}",
            param="max_tokens",
            code="max_tokens_too_large",
        )


def _resolve_chain(
    config: ServeConfig, req: ChatRequest
) -> tuple[str, ChainSpec, str | None] | None:
    """``(chain name, spec, upstream model)`` for a chain request, ``None`` for pass-through."""
    from_body = req.ponder.get("chain")
    if req.model.startswith(CHAIN_PREFIX):
        name, _, upstream_model = req.model[len(CHAIN_PREFIX) :].partition("/")
        if from_body is not None and from_body != name:
            raise ApiError(
                400, f"model names chain {name!r} but ponder.chain is {from_body!r}", param="model"
            )
    elif from_body is not None:
        name, upstream_model = str(from_body), req.model
    else:
        return None
    spec = config.chains.get(name)
    if spec is None:
        valid = ", ".join(config.chain_names()) or "(none configured)"
        raise ApiError(
            400,
            f"unknown chain {name!r}; valid chains: {valid} "
            "(use model 'ponder:<chain>' or 'ponder:<chain>/<upstream model>')",
            param="model",
            code="unknown_chain",
        )
    return name, spec, upstream_model or None


def _is_agent_turn(req: ChatRequest) -> bool:
    """Tools offered, or tool turns in the transcript: the chain must take them as they are."""
    return bool(req.raw.get("tools")) or any(
        m["role"] == "tool" or (m["role"] == "assistant" and m.get("tool_calls"))
        for m in req.messages
    )


def _task(req: ChatRequest) -> Task:
    messages = req.messages
    system = (
        "\n\n".join(message_text(m) for m in messages if m["role"] in ("system", "developer"))
        or None
    )
    turns = [m for m in messages if m["role"] not in ("system", "developer")]
    if _is_agent_turn(req):
        check_tools(req.raw)
        if not turns or turns[-1]["role"] not in ("user", "tool"):
            raise ApiError(
                400,
                "a chain request with tools must end with a user or tool message",
                param="messages",
            )
        users = [m for m in turns if m["role"] == "user"]
        if not users:
            raise ApiError(400, "a chain request needs a user message", param="messages")
        return Task(
            question=message_text(users[-1]),
            system=system,
            messages=tuple(turns),
            tools=tuple(req.raw.get("tools") or ()),
            tool_choice=req.raw.get("tool_choice"),
        )
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "a chain request must end with a user message", param="messages")
    question = message_text(turns[-1])
    if len(turns) > 1:
        history = "\n\n".join(f"{m['role'].capitalize()}: {message_text(m)}" for m in turns[:-1])
        question = f"Conversation so far:\n{history}\n\nUser: {question}"
    if not question.strip():
        raise ApiError(400, "the last user message is empty", param="messages")
    return Task(question=question, system=system)


def _check_takes_tools(name: str, spec: ChainSpec, task: Task) -> None:
    """A chain that cannot take the client's tools is a 400 naming it and why, never a silent
    drop of the tools."""
    if not task.is_agent_turn:
        return
    why = spec.strategy.tools_unsupported()
    if why is not None:
        raise ApiError(
            400,
            f"chain {name!r} cannot take tools: {why}; use a chain of cot or sample/adaptive "
            "over cot with majority voting, or send the request without a chain (pass-through)",
            param="tools",
            code="tools_unsupported",
        )


def _budget(spec: ChainSpec, req: ChatRequest) -> int | None:
    """Each run's budget. A chain budget bounds one *request*: its ``n`` runs share it equally
    (``budget // n`` each), so a client's ``n`` never multiplies what the operator allowed."""
    asked = req.ponder.get("budget_tokens")
    cap = spec.budget.total_tokens
    if asked is not None:
        if not isinstance(asked, int) or isinstance(asked, bool) or asked <= 0:
            raise ApiError(
                400, "ponder.budget_tokens must be a positive integer", param="ponder.budget_tokens"
            )
        cap = asked if cap is None else min(asked, cap)
    if cap is None:
        return None
    share = cap // req.n
    if share < 1:
        raise ApiError(
            400,
            f"the chain's token budget of {cap} cannot be shared by n={req.n} runs",
            param="n",
            code="budget_too_small",
        )
    return share


async def _run_chain(
    s: ProxyState,
    request: Request,
    req: ChatRequest,
    name: str,
    spec: ChainSpec,
    upstream_model: str | None,
) -> Response:
    cfg = s.config
    task = _task(req)
    _check_takes_tools(name, spec, task)
    budget = _budget(spec, req)
    limit = cfg.limits.max_concurrent_runs
    if req.n > limit:
        raise ApiError(
            400,
            f"n={req.n} runs exceed this proxy's max_concurrent_runs of {limit}",
            param="n",
            code="n_too_large",
        )
    if s.shutting_down:
        raise shutting_down_error()
    if s.active_runs + req.n > limit:
        raise ApiError(
            429,
            f"this proxy is running {s.active_runs} chain runs (limit {limit}); retry later",
            type_="rate_limit_error",
            code="too_many_runs",
            headers={"retry-after": "1"},
        )
    s.active_runs += req.n  # taken now, so concurrent requests see it; released exactly once
    held = [True]

    def release() -> None:
        if held[0]:
            held[0] = False
            s.active_runs -= req.n

    limits = RunLimits(total_tokens=budget, timeout_s=spec.timeout_s)
    feed = ProgressFeed() if req.stream else None
    traces = [Trace(listener=feed) for _ in range(req.n)]
    trace_ids = ",".join(t.run_id for t in traces)
    completion_id = new_completion_id()

    async def one(session: Session, trace: Trace) -> RunResult:
        try:
            return await session.run(spec.strategy, task, trace=trace, limits=limits)
        finally:
            _write_trace(cfg.trace_dir, trace, s.secrets)

    async def runs() -> list[RunResult]:
        try:
            async with s.upstream.lease(upstream_model) as backend:
                session = s.session_for(name, spec, backend)
                t = asyncio.ensure_future(asyncio.gather(*(one(session, tr) for tr in traces)))
                s.tasks.add(t)
                try:
                    return await t
                finally:
                    s.tasks.discard(t)
        finally:
            release()

    if req.stream and feed is not None:
        gen = _releasing(
            release,
            stream_chain(
                completion_id=completion_id,
                model=req.model,
                chain=name,
                runs=runs,
                feed=feed,
                keepalive_s=cfg.keepalive_s,
                secrets=s.secrets,
                include_usage=req.include_usage,
            ),
        )
        return StreamingResponse(
            gen,
            media_type="text/event-stream",
            headers={TRACE_HEADER: trace_ids, "cache-control": "no-cache"},
        )
    work = asyncio.ensure_future(runs())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler was cancelled
        work.cancel()
        gone.cancel()
        await asyncio.gather(work, gone, return_exceptions=True)
        raise
    gone.cancel()
    if work not in done:  # the client left: stop spending upstream tokens on its answer
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        log.info("ponder serve: client left; cancelled run(s) %s", trace_ids)
        return Response(status_code=499)
    try:
        results = work.result()
    except asyncio.CancelledError:  # the server is stopping: the drain cancelled the runs
        err = shutting_down_error()
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
    except Exception as exc:
        err = to_api_error(exc, s.secrets)
        return JSONResponse(
            err.body(), status_code=err.status, headers={TRACE_HEADER: trace_ids, **err.headers}
        )
    body = chat_completion(completion_id, req.model, name, results)
    return JSONResponse(body, headers={TRACE_HEADER: trace_ids})


async def _releasing(release: Any, gen: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for part in gen:
            yield part
    finally:
        release()


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _write_trace(trace_dir: str | None, trace: Trace, secrets: list[str | None]) -> None:
    if not trace_dir:
        return
    path = Path(trace_dir) / f"{trace.run_id}.jsonl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(redact(trace.to_jsonl(), secrets), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not write trace %s: %s", trace.run_id, exc)


async def _drain(s: ProxyState, grace_s: float) -> None:
    """Let in-flight runs finish for ``grace_s`` seconds, then cancel the rest (their clients
    get a 503 ``shutting_down``, or an error event on a stream). Logs one line."""
    s.shutting_down = True
    pending = set(s.tasks)
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
