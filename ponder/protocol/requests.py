"""The vocabulary shared by strategies, the orchestrator and backends.

Strategies build ``GenerationRequest`` objects; backends turn them into ``Completion`` objects.
A ``RewardRequest`` asks a reward model for one score and gets a ``Reward``. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ponder.protocol.thinking_budget import ThinkingBudget

Message = dict[str, Any]
"""An OpenAI-style chat message: ``{"role": ..., "content": ...}`` (plus tool fields)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``n`` > 1 asks for several independent choices of one prompt."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0

    def with_(self, **changes: Any) -> SamplingParams:
        return replace(self, **changes)


@dataclass(frozen=True)
class GenerationRequest:
    """One call a strategy wants made.

    Exactly one of ``messages`` (chat) or ``prompt`` (raw text to continue) is set. ``role``
    picks which of the run's backends serves it ("default", "aggregator", ...); ``purpose`` is a
    label for usage accounting and traces ("reason", "summarize", "aggregate", ...).

    ``assistant_prefix`` (chat only) asks the backend to *continue* a partial assistant message:
    the reply is the continuation of ``assistant_prefix``, not a fresh answer. Backends that
    cannot do that raise ``CapabilityMissing`` naming the capability ("continuation").
    """

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    role: str = "default"
    purpose: str = "reason"
    tools: tuple[dict[str, Any], ...] | None = None
    assistant_prefix: str | None = None
    tool_choice: Any = None
    """OpenAI's ``tool_choice`` ("auto", "none", "required" or a named function), sent with
    ``tools``; ``None`` leaves it to the upstream."""
    min_n: int | None = None
    """Under a token budget, the fewest of ``params.n`` choices this request can use: when ``n``
    choices at their full ``max_tokens`` do not fit, the engine sends the most that do (at least
    ``min_n``) and the ``Completion`` says how many were asked (``asked_n``). ``None``: all ``n``
    or none (``max_tokens`` is cut instead). Never sent; without a budget ``n`` is sent as is."""
    response_format: dict[str, Any] | None = None
    """OpenAI's ``response_format`` (``json_object``, ``json_schema``) for a chat request;
    ``None`` asks for none (the proxy sets it on ``cot``'s one call when a client asks)."""
    thinking: ThinkingBudget | None = None
    """A thinking budget for the backend's native knob (``reasoning_effort``, vLLM's
    ``thinking_token_budget``, ...): set by the engine only for a backend that has one
    (``Capabilities.thinking_budget``); ``None``: nothing is sent."""

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a GenerationRequest needs exactly one of messages or prompt")
        if self.assistant_prefix is not None and self.messages is None:
            raise ValueError("assistant_prefix continues a chat; it needs messages, not prompt")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def with_params(self, **changes: Any) -> GenerationRequest:
        return replace(self, params=self.params.with_(**changes))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for traces."""
        body: dict[str, Any] = {"role": self.role, "purpose": self.purpose}
        if self.messages is not None:
            body["messages"] = list(self.messages)
        else:
            body["prompt"] = self.prompt
        p = self.params
        body["params"] = {
            "n": p.n,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "stop": list(p.stop),
            "seed": p.seed,
            "logprobs": p.logprobs,
        }
        if self.assistant_prefix is not None:
            body["assistant_prefix"] = self.assistant_prefix
        if self.tools:
            body["tools"] = [t.get("function", {}).get("name") for t in self.tools]
        if self.tool_choice is not None:
            body["tool_choice"] = self.tool_choice
        if self.response_format is not None:
            body["response_format"] = self.response_format
        if self.thinking is not None:
            body["thinking_budget"] = self.thinking.describe()
        return body


@dataclass
class Choice:
    """One generated continuation."""

    text: str
    finish_reason: str | None
    completion_tokens: int
    token_logprobs: list[float] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    seed: int | None = None
    top_logprobs: list[dict[str, float]] | None = None
    """Per generated token, the ``top_logprobs`` alternatives (token text -> logprob), when the
    request asked for ``top_logprobs`` > 0 and the backend returns them."""
    tool_calls_from_text: bool = False
    """The model wrote its ``tool_calls`` as JSON text, and the backend parsed them
    (``ponder.protocol.tool_calls.parse_text_tool_calls``); ``text`` is then empty."""
    reasoning: str | None = None
    """A reasoning model's thinking, apart from its answer (``text``): from the upstream's
    ``reasoning_content`` or ``reasoning``, or split off inline ``<think>…</think>`` markers
    (``ponder.protocol.thinking``). ``None`` when the model gave none (or hid it)."""
    reasoning_tokens: int = 0
    """How many of ``completion_tokens`` were thinking: the upstream's
    ``completion_tokens_details.reasoning_tokens`` where it reports them, else counted (or
    estimated) from ``reasoning``."""
    thinking_bound: str | None = None
    """How a thinking budget bounded this choice: ``"native"`` (the upstream's knob),
    ``"forcing"`` (Ponder closed the thinking and the model answered) or ``None`` (no budget)."""
    thinking_cut: bool = False
    """The thinking reached the budget (forcing closed it; native: its tokens reached it)."""

    @property
    def mean_logprob(self) -> float | None:
        if not self.token_logprobs:
            return None
        return sum(self.token_logprobs) / len(self.token_logprobs)


@dataclass
class Completion:
    """What a backend returns for one ``GenerationRequest``: ``n`` choices plus accounting.

    ``prompt_tokens`` and ``calls`` count every upstream request that was made for it (a fanned-out
    ``n`` costs ``n`` prompts and ``n`` calls).
    """

    choices: list[Choice]
    prompt_tokens: int
    calls: int = 1
    model: str = ""
    latency_s: float = 0.0
    cached_prompt_tokens: int = 0
    asked_n: int | None = None
    """The request's ``n`` when the token budget let only ``len(choices)`` be drawn (a request
    with ``min_n``); ``None`` when every choice asked for was drawn."""

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        """The part of ``completion_tokens`` that was thinking."""
        return sum(c.reasoning_tokens for c in self.choices)

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""


class CallFailed:
    """What a failed call (``GenerationFailure``, ``RewardFailure``) tells a flow: its ``error``,
    and whether the run's token budget refused it (``budget``) rather than the upstream failing."""

    error: Exception

    @property
    def budget(self) -> bool:
        from ponder.errors import BudgetExhausted

        return isinstance(self.error, BudgetExhausted)


@dataclass
class GenerationFailure(CallFailed):
    """A request that produced no completion. Strategies receive it in place of a ``Completion``."""

    request: GenerationRequest
    error: Exception


Result = Completion | GenerationFailure


@dataclass(frozen=True)
class RewardRequest:
    """Score one conversation (typically the question, then a candidate solution as the assistant
    turn) with a reward model. ``role`` picks the backend ("reward" by default); that backend must
    implement ``Backend.reward`` (``RewardModelBackend`` does)."""

    messages: tuple[Message, ...]
    role: str = "reward"
    purpose: str = "score"

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view for traces."""
        return {"role": self.role, "purpose": self.purpose, "messages": list(self.messages)}


@dataclass
class Reward:
    """What a reward backend returns: the score and what it cost (prompt tokens only)."""

    score: float
    prompt_tokens: int
    model: str = ""
    latency_s: float = 0.0


@dataclass
class RewardFailure(CallFailed):
    """A ``RewardRequest`` that produced no score; flows receive it in place of a ``Reward``."""

    request: RewardRequest
    error: Exception


RewardResult = Reward | RewardFailure
