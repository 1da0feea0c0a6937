"""The proxy's answers in OpenAI's shape: ``chat.completion`` bodies, stream chunks and SSE lines.

Use these once a chain's runs are done: ``chat_completion`` is the whole JSON answer,
``answer_message``/``message_deltas``/``chunk`` build a stream's chunks, ``sse``/``sse_comment``
frame them. Responses are plain dicts in the exact shape of ``/v1/chat/completions``, with an
extra ``ponder`` field (run ids, answers, usage by purpose and role, stop reasons) that OpenAI
clients ignore; a reasoning model's thinking goes in the fields ``ponder.serve.reasoning`` names.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from ponder.orchestrator.engine import RunResult
from ponder.orchestrator.usage import Usage
from ponder.protocol.actions import Outcome
from ponder.protocol.tool_calls import is_tool_answer
from ponder.serve.reasoning import (
    DEFAULT_REASONING,
    REASONING_FIELDS,
    ReasoningConfig,
    chosen_thinking,
    thinking_fields,
)
from ponder.serve.telemetry import run_fields

CONTENT_PIECE_CHARS = 64
FINISH_BUDGET = "budget_exhausted"
"""``finish_reason`` of a chain answer that the token budget cut short (status stays 200)."""


def new_completion_id() -> str:
    return f"chatcmpl-ponder-{uuid.uuid4().hex[:20]}"


def usage_body(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_prompt_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_prompt_tokens}
    if usage.reasoning_tokens:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def sum_usage(results: list[RunResult]) -> Usage:
    total = Usage()
    for r in results:
        u = r.usage
        for purpose, part in u.by_purpose.items():
            total.add(purpose, part.prompt_tokens, part.completion_tokens, part.calls)
        total.cached_prompt_tokens += u.cached_prompt_tokens
        total.reasoning_tokens += u.reasoning_tokens
        total.failed_calls += u.failed_calls
        total.wall_time_s = max(total.wall_time_s, u.wall_time_s)
    return total


def finish_reason(result: RunResult) -> str:
    if result.budget_limited:
        return FINISH_BUDGET
    reason = result.outcome.data.get("finish_reason")
    return reason if reason in ("stop", "length") else "stop"


def ponder_field(chain: str, results: list[RunResult], usage: Usage) -> dict[str, Any]:
    return {
        "chain": chain,
        "run_ids": [r.run_id for r in results],
        "answers": [r.answer for r in results],
        "budget_limited": any(r.budget_limited for r in results),
        **(
            {
                "p_correct": [r.p_correct for r in results],
                "abstained": [r.abstained for r in results],
            }
            if any(r.p_correct is not None or r.abstained for r in results)
            else {}
        ),
        "calls": usage.calls,
        "failed_calls": usage.failed_calls,
        "usage_by_purpose": {
            k: {
                "prompt_tokens": v.prompt_tokens,
                "completion_tokens": v.completion_tokens,
                "calls": v.calls,
            }
            for k, v in usage.by_purpose.items()
        },
        **run_fields(results),  # stop reasons, samples drawn/used, usage by role
    }


def winning_tool_calls(outcome: Outcome) -> list[dict[str, Any]] | None:
    """The tool calls of the turn a run chose, in OpenAI's shape, or ``None`` when it chose a
    text answer. An aggregator returns the winning identity as ``answer``; the calls are those of
    the first sample that voted for it (or the outcome's own, for a single call)."""
    if not is_tool_answer(outcome.answer):
        return None
    calls = outcome.data.get("tool_calls")
    if not calls:
        for s in outcome.samples:
            if s.answer == outcome.answer and s.data.get("tool_calls"):
                calls = s.data["tool_calls"]
                break
    return [dict(c) for c in calls] if calls else None


def answer_message(
    result: RunResult, reasoning: ReasoningConfig = DEFAULT_REASONING
) -> tuple[dict[str, Any], str]:
    """The assistant message of one run and its ``finish_reason`` (``tool_calls`` when the
    run chose a turn of tool calls); with the chosen sample's thinking in ``reasoning.fields``
    (``ponder.serve.reasoning``)."""
    thinking = thinking_fields(chosen_thinking(result.outcome), reasoning)
    calls = winning_tool_calls(result.outcome)
    if calls:
        message = {"role": "assistant", "content": result.text or None, "tool_calls": calls}
        return {**message, **thinking}, "tool_calls"
    return {"role": "assistant", "content": result.text, **thinking}, finish_reason(result)


def message_deltas(index: int, message: dict[str, Any], finish: str | None) -> list[dict[str, Any]]:
    """The ``choices`` entries of the chunks that stream one assistant message: its thinking in
    pieces (each delta carries the piece in every thinking field the message has), its content
    in pieces, then each tool call as OpenAI streams them (``delta.tool_calls`` with ``index``,
    ``id``, ``type`` and the function name first, then the arguments in pieces), then the finish."""
    out: list[dict[str, Any]] = []
    names = [f for f in REASONING_FIELDS if isinstance(message.get(f), str) and message[f]]
    groups = [names] if len({message[f] for f in names}) == 1 else [[f] for f in names]
    for group in groups:
        thinking = str(message[group[0]])
        for start in range(0, len(thinking), CONTENT_PIECE_CHARS):
            part = thinking[start : start + CONTENT_PIECE_CHARS]
            delta = {name: part for name in group}
            out.append({"index": index, "delta": delta, "finish_reason": None})
    text = message.get("content") or ""
    for start in range(0, len(text), CONTENT_PIECE_CHARS):
        piece = text[start : start + CONTENT_PIECE_CHARS]
        out.append({"index": index, "delta": {"content": piece}, "finish_reason": None})
    for j, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        head = {
            "index": j,
            "id": call.get("id"),
            "type": "function",
            "function": {"name": fn.get("name"), "arguments": ""},
        }
        out.append({"index": index, "delta": {"tool_calls": [head]}, "finish_reason": None})
        args = str(fn.get("arguments") or "")
        for start in range(0, len(args), CONTENT_PIECE_CHARS):
            piece = {
                "index": j,
                "function": {"arguments": args[start : start + CONTENT_PIECE_CHARS]},
            }
            out.append({"index": index, "delta": {"tool_calls": [piece]}, "finish_reason": None})
    out.append({"index": index, "delta": {}, "finish_reason": finish})
    return out


def chat_completion(
    completion_id: str,
    model: str,
    chain: str,
    results: list[RunResult],
    reasoning: ReasoningConfig = DEFAULT_REASONING,
) -> dict[str, Any]:
    usage = sum_usage(results)
    choices = []
    for i, r in enumerate(results):
        message, finish = answer_message(r, reasoning)
        choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_body(usage),
        "ponder": ponder_field(chain, results, usage),
    }


def chunk(
    completion_id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def sse_comment(text: str) -> bytes:
    return "".join(f": {line}\n" for line in text.splitlines() or [""]).encode() + b"\n"
