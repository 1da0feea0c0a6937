"""Reading the OpenAI wire: a completion response, in either shape an endpoint sends.

Use it on what an upstream returned for a call that succeeded (failures are
``openai_errors``'s): pure functions ``OpenAICompatibleBackend`` applies to tell whether a
response has the shape of a completion, read its choices (chat or raw completions) with their
chosen-token logprobs and alternatives (chat's ``content`` list or the legacy completions
arrays), read a reasoning model's thinking apart from its answer (``reasoning_content`` or
``reasoning`` beside ``content``, whole or in stream deltas, inline markers split as they stream),
and make a tool call written as text a real one. Counting the tokens those
choices cost is ``openai_tokens``'s.
"""

from __future__ import annotations

from typing import Any

from ponder.protocol.requests import Choice, GenerationRequest
from ponder.protocol.thinking import Markers, ThinkingSplitter
from ponder.protocol.tool_calls import parse_text_tool_calls

REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Where servers put a message's thinking: ``reasoning_content`` (DeepSeek's API, llama.cpp's
``--reasoning-format deepseek``, vLLM's reasoning parsers, LiteLLM) or ``reasoning`` (newer vLLM,
some gateways). The first one that holds text is read."""


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


def reasoning_of(message: Any) -> str | None:
    """A message's (or a stream delta's) thinking from its ``REASONING_FIELDS``, or ``None``."""
    for name in REASONING_FIELDS:
        value = wire_field(message, name)
        if isinstance(value, str) and value:
            return value
    return None


def reported_reasoning_tokens(usage: Any) -> int | None:
    """``usage.completion_tokens_details.reasoning_tokens`` when the upstream reports a positive
    count (OpenAI reports 0 for models that do not think), else ``None``."""
    details = wire_field(usage, "completion_tokens_details") if usage is not None else None
    value = wire_field(details, "reasoning_tokens") if details is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def read_choices(request: GenerationRequest, resp: Any) -> list[Choice]:
    """The choices of a response that ``looks_like_completion``, in ``index`` order, with no
    completion tokens counted yet (``completion_tokens=0``). A chat choice's thinking is read
    from its message's ``reasoning_content``/``reasoning``; inline markers in the text are left
    for ``split_inline`` (after the tokens are counted on the text as generated)."""
    raw_choices = sorted(resp.choices or [], key=lambda c: c.index)
    choices: list[Choice] = []
    for c in raw_choices:
        if request.is_chat:
            text = c.message.content or ""
            tool_calls = (
                [tc.model_dump() for tc in c.message.tool_calls]
                if getattr(c.message, "tool_calls", None)
                else None
            )
            content = c.logprobs.content if c.logprobs is not None else None
            reasoning = reasoning_of(c.message)
        else:
            text = c.text or ""
            reasoning = None
            tool_calls = None
            content = None
            if c.logprobs is not None:
                # OpenAI's legacy shape has token_logprobs; llama.cpp answers raw
                # completions in the chat shape (``content``), kept as an extra field.
                content = getattr(c.logprobs, "content", None)
        lps, tops = logprobs_of(c.logprobs, content)
        choices.append(
            Choice(
                text=text,
                finish_reason=c.finish_reason,
                completion_tokens=0,
                token_logprobs=lps,
                tool_calls=tool_calls,
                seed=request.params.seed,
                top_logprobs=tops if request.params.top_logprobs else None,
                reasoning=reasoning,
            )
        )
    return choices


class StreamedChoice:
    """One choice of a streamed chat completion, read delta by delta: thinking from the deltas'
    ``reasoning_content``/``reasoning`` or, when none comes apart, from inline ``markers`` in
    the content (split as it streams, a marker cut across chunks included).

    ``add(delta)`` returns the ``(thinking, answer)`` text certain so far; ``finish()`` the rest.
    """

    def __init__(self, markers: Markers | None = None) -> None:
        self._splitter = ThinkingSplitter(markers) if markers is not None else None
        self.reasoning = ""
        self.text = ""

    def add(self, delta: Any) -> tuple[str, str]:
        thinking = reasoning_of(delta) or ""
        content = wire_field(delta, "content") or ""
        if self._splitter is not None and content:
            more, content = self._splitter.feed(content)
            thinking += more
        return self._keep(thinking, content)

    def finish(self) -> tuple[str, str]:
        if self._splitter is None:
            return "", ""
        return self._keep(*self._splitter.finish())

    def _keep(self, thinking: str, answer: str) -> tuple[str, str]:
        self.reasoning += thinking
        self.text += answer
        return thinking, answer


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
