"""Run a chain request and answer it: admit its ``n`` runs, run them, reply as JSON or a stream.

Use ``run_chain`` from the chat route once the request is known to name a chain. It counts the
runs against ``max_concurrent_runs`` (429 when full, 503 while shutting down), runs them on the
upstream the request names, writes each run's trace (keys redacted) when ``trace_dir`` is set,
and answers with a ``chat.completion`` (or its SSE stream), the run ids in ``x-ponder-trace-id``.
A client that leaves a non-streaming request cancels its runs (answered 499).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from ponder.orchestrator.engine import RunLimits, RunResult
from ponder.orchestrator.session import Session
from ponder.orchestrator.telemetry import set_scope
from ponder.orchestrator.trace import Trace
from ponder.serve.chain_request import (
    check_takes_tools,
    is_agent_turn,
    run_budget,
    run_thinking,
    task_from_request,
)
from ponder.serve.client_left import done_unless_client_left
from ponder.serve.config import ChainSpec
from ponder.serve.errors import ApiError, shutting_down_error
from ponder.serve.metrics import role_labels
from ponder.serve.parsing import ChatRequest
from ponder.serve.request_fields import chain_options
from ponder.serve.responses import chat_completion, new_completion_id
from ponder.serve.state import ProxyState
from ponder.serve.streaming import ProgressFeed, stream_chain
from ponder.serve.telemetry import answer_headers, run_scope

log = logging.getLogger("ponder.serve")
TRACE_HEADER = "x-ponder-trace-id"


async def run_chain(
    s: ProxyState,
    request: Request,
    req: ChatRequest,
    name: str,
    spec: ChainSpec,
    upstream_model: str | None,
) -> Response:
    cfg = s.config
    options = chain_options(name, spec, req, agent_turn=is_agent_turn(req))
    task = task_from_request(req)
    check_takes_tools(name, spec, task)
    strategy = options.wrap(spec.strategy)  # the client's stop/response_format on its calls
    budget = run_budget(spec, req)
    thinking = run_thinking(spec, req)
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

    limits = RunLimits(total_tokens=budget, timeout_s=spec.timeout_s, thinking=thinking)
    feed = ProgressFeed() if req.stream else None
    labels = role_labels(
        spec.roles, s.upstream.default_model, upstream_model, not s.upstream.base_url
    )
    traces = [Trace(listener=s.metrics.run_listener(name, labels, feed)) for _ in range(req.n)]
    trace_ids = ",".join(t.run_id for t in traces)
    completion_id = new_completion_id()
    secrets = s.secrets  # once per request, not once per run

    async def one(session: Session, trace: Trace) -> RunResult:
        try:
            return await session.run(strategy, task, trace=trace, limits=limits)
        finally:
            s.trace_files.write(trace, secrets)  # rotated under trace_max_*

    async def runs() -> list[RunResult]:
        set_scope(run_scope(name, spec.strategy.name, cfg.telemetry, s.metrics.replica))
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
                secrets=secrets,
                addresses=s.addresses,
                include_usage=req.include_usage,
                reasoning=cfg.reasoning,
            ),
        )
        return StreamingResponse(
            gen,
            media_type="text/event-stream",
            headers={TRACE_HEADER: trace_ids, "cache-control": "no-cache", **answer_headers(name)},
        )
    work = asyncio.ensure_future(runs())
    if not await done_unless_client_left(request, work):  # stop spending tokens on its answer
        log.info("ponder serve: client left; cancelled run(s) %s", trace_ids)
        return Response(status_code=499)
    try:
        results = work.result()
    except asyncio.CancelledError:  # the server is stopping: the drain cancelled the runs
        err = shutting_down_error()
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
    except Exception as exc:
        err = s.api_error(exc)
        return JSONResponse(
            err.body(), status_code=err.status, headers={TRACE_HEADER: trace_ids, **err.headers}
        )
    body = chat_completion(completion_id, req.model, name, results, cfg.reasoning)
    return JSONResponse(body, headers={TRACE_HEADER: trace_ids, **answer_headers(name, results)})


async def _releasing(release: Any, gen: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for part in gen:
            yield part
    finally:
        release()
