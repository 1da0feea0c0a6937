"""Checkpoint states of recorded traces: where a stop policy could have stopped, and at what cost.

Use ``trace_states(sample, max_tokens)`` to turn one ``SampleRecord`` into the states a live
policy would have seen, in order. Every probe of an unfinished segment is one state (answer = the
probe's answer); the trace's end is the last state (answer = its final answer; at a trace cut at
``max_tokens`` without an extractable answer, the probe taken at the cut). ``tokens`` is what a
live policy stopping there spent: reasoning tokens so far plus the probe tokens generated so far.
In a thinking-format trace (``SampleRecord.thinking_tokens`` set) the probes were made inside the
thinking, ``at`` counts thinking tokens (the end's ``at`` is the whole thinking, its answer the
one read after it), and the trace was cut when its *thinking* was (``thinking_cut``).

``one_call_state(sample, max_tokens)`` is the one state a probe-free policy sees of the same
trace (``drr_sample`` with ``probes: false``): the finished trace with no probe answers, its answer
the text's own (no probe at a cut), its cost the reasoning tokens alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

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
    thinking = s.thinking_tokens is not None
    cut = bool(s.thinking_cut) if thinking else s.finish_reason == "length"
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
    end = CheckpointState.ended(s, answers, answer, cut=cut, max_tokens=max_tokens, hidden=hidden)
    if s.thinking_tokens is not None:
        end = replace(end, at=s.thinking_tokens)  # the thinking's length, as at every probe
    out.append(
        ReplayState(
            state=end,
            answer=answer,
            correct=correct,
            tokens=s.tokens + probe_tokens,
            final=True,
        )
    )
    return out


def one_call_state(
    s: SampleRecord, max_tokens: int, hidden: Sequence[float] | None = None
) -> ReplayState:
    """The trace as one call would have produced it: its end, judged without probe answers."""
    cut = s.finish_reason == "length"
    return ReplayState(
        state=CheckpointState.ended(s, (), s.answer, cut=cut, max_tokens=max_tokens, hidden=hidden),
        answer=s.answer,
        correct=s.correct,
        tokens=s.tokens,
        final=True,
    )
