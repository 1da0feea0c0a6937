"""Replay DeepConf's online rule (``deepconf``) over a behaviour collection, with no model.

Use ``replay_early_stop(records, rule)`` to measure accuracy and generated tokens of early
termination on collected traces: the first ``warmup`` traces of each question set the threshold;
later ones, ``batch`` at a time, are cut where their window confidence first drops below it
(rounded up to the end of that ``segment``, which a live run would still have generated); once the
confidence-weighted consensus passes ``consensus`` no further trace is drawn. *Generated tokens*
are what a live run would have generated; the saving is against all ``k`` traces run to the end.
The rule is ``DeepConfSample``'s own methods, so replay and live runs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.behaviour.outcomes import sample_outcome
from ponder.behaviour.records import QuestionRecord
from ponder.errors import PonderError
from ponder.grading import is_equivalent
from ponder.protocol.actions import Outcome, Task
from ponder.strategies.deepconf import DeepConfSample


@dataclass
class ReplayedQuestion:
    id: str
    answer: str | None
    correct: bool
    generated_tokens: int
    full_tokens: int
    drawn: int
    stopped: int
    threshold: float | None


def replay_question(record: QuestionRecord, rule: DeepConfSample) -> ReplayedQuestion:
    samples = record.samples[: rule.k]
    warm = samples[: rule.warmup]
    threshold = (
        rule.threshold if rule.threshold is not None else rule.threshold_of([s.conf for s in warm])
    )
    kept: list[Outcome] = [sample_outcome(s, window=rule.window) for s in warm]
    generated = sum(s.tokens for s in warm)
    drawn, stopped = len(warm), 0
    _, share = rule.consensus_share(kept)
    i = len(warm)
    while i < len(samples) and not rule.agreed(share):
        for s in samples[i : i + rule.batch]:
            drawn += 1
            at = rule.stop_point(s.conf, threshold)
            if at is not None:
                stopped += 1
                generated += min(at, s.tokens)
            else:
                generated += s.tokens
                kept.append(sample_outcome(s, window=rule.window))
        i += rule.batch
        _, share = rule.consensus_share(kept)
    try:
        answer = rule.final_vote().choose(Task(record.question), kept).answer
    except PonderError:
        answer = None
    return ReplayedQuestion(
        id=record.id,
        answer=answer,
        correct=is_equivalent(answer, record.gold),
        generated_tokens=generated,
        full_tokens=sum(s.tokens for s in samples),
        drawn=drawn,
        stopped=stopped,
        threshold=threshold,
    )


def replay_early_stop(
    records: Sequence[QuestionRecord], rule: DeepConfSample
) -> list[ReplayedQuestion]:
    """One ``ReplayedQuestion`` per record (see the module doc)."""
    return [replay_question(r, rule) for r in records]
