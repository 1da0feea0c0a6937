"""What is per replica when ``ponder serve`` runs as N replicas, and the header naming the replica.

Use this when you put several proxies behind a load balancer (or Ray Serve: ``ray_serve.py``).
The proxy is stateless per request: a chat request carries its whole conversation (earlier turns,
tool calls and results, thinking), no response id or session is looked up later, and a run ends
with its request, so any replica can answer any request and no sticky routing is needed. What
each replica holds for itself (docs/scale.md says the same for operators):

- limits: ``limits.max_concurrent_runs`` (runs in flight) and each chain's ``max_concurrency``
  (model calls in flight) hold **per replica**: N replicas admit N times as much; size the
  upstream (or its own limits) for the sum;
- backends: one per distinct backend config per replica (``backend_pool.py``); a ``local``
  upstream starts one llama-server per replica; an endpoint's ``max_concurrency`` is per replica;
- what a backend learns (an ``auto`` upstream's native ``n``, prompt token counts): budgets on a
  fresh replica are reserved more cautiously until it learns them again, never less safely;
- metrics: ``/metrics`` counts this replica only, labelled ``replica``; sum over replicas;
- traces: ``trace_dir`` (rotated under its caps per replica); a named replica writes to
  ``<trace_dir>/<replica>/`` so replicas on one volume never mix files.

A replica named by ``$PONDER_REPLICA`` or ``telemetry.replica`` also says so on every answer, in
the ``x-ponder-replica`` header (``ReplicaHeader``); an unnamed one (named by its host name in
metrics) adds no header, so no internal host name reaches clients.
"""

from __future__ import annotations

from typing import Any

REPLICA_HEADER = "x-ponder-replica"


class ReplicaHeader:
    """ASGI middleware: ``x-ponder-replica: <name>`` on every HTTP response."""

    def __init__(self, app: Any, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica.encode("ascii"))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, named)
