"""Bounding a reasoning model's thinking: the budget, the effort table, and budget forcing.

Use ``ThinkingBudget`` for "think at most N tokens per call" (a chain's ``thinking_budget`` /
``reasoning_effort``, a request's ``reasoning_effort`` or ``ponder.thinking_budget``), and
``budget_for`` to turn an effort name into tokens with ``DEFAULT_EFFORT_BUDGETS`` (or a chain's own
table). The engine applies the budget to every call (``ponder.orchestrator.thinking_bound``);
what it computes is here, pure:

- ``think_tokens``: how much of a call's ``max_tokens`` (the hard bound) the thinking may take,
  keeping ``answer_tokens`` (or half the call, if smaller) for the answer;
- ``forcing_step``: after a call cut at that length, the continuation that makes the model answer:
  an unclosed thinking gets the closing marker appended and the model continues after it (budget
  forcing, as in s1); an answer that was already under way just continues; a thinking the model
  ended itself without closing it (no answer) is closed the same way; ``None`` when the call
  finished with an answer;
- ``forced_choice``: the cut call's choice and its continuation's, as one choice (the thinking of
  the first, the answer of both, every token counted once). A model that writes the closing
  marker again after Ponder closed its thinking was still thinking: the answer is what follows
  the last one (the tokens before it stay counted, as answer tokens).

A thinking that closed on the very last token of its share looks the same as one cut there (the
answer is empty in both), so it is reported cut; the continuation is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, TypeVar

from ponder.protocol.thinking import DEFAULT_MARKERS, Markers, joined

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ponder.protocol.requests import Choice, GenerationRequest

Effort = Literal["low", "medium", "high"]
EFFORTS: tuple[Effort, ...] = ("low", "medium", "high")

DEFAULT_EFFORT_BUDGETS: dict[str, int] = {"low": 512, "medium": 2048, "high": 8192}
"""Thinking tokens per call for each ``reasoning_effort`` (a chain's ``thinking.efforts``
changes them)."""

DEFAULT_ANSWER_TOKENS = 256
"""The answer's allowance after a cut thinking, inside the call's ``max_tokens``."""

Mechanism = Literal["native", "forcing", "none"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class ThinkingBudget:
    """At most ``tokens`` thinking tokens per call; ``effort`` is the ``reasoning_effort`` it
    came from (sent as is to an upstream whose native knob is ``reasoning_effort``);
    ``answer_tokens`` is the answer's allowance after a cut."""

    tokens: int
    effort: str | None = None
    answer_tokens: int = DEFAULT_ANSWER_TOKENS

    def __post_init__(self) -> None:
        if self.tokens < 1:
            raise ValueError(f"a thinking budget is at least 1 token, got {self.tokens}")
        if self.answer_tokens < 1:
            raise ValueError(f"the answer allowance is at least 1 token, got {self.answer_tokens}")

    @property
    def effort_name(self) -> str:
        """``effort``, or the smallest effort whose default budget covers ``tokens``."""
        return self.effort or effort_for(self.tokens)

    def describe(self) -> dict[str, object]:
        body: dict[str, object] = {"tokens": self.tokens, "answer_tokens": self.answer_tokens}
        if self.effort is not None:
            body["effort"] = self.effort
        return body


def budget_for(
    tokens: int | None,
    effort: str | None,
    efforts: Mapping[str, int] | None = None,
    answer_tokens: int = DEFAULT_ANSWER_TOKENS,
) -> ThinkingBudget | None:
    """The budget for an explicit ``tokens`` (it wins) or an ``effort`` looked up in
    ``efforts`` (default ``DEFAULT_EFFORT_BUDGETS``); ``None`` when neither is given. A
    ``ValueError`` names the valid efforts for an unknown one."""
    table = dict(efforts or DEFAULT_EFFORT_BUDGETS)
    if effort is not None and effort not in table:
        raise ValueError(f"unknown reasoning_effort {effort!r}; valid: {', '.join(table)}")
    if tokens is not None:
        return ThinkingBudget(tokens, effort, answer_tokens)
    if effort is None:
        return None
    return ThinkingBudget(table[effort], effort, answer_tokens)


