"""Best-of-n: keep the single highest-scoring candidate.

Use it with a reward model (``scorer: {kind: precomputed}`` offline, ``reward_model`` for an HTTP
reward model, ``function`` for a local score, or ``judge`` for an LLM judge). Candidates without an
answer or a score never win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from ponder.aggregator.base import Aggregator
from ponder.aggregator.registry import register_aggregator
from ponder.aggregator.scorers import Scorer, with_scores  # noqa: F401  (re-exported)
from ponder.aggregator.voting import Majority
from ponder.protocol.actions import Flow, Note, Outcome, Task


@register_aggregator
class BestOfN(Aggregator):
    """The answer of the candidate with the highest score (first on ties)."""

    name: ClassVar[str] = "best_of_n"
    scorer: Scorer = Field(default_factory=lambda: Scorer.model_validate({}))

    def roles(self) -> set[str]:
        return self.scorer.roles()

    def flow(self, task: Task, samples: Sequence[Outcome]) -> Flow:
        scores = yield from self.scorer.score(task, samples)
        scored = [
            (sc, i)
            for i, (s, sc) in enumerate(zip(samples, scores, strict=True))
            if s.answer is not None and sc is not None
        ]
        if not scored:
            yield Note("best_of_n_fallback", {"why": "no candidate has both an answer and a score"})
            out = Majority().choose(task, samples)
            out.data["fallback"] = "majority (no scores)"
            return out
        best_score, best = max(scored, key=lambda t: (t[0], -t[1]))
        chosen = samples[best]
        return Outcome(
            answer=chosen.answer,
            text=chosen.text,
            confidence=best_score,
            data={"aggregator": self.name, "chosen": best, "scores": list(scores)},
        )
