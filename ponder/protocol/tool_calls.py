"""Tool calls as data: the one parser of tool calls written as text, argument normalization, and
the identity a tool call votes under.

Small models often write a tool call as JSON text instead of the structured ``tool_calls`` field::

    {"name": "multiply", "arguments": {"a": 17, "b": 23}}

(also inside a ```json fence, or in ``<tool_call>...</tool_call>`` tags, one block per call).
``parse_text_tool_calls`` turns such a reply into OpenAI-shaped ``tool_calls`` when every call
names an offered tool; the OpenAI-compatible backend, the proxy's pass-through and ``tool_loop``
all use it. ``tool_call_answer`` is the vote identity of a turn's calls: function name plus the
arguments normalized (key order, ``17`` vs ``17.0``, whitespace), so self-consistency can vote over
tool calls as it votes over final answers. Nothing here does I/O.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

TOOL_ANSWER_PREFIX = "tool_call:"
"""The prefix of an ``Outcome.answer`` that is a tool-call identity, not a final answer."""

_FENCE = re.compile(r"^\s*```(?:json|tool_call)?\s*(.*?)\s*```\s*$", re.S | re.I)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def offered_names(tools: Iterable[dict[str, Any]] | None) -> set[str]:
    """The function names a request's ``tools`` offer."""
    names: set[str] = set()
    for t in tools or ():
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
    return names


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _canonical(value: Any) -> Any:
    """Numbers with an integral value become ints (17.0 -> 17); containers recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def parse_arguments(arguments: Any) -> Any:
    """A call's arguments as a value: a JSON string is decoded, a dict is taken as it is.
    Raises ``ValueError`` when a string is not JSON."""
    if isinstance(arguments, str):
        text = arguments.strip()
        return json.loads(text) if text else {}
    if arguments is None:
        return {}
    return arguments


def normalize_arguments(arguments: Any) -> str:
    """The canonical JSON text of a call's arguments: keys sorted, no whitespace, integral
    numbers as integers. Arguments that are not JSON are kept as their stripped text."""
    try:
        value = parse_arguments(arguments)
    except ValueError:
        return str(arguments).strip()
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def call_name(call: dict[str, Any]) -> str | None:
    fn = call.get("function") if isinstance(call, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None


def tool_call_answer(calls: Sequence[dict[str, Any]]) -> str:
    """The vote identity of one assistant turn's tool calls (order-free for parallel calls)."""
    parts = sorted(
        f"{call_name(c)}({normalize_arguments((c.get('function') or {}).get('arguments'))})"
        for c in calls
    )
    return TOOL_ANSWER_PREFIX + ";".join(parts)


def is_tool_answer(answer: str | None) -> bool:
    return isinstance(answer, str) and answer.startswith(TOOL_ANSWER_PREFIX)


def normalized_calls(calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls in OpenAI's shape, each with an id and its arguments as canonical JSON text."""
    out = []
    for c in calls:
        fn = c.get("function") or {}
        out.append(
            {
                "id": c.get("id") or new_call_id(),
                "type": "function",
                "function": {
                    "name": call_name(c) or "",
                    "arguments": normalize_arguments(fn.get("arguments")),
                },
            }
        )
    return out


def _bodies(text: str) -> list[str] | None:
    """The JSON bodies of a reply that is only tool calls, else ``None``."""
    stripped = text.strip()
    if not stripped:
        return None
    if "<tool_call>" in stripped:
        if _TAGGED.sub("", stripped).strip():  # text outside the tags: not only calls
            return None
        return [b for b in _TAGGED.findall(stripped)]
    m = _FENCE.match(stripped)
    return [m.group(1) if m else stripped]


def _one_call(obj: Any, offered: set[str]) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict) and "name" not in obj:  # OpenAI's own shape
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or name not in offered:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    try:
        value = parse_arguments(args)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {
        "id": new_call_id(),
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(value, ensure_ascii=False)},
    }


def parse_text_tool_calls(text: str | None, offered: Iterable[str]) -> list[dict[str, Any]]:
    """The tool calls a reply wrote as text, in OpenAI's shape; ``[]`` unless the whole reply is
    tool calls (a JSON object or a list of them, bare, in one code fence, or in ``<tool_call>``
    tags) and every call names an ``offered`` tool with object arguments."""
    names = set(offered)
    if not text or not names:
        return []
    bodies = _bodies(text)
    if not bodies:
        return []
    calls: list[dict[str, Any]] = []
    for body in bodies:
        try:
            obj = json.loads(body)
        except (ValueError, RecursionError):
            return []
        for item in obj if isinstance(obj, list) and obj else [obj]:
            call = _one_call(item, names)
            if call is None:
                return []
            calls.append(call)
    return calls
