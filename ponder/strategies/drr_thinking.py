"""The live stop-thinking in the thinking format: how a thinking trace's end becomes an outcome.

Use it from ``ProbedReasoner.trace`` (``drr_think`` with ``thinking`` settings): the trace is the
collector's ``thinking_trace`` (segments and probes inside the opened thinking, the thinking capped
at ``max_tokens``, the collection's thinking budget), the stop rule (the DM, or Dynasor's probe
agreement) watching every probe inside the thinking. ``thinking_outcome`` turns its end into the
run's ``Outcome``; ``final_state`` is the state the DM judges at a thinking that ran to its end;
``thinking_settings`` what a DM's manifest must have recorded for these traces.

What a stop answers, as replay grades it (``ponder drr think-report``'s ``dm_think@t`` and
``dynasor@m``): the thinking is closed (``</think>``, the forcing helpers of
``ponder.protocol.forcing``) and the model answers within ``thinking.answer_tokens``; that answer
part is the outcome's ``text``. The outcome's ``answer`` is the probe's at the stop (what replay
grades and the DM scored), unless ``from_probe`` is off (``stop_answer: forced``): then the answer
part's own boxed answer, the probe's when it has none. Replay's tokens at a stop count the thinking
and the probes so far, not the answer written after the stop: a live run spends
``data["answer_tokens"]`` more. A thinking that ran to its end (or its cap) answers from its
answer part alone, as the collection grades it (no probe fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ponder.answers import extract_answer
from ponder.protocol.actions import Outcome
from ponder.stopping.features import CheckpointState
from ponder.strategies.thinking_trace import ThinkingLog, ThinkingSettings


def thinking_settings(thinking: ThinkingSettings, max_tokens: int) -> dict[str, Any]:
    """The manifest settings a thinking-format run must match: the thinking's settings (as the
    collector records them) and its cap."""
    return {"thinking": thinking.model_dump(mode="json"), "max_tokens": max_tokens}


def thinking_outcome(
    log: ThinkingLog,
    how: str,
    answers: Sequence[str | None],
    p: float | None,
    from_probe: bool = True,
) -> Outcome:
    """The outcome of a thinking trace that ended ``how`` (``stopped``, ``finished``, ``cut``;
    not ``failed``): see the module doc."""
    thought = log.thinking_tokens or 0
    forced = extract_answer(log.text)
    data: dict[str, Any] = {
        "trace": log,
        "p": p,
        "stopped_at": thought,
        "thinking_tokens": thought,
        "answer_tokens": log.tokens - thought,
        "answer_part": forced,
    }
    if how != "stopped":
        return Outcome(answer=forced, text=log.text, data={**data, "early": False})
    probe = answers[-1] if answers else None
    answer = probe if from_probe or forced is None else forced
    return Outcome(answer=answer, text=log.text, data={**data, "early": True, "probe": probe})


def final_state(
    log: ThinkingLog, answers: Sequence[str | None], answer: str | None, max_tokens: int
) -> CheckpointState:
    """The state at a thinking trace's end, as replay builds it (``trace_states``): the probe
    answers then the answer part's, cut when the thinking was, ``at`` the thinking's length."""
    cut = bool(log.thinking_cut)
    end = CheckpointState.ended(log, answers, answer, cut=cut, max_tokens=max_tokens)
    return replace(end, at=log.thinking_tokens or 0)
