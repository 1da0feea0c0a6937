"""Reading the OpenAI wire: responses, usage and errors, in either shape an endpoint sends.

Pure functions ``OpenAICompatibleBackend`` applies to what an upstream returned: whether a
response has the shape of a completion, chosen-token logprobs and their alternatives (chat's
``content`` list or the legacy completions arrays), a usage total split over choices, a tool call
written as text made a real one, the ``param`` and message of an error body, whether a 400
refused ``n`` > 1, and the key a prompt's exact token count is remembered by.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import openai

from ponder.errors import BadRequestError
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.protocol.tool_calls import parse_text_tool_calls

N_REFUSAL = re.compile(
    r"(\bn\b|\bn\s*[<>=!]|only one (completion )?choice|multiple (choices|completions)|"
    r"number of (choices|completions))",
    re.IGNORECASE,
)
"""What an upstream 400 says when it refuses ``n`` > 1 itself (llama.cpp: "Only one completion
choice is allowed"; others name the parameter ``n``)."""


def refuses_n(exc: BadRequestError) -> bool:
    """Whether a 400 refused ``n`` > 1 itself (not the prompt, the context length, ...)."""
    if exc.param == "n":
        return True
    return bool(N_REFUSAL.search(str(exc).split(": ", 1)[-1]))


def prompt_key(request: GenerationRequest) -> str:
    data = [request.messages, request.prompt, request.assistant_prefix, request.tools]
    raw = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_completion(resp: Any, chat: bool) -> bool:
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list):
        return False
    for c in choices:
        if chat and getattr(c, "message", None) is None:
            return False
        if not hasattr(c, "index"):
            return False
    return True


def share_tokens(choices: list[Choice], total: int, weights: list[int]) -> None:
    """Split ``total`` over the choices in proportion to ``weights`` (sums exactly)."""
    w = sum(weights) or len(choices)
    given = 0
    for i, ch in enumerate(choices):
        if i == len(choices) - 1:
            ch.completion_tokens = total - given
        else:
            ch.completion_tokens = total * (weights[i] or 1) // w
            given += ch.completion_tokens


def error_param(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("param"), str):
            return str(err["param"])
    return None


def error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
    return str(exc.message)[:500]


def wire_field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def logprobs_of(
    logprobs: Any, content: Any
) -> tuple[list[float] | None, list[dict[str, float]] | None]:
    """Chosen-token logprobs and per-token top alternatives, from either wire shape."""
    if content:
        lps = [float(wire_field(t, "logprob")) for t in content]
        tops = [
            {
                str(wire_field(a, "token")): float(wire_field(a, "logprob"))
                for a in wire_field(t, "top_logprobs") or []
            }
            for t in content
        ]
        return lps, tops
    if logprobs is None or not getattr(logprobs, "token_logprobs", None):
        return None, None
    lps = [x for x in logprobs.token_logprobs if x is not None]
    legacy = getattr(logprobs, "top_logprobs", None) or []
    tops = [{str(k): float(v) for k, v in (d or {}).items()} for d in legacy]
    return lps, tops or None


def convert_text_tool_calls(choices: list[Choice], offered: set[str]) -> None:
    """A choice that is only a JSON tool call written as text, naming an offered tool, becomes a
    real tool call (``Choice.tool_calls_from_text``; the trace's completion event says so)."""
    for ch in choices:
        if ch.tool_calls:
            continue
        calls = parse_text_tool_calls(ch.text, offered)
        if calls:
            ch.tool_calls = calls
            ch.text = ""
            ch.tool_calls_from_text = True
            if ch.finish_reason == "stop":
                ch.finish_reason = "tool_calls"
