"""The checks every ``/v1/chat/completions`` request passes before it is routed to a chain or
passed through: the proxy's key, the body's size, and the ``n``/``max_tokens`` limits.

Use these in a route, in that order, before anything is parsed further or sent upstream; each
raises an ``ApiError`` (401, 413 or 400) that the app answers in OpenAI's error format.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from ponder.serve.config import ServeLimits
from ponder.serve.errors import ApiError
from ponder.serve.parsing import ChatRequest


def check_auth(proxy_key: str | None, request: Request) -> None:
    """Nothing to check without a proxy key; else a ``Bearer`` token equal to it, or a 401."""
    if proxy_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), proxy_key.encode()):
        raise ApiError(
            401,
            "invalid or missing API key for this proxy (send 'Authorization: Bearer <key>')",
            type_="authentication_error",
            code="invalid_api_key",
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 as soon as its declared or streamed size passes ``limit``."""
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


def check_limits(lim: ServeLimits, req: ChatRequest) -> None:
    """A 400 for an ``n`` or ``max_tokens`` above this proxy's limits (chain or pass-through)."""
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
            f"{req.max_tokens_param}={req.max_tokens} exceeds this proxy's limit of "
            f"{lim.max_tokens}",
            param=req.max_tokens_param,
            code="max_tokens_too_large",
        )
