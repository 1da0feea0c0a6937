"""Stop work whose client has left: the watch a chain run and a pass-through request share.

Use ``done_unless_client_left(request, work)`` in a route once the body is read and ``work`` (the
runs, or the upstream request) is a task: it waits for ``work`` while watching the connection,
and when the client disconnects first it cancels ``work``, so no upstream goes on generating for
nobody; the route then answers 499. A route cancelled meanwhile (the server stopping) cancels
``work`` with it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request


async def done_unless_client_left(request: Request, work: asyncio.Future[Any]) -> bool:
    """Wait for ``work``: true once it is done, false when the client left first (``work`` is
    then cancelled and awaited)."""
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler was cancelled
        work.cancel()
        gone.cancel()
        await asyncio.gather(work, gone, return_exceptions=True)
        raise
    gone.cancel()
    if work in done:
        return True
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    return False


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
