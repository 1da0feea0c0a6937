"""Bounding a reasoning model's thinking: the budget and the effort table.

Use ``ThinkingBudget`` for "think at most N tokens per call" (a chain's ``thinking_budget`` /
``reasoning_effort``, a request's ``reasoning_effort`` or ``ponder.thinking_budget``), and
``budget_for`` to turn an effort name into tokens with ``DEFAULT_EFFORT_BUDGETS`` (or a chain's own
table). The engine applies the budget to every call (``ponder.orchestrator.thinking_bound``);
what it computes is here, pure:

``think_tokens``: how much of a call's ``max_tokens`` (the hard bound) the thinking may take,
keeping ``answer_tokens`` (or half the call, if smaller) for the answer. Budget forcing (the
continuation after a cut) is ``ponder.protocol.forcing``. This module imports nothing of the
protocol, so ``requests`` can name ``ThinkingBudget``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Effort = Literal["low", "medium", "high"]
EFFORTS: tuple[Effort, ...] = ("low", "medium", "high")

DEFAULT_EFFORT_BUDGETS: dict[str, int] = {"low": 512, "medium": 2048, "high": 8192}
"""Thinking tokens per call for each ``reasoning_effort`` (a chain's ``thinking.efforts``
changes them)."""

DEFAULT_ANSWER_TOKENS = 256
"""The answer's allowance after a cut thinking, inside the call's ``max_tokens``."""

Mechanism = Literal["native", "forcing", "none"]


@dataclass(frozen=True)
class ThinkingBudget:
    """At most ``tokens`` thinking tokens per call; ``effort`` is the ``reasoning_effort`` it
    came from (sent as is to an upstream whose native knob is ``reasoning_effort``);
    ``answer_tokens`` is the answer's allowance after a cut; ``answer_lead`` the text written after
    the closing marker when forcing closes a thinking (``ponder.protocol.forcing``; empty: none)."""

    tokens: int
    effort: str | None = None
    answer_tokens: int = DEFAULT_ANSWER_TOKENS
    answer_lead: str = ""

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
        if self.answer_lead:
            body["answer_lead"] = self.answer_lead
        return body


def budget_for(
    tokens: int | None,
    effort: str | None,
    efforts: Mapping[str, int] | None = None,
    answer_tokens: int = DEFAULT_ANSWER_TOKENS,
    answer_lead: str = "",
) -> ThinkingBudget | None:
    """The budget for an explicit ``tokens`` (it wins) or an ``effort`` looked up in
    ``efforts`` (default ``DEFAULT_EFFORT_BUDGETS``); ``None`` when neither is given. A
    ``ValueError`` names the valid efforts for an unknown one."""
    table = dict(efforts or DEFAULT_EFFORT_BUDGETS)
    if effort is not None and effort not in table:
        raise ValueError(f"unknown reasoning_effort {effort!r}; valid: {', '.join(table)}")
    if tokens is not None:
        return ThinkingBudget(tokens, effort, answer_tokens, answer_lead)
    if effort is None:
        return None
    return ThinkingBudget(table[effort], effort, answer_tokens, answer_lead)


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
