"""Replay stop policies over a behaviour collection: what each would have answered, and spent.

Use ``score_collection(dm, records, max_tokens)`` once, then the policy functions over its
``ScoredQuestion`` list; ``sweep`` runs every policy over its threshold grid. Replay sees exactly
what a live run sees (the same segments, probes and final answers), so a live strategy with the
same seed and settings makes the same decisions (``ponder.strategies.drr``).

Sequential policies (one trace; a unit = one recorded trace): ``full`` (no early stop),
``dynasor`` (stop when the last ``m`` probe answers agree; Dynasor-CoT), ``dm_think`` (stop at the
first checkpoint where the DM's P(correct) >= threshold). Parallel policies (a unit = one
question, its samples drawn in order): ``fixed`` (majority of the first n), ``adaptive`` (the
``adaptive`` strategy's agreement rule on its doubling schedule), ``beta`` (Adaptive-Consistency:
P(majority stays the majority) >= threshold), ``dm_sample`` (the DM's P(majority right) >=
threshold; with a probe-free DM, ``score_collection`` keeps only each trace's one-call end state
and no probe tokens are charged: ``drr_sample`` with ``probes: false``) and
``dm_sample_think`` (the same over traces that each stop thinking early). Tokens
are generated tokens from the records: reasoning plus the probe tokens a live policy would spend
(policies that need no probes are charged none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ponder.behaviour.hidden import HiddenStates
from ponder.behaviour.records import QuestionRecord, SampleRecord
from ponder.errors import InputError
from ponder.grading import is_equivalent
from ponder.learning.drr.states import ReplayState, one_call_state, trace_states
from ponder.protocol.actions import Outcome
from ponder.stopping.features import agreed, beta_stay, majority, votes
from ponder.stopping.model import DM
from ponder.strategies.adaptive import doubling, should_stop


@dataclass
class ScoredTrace:
    sample: SampleRecord
    states: list[ReplayState]
    p: list[float]  # the DM's P(correct) per state

    @property
    def probe_tokens(self) -> int:
        return self.states[-1].tokens - self.sample.tokens


@dataclass
class ScoredQuestion:
    record: QuestionRecord
    traces: list[ScoredTrace]


@dataclass(frozen=True)
class Unit:
    correct: bool
    tokens: int
    stopped_at: int  # state index (sequential) or samples drawn (parallel)


@dataclass
class PolicyRun:
    family: str  # "sequential" | "parallel"
    policy: str
    param: float | None
    units: list[Unit] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.policy if self.param is None else f"{self.policy}@{self.param:g}"

    @property
    def accuracy(self) -> float:
        return sum(u.correct for u in self.units) / len(self.units) if self.units else 0.0

    @property
    def mean_tokens(self) -> float:
        return sum(u.tokens for u in self.units) / len(self.units) if self.units else 0.0


def judge_for(dm: DM, hidden: HiddenStates | None) -> DM:
    """The DM that can judge this collection: itself when it needs no hidden states or the
    collection has them (in the DM's projection), else its fallback (``DM.without_hidden``)."""
    if not dm.needs_hidden:
        return dm
    if hidden is None:
        return dm.without_hidden()
    if dm.hidden is not None and hidden.projection != dm.hidden.projection:
        raise InputError(
            f"the collection's hidden states are projected with {hidden.projection[:12]}, the "
            f"DM was trained on {dm.hidden.projection[:12]}: run `ponder corpus hidden TEST "
            "--projection TRAIN` with the DM's train collection"
        )
    return dm


def score_collection(
    dm: DM,
    records: Sequence[QuestionRecord],
    max_tokens: int,
    hidden: HiddenStates | None = None,
) -> list[ScoredQuestion]:
    dm = judge_for(dm, hidden)
    use = hidden if dm.needs_hidden else None
    out = []
    for q in records:
        traces = []
        for s in q.samples:
            if s.error:
                continue
            h = use.vector(q.id, s.seed) if use is not None else None
            if dm.probe_free:  # what ``probes: false`` sees: the one-call trace's end
                states = [one_call_state(s, max_tokens, hidden=h)]
            else:
                states = trace_states(s, max_tokens, hidden=h)
            traces.append(ScoredTrace(s, states, [dm.p_checkpoint(st.state) for st in states]))
        if traces:
            out.append(ScoredQuestion(q, traces))
    return out


# -- sequential -------------------------------------------------------------------------------


def majority_units(dm: DM, q: ScoredQuestion) -> list[tuple[bool, float]]:
    """The sampling judge's units of one question: for n = 1..k, whether the majority of the
    first n samples is right and the DM's P(majority right) of them."""
    out = []
    for n in range(1, len(q.traces) + 1):
        answers = [t.sample.answer for t in q.traces[:n]]
        p = dm.p_majority(answers, [t.p[-1] for t in q.traces[:n]])
        out.append((is_equivalent(majority(answers), q.record.gold), p))
    return out


def full(t: ScoredTrace) -> Unit:
    return Unit(t.sample.correct, t.sample.tokens, len(t.states) - 1)


def _stop(t: ScoredTrace, i: int) -> Unit:
    st = t.states[i]
    return Unit(st.correct, st.tokens, i)


def dynasor(t: ScoredTrace, m: int = 3) -> Unit:
    for i, st in enumerate(t.states[:-1]):
        if agreed(st.state.answers, m):
            return _stop(t, i)
    return _stop(t, len(t.states) - 1)


def dm_think(t: ScoredTrace, threshold: float) -> Unit:
    for i, p in enumerate(t.p):
        if p >= threshold:
            return _stop(t, i)
    return _stop(t, len(t.states) - 1)


# -- parallel ---------------------------------------------------------------------------------


def _answer_unit(q: ScoredQuestion, n: int, probes: bool) -> Unit:
    drawn = q.traces[:n]
    ans = majority([t.sample.answer for t in drawn])
    tokens = sum(t.sample.tokens + (t.probe_tokens if probes else 0) for t in drawn)
    return Unit(is_equivalent(ans, q.record.gold), tokens, n)


def fixed(q: ScoredQuestion, n: int) -> Unit:
    return _answer_unit(q, min(n, len(q.traces)), probes=False)


def adaptive(q: ScoredQuestion, threshold: float, min_agree: int = 2) -> Unit:
    k = len(q.traces)
    for n in doubling(k):
        outs = [Outcome(answer=t.sample.answer, text="") for t in q.traces[:n]]
        if should_stop(outs, threshold, min_agree)[0]:
            break
    return _answer_unit(q, n, probes=False)


def beta(q: ScoredQuestion, threshold: float) -> Unit:
    k = len(q.traces)
    for n in range(1, k + 1):
        groups = sorted(
            (len(g.members) for g in votes([t.sample.answer for t in q.traces[:n]])),
            reverse=True,
        )
        top, second = (groups + [0, 0])[:2]
        if top and beta_stay(top, second) >= threshold:
            break
    return _answer_unit(q, n, probes=False)


def rounds(k: int, round_size: int) -> list[int]:
    """The sample counts after each round of ``round_size`` (the last round may be smaller)."""
    return [min(n, k) for n in range(round_size, k + round_size, round_size)]


def dm_sample(
    q: ScoredQuestion,
    dm: DM,
    threshold: float,
    round_size: int = 1,
    give_up: float | None = None,
    give_up_after: int = 2,
) -> Unit:
    """``drr_sample`` (a probe-free DM: with ``probes: false``): decide after each round; with
    ``give_up``, also stop once P(majority right) < it after ``give_up_after`` samples."""
    for n in rounds(len(q.traces), round_size):
        drawn = q.traces[:n]
        p = dm.p_majority([t.sample.answer for t in drawn], [t.p[-1] for t in drawn])
        if p >= threshold or (give_up is not None and n >= give_up_after and p < give_up):
            break
    return _answer_unit(q, n, probes=True)


def dm_sample_think(q: ScoredQuestion, dm: DM, threshold: float, think: float) -> Unit:
    """``dm_sample`` over traces that each stop thinking at ``think`` (``drr_sample`` with
    ``think_threshold``): every sample is cheaper, and the vote is over early answers."""
    k = len(q.traces)
    answers: list[str | None] = []
    scores: list[float] = []
    tokens = 0
    for n in range(1, k + 1):
        t = q.traces[n - 1]
        u = dm_think(t, think)
        answers.append(t.states[u.stopped_at].answer)
        scores.append(t.p[u.stopped_at])
        tokens += u.tokens
        if dm.p_majority(answers, scores) >= threshold:
            break
    return Unit(is_equivalent(majority(answers), q.record.gold), tokens, n)


THINK_IN_SAMPLE = (0.8, 0.9)
DM_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
BETA_GRID = (0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
ADAPTIVE_GRID = (0.5, 0.6, 0.75, 0.9, 1.0)


def sweep(dm: DM, scored: Sequence[ScoredQuestion]) -> list[PolicyRun]:
    """Every policy over its grid (sequential units = all traces, parallel = questions)."""
    traces = [t for q in scored for t in q.traces]
    k = max((len(q.traces) for q in scored), default=0)
    seq, par = "sequential", "parallel"
    runs = [PolicyRun(seq, "full", None, [full(t) for t in traces])]
    probed = dm.needs_probes  # a probe-free DM's traces have no checkpoints to stop at
    if probed:
        runs += [PolicyRun(seq, "dynasor", m, [dynasor(t, m) for t in traces]) for m in (2, 3, 4)]
        runs += [
            PolicyRun(seq, "dm_think", th, [dm_think(t, th) for t in traces]) for th in DM_GRID
        ]
    runs += [PolicyRun(par, "fixed", n, [fixed(q, n) for q in scored]) for n in range(1, k + 1)]
    runs += [
        PolicyRun(par, "adaptive", th, [adaptive(q, th) for q in scored]) for th in ADAPTIVE_GRID
    ]
    runs += [PolicyRun(par, "beta", th, [beta(q, th) for q in scored]) for th in BETA_GRID]
    if dm.sampling is not None:
        runs += [
            PolicyRun(par, "dm_sample", th, [dm_sample(q, dm, th) for q in scored])
            for th in DM_GRID
        ]
        for think in THINK_IN_SAMPLE if probed else ():
            runs += [
                PolicyRun(
                    par,
                    f"dm_sample+think{think:g}",
                    th,
                    [dm_sample_think(q, dm, th, think) for q in scored],
                )
                for th in DM_GRID
            ]
    return runs
