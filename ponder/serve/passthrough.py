"""Pass-through: forward a chat request that asks for no chain to the upstream, unchanged.

The body goes upstream byte-for-byte (minus a ``ponder`` field, if any) with the proxy's upstream
key; the answer (JSON or an SSE stream) comes back as the upstream sent it. Upstream 401/403 bodies
are replaced (they may echo part of the key); connection failures become 502, timeouts 504.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ponder.serve.errors import redact
from ponder.serve.upstream import Upstream
from ponder.serve.wire import ApiError, ChatRequest

HOP_HEADERS = {"content-type", "x-request-id", "openai-processing-ms"}


async def forward_chat(
    client: httpx.AsyncClient, upstream: Upstream, req: ChatRequest, body: bytes
) -> Response:
    if not upstream.base_url:
        raise ApiError(
            400,
            "this proxy's upstream is not an HTTP endpoint, so requests without a chain cannot be "
            "passed through; name a chain (model 'ponder:<chain>')",
            code="no_passthrough",
            param="model",
        )
    if "ponder" in req.raw:
        body = json.dumps({k: v for k, v in req.raw.items() if k != "ponder"}).encode()
    headers = {"content-type": "application/json"}
    if upstream.api_key:
        headers["authorization"] = f"Bearer {upstream.api_key}"
    url = f"{upstream.base_url}/chat/completions"
    upstream_req = client.build_request("POST", url, content=body, headers=headers)
    try:
        resp = await client.send(upstream_req, stream=True)
    except httpx.TimeoutException:
        raise ApiError(
            504,
            f"upstream {upstream.base_url} timed out",
            type_="upstream_error",
            code="upstream_timeout",
        ) from None
    except httpx.HTTPError as exc:
        msg = redact(
            f"cannot reach upstream {upstream.base_url}: {type(exc).__name__}: {exc}",
            upstream.secrets,
        )
        raise ApiError(502, msg, type_="upstream_error", code="upstream_unreachable") from None
    if resp.status_code in (401, 403):
        await resp.aclose()
        raise ApiError(
            502,
            f"the upstream rejected the proxy's credentials (HTTP {resp.status_code}); check the "
            "upstream API key configured for ponder serve",
            type_="upstream_error",
            code="upstream_auth_failed",
        )
    out_headers = {k: v for k, v in resp.headers.items() if k.lower() in HOP_HEADERS}
    if "text/event-stream" in resp.headers.get("content-type", ""):
        return StreamingResponse(
            _relay(resp, upstream),
            status_code=resp.status_code,
            headers=out_headers,
            background=BackgroundTask(resp.aclose),
        )
    try:
        content = await resp.aread()
    except httpx.HTTPError as exc:
        raise ApiError(
            502,
            f"upstream closed the connection: {type(exc).__name__}",
            type_="upstream_error",
            code="upstream_unreachable",
        ) from None
    finally:
        await resp.aclose()
    if resp.status_code >= 500:
        text = redact(content.decode("utf-8", "replace")[:500], upstream.secrets)
        raise ApiError(
            502,
            f"upstream failed with HTTP {resp.status_code}: {text}",
            type_="upstream_error",
            code="upstream_server_error",
        )
    return Response(content=content, status_code=resp.status_code, headers=out_headers)


async def _relay(resp: httpx.Response, upstream: Upstream) -> AsyncIterator[bytes]:
    try:
        async for part in resp.aiter_raw():
            yield part
    except httpx.HTTPError:
        err = ApiError(
            502, "upstream closed the stream", type_="upstream_error", code="upstream_unreachable"
        )
        yield f"data: {json.dumps(err.body())}\n\n".encode()