def effort_for(tokens: int) -> str:
    """The smallest effort whose default budget is at least ``tokens`` (``high`` above all)."""
    for name in EFFORTS:
        if tokens <= DEFAULT_EFFORT_BUDGETS[name]:
            return name
    return EFFORTS[-1]


def think_tokens(max_tokens: int, budget: ThinkingBudget) -> int:
    """The thinking's share of a call of ``max_tokens``: the budget, but never so much that less
    than ``answer_tokens`` (or half the call, if that is smaller) is left for the answer."""
    answer = min(budget.answer_tokens, max_tokens // 2)
    return max(1, min(budget.tokens, max_tokens - answer))


@dataclass(frozen=True)
class ForcingStep:
    """The continuation to ask for: ``request`` (the original request with ``assistant_prefix``
    = what was generated, the thinking closed) and whether the thinking was cut at its share
    (rather than the answer, which just continues, or a thinking the model ended unclosed)."""

    request: GenerationRequest
    cut: bool


def forcing_step(
    request: GenerationRequest,
    choice: Choice,
    max_tokens: int,
    markers: Markers = DEFAULT_MARKERS,
) -> ForcingStep | None:
    """The continuation after ``choice`` of the first call of ``request`` (``max_tokens``: the
    request's own, the hard bound of the whole choice), or ``None`` when there is none to make:
    the call finished with an answer, nothing is left of ``max_tokens``, or the thinking was
    hidden (no text to continue). ``cut``: the thinking reached its share (not ended by the
    model)."""
    thinking, answer = choice.reasoning, choice.text
    unclosed = bool(thinking) and not answer
    if choice.finish_reason != "length" and not unclosed:
        return None
    left = max_tokens - choice.completion_tokens
    if left < 1:
        return None
    if not thinking and not answer:
        return None  # hidden reasoning (only its token count came back): nothing to continue
    cut = unclosed and choice.finish_reason == "length"
    # "<think>\n…\n</think>\n\n" + the answer so far; without thinking the answer continues
    prefix = joined(thinking, answer, markers) if thinking else answer
    nxt = replace(request, assistant_prefix=prefix).with_params(
        n=1, max_tokens=left, seed=choice.seed if choice.seed is not None else request.params.seed
    )
    return ForcingStep(replace(nxt, min_n=None), cut)


def forced_choice(
    first: Choice, rest: Choice | None, cut: bool, markers: Markers = DEFAULT_MARKERS
) -> Choice:
    """``first`` (cut at its share) and its continuation ``rest`` as one choice: ``first``'s
    thinking, the answer so far plus ``rest``'s text (after its last closing marker, if it wrote
    one), their tokens and logprobs added. ``rest`` ``None`` (the continuation failed or was not
    made) keeps ``first`` as it is."""
    if rest is None:
        return replace(first, thinking_bound="forcing", thinking_cut=cut)
    text = rest.text.lstrip() if not first.text else first.text + rest.text
    if not first.text and markers[1] in text:  # it went on thinking after Ponder closed it
        text = text.rsplit(markers[1], 1)[1].lstrip() or text
    return replace(
        first,
        text=text,
        finish_reason=rest.finish_reason,
        completion_tokens=first.completion_tokens + rest.completion_tokens,
        token_logprobs=_joined(first.token_logprobs, rest.token_logprobs),
        top_logprobs=_joined(first.top_logprobs, rest.top_logprobs),
        tool_calls=rest.tool_calls,
        tool_calls_from_text=rest.tool_calls_from_text,
        reasoning_tokens=first.reasoning_tokens,
        thinking_bound="forcing",
        thinking_cut=cut,
    )


def _joined(a: list[_T] | None, b: list[_T] | None) -> list[_T] | None:
    return a + b if a is not None and b is not None else None
