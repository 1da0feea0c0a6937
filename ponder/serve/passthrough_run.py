"""Run a pass-through request the way chain runs are run: drained at shutdown, cancelled when
its client leaves.

Use ``pass_through(state, request, forward_chat(...))`` from the chat route. The forwarding (the
upstream call, and the whole upstream answer unless it is relayed as a stream) runs as a task the
server's drain knows (``ProxyState.tasks``): at shutdown it gets ``shutdown_grace_s``, then is
cancelled and its client answered a JSON 503 ``shutting_down``, as a chain's is. A client that
leaves before the answer cancels the upstream request (its connection is closed, so the upstream
stops generating) and is answered 499. A stream relayed from the upstream is drained too: when
the grace runs out it ends with a ``shutting_down`` error event, as a chain's stream does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response, StreamingResponse

from ponder.serve.client_left import done_unless_client_left
from ponder.serve.errors import shutting_down_error
from ponder.serve.responses import sse
from ponder.serve.state import ProxyState

log = logging.getLogger("ponder.serve")


async def pass_through(
    s: ProxyState, request: Request, forward: Coroutine[Any, Any, Response]
) -> Response:
    if s.shutting_down:
        forward.close()
        raise shutting_down_error()
    work = asyncio.ensure_future(forward)
    s.tasks.add(work)
    try:
        if not await done_unless_client_left(request, work):
            log.info("ponder serve: client left; cancelled its pass-through request")
            return Response(status_code=499)
    finally:
        s.tasks.discard(work)
    try:
        response = work.result()
    except asyncio.CancelledError:  # the server is stopping: the drain cancelled it
        err = shutting_down_error()
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
    if isinstance(response, StreamingResponse):
        response.body_iterator = _drained(s, response.body_iterator)
    return response


async def _drained(s: ProxyState, body: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """``body`` relayed until it ends, or until the drain's grace runs out: then a
    ``shutting_down`` error event ends it (the upstream response is closed)."""
    held: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    s.tasks.add(held)  # the drain waits for it, then cancels it
    it = body.__aiter__()
    part: asyncio.Future[Any] | None = None
    try:
        while True:
            part = asyncio.ensure_future(it.__anext__())
            await asyncio.wait({part, held}, return_when=asyncio.FIRST_COMPLETED)
            if held.cancelled():
                yield sse(shutting_down_error().body())
                return
            try:
                chunk = part.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        if part is not None and not part.done():
            part.cancel()
            await asyncio.gather(part, return_exceptions=True)
        if not held.done():
            held.set_result(None)
        s.tasks.discard(held)
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
