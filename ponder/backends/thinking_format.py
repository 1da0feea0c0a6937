"""The thinking format: a non-reasoning chat model prompted to think first, ``<think>…</think>``.

Use it (``thinking_format=True`` on ``OpenAICompatibleBackend``, config ``thinking: true`` on the
``local`` backend) to make a plain instruct model such as the embedded Qwen2.5 write a thinking
trace before its answer, the way DeepSeek-R1's distills do: each fresh chat request gets the
think-first system prompt (``think_first_system``, package data in ``ponder/prompts``, rendered
around the request's own system prompt) and an assistant prefill that opens the thinking
(``<think>\\n``), so the model continues inside it and writes ``…</think>answer``; the reply is
split with ``starts_thinking=True`` into ``Choice.reasoning`` and ``Choice.text``. It is a prompted
format, not a trained reasoner: the traces are the instruct model's own step-by-step text.

Requests that continue an assistant message themselves (``assistant_prefix``: budget forcing,
segments, probes) get the same system prompt and keep their prefix as given (it is the whole
assistant text, the opening marker included); raw completions and requests offering tools are
sent unchanged. Pure functions; the backend sends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ponder.errors import ConfigError, PromptError
from ponder.prompts import load_template
from ponder.protocol.requests import Choice, GenerationRequest, Message
from ponder.protocol.thinking import Markers, split_thinking

DEFAULT_TEMPLATE = "think_first_system"
TEMPLATE_VARIABLES = frozenset({"system"})


def check_template(name: str) -> str:
    """``name`` if it loads and uses only ``system`` (a ``PromptError`` otherwise)."""
    load_template(name, allowed=TEMPLATE_VARIABLES)
    return name


def answer_lead_text(name: str | None) -> str:
    """The text of answer lead template ``name`` (it uses no variables: a ``PromptError``
    otherwise); ``""`` for ``None`` (no lead)."""
    if name is None:
        return ""
    return load_template(name, allowed=()).render()


def check_answer_lead(name: str | None, field: str) -> str | None:
    """``name`` if it is ``None`` or an answer lead template that loads without variables; a
    ``ConfigError`` naming ``field`` and the template's trouble otherwise."""
    try:
        answer_lead_text(name)
    except PromptError as exc:
        raise ConfigError(field, f"{exc} (an answer lead uses no variables)") from exc
    return name


@dataclass(frozen=True)
class ThinkingFormat:
    """The think-first system template and the markers it asks for."""

    markers: Markers
    template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        check_template(self.template)

    @property
    def prefill(self) -> str:
        return f"{self.markers[0]}\n"

    def applies(self, request: GenerationRequest) -> bool:
        return request.is_chat and not request.tools

    def request(self, request: GenerationRequest) -> tuple[GenerationRequest, bool]:
        """The request as sent in the format, and whether its reply is to be split (a fresh
        request, continued from the prefill)."""
        if not self.applies(request):
            return request, False
        messages = self._messages(request.messages or ())
        if request.assistant_prefix is not None:
            return replace(request, messages=messages), False
        if messages and messages[-1].get("role") == "assistant":
            return replace(request, messages=messages), False
        return replace(request, messages=messages, assistant_prefix=self.prefill), True

    def split(self, choices: list[Choice]) -> None:
        """Split each choice of a prefilled reply (it starts inside the thinking)."""
        for ch in choices:
            parts = split_thinking(ch.text, self.markers, starts_thinking=True)
            ch.text, ch.reasoning = parts.answer, parts.thinking

    def _messages(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        system = "\n\n".join(
            str(m.get("content") or "") for m in messages if m.get("role") == "system"
        )
        rest = tuple(m for m in messages if m.get("role") != "system")
        text = load_template(self.template, allowed=TEMPLATE_VARIABLES).render(system=system)
        return ({"role": "system", "content": text}, *rest)
