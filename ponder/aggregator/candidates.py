"""Render a candidate set into one prompt, truncating long reasoning deliberately.

Used by SSA and LLM-select. Each candidate keeps its final answer; only the reasoning is cut to
``max_candidate_tokens`` (head and tail kept, the middle replaced by a marker). Token counts are
estimates (``ponder.backends.base.estimate_tokens``) because aggregators are sans-I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.protocol.actions import Outcome
from ponder.protocol.tokens import estimate_tokens

TRUNCATION_MARK = "\n[... reasoning truncated ...]\n"


@dataclass(frozen=True)
class CandidateView:
    """What the template sees for one candidate (numbered from 1)."""

    number: int
    index: int
    reasoning: str
    answer: str
    truncated: bool
    score: float | None = None
    """The judge's P(correct) of this candidate, shown only when asked (SSA ``judge_scores``)."""


def truncate_reasoning(text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut to about ``max_tokens`` tokens: the first third and the last two thirds kept."""
    if max_tokens <= 0 or estimate_tokens(text) <= max_tokens:
        return text, False
    chars = max(1, int(len(text) * max_tokens / max(estimate_tokens(text), 1)))
    head = chars // 3
    tail = chars - head
    return text[:head].rstrip() + TRUNCATION_MARK + text[-tail:].lstrip(), True


def candidate_views(
    samples: Sequence[Outcome],
    max_candidates: int,
    max_candidate_tokens: int,
    scores: Sequence[float | None] | None = None,
) -> list[CandidateView]:
    """The answered samples (at most ``max_candidates``) as numbered, truncated views;
    ``scores`` (one per sample) puts a judge's P(correct) beside each."""
    views: list[CandidateView] = []
    for i, s in enumerate(samples):
        if s.answer is None or len(views) >= max_candidates:
            continue
        text, cut = truncate_reasoning(s.text, max_candidate_tokens)
        score = scores[i] if scores is not None else None
        views.append(CandidateView(len(views) + 1, i, text, s.answer, cut, score))
    return views
