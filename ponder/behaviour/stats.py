"""Honest comparisons on few questions: Wilson intervals and the exact paired McNemar test.

Use ``wilson(correct, n)`` for a 95% interval on an accuracy (at n=20 it is about ±20 points, so
a few points of difference mean nothing), and ``paired(a, b)`` when two configs answered the same
questions: how many questions each got right that the other missed, and McNemar's exact p-value
(a two-sided binomial test on those discordant questions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct / n`` (``(0, 1)`` when ``n`` is 0)."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(won: int, lost: int) -> float:
    """Two-sided exact McNemar p-value for ``won`` vs ``lost`` discordant pairs."""
    n = won + lost
    if n == 0:
        return 1.0
    k = min(won, lost)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Paired:
    """A config against a baseline on the questions both answered."""

    n: int
    won: int
    lost: int
    p_value: float

    def text(self) -> str:
        return f"+{self.won}/-{self.lost} (p={self.p_value:.2g})"


def paired(a: Mapping[str, bool], b: Mapping[str, bool]) -> Paired:
    """``a`` against baseline ``b`` (question id -> correct) on their common questions."""
    common = [q for q in a if q in b]
    won = sum(1 for q in common if a[q] and not b[q])
    lost = sum(1 for q in common if b[q] and not a[q])
    return Paired(len(common), won, lost, mcnemar_exact(won, lost))


def accuracy_text(correct: Sequence[bool]) -> str:
    """``"30.0% [21.9, 39.6]"``: accuracy with its 95% Wilson interval, in percent."""
    n = len(correct)
    c = sum(bool(x) for x in correct)
    lo, hi = wilson(c, n)
    acc = c / n if n else 0.0
    return f"{acc:.1%} [{100 * lo:.1f}, {100 * hi:.1f}]"
