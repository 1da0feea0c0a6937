"""Pass-through: forward a chat request that asks for no chain to the upstream, unchanged.

The body goes upstream byte-for-byte (minus a ``ponder`` field, if any, whose ``thinking_budget``
becomes the upstream's own knob or a 400: ``passthrough_thinking``) with the proxy's upstream
key; the answer (JSON or an SSE stream) comes back as the upstream sent it, except that every
relayed body, stream line and header is scrubbed of the proxy's keys (``ponder.secrets``: an
upstream that echoes the key in a 400/422 body must not hand it to the client). Upstream 401/403
bodies are replaced; a 200 that is not JSON (nor a stream) becomes 502 ``upstream_bad_response``;
connection failures become 502, timeouts 504; Retry-After is relayed.

A request that offers ``tools`` is the one exception: a weak model often writes its tool call as
JSON text in ``content``, which an agent loop would not see, so the proxy turns a message that is
only such a call (naming an offered tool; ``ponder.protocol.tool_calls``) into real ``tool_calls``
(``finish_reason: tool_calls``), says so in the header ``x-ponder-text-tool-calls`` and the body's
``ponder.text_tool_calls``, and logs it. To do that on a stream, the request is sent upstream
whole (``stream: false``) and its answer streamed as OpenAI's chunks, tool calls included.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ponder.backends.trace_context import inject_headers
from ponder.protocol.tool_calls import parse_text_tool_calls
from ponder.secrets import redact, redact_bytes
from ponder.serve.errors import ApiError, hide_addresses
from ponder.serve.parsing import ChatRequest
from ponder.serve.passthrough_thinking import passthrough_budget
from ponder.serve.responses import chunk, message_deltas, new_completion_id, sse
from ponder.serve.upstream import Upstream

log = logging.getLogger("ponder.serve")
TEXT_TOOL_CALLS_HEADER = "x-ponder-text-tool-calls"
"""Set on a pass-through answer in which the proxy turned text tool calls into real ones."""

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
    offered = req.offered if req.raw.get("tool_choice") != "none" else set()
    convert_stream = bool(offered) and req.stream
    budget = passthrough_budget(upstream, req)  # a token budget becomes the upstream's knob
    if convert_stream:  # asked whole, converted, then streamed as chunks (see the module doc)
        drop = ("ponder", "stream", "stream_options")
        sent = {**{k: v for k, v in req.raw.items() if k not in drop}, **budget}
        body = json.dumps(sent).encode()
    elif "ponder" in req.raw:
        sent = {**{k: v for k, v in req.raw.items() if k != "ponder"}, **budget}
        body = json.dumps(sent).encode()
    headers = {"content-type": "application/json"}
    if upstream.api_key:
        headers["authorization"] = f"Bearer {upstream.api_key}"
    inject_headers(headers)  # the request's trace context (traceparent) goes upstream too
    url = upstream.endpoint("/chat/completions")
    upstream_req = client.build_request("POST", url, content=body, headers=headers)
    try:
        resp = await client.send(upstream_req, stream=True)
    except httpx.TimeoutException:
        raise ApiError(
            504, "the upstream timed out", type_="upstream_error", code="upstream_timeout"
        ) from None
    except httpx.HTTPError as exc:
        msg = redact(f"cannot reach the upstream: {type(exc).__name__}: {exc}", secrets)
        msg = hide_addresses(msg, upstream.addresses)
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
    if offered and resp.status_code == 200:
        data = json.loads(content)
        converted = convert_text_tool_calls(data, offered) if isinstance(data, dict) else 0
        if converted:
            log.info("ponder serve: pass-through: %d text tool call(s) converted", converted)
            out_headers[TEXT_TOOL_CALLS_HEADER] = str(converted)
            content = json.dumps(data).encode()
        if convert_stream and isinstance(data, dict):
            out_headers["content-type"] = "text/event-stream"
            out_headers["cache-control"] = "no-cache"
            return StreamingResponse(
                _as_stream(data, req.include_usage, secrets), status_code=200, headers=out_headers
            )
    return Response(
        content=redact_bytes(content, secrets), status_code=resp.status_code, headers=out_headers
    )


def convert_text_tool_calls(data: dict[str, Any], offered: set[str]) -> int:
    """Turn each choice whose message is only a JSON tool call written as text (naming an
    offered tool) into a real ``tool_calls`` message (``finish_reason: tool_calls``); marks the
    body's ``ponder.text_tool_calls`` with the converted choice indices. Returns how many."""
    done: list[int] = []
    for i, ch in enumerate(data.get("choices") or []):
        msg = ch.get("message") if isinstance(ch, dict) else None
        if not isinstance(msg, dict) or msg.get("tool_calls"):
            continue
        content = msg.get("content")
        calls = parse_text_tool_calls(content if isinstance(content, str) else None, offered)
        if calls:
            msg["content"] = None
            msg["tool_calls"] = calls
            ch["finish_reason"] = "tool_calls"
            done.append(ch.get("index", i))
    if done:
        data["ponder"] = {"text_tool_calls": done}
    return len(done)


async def _as_stream(
    data: dict[str, Any], include_usage: bool, secrets: list[str | None]
) -> AsyncIterator[bytes]:
    """A whole completion as the SSE chunks OpenAI clients expect (tool calls included)."""
    cid = str(data.get("id") or new_completion_id())
    model = str(data.get("model") or "")
    created = int(data.get("created") or time.time())

    def out(obj: dict[str, Any] | str) -> bytes:
        return redact_bytes(sse(obj), secrets)

    choices = [c for c in data.get("choices") or [] if isinstance(c, dict)]
    for i, ch in enumerate(choices):
        index = ch.get("index", i)
        role = {
            "index": index,
            "delta": {"role": "assistant", "content": ""},
            "finish_reason": None,
        }
        yield out(chunk(cid, model, created, [role]))
        message = ch.get("message") or {}
        for delta in message_deltas(index, message, ch.get("finish_reason") or "stop"):
            yield out(chunk(cid, model, created, [delta]))
    extra = {"ponder": data["ponder"]} if "ponder" in data else {}
    if include_usage and data.get("usage"):
        yield out(chunk(cid, model, created, [], usage=data["usage"], **extra))
    yield out("[DONE]")


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
