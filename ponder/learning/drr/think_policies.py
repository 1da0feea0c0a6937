"""The stop-thinking policies replayed on one scored trace, and the choice of their knobs.

Use ``full_stop``, ``budget_stop``/``budget_policy(B)``, ``dynasor_policy(m)`` and
``dm_policy(t)`` to replay a policy on a ``ScoredTrace`` (each gives a ``Stop``: right or not,
thinking tokens, generated tokens), ``knob_policies(kind)`` for the grid of a tuned policy, and
``choose(policy, traces, full_accuracy, margin)`` to pick its cheapest setting within ``margin``
of full thinking's accuracy (on train). What each policy means: the module doc of
``ponder.learning.drr.think_report``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ponder.learning.drr.replay import DM_GRID, ScoredTrace, Unit, dm_think, dynasor

DYNASOR_GRID = (2, 3, 4, 5, 6)


@dataclass(frozen=True)
class Stop:
    """One trace under one policy: right or not, thinking tokens, all generated tokens."""

    correct: bool
    thinking: int
    generated: int


def thinking_of(t: ScoredTrace) -> int:
    """The trace's whole thinking (a plain trace: all its tokens are reasoning)."""
    s = t.sample
    return s.thinking_tokens if s.thinking_tokens is not None else s.tokens


def _unit(t: ScoredTrace, u: Unit) -> Stop:
    final = u.stopped_at == len(t.states) - 1
    return Stop(u.correct, thinking_of(t) if final else t.states[u.stopped_at].state.at, u.tokens)


def full_stop(t: ScoredTrace) -> Stop:
    return Stop(t.sample.correct, thinking_of(t), t.sample.tokens)


def budget_stop(t: ScoredTrace, budget: int) -> Stop:
    """``budget@B`` (see the module doc): the probe at ``B`` stands in for forcing at ``B``."""
    if thinking_of(t) <= budget:
        return full_stop(t)
    before = [i for i, st in enumerate(t.states[:-1]) if st.state.at <= budget]
    if not before:  # no probe by then: no answer
        return Stop(False, budget, budget)
    i = before[-1]
    st = t.states[i]
    probe = t.sample.probes[i].tokens if i < len(t.sample.probes) else 0
    return Stop(st.correct, st.state.at, st.state.at + probe)


Policy = Callable[[ScoredTrace], Stop]


def dynasor_policy(m: int) -> Policy:
    """``dynasor@m``: stop where the last ``m`` probe answers agree."""
    return lambda t: _unit(t, dynasor(t, m))


def dm_policy(threshold: float) -> Policy:
    """``dm_think@t``: stop where the DM's P(correct) first reaches ``threshold``."""
    return lambda t: _unit(t, dm_think(t, threshold))


def budget_policy(budget: int) -> Policy:
    """``budget@B`` (``budget_stop``)."""
    return lambda t: budget_stop(t, budget)


def knob_policies(kind: str, budgets: Sequence[int] = ()) -> list[tuple[float, Policy]]:
    """The grid of a tuned policy: ``dynasor`` (m), ``dm_think`` (threshold) or ``budget`` (the
    fixed budgets ``budgets``, smallest first)."""
    if kind == "dynasor":
        return [(m, dynasor_policy(m)) for m in DYNASOR_GRID]
    if kind == "budget":
        return [(b, budget_policy(b)) for b in sorted(budgets)]
    return [(th, dm_policy(th)) for th in DM_GRID]


@dataclass
class Candidate:
    """One knob setting's train numbers."""

    knob: float
    accuracy: float
    thinking: float
    within: bool


@dataclass
class Chosen:
    """The setting chosen on train for one policy, and every setting's train numbers."""

    policy: str
    knob: float
    within_margin: bool
    candidates: list[Candidate] = field(default_factory=list)


def choose(
    policy: str,
    traces: Sequence[ScoredTrace],
    full_accuracy: float,
    margin: float,
    budgets: Sequence[int] = (),
) -> Chosen:
    """The cheapest setting whose accuracy on ``traces`` is within ``margin`` of full's (ties:
    the more accurate, then the more cautious); when none is, the most accurate
    (``within_margin`` False). ``budgets``: the grid of ``budget``."""
    cands = []
    for knob, run in knob_policies(policy, budgets):
        stops = [run(t) for t in traces]
        acc = mean_of([s.correct for s in stops])
        mean_thinking = mean_of([s.thinking for s in stops])
        cands.append(Candidate(knob, acc, mean_thinking, acc >= full_accuracy - margin - 1e-12))
    ok = [c for c in cands if c.within]
    # the grids run from the boldest setting to the most cautious: on a tie, the cautious one
    if ok:
        best = min(reversed(ok), key=lambda c: (c.thinking, -c.accuracy))
    else:
        best = max(reversed(cands), key=lambda c: (c.accuracy, c.thinking))
    return Chosen(policy, best.knob, bool(ok), cands)


def mean_of(xs: Sequence[float]) -> float:
    """The mean of ``xs`` (0 when empty)."""
    return sum(xs) / len(xs) if xs else 0.0


__all__ = [
    "DYNASOR_GRID",
    "Candidate",
    "Chosen",
    "Policy",
    "Stop",
    "budget_policy",
    "budget_stop",
    "choose",
    "dm_policy",
    "dynasor_policy",
    "full_stop",
    "knob_policies",
    "mean_of",
    "thinking_of",
]
