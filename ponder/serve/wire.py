"""The OpenAI wire format the proxy speaks: request parsing, responses, chunks and errors.

Requests are parsed leniently (unknown fields are kept, so pass-through forwards them); the few
fields the proxy itself reads are validated here. Responses are plain dicts in the exact shape of
``/v1/chat/completions``, with an extra ``ponder`` field (run id, answer, usage by purpose) that
OpenAI clients ignore.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ponder.orchestrator.engine import RunResult
from ponder.orchestrator.usage import Usage
from ponder.protocol.actions import Outcome
from ponder.protocol.tool_calls import is_tool_answer, offered_names
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


class ApiError(Exception):
    """An error answered in OpenAI's format: ``{"error": {"message", "type", "code", "param"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


@dataclass
class ChatRequest:
    """The fields of a chat request the proxy reads; ``raw`` is the whole body as sent."""

    raw: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    n: int
    max_tokens: int | None
    include_usage: bool
    ponder: dict[str, Any]
    tools: list[dict[str, Any]] | None = None
    """The request's ``tools`` (function schemas), checked; ``None`` when it offers none."""
    max_tokens_param: str = "max_tokens"
    """Which field ``max_tokens`` came from (the larger of ``max_tokens`` and
    ``max_completion_tokens`` when both are given)."""

    @property
    def offered(self) -> set[str]:
        return offered_names(self.tools)


MAX_MODEL_CHARS = 256


class _Duplicated(dict):  # type: ignore[type-arg]
    """A JSON object that named ``key`` more than once (its last value kept)."""

    key: str = ""


def _duplicates_hook() -> tuple[list[_Duplicated], Any]:
    """An ``object_pairs_hook`` that makes plain dicts, or a ``_Duplicated`` one (naming its
    repeated key, and listed) for an object that repeats a key."""
    found: list[_Duplicated] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        dup = _Duplicated(obj)
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                dup.key = k
                break
            seen.add(k)
        found.append(dup)
        return dup

    return found, hook


def _duplicate_path(value: Any, path: str = "") -> str | None:
    """Where the first object with a duplicated key is, as ``messages[0].content``."""
    if isinstance(value, _Duplicated):
        return f"{path}.{value.key}" if path else value.key
    if isinstance(value, dict):
        items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, v in items:
        found = _duplicate_path(v, sub)
        if found is not None:
            return found
    return None


def parse_chat_request(body: bytes) -> ChatRequest:
    """Parse and check a chat request; anything unusable is a 400 in OpenAI's format (deeply
    nested JSON, integers too long to convert, lone surrogates, control characters in the model
    name, a key given twice in one object), never a crash."""
    duplicated, hook = _duplicates_hook()
    try:
        raw = json.loads(body, object_pairs_hook=hook)
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, int digits limit
        raise ApiError(400, f"the request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if duplicated:  # the proxy reads the last value; an upstream may keep the first
        try:
            dup = _duplicate_path(raw) or duplicated[0].key
        except RecursionError:
            dup = duplicated[0].key
        dup = dup[:200]
        raise ApiError(
            400,
            f"the request body gives {dup!r} more than once; send each key once",
            param=dup,
            code="duplicate_key",
        )
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, "the request body contains a lone UTF-16 surrogate (not valid Unicode text)"
        ) from None
    except (RecursionError, ValueError):
        raise ApiError(400, "the request body is nested too deeply") from None
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required and must be a string", param="model")
    if len(model) > MAX_MODEL_CHARS or not model.isprintable():
        raise ApiError(
            400,
            f"'model' must be at most {MAX_MODEL_CHARS} printable characters",
            param="model",
        )
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a 'role'", param="messages")
    n = raw.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ApiError(400, "'n' must be a positive integer", param="n")
    max_tokens: int | None = None
    max_tokens_param = "max_tokens"
    for field_ in ("max_completion_tokens", "max_tokens"):  # an upstream may read either
        value = raw.get(field_)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ApiError(400, f"'{field_}' must be a positive integer", param=field_)
        if max_tokens is None or value > max_tokens:
            max_tokens, max_tokens_param = value, field_
    stream_options = raw.get("stream_options") or {}
    ponder = raw.get("ponder") or {}
    if isinstance(ponder, str):
        ponder = {"chain": ponder}
    if not isinstance(ponder, dict):
        raise ApiError(400, '\'ponder\' must be an object like {"chain": "cot"}', param="ponder")
    tools = raw.get("tools")
    tools = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else None
    return ChatRequest(
        raw=raw,
        tools=tools or None,
        model=model,
        messages=messages,
        stream=bool(raw.get("stream", False)),
        n=n,
        max_tokens=max_tokens,
        max_tokens_param=max_tokens_param,
        include_usage=bool(
            isinstance(stream_options, dict) and stream_options.get("include_usage")
        ),
        ponder=ponder,
    )


def check_tools(raw: dict[str, Any]) -> None:
    """A chain request's ``tools`` must be function tools with names (pass-through forwards
    whatever the client sent)."""
    tools = raw.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise ApiError(400, "'tools' must be a list of function tools", param="tools")
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ApiError(
                400,
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                param="tools",
            )


def message_text(message: dict[str, Any]) -> str:
    """The text of a message whose content is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


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
