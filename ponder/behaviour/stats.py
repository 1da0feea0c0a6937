"""Honest numbers on few questions: intervals, paired tests, and how well a judge ranks/calibrates.

- accuracy: ``wilson(correct, n)`` (95% Wilson interval; at n=20 about ±20 points, so a few
  points of difference mean nothing) and ``accuracy_text(flags)``
- two configs on the same questions: ``paired(a, b)`` (won / lost and McNemar's exact p, a
  two-sided binomial test on the discordant questions) over question id -> correct maps or
  aligned sequences; ``mcnemar_exact(won, lost)``
- a judge's held-out P(correct): ``auroc`` (``None`` with one class), ``ece`` and
  ``reliability`` (equal-width bins); ``auroc_ci`` adds a percentile bootstrap interval that
  resamples whole *questions* (``groups``), since the 8 samples of one question are not
  independent; ``risk_coverage`` is the coverage-accuracy curve of answering only the most
  confident ``c`` of the units (selective answering)

Every number is exact or correctly rounded, so results do not drift with library versions:
``auroc`` takes tie-averaged ranks from SciPy (imported when called) and divides the exact
Mann-Whitney U once; ``sklearn.metrics.roc_auc_score`` gives the same AUROC up to its
trapezoid's rounding (about 1 in 4 values differ in the last bit, ties or not).
``sklearn.calibration.calibration_curve`` bins differently (a value on an edge goes to the lower
bin), and SciPy's Wilson interval and binomial p-value round differently in the last bits, so
those stay written out here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Z95",
    "AurocCI",
    "Bin",
    "CoveragePoint",
    "Paired",
    "accuracy_text",
    "auroc",
    "auroc_ci",
    "ece",
    "mcnemar_exact",
    "paired",
    "reliability",
    "risk_coverage",
    "wilson",
]

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


def accuracy_text(correct: Sequence[bool]) -> str:
    """``"30.0% [21.9, 39.6]"``: accuracy with its 95% Wilson interval, in percent."""
    n = len(correct)
    c = sum(bool(x) for x in correct)
    lo, hi = wilson(c, n)
    acc = c / n if n else 0.0
    return f"{acc:.1%} [{100 * lo:.1f}, {100 * hi:.1f}]"


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
    """A config against a baseline on the units both have."""

    n: int
    won: int
    lost: int
    p_value: float

    def text(self) -> str:
        return f"+{self.won}/-{self.lost} (p={self.p_value:.2g})"


def paired(
    a: Mapping[str, bool] | Sequence[bool], b: Mapping[str, bool] | Sequence[bool]
) -> Paired:
    """``a`` against baseline ``b``: won (``a`` right, ``b`` wrong), lost, exact McNemar p.

    Either two maps (question id -> correct; compared on their common questions) or two
    sequences of the same length (the same units in the same order).
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        pairs = [(a[q], b[q]) for q in a if q in b]
    elif isinstance(a, Mapping) or isinstance(b, Mapping):
        raise TypeError("paired: give two maps (id -> correct) or two aligned sequences")
    else:
        pairs = list(zip(a, b, strict=True))
    won = sum(1 for x, y in pairs if x and not y)
    lost = sum(1 for x, y in pairs if y and not x)
    return Paired(len(pairs), won, lost, mcnemar_exact(won, lost))


def auroc(y: Sequence[bool], p: Sequence[float]) -> float | None:
    """Area under the ROC curve (ties count half); ``None`` when ``y`` has one class.

    The Mann-Whitney U of the positives over tie-averaged ranks, divided by ``n1 * n0``: the
    rank sum is exact (half-integers), so the result is the exact AUROC rounded once.
    """
    if len(y) != len(p):
        raise ValueError(f"auroc: {len(y)} labels but {len(p)} scores")
    n1 = sum(1 for t in y if t)
    n0 = len(y) - n1
    if not n1 or not n0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(p)  # average ranks (1-based) for ties
    rank_pos = sum(float(r) for r, t in zip(ranks, y, strict=True) if t)
    return (rank_pos - n1 * (n1 + 1) / 2) / (n1 * n0)


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    count: int
    mean_p: float
    accuracy: float


