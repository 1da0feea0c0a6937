"""Checkpoint states of recorded traces: where a stop policy could have stopped, and at what cost.

Use ``trace_states(sample, max_tokens)`` to turn one ``SampleRecord`` into the states a live
policy would have seen, in order. Every probe of an unfinished segment is one state (answer = the
probe's answer); the trace's end is the last state (answer = its final answer; at a trace cut at
``max_tokens`` without an extractable answer, the probe taken at the cut). ``tokens`` is what a
live policy stopping there spent: reasoning tokens so far plus the probe tokens generated so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.behaviour.records import SampleRecord
from ponder.stopping.features import CheckpointState


@dataclass(frozen=True)
class ReplayState:
    state: CheckpointState
    answer: str | None
    correct: bool
    tokens: int
    final: bool


def trace_states(
    s: SampleRecord, max_tokens: int, hidden: Sequence[float] | None = None
) -> list[ReplayState]:
    """The states of one trace; ``hidden`` (its sidecar vector) goes on the final state."""
    cut = s.finish_reason == "length"
    out: list[ReplayState] = []
    answers: list[str | None] = []
    probe_tokens = 0
    cut_probe = None
    for p in s.probes:
        if cut and p.at >= s.tokens:
            cut_probe = p
            break
        answers.append(p.answer)
        probe_tokens += p.tokens
        out.append(
            ReplayState(
                state=CheckpointState(
                    at=p.at,
                    answers=tuple(answers),
                    lp=s.lp[: p.at],
                    conf=s.conf[: p.at],
                    finished=False,
                    cut=False,
                    max_tokens=max_tokens,
                ),
                answer=p.answer,
                correct=p.correct,
                tokens=p.at + probe_tokens,
                final=False,
            )
        )
    answer, correct = s.answer, s.correct
    if cut_probe is not None:
        probe_tokens += cut_probe.tokens  # a live trace probes at the cut too
        if answer is None:
            answer, correct = cut_probe.answer, cut_probe.correct
    out.append(
        ReplayState(
            state=CheckpointState.ended(
                s, answers, answer, cut=cut, max_tokens=max_tokens, hidden=hidden
            ),
            answer=answer,
            correct=correct,
            tokens=s.tokens + probe_tokens,
            final=True,
        )
    )
    return out
