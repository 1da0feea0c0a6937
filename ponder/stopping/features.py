"""Features of a reasoning state, the same in replay (from records) and live (from a flow).

Use ``checkpoint_features(state)`` for one trace at a checkpoint (after a probe, or at its end)
and ``sampling_features(answers, scores, k)`` for a set of finished samples. Both return plain
float lists in the order of ``CHECKPOINT_FEATURES`` / ``SAMPLING_FEATURES``; an artifact stores
those names and refuses to load against another list, so a feature change is a version change.

The checkpoint features come in families (``CHECKPOINT_FAMILIES``): ``votes`` (the probe
answers' agreement), ``confidence`` (token logprobs and DeepConf confidence), ``length`` (length
and form: position, finished/cut, the answer's shape), ``hidden`` (the reasoner's reduced
last-token hidden state at a trace's end, ``has_hidden`` + ``h0..``; from a collection's
sidecar, ``ponder corpus hidden``) and the optional ``thinking`` family (``THINKING_FEATURES``:
the thinking's length so far in tokens and the probe answers' stability, for stopping a
thinking early; docs/reasoning.md). ``checkpoint_features(state, families, hidden_dims)`` keeps
the chosen ones, in ``CHECKPOINT_FEATURES`` order, then the thinking ones, the hidden ones last.
``CHECKPOINT_FEATURES`` (what ``families=None`` gives, and every artifact made before the
``thinking`` family reads) never changes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ponder.confidence import bottom_fraction, lowest_group, mean_confidence, tail_confidence
from ponder.grading import is_equivalent

WINDOW = 64

CHECKPOINT_FEATURES: tuple[str, ...] = (
    "position",  # tokens so far / max_tokens
    "n_answers",  # probe answers seen so far (the current one included)
    "finished",  # the reasoner stopped on its own; the answer is its final answer
    "cut",  # the trace hit max_tokens
    "has_answer",
    "numeric_answer",
    "answer_chars",  # log1p of the answer's length
    "agree_prev",  # the current answer equals the previous probe's
    "run_length",  # identical answers in a row ending at the current one
    "share_current",  # share of the answers so far equivalent to the current one
    "distinct_share",  # distinct answers / answers so far
    "last3_agree",  # Dynasor-CoT's rule: the last three answers agree
    "lp_mean",
    "lp_tail",
    "lp_lowest_group",
    "conf_mean",
    "conf_tail",
    "conf_lowest_group",
    "conf_bottom10",
)

THINKING_FEATURES: tuple[str, ...] = (
    "think_tokens_log",  # log1p(tokens thought so far): the thinking's length, not its share
    "answer_flips",  # probe answers that differ from the one before (changes of mind)
    "flip_share",  # answer_flips / (answers so far - 1)
    "stable_share",  # share of the answers so far in the current run of identical answers
)
"""The optional ``thinking`` family, computed after the base features (not in
``CHECKPOINT_FEATURES``, so artifacts without it load and score exactly as before)."""

BASE_FAMILIES: tuple[str, ...] = ("votes", "confidence", "length")
DM_FAMILIES: tuple[str, ...] = (*BASE_FAMILIES, "hidden")
KNOWN_FAMILIES: tuple[str, ...] = (*BASE_FAMILIES, "thinking", "hidden")
"""Every family a DM may be trained on, in feature order (``DM_FAMILIES``: the default sets)."""
CHECKPOINT_FAMILIES: dict[str, tuple[str, ...]] = {
    "length": ("position", "finished", "cut", "has_answer", "numeric_answer", "answer_chars"),
    "votes": (
        "n_answers",
        "agree_prev",
        "run_length",
        "share_current",
        "distinct_share",
        "last3_agree",
    ),
    "confidence": tuple(n for n in CHECKPOINT_FEATURES if n.startswith(("lp_", "conf_"))),
}


def checkpoint_feature_names(families: Sequence[str], hidden_dims: int = 0) -> list[str]:
    """The checkpoint feature names of ``families`` (``hidden`` adds ``has_hidden``, ``h0..``)."""
    keep = {n for f in families for n in CHECKPOINT_FAMILIES.get(f, ())}
    names = [n for n in CHECKPOINT_FEATURES if n in keep]
    if "thinking" in families:
        names += list(THINKING_FEATURES)
    if "hidden" in families:
        names += ["has_hidden", *(f"h{i}" for i in range(hidden_dims))]
    return names


@functools.lru_cache(maxsize=64)
def _kept(families: tuple[str, ...]) -> tuple[int, ...]:
    keep = {n for f in families for n in CHECKPOINT_FAMILIES.get(f, ())}
    return tuple(i for i, n in enumerate(CHECKPOINT_FEATURES) if n in keep)


SAMPLING_FEATURES: tuple[str, ...] = (
    "n_share",  # samples drawn / k
    "top_share",  # majority votes / samples drawn
    "second_share",
    "margin",  # (top - second) / drawn
    "distinct_share",
    "unanswered_share",
    "beta_stay",  # Adaptive-Consistency: P(majority stays the majority), Beta posterior
    "dm_top_mean",  # mean checkpoint-DM P(correct) over the majority's samples
    "dm_top_max",
    "dm_all_mean",
    "dm_top_mass",  # DM mass of the majority / DM mass of all answered samples
)


class TraceSoFar(Protocol):
    """What a checkpoint reads of a trace (a live ``TraceLog`` or a recorded ``SampleRecord``):
    the tokens generated so far and their logprobs and confidences."""

    @property
    def tokens(self) -> int: ...

    @property
    def lp(self) -> Sequence[float]: ...

    @property
    def conf(self) -> Sequence[float]: ...


@dataclass(frozen=True)
class CheckpointState:
    """One trace at one checkpoint: what a stop policy can see there.

    ``answers`` are the probe answers so far in order; the last one is the *current* answer (at
    a finished trace, its final answer). ``lp``/``conf`` cover the tokens generated so far.
    """

    at: int
    answers: tuple[str | None, ...]
    lp: Sequence[float]
    conf: Sequence[float]
    finished: bool
    cut: bool
    max_tokens: int
    hidden: Sequence[float] | None = None
    """The reasoner's reduced hidden state here (only at a trace's end, from a sidecar)."""

    @property
    def answer(self) -> str | None:
        return self.answers[-1] if self.answers else None

    @classmethod
    def ended(
        cls,
        trace: TraceSoFar,
        answers: Sequence[str | None],
        final: str | None,
        *,
        cut: bool,
        max_tokens: int,
        hidden: Sequence[float] | None = None,
    ) -> CheckpointState:
        """The state at the end of ``trace``: the probe answers, then ``final``; finished unless
        it was ``cut`` at ``max_tokens``. A live ``drr_*`` policy and replay judge this state."""
        return cls(
            at=trace.tokens,
            answers=(*answers, final),
            lp=trace.lp,
            conf=trace.conf,
            finished=not cut,
            cut=cut,
            max_tokens=max_tokens,
            hidden=hidden,
        )


def same(a: str | None, b: str | None) -> bool:
    """Two answers agree (both present and equivalent)."""
    return a is not None and b is not None and (a == b or _equivalent(a, b))


def agreed(answers: Sequence[str | None], m: int) -> bool:
    """Dynasor-CoT's stop: the last ``m`` probe answers are all there and agree (replay's
    ``dynasor@m`` and the live ``drr_think`` with ``stop: dynasor`` both ask this)."""
    last = answers[-m:]
    return len(last) == m and all(same(a, last[-1]) for a in last)


@functools.lru_cache(maxsize=65536)
def _equivalent(a: str, b: str) -> bool:
    return is_equivalent(a, b)  # replay compares the same few answers many times over


def _numeric(a: str | None) -> bool:
    if a is None:
        return False
    try:
        float(a.replace(",", "").strip().strip("$"))
    except ValueError:
        return False
    return True


def _or0(x: float | None) -> float:
    return 0.0 if x is None else float(x)


def checkpoint_features(
    s: CheckpointState, families: Sequence[str] | None = None, hidden_dims: int = 0
) -> list[float]:
    """The state's features: all of ``CHECKPOINT_FEATURES`` (``families`` None), or those of
    ``families`` (see the module doc)."""
    full = _all_features(s)
    if families is None:
        return full
    out = [full[i] for i in _kept(tuple(families))]
    if "thinking" in families:
        out += thinking_features(s)
    if "hidden" in families:
        if s.hidden is not None:
            if len(s.hidden) != hidden_dims:
                raise ValueError(f"hidden state of {len(s.hidden)} dims, expected {hidden_dims}")
            out += [1.0, *map(float, s.hidden)]
        else:
            out += [0.0] * (1 + hidden_dims)
    return out


def _all_features(s: CheckpointState) -> list[float]:
    cur = s.answer
    n = len(s.answers)
    prev = s.answers[-2] if n >= 2 else None
    run = 0
    for a in reversed(s.answers):
        if same(a, cur):
            run += 1
        else:
            break
    share = sum(same(a, cur) for a in s.answers) / n if n else 0.0
    distinct: list[str] = []
    for a in s.answers:
        if a is not None and not any(same(a, d) for d in distinct):
            distinct.append(a)
    last3 = n >= 3 and all(same(a, cur) for a in s.answers[-3:])
    return [
        s.at / max(1, s.max_tokens),
        float(n),
        float(s.finished),
        float(s.cut),
        float(cur is not None),
        float(_numeric(cur)),
        math.log1p(len(cur)) if cur else 0.0,
        float(same(cur, prev)),
        float(run),
        share,
        len(distinct) / n if n else 0.0,
        float(last3),
        _or0(mean_confidence(s.lp)),
        _or0(tail_confidence(s.lp, WINDOW)),
        _or0(lowest_group(s.lp, WINDOW)),
        _or0(mean_confidence(s.conf)),
        _or0(tail_confidence(s.conf, WINDOW)),
        _or0(lowest_group(s.conf, WINDOW)),
        _or0(bottom_fraction(s.conf, WINDOW, 0.1)),
    ]


def thinking_features(s: CheckpointState) -> list[float]:
    """The ``thinking`` family (``THINKING_FEATURES``): how long the trace has thought (``at``,
    tokens; in a thinking-format collection the thinking's tokens) and how stable its probe
    answers have been."""
    n = len(s.answers)
    flips = sum(
        not (same(a, b) or (a is None and b is None))
        for a, b in zip(s.answers, s.answers[1:], strict=False)
    )
    run = 0
    for a in reversed(s.answers):
        if not same(a, s.answer):
            break
        run += 1
    return [
        math.log1p(max(0, s.at)),
        float(flips),
        flips / (n - 1) if n >= 2 else 0.0,
        run / n if n else 0.0,
    ]


@dataclass
class Vote:
    answer: str
    members: list[int]


def votes(answers: Sequence[str | None]) -> list[Vote]:
    """Equivalence groups of the answers, in order of first appearance (as ``majority``)."""
    groups: list[Vote] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for g in groups:
            if same(a, g.answer):
                g.members.append(i)
                break
        else:
            groups.append(Vote(a, [i]))
    return groups


def majority(answers: Sequence[str | None]) -> str | None:
    """The most common answer, ties to the one seen first (``majority`` aggregator's rule)."""
    groups = votes(answers)
    if not groups:
        return None
    return max(groups, key=lambda g: len(g.members)).answer


def beta_stay(top: int, second: int) -> float:
    """P(p_top > p_second) under Beta(top + 1, second + 1): Adaptive-Consistency's stop score.

    Exact for counts: 1 - I_0.5(a, b) = P(Binomial(a + b - 1, 1/2) <= a - 1).
    """
    a, b = top + 1, second + 1
    n = a + b - 1
    return sum(math.comb(n, j) for j in range(a)) / 2**n


def sampling_features(
    answers: Sequence[str | None], scores: Sequence[float], k: int
) -> list[float]:
    """Features of the samples drawn so far (their answers and checkpoint-DM scores)."""
    n = len(answers)
    groups = sorted(votes(answers), key=lambda g: -len(g.members))
    top = len(groups[0].members) if groups else 0
    second = len(groups[1].members) if len(groups) > 1 else 0
    best = max(votes(answers), key=lambda g: len(g.members)) if groups else None
    top_scores = [scores[i] for i in best.members] if best else []
    answered = [scores[i] for i, a in enumerate(answers) if a is not None]
    mass = sum(answered)
    return [
        n / max(1, k),
        top / n if n else 0.0,
        second / n if n else 0.0,
        (top - second) / n if n else 0.0,
        len(groups) / n if n else 0.0,
        sum(a is None for a in answers) / n if n else 0.0,
        beta_stay(top, second),
        sum(top_scores) / len(top_scores) if top_scores else 0.0,
        max(top_scores, default=0.0),
        sum(answered) / len(answered) if answered else 0.0,
        sum(top_scores) / mass if mass > 0 else 0.0,
    ]
