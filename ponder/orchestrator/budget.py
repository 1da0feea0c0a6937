"""A hard token budget for a whole run.

Before each call the orchestrator *reserves* the prompt plus the largest completion the call may
produce, shrinking ``max_tokens`` to what is left; after the call it settles the reservation to
what was really used. Since reservations are taken before any request leaves, concurrent calls can
never push a run past its budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.errors import BudgetExhausted

MIN_COMPLETION_TOKENS = 16
"""A call that could produce fewer completion tokens than this is not worth making."""


@dataclass
class TokenBudget:
    """``total_tokens`` counts prompt and completion tokens of every call in the run."""

    total_tokens: int
    spent: int = 0
    reserved: int = 0
    exhausted: bool = field(default=False)

    @property
    def remaining(self) -> int:
        return self.total_tokens - self.spent - self.reserved

    def reserve(self, prompt_tokens: int, n: int, max_tokens: int) -> tuple[int, int]:
        """Reserve room for ``n`` choices; return ``(granted_max_tokens, reserved)``.

        Raises ``BudgetExhausted`` if not even ``MIN_COMPLETION_TOKENS`` per choice fit.
        """
        room = self.remaining - prompt_tokens * n
        granted = min(max_tokens, room // n if n else 0)
        if granted < min(MIN_COMPLETION_TOKENS, max_tokens):
            self.exhausted = True
            raise BudgetExhausted(
                f"token budget of {self.total_tokens} has {self.remaining} left; a call with "
                f"{prompt_tokens} prompt tokens x{n} does not fit"
            )
        amount = prompt_tokens * n + granted * n
        self.reserved += amount
        return granted, amount

    def settle(self, reserved: int, used: int) -> None:
        self.reserved -= reserved
        self.spent += used
