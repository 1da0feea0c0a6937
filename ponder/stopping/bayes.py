"""A Bayesian stop over judge-weighted votes: stop sampling once the leader is settled.

Use ``weighted_votes(answers, weights)`` to tally each answer group's judge mass (every sample
votes with its judge's P(correct), e.g. the DM's), and ``weighted_stay(masses, prior)`` for the
posterior probability that the leading group is truly ahead of the runner-up:
``P(theta_1 > theta_2)`` with ``(theta_1, theta_2)`` the leading two shares under a Dirichlet
posterior with ``prior`` pseudo-votes per answer; the pair's relative share is
``Beta(m_1 + prior, m_2 + prior)``, so it is ``1 - I_0.5(m_1 + prior, m_2 + prior)``. With
unit weights and ``prior = 1`` it is Adaptive-Consistency's ``beta_stay``. Judge weights make
a confident minority count for more and a doubted majority for less. ``judge_weights(...,
normalize=True)`` rescales them to sum to the number of votes, so the evidence grows with the
samples drawn as in Adaptive-Consistency and the judge only moves it between answers; raw P's
(``normalize=False``) sum to less than the counts, so a judge that doubts everything stops late.
SciPy's ``betainc`` (a dependency of scikit-learn), a few microseconds per decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.stopping.features import votes


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0`` (SciPy's,
    imported on the first decision so ``import ponder`` stays light)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"betainc: a={a}, b={b} must be positive")
    from scipy.special import betainc as regularized

    return float(regularized(a, b, x))


@dataclass(frozen=True)
class WeightedGroup:
    answer: str
    members: tuple[int, ...]
    mass: float


def weighted_votes(answers: Sequence[str | None], weights: Sequence[float]) -> list[WeightedGroup]:
    """Equivalence groups (as ``majority`` groups them) with their summed weights, heaviest
    first (ties: the group seen first)."""
    groups = [
        WeightedGroup(g.answer, tuple(g.members), sum(weights[i] for i in g.members))
        for g in votes(answers)
    ]
    return sorted(groups, key=lambda g: -g.mass)  # stable: ties keep first-seen order


def weighted_stay(masses: Sequence[float], prior: float = 1.0) -> float:
    """P(the heaviest group is truly ahead of the runner-up) (see the module doc)."""
    if prior <= 0:
        raise ValueError(f"prior must be positive, got {prior}")
    ranked = sorted((max(0.0, m) for m in masses), reverse=True)
    if not ranked:
        return 0.0
    top = ranked[0]
    second = ranked[1] if len(ranked) > 1 else 0.0
    return 1.0 - betainc(top + prior, second + prior, 0.5)


def judge_weights(
    scores: Sequence[float | None], floor: float = 0.0, normalize: bool = False
) -> list[float]:
    """The vote weight of each sample: its judge P(correct), at least ``floor`` (a sample the
    judge did not score counts ``floor``); with ``normalize``, rescaled to sum to the number of
    samples (see the module doc)."""
    w = [max(floor, float(s)) if s is not None else floor for s in scores]
    total = sum(w)
    if normalize and total > 0:
        return [v * len(w) / total for v in w]
    return w
