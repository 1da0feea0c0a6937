"""``drr_bayes``: stop sampling when a Bayesian posterior over judge-weighted votes is settled.

Use it where ``drr_sample`` would be used, when the judge's P(majority right) should not be the
only word: every trace is judged by the DM at its end (its P(correct)), votes are weighted by
that P, and sampling stops once the leading answer's posterior probability of being truly ahead
(``ponder.stopping.bayes.weighted_stay``: a Beta over the leading two groups' judge masses,
``prior`` pseudo-votes each; the weights rescaled to sum to the samples drawn unless
``normalize: false``) reaches ``threshold``, after at least ``min_samples``::

    strategy: {name: drr_bayes, dm: default, k: 8, threshold: 0.9, prior: 1.0}

The answer is the heaviest group (the judge-weighted vote, not the plain majority);
``Outcome.confidence`` is the posterior (not a calibrated P(correct), so no ``p_correct``);
``abstain_below`` applies to it. Cost: as ``drr_sample`` (probes for the DM's features; none
with ``probes: false`` and a probe-free DM), and the rule itself is a few microseconds.
Replay: ``ponder.learning.drr.compare``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ponder.stopping.bayes import judge_weights, weighted_stay, weighted_votes
from ponder.stopping.model import DM
from ponder.strategies.drr import StopSampling
from ponder.strategies.registry import register_strategy


def bayes_score(
    answers: list[str | None],
    scores: list[float],
    prior: float,
    floor: float,
    min_samples: int,
    normalize: bool = True,
) -> float:
    """The posterior that the judge-weighted leader is ahead (0 before ``min_samples``)."""
    if len(answers) < min_samples:
        return 0.0
    groups = weighted_votes(answers, judge_weights(scores, floor, normalize))
    return weighted_stay([g.mass for g in groups], prior)


def bayes_pick(answers: list[str | None], scores: list[float], floor: float) -> str | None:
    groups = weighted_votes(answers, judge_weights(scores, floor))
    return groups[0].answer if groups else None


@register_strategy
class BayesStopSampling(StopSampling):
    """Draw traces in rounds; stop once the judge-weighted leader is settled (module doc)."""

    name: ClassVar[str] = "drr_bayes"
    score_name: ClassVar[str] = "p_stay"
    calibrated: ClassVar[bool] = False

    threshold: float = Field(0.9, ge=0.0, le=1.0)
    prior: float = Field(1.0, gt=0.0)
    """Pseudo-votes per answer in the Dirichlet prior (1: uniform)."""
    min_samples: int = Field(2, ge=1)
    floor: float = Field(0.02, ge=0.0, le=1.0)
    """The least weight a vote has (a sample the judge gives ~0 still counts a little)."""
    normalize: bool = True
    """Rescale the judge weights to sum to the samples drawn (the judge moves evidence between
    answers; it does not shrink it); ``false``: raw P's, so a doubting judge stops later."""

    def stop_score(self, dm: DM, answers: list[str | None], scores: list[float]) -> float:
        return bayes_score(
            answers, scores, self.prior, self.floor, self.min_samples, self.normalize
        )

    def may_stop(self, drawn: int) -> bool:
        return drawn >= self.min_samples

    def pick(self, answers: list[str | None], scores: list[float]) -> str | None:
        return bayes_pick(answers, scores, self.floor)
