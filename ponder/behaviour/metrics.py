"""Small statistics for judges and policies: AUROC, ECE, reliability bins, Wilson, paired counts.

Use them on held-out predictions (``auroc``, ``ece``, ``reliability``) and on per-question policy
outcomes (``wilson``, ``paired``). Plain Python; ``auroc`` returns ``None`` with one class only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.behaviour.stats import mcnemar_exact, wilson

__all__ = ["Bin", "auroc", "ece", "paired", "reliability", "wilson"]


def auroc(y: Sequence[bool], p: Sequence[float]) -> float | None:
    """Area under the ROC curve (ties count half); ``None`` when ``y`` has one class."""
    pos = [s for s, t in zip(p, y, strict=True) if t]
    neg = [s for s, t in zip(p, y, strict=True) if not t]
    if not pos or not neg:
        return None
    order = sorted(range(len(p)), key=lambda i: p[i])
    ranks = [0.0] * len(p)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and p[order[j + 1]] == p[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    rank_pos = sum(r for r, t in zip(ranks, y, strict=True) if t)
    n1, n0 = len(pos), len(neg)
    return (rank_pos - n1 * (n1 + 1) / 2) / (n1 * n0)


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    count: int
    mean_p: float
    accuracy: float


def reliability(y: Sequence[bool], p: Sequence[float], bins: int = 10) -> list[Bin]:
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, v in enumerate(p) if lo <= v < hi or (b == bins - 1 and v == 1.0)]
        if idx:
            out.append(
                Bin(
                    lo,
                    hi,
                    len(idx),
                    sum(p[i] for i in idx) / len(idx),
                    sum(bool(y[i]) for i in idx) / len(idx),
                )
            )
    return out


def ece(y: Sequence[bool], p: Sequence[float], bins: int = 10) -> float | None:
    """Expected calibration error over ``bins`` equal-width bins."""
    if not p:
        return None
    return sum(b.count * abs(b.mean_p - b.accuracy) for b in reliability(y, p, bins)) / len(p)


def paired(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, float]:
    """(won, lost, exact McNemar p) of ``a`` against ``b`` on the same units (in order)."""
    won = sum(x and not y for x, y in zip(a, b, strict=True))
    lost = sum(y and not x for x, y in zip(a, b, strict=True))
    return won, lost, mcnemar_exact(won, lost)
