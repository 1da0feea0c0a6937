"""Majority and weighted voting over normalized final answers.

Answers are grouped by equivalence (``ponder.grading.is_equivalent``: ``1/2``, ``0.5`` and
``\\frac{1}{2}`` are one vote); a turn of tool calls votes by its calls' identity (function name
plus normalized arguments, ``ponder.protocol.tool_calls.tool_call_answer``), so self-consistency
works over an agent's tool calls too. Use ``majority`` as the self-consistency baseline; use
``weighted`` when samples carry a confidence (mean token logprob, from ``logprobs: true``) or a
score (a reward model's, set by a scorer or given offline).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ponder.aggregator.base import Aggregator, valid
from ponder.aggregator.registry import register_aggregator
from ponder.aggregator.scorers import Scorer, score_of, with_scores
from ponder.errors import AllSamplesFailed, NoAnswer
from ponder.grading import is_equivalent
from ponder.protocol.actions import Flow, Outcome, Task, failure_of
from ponder.protocol.tool_calls import is_tool_answer


@dataclass
class Group:
    """Samples whose answers are equivalent; ``answer`` is the first one seen."""

    answer: str
    members: list[int] = field(default_factory=list)
    weight: float = 0.0


def same_answer(a: str, b: str) -> bool:
    """One vote: tool calls by identity (name + normalized arguments, never equal to a text
    answer), final answers by equivalence."""
    if is_tool_answer(a) or is_tool_answer(b):
        return a == b
    return is_equivalent(a, b)


def group_answers(samples: Sequence[Outcome]) -> list[Group]:
    """Equivalence classes of the samples' answers, in order of first appearance."""
    groups: list[Group] = []
    for i, s in valid(samples):
        assert s.answer is not None
        for g in groups:
            if same_answer(s.answer, g.answer):
                g.members.append(i)
                break
        else:
            groups.append(Group(s.answer, [i]))
    return groups


def agreement(samples: Sequence[Outcome]) -> float:
    """Share of the answered samples that agree with the most common answer (0 if none)."""
    groups = group_answers(samples)
    answered = sum(len(g.members) for g in groups)
    return max((len(g.members) for g in groups), default=0) / answered if answered else 0.0


def weighted_outcome(
    samples: Sequence[Outcome], groups: list[Group], best: Group, how: str, **data: object
) -> Outcome:
    """The outcome of a weighted vote: ``best``'s answer and first member's text, confidence its
    share of the total weight, and ``data`` with the aggregator, every group's votes, the chosen
    sample and ``data`` (an aggregator's own fields)."""
    rep = samples[best.members[0]]
    total = sum(g.weight for g in groups) or 1.0
    return Outcome(
        answer=best.answer,
        text=rep.text,
        confidence=best.weight / total,
        data={
            "aggregator": how,
            **data,
            "votes": {g.answer: round(g.weight, 6) for g in groups},
            "chosen": best.members[0],
        },
    )


def _no_answer(samples: Sequence[Outcome]) -> Outcome:
    causes = [failure_of(s) for s in samples]
    raise AllSamplesFailed(causes or [NoAnswer()])


@register_aggregator
class Majority(Aggregator):
    """The most common equivalent answer; ties go to the one seen first."""

    name: ClassVar[str] = "majority"

    def choose(self, task: Task, samples: Sequence[Outcome]) -> Outcome:
        groups = group_answers(samples)
        if not groups:
            return _no_answer(samples)
        for g in groups:
            g.weight = float(len(g.members))
        best = max(groups, key=lambda g: g.weight)  # max keeps the first on ties
        return weighted_outcome(samples, groups, best, self.name)


def sample_weight(s: Outcome, by: str, temperature: float) -> float:
    """The vote weight of one sample: exp(mean logprob / temperature), or its score."""
    if by == "confidence":
        c = s.confidence
        return math.exp(c / temperature) if c is not None else 0.0
    score = score_of(s)
    return score if score is not None else 0.0


@register_aggregator
class Weighted(Aggregator):
    """Votes weighted by ``confidence`` (mean token logprob) or ``score`` (scorer / reward model).

    A sample without a weight counts 0; if no sample has one, this degrades to majority (noted
    in the result's ``data``) rather than failing.
    """

    name: ClassVar[str] = "weighted"
    by: Literal["confidence", "score"] = "confidence"
    temperature: float = 1.0
    scorer: Scorer | None = None

    def roles(self) -> set[str]:
        return self.scorer.roles() if self.scorer else set()

    def flow(self, task: Task, samples: Sequence[Outcome]) -> Flow:
        if self.by == "score" and self.scorer is not None:
            scores = yield from self.scorer.score(task, samples)
            samples = with_scores(samples, scores)
        return self.choose(task, samples)

    def choose(self, task: Task, samples: Sequence[Outcome]) -> Outcome:
        groups = group_answers(samples)
        if not groups:
            return _no_answer(samples)
        for g in groups:
            g.weight = sum(sample_weight(samples[i], self.by, self.temperature) for i in g.members)
        if all(g.weight == 0 for g in groups):
            out = Majority().choose(task, samples)
            out.data["fallback"] = f"no sample had a {self.by}; majority vote used"
            return out
        best = max(groups, key=lambda g: g.weight)
        return weighted_outcome(samples, groups, best, self.name)
