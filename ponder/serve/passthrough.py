"""Pass-through: forward a chat request that asks for no chain to the upstream, unchanged.

The body goes upstream byte-for-byte (minus a ``ponder`` field, if any) with the proxy's upstream
key; the answer (JSON or an SSE stream) comes back as the upstream sent it, except that every
relayed body, stream line and header is scrubbed of the proxy's keys (``ponder.secrets``: an
upstream that echoes the key in a 400/422 body must not hand it to the client). Upstream 401/403
bodies are replaced; a 200 that is not JSON (nor a stream) becomes 502 ``upstream_bad_response``;
connection failures become 502, timeouts 504; Retry-After is relayed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ponder.secrets import redact, redact_bytes
from ponder.serve.upstream import Upstream
from ponder.serve.wire import ApiError, ChatRequest

HOP_HEADERS = {
    "content-type",
    "x-request-id",
    "openai-processing-ms",
    "retry-after",
    "retry-after-ms",
}


async def forward_chat(
    client: httpx.AsyncClient,
    upstream: Upstream,
    req: ChatRequest,
    body: bytes,
    secrets: Sequence[str | None] = (),
) -> Response:
    secrets = [*upstream.secrets, *secrets]
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
            f"cannot reach upstream {upstream.base_url}: {type(exc).__name__}: {exc}", secrets
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
    out_headers = {
        k: redact(v, secrets) for k, v in resp.headers.items() if k.lower() in HOP_HEADERS
    }
    if "text/event-stream" in resp.headers.get("content-type", ""):
        return StreamingResponse(
            _relay(resp, secrets),
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
        text = redact(content.decode("utf-8", "replace")[:500], secrets)
        retry = {k: v for k, v in out_headers.items() if k.lower().startswith("retry-after")}
        raise ApiError(
            502 if resp.status_code != 503 else 503,
            f"upstream failed with HTTP {resp.status_code}: {text}",
            type_="upstream_error",
            code="upstream_server_error" if resp.status_code != 503 else "upstream_unavailable",
            headers=retry,
        )
    if resp.status_code == 200 and not _is_json(content):
        raise ApiError(
            502,
            "the upstream answered 200 with a body that is not JSON "
            f"(content-type {resp.headers.get('content-type', 'none')!r})",
            type_="upstream_error",
            code="upstream_bad_response",
        )
    return Response(
        content=redact_bytes(content, secrets), status_code=resp.status_code, headers=out_headers
    )


def _is_json(content: bytes) -> bool:
    try:
        json.loads(content)
    except (ValueError, RecursionError):
        return False
    return True


async def _relay(resp: httpx.Response, secrets: list[str | None]) -> AsyncIterator[bytes]:
    """The upstream's stream, a line at a time, each scrubbed of the keys."""
    pending = b""
    try:
        async for part in resp.aiter_raw():
            pending += part
            *lines, pending = pending.split(b"\n")
            if lines:
                yield redact_bytes(b"\n".join(lines) + b"\n", secrets)
        if pending:
            yield redact_bytes(pending, secrets)
    except httpx.HTTPError:
        err = ApiError(
            502, "upstream closed the stream", type_="upstream_error", code="upstream_unreachable"
        )
        yield f"data: {json.dumps(err.body())}\n\n".encode()
