"""Reading a chat request off the wire: ``parse_chat_request`` and the fields the proxy reads.

Use ``parse_chat_request(body)`` on the raw body of ``POST /v1/chat/completions`` before anything
else reads it. Requests are parsed leniently (unknown fields are kept in ``ChatRequest.raw``, so
pass-through forwards them); the few fields the proxy itself reads are checked, and anything
unusable is a 400 ``ApiError``, never a crash. ``check_tools`` checks a chain request's ``tools``;
``message_text`` reads a message's text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ponder.protocol.tool_calls import offered_names
from ponder.serve.errors import ApiError


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