def reliability(y: Sequence[bool], p: Sequence[float], bins: int = 10) -> list[Bin]:
    """The non-empty ones of ``bins`` equal-width bins ``[lo, hi)`` (the last one holds 1.0)."""
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
    """Expected calibration error over ``bins`` equal-width bins (``None`` with no predictions)."""
    if not p:
        return None
    return sum(b.count * abs(b.mean_p - b.accuracy) for b in reliability(y, p, bins)) / len(p)


@dataclass(frozen=True)
class AurocCI:
    """AUROC with a percentile bootstrap interval over resampled groups (questions).

    ``auroc`` is ``None`` with one class; ``lo``/``hi`` are ``None`` when fewer than half of the
    resamples had both classes (too few groups to say). ``n`` units in ``groups`` groups."""

    auroc: float | None
    lo: float | None
    hi: float | None
    n: int
    groups: int
    resamples: int

    def text(self) -> str:
        if self.auroc is None:
            return "n/a (one class)"
        if self.lo is None or self.hi is None:
            return f"{self.auroc:.3f} [interval n/a]"
        return f"{self.auroc:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def auroc_ci(
    y: Sequence[bool],
    p: Sequence[float],
    groups: Sequence[object] | None = None,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> AurocCI:
    """``auroc(y, p)`` with a bootstrap interval clustered by ``groups`` (default: every unit
    its own group): each resample draws as many groups as there are, with replacement, and takes
    all their units. Resamples with one class are skipped (scikit-learn's ``roc_auc_score``
    scores the rest)."""
    if len(y) != len(p):
        raise ValueError(f"auroc_ci: {len(y)} labels but {len(p)} scores")
    keys = list(range(len(y))) if groups is None else list(groups)
    if len(keys) != len(y):
        raise ValueError(f"auroc_ci: {len(y)} labels but {len(keys)} groups")
    point = auroc(y, p)
    index: dict[object, list[int]] = {}
    for i, g in enumerate(keys):
        index.setdefault(g, []).append(i)
    if point is None:
        return AurocCI(None, None, None, len(y), len(index), 0)
    import numpy as np
    from sklearn.metrics import roc_auc_score

    members = list(index.values())
    ya, pa = np.asarray(y, dtype=bool), np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    stats: list[float] = []
    for _ in range(resamples):
        pick = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[j] for j in pick])
        yy = ya[idx]
        if yy.all() or not yy.any():
            continue
        stats.append(float(roc_auc_score(yy, pa[idx])))
    if len(stats) < resamples / 2:
        return AurocCI(point, None, None, len(y), len(index), len(stats))
    tail = (1 - level) / 2
    lo, hi = np.quantile(stats, [tail, 1 - tail])
    return AurocCI(point, float(lo), float(hi), len(y), len(index), len(stats))


@dataclass(frozen=True)
class CoveragePoint:
    """Answering only the ``answered`` most confident of ``n`` units: their accuracy."""

    coverage: float  # the share asked for
    answered: int
    correct: int
    n: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.answered if self.answered else 0.0


COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.5)


def risk_coverage(
    correct: Sequence[bool], confidence: Sequence[float], coverages: Sequence[float] = COVERAGES
) -> list[CoveragePoint]:
    """The coverage-accuracy curve: for each coverage ``c``, keep the ``round(c * n)`` (at
    least one) units of highest confidence and report their accuracy. Ties in confidence keep
    the earlier unit (a stable order), so the curve does not depend on sorting luck."""
    if len(correct) != len(confidence):
        raise ValueError(f"risk_coverage: {len(correct)} labels but {len(confidence)} scores")
    n = len(correct)
    order = sorted(range(n), key=lambda i: -confidence[i])
    out = []
    for c in coverages:
        if not 0 < c <= 1:
            raise ValueError(f"risk_coverage: coverage {c} is not in (0, 1]")
        m = max(1, round(c * n)) if n else 0
        out.append(CoveragePoint(c, m, sum(bool(correct[i]) for i in order[:m]), n))
    return out
