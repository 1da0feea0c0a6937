"""The current OpenTelemetry context on outgoing HTTP requests (W3C ``traceparent``).

Use ``inject_headers(headers)`` on a header mapping about to be sent, or ``inject_request`` as an
``httpx`` request event hook, so the upstream's own spans join the trace of the model call (and,
through the proxy, the client's ``traceparent``). It is the global propagator of
``opentelemetry-api`` (``opentelemetry.propagate.inject``) that writes the headers; without that
package, or outside any span, nothing is added. The package is looked up at the first request,
never at import.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import httpx

_inject: Any = None  # opentelemetry.propagate.inject once looked up; False when not installed


def inject_headers(headers: MutableMapping[str, str]) -> None:
    global _inject
    if _inject is None:
        try:
            from opentelemetry.propagate import inject
        except ImportError:
            _inject = False
        else:
            _inject = inject
    if _inject:
        _inject(headers)


async def inject_request(request: httpx.Request) -> None:
    """``httpx`` request hook: the current trace context into ``request``'s headers."""
    inject_headers(request.headers)
