"""Which fields of a chat request a chain honours, and the wrapper that applies them to its calls.

Use ``chain_options(name, spec, req)`` on a chain request before it runs: it answers 400
``unsupported_content`` for a content part a chain cannot read (images, audio, files: chains read
text) and 400 ``unsupported_parameter`` for a field the chain cannot honour set to a value that
would change the answer, both naming the part or field, so nothing is dropped in silence; it
returns the ``ClientOptions`` to apply: ``stop`` on every call of the chain, ``response_format``
on ``cot``'s one call (the call whose text is the answer). ``ClientOptions.wrap(strategy)`` is the
strategy whose every yielded request carries them (sub-flows of a ``Fork`` included), so the
budget, the trace and the upstream all see the requests as sent. None of this does I/O.

The table of fields is in docs/serve.md ("Request fields").
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from pydantic import SerializeAsAny

from ponder.protocol.actions import Action, Flow, FlowSteps, Fork, Generate, Outcome, Task
from ponder.protocol.requests import GenerationRequest
from ponder.protocol.strategy import Strategy
from ponder.serve.config import ChainSpec
from ponder.serve.errors import ApiError
from ponder.serve.parsing import ChatRequest
from ponder.strategies.cot import ChainOfThought

TEXT_PARTS = ("text",)
"""The content part types a chain reads (a plain question is folded into text)."""

MAX_STOP = 4
"""At most this many ``stop`` sequences (OpenAI's limit)."""

NEUTRAL: dict[str, Callable[[Any], bool]] = {
    "logit_bias": lambda v: v == {},
    "logprobs": lambda v: v is False,
    "top_logprobs": lambda v: v == 0,
    "presence_penalty": lambda v: v == 0,
    "frequency_penalty": lambda v: v == 0,
    "modalities": lambda v: v == ["text"],
    "audio": lambda v: False,
    "prediction": lambda v: False,
    "functions": lambda v: v == [],
    "function_call": lambda v: v == "none",
    "parallel_tool_calls": lambda v: v is True,
    "web_search_options": lambda v: False,
    "verbosity": lambda v: v == "medium",
}
"""Fields no chain honours, and the values that change nothing (``null`` always does): any
other value is a 400 ``unsupported_parameter``."""

WHY = {
    "logit_bias": "the chain's calls are sampled as its config says",
    "logprobs": "a chain's answer is chosen from several calls and carries no logprobs",
    "top_logprobs": "a chain's answer is chosen from several calls and carries no logprobs",
    "presence_penalty": "the chain's calls are sampled as its config says",
    "frequency_penalty": "the chain's calls are sampled as its config says",
    "modalities": "chains answer in text only",
    "audio": "chains answer in text only",
    "prediction": "chains do not take predicted outputs",
    "functions": "chains take 'tools', not the legacy 'functions'",
    "function_call": "chains take 'tool_choice', not the legacy 'function_call'",
    "parallel_tool_calls": "chains do not pass it to their calls",
    "web_search_options": "chains do not search the web",
    "verbosity": "the chain's calls are sampled as its config says",
}

PASS_THROUGH_HINT = "or send the request without a chain (pass-through)"


@dataclass(frozen=True)
class ClientOptions:
    """What a chain request asks of every call of its chain."""

    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.stop) or self.response_format is not None

    def apply(self, request: GenerationRequest) -> GenerationRequest:
        changes: dict[str, Any] = {}
        if self.stop:
            stops = tuple(dict.fromkeys((*request.params.stop, *self.stop)))
            changes["params"] = request.params.with_(stop=stops)
        if self.response_format is not None and request.is_chat:
            changes["response_format"] = self.response_format
        return replace(request, **changes) if changes else request

    def wrap(self, strategy: Strategy) -> Strategy:
        """``strategy`` with these options on every request it yields (itself when none)."""
        if not self:
            return strategy
        return WithClientOptions(inner=strategy, options=self)


class WithClientOptions(Strategy):
    """A chain's strategy with the client's ``ClientOptions`` applied to every request its flow
    yields (``Fork`` sub-flows included). Not registered: the proxy builds it per request."""

    name: ClassVar[str] = "client_options"

    inner: SerializeAsAny[Strategy]
    options: ClientOptions

    def roles(self) -> set[str]:
        return self.inner.roles()

    def tools_unsupported(self) -> str | None:
        return self.inner.tools_unsupported()

    def flow(self, task: Task) -> Flow:
        return _applied(self.inner.flow(task), self.options)


def _applied(flow: Flow, options: ClientOptions) -> Generator[Action, Any, Outcome]:
    with FlowSteps(flow) as steps:
        for action in steps:
            if isinstance(action, Generate):
                action = Generate(tuple(options.apply(r) for r in action.requests))
            elif isinstance(action, Fork):
                action = Fork([_applied(f, options) for f in action.flows], label=action.label)
            steps.reply = yield action
    return steps.outcome


def chain_options(name: str, spec: ChainSpec, req: ChatRequest, agent_turn: bool) -> ClientOptions:
    """The options to apply to chain ``name``'s calls, or a 400 naming what it cannot honour.
    ``agent_turn``: the transcript goes upstream as sent (its parts are not folded into text)."""
    check_content(name, req, agent_turn)
    for field, neutral in NEUTRAL.items():
        value = req.raw.get(field)
        if value is not None and not neutral(value):
            raise unsupported(name, field, WHY[field])
    return ClientOptions(stop=_stop(req), response_format=_response_format(name, spec, req))


def check_content(name: str, req: ChatRequest, agent_turn: bool) -> None:
    """A 400 ``unsupported_content`` naming the first part a chain would not read: any part but
    text in a message folded into the question or the system prompt (every message of a plain
    question; the system messages of an agent's turn, whose other turns go upstream as sent)."""
    for i, m in enumerate(req.messages):
        if agent_turn and m["role"] not in ("system", "developer"):
            continue
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in TEXT_PARTS:
                raise ApiError(
                    400,
                    f"chain {name!r} cannot take {kind or type(part).__name__!r} content "
                    f"(messages[{i}].content[{j}]): chains read text parts only; send text, "
                    f"{PASS_THROUGH_HINT}",
                    param=f"messages[{i}].content[{j}]",
                    code="unsupported_content",
                )


def unsupported(name: str, field: str, why: str) -> ApiError:
    return ApiError(
        400,
        f"chain {name!r} cannot honour {field!r}: {why}; leave it out, {PASS_THROUGH_HINT}",
        param=field,
        code="unsupported_parameter",
    )


def _stop(req: ChatRequest) -> tuple[str, ...]:
    stop = req.raw.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOP
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise ApiError(
            400,
            f"'stop' must be a non-empty string or a list of at most {MAX_STOP} of them",
            param="stop",
        )
    return tuple(stops)


def _response_format(name: str, spec: ChainSpec, req: ChatRequest) -> dict[str, Any] | None:
    fmt = req.raw.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
        raise ApiError(
            400,
            "'response_format' must be an object with a 'type' (text, json_object, json_schema)",
            param="response_format",
        )
    if fmt["type"] == "text":
        return None  # the default: nothing to send
    if not isinstance(spec.strategy, ChainOfThought):
        raise unsupported(
            name,
            "response_format",
            f"only a 'cot' chain, whose one call is the answer, can shape it; strategy "
            f"{spec.strategy.name!r} chooses or writes its answer from several calls",
        )
    return dict(fmt)
