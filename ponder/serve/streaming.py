"""Server-sent events for chain runs, in OpenAI's chunk format.

While the chain works the stream carries SSE comment lines: ``: keep-alive`` every few seconds
and ``: ponder-progress {...}`` after each upstream call or strategy decision (calls done, tokens
so far, the decision's data such as a current consensus). OpenAI clients skip comment lines, so
they are safe for any client; a client that wants progress reads them from the raw stream. When
the runs finish, the answer streams as ``chat.completion.chunk`` objects (a reasoning model's
thinking first, as ``reasoning_content``/``reasoning`` deltas), then a usage chunk and ``[DONE]``.
A failure after the stream started is sent as ``data: {"error": ...}``, which the ``openai`` client
raises as ``APIError``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from ponder.orchestrator.engine import RunResult
from ponder.serve.errors import shutting_down_error, to_api_error
from ponder.serve.reasoning import DEFAULT_REASONING, ReasoningConfig
from ponder.serve.responses import (
    answer_message,
    chunk,
    message_deltas,
    ponder_field,
    sse,
    sse_comment,
    sum_usage,
    usage_body,
)

PROGRESS_EVENTS = {
    "completion",
    "reward",
    "failure",
    "retry",
    "decision",
    "fork",
    "budget_exhausted",
}


def progress_line(event: dict[str, Any], calls_done: int, tokens: int) -> str:
    info: dict[str, Any] = {
        "run_id": event.get("run_id"),
        "type": event["type"],
        "span": event.get("span", ""),
        "calls_done": calls_done,
        "tokens": tokens,
    }
    if "purpose" in event:
        info["purpose"] = event["purpose"]
    if event["type"] == "decision":
        info.update(
            {k: v for k, v in event.items() if k not in ("run_id", "seq", "t", "type", "span")}
        )
    text = json.dumps(info, default=str, separators=(",", ":"))
    return "ponder-progress " + text[:2000]


class ProgressFeed:
    """Collects trace events from the runs of one request, for the stream to drain."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.calls_done = 0
        self.tokens = 0

    def __call__(self, event: dict[str, Any]) -> None:
        if event["type"] not in PROGRESS_EVENTS:
            return
        if event["type"] in ("completion", "reward"):
            self.calls_done += int(event.get("calls", 1))
            self.tokens += int(event.get("prompt_tokens", 0)) + int(
                event.get("completion_tokens", 0)
            )
        self.queue.put_nowait(progress_line(event, self.calls_done, self.tokens))


async def stream_chain(
    *,
    completion_id: str,
    model: str,
    chain: str,
    runs: Callable[[], Awaitable[list[RunResult]]],
    feed: ProgressFeed,
    keepalive_s: float,
    secrets: Iterable[str | None],
    include_usage: bool,
    addresses: Iterable[str | None] = (),
    reasoning: ReasoningConfig = DEFAULT_REASONING,
) -> AsyncIterator[bytes]:
    created = int(time.time())
    secrets = list(secrets)
    yield sse(
        chunk(
            completion_id,
            model,
            created,
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        )
    )
    task = asyncio.ensure_future(runs())
    try:
        while not task.done():
            getter = asyncio.ensure_future(feed.queue.get())
            done, _ = await asyncio.wait(
                {task, getter}, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                yield sse_comment(getter.result())
            else:
                getter.cancel()
                if not done:
                    yield sse_comment("keep-alive")
        while not feed.queue.empty():
            yield sse_comment(feed.queue.get_nowait())
        try:
            results = task.result()
        except asyncio.CancelledError:  # the server's drain cancelled the runs: say so
            yield sse(shutting_down_error().body())
            return
        except Exception as exc:
            yield sse(to_api_error(exc, secrets, addresses).body())
            return
        usage = sum_usage(results)
        for i, r in enumerate(results):
            message, finish = answer_message(r, reasoning)
            for delta in message_deltas(i, message, finish):
                yield sse(chunk(completion_id, model, created, [delta]))
        if include_usage:
            yield sse(
                chunk(
                    completion_id,
                    model,
                    created,
                    [],
                    usage=usage_body(usage),
                    ponder=ponder_field(chain, results, usage),
                )
            )
        else:
            yield sse_comment(
                "ponder-usage "
                + json.dumps(
                    {"usage": usage_body(usage), "ponder": ponder_field(chain, results, usage)}
                )
            )
        yield sse("[DONE]")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
