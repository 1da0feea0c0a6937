"""A hard token budget for a whole run.

Before each call the orchestrator *reserves* what the upstream may bill for it, and after the call
settles the reservation to what the upstream really counted. Since reservations are taken before
any request leaves, concurrent calls can never push a run past its budget.

What a call is reserved: its prompt (as ``Backend.count_prompt_tokens`` counts it: exact where the
upstream can tell, else a safe upper bound) once when the upstream bills it once for all ``n``
choices (a native ``n`` call, ``prompt_once``), else once per choice (``n`` fanned-out calls), plus
``max_tokens`` per choice. When that does not fit: a call that takes fewer choices (``min_n``, a
``sample`` draw) gets the most choices that fit at their full ``max_tokens``; otherwise, or when not
even ``min_n`` full choices fit, ``max_tokens`` is cut to what is left, down to
``MIN_COMPLETION_TOKENS``. Below that the call is refused: ``BudgetTooSmall`` when the whole budget
could never fit it, else ``BudgetExhausted``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.errors import BudgetExhausted, BudgetTooSmall

MIN_COMPLETION_TOKENS = 16
"""A call that could produce fewer completion tokens than this is not worth making."""


@dataclass(frozen=True)
class Grant:
    """What a reservation allows: ``n`` choices of at most ``max_tokens`` each, ``reserved``
    tokens held until the call is settled."""

    n: int
    max_tokens: int
    reserved: int


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

    def reserve(
        self,
        prompt_tokens: int,
        n: int,
        max_tokens: int,
        *,
        prompt_once: bool = False,
        min_n: int | None = None,
    ) -> Grant:
        """Reserve room for a call of ``n`` choices (see the module doc); the ``Grant``.

        Raises ``BudgetTooSmall`` if the whole budget cannot fit the least version of the call
        (``min_n`` choices, ``MIN_COMPLETION_TOKENS`` each), else ``BudgetExhausted`` if what is
        left cannot."""
        n = max(n, 1)
        least_n = min(max(min_n or n, 1), n)

        def cost(k: int, m: int) -> int:
            return prompt_tokens * (1 if prompt_once else k) + k * m

        left = self.remaining
        grant: tuple[int, int] | None = None
        for k in range(n, least_n - 1, -1):  # the most choices that fit at full max_tokens
            if cost(k, max_tokens) <= left:
                grant = (k, max_tokens)
                break
        floor = min(MIN_COMPLETION_TOKENS, max_tokens)
        if grant is None:  # least_n choices with max_tokens cut to what is left
            cut = (left - cost(least_n, 0)) // least_n
            if cut >= floor:
                grant = (least_n, min(cut, max_tokens))
        if grant is None:
            self.exhausted = True
            needed = cost(least_n, floor)
            if needed > self.total_tokens:
                raise BudgetTooSmall(
                    self.total_tokens,
                    needed,
                    f"{cost(least_n, 0)} prompt + {least_n * floor} completion",
                    cost(n, max_tokens),
                )
            raise BudgetExhausted(
                f"token budget of {self.total_tokens} has {left} left; a call with "
                f"{prompt_tokens} prompt tokens x{1 if prompt_once else least_n} does not fit"
            )
        k, m = grant
        amount = cost(k, m)
        self.reserved += amount
        return Grant(k, m, amount)

    def settle(self, reserved: int, used: int) -> None:
        self.reserved -= reserved
        self.spent += used
