"""Grouped cross-validation of the sampling stop policies on TRAIN questions only.

Use ``cross_validate(manifest, records, folds=5)`` (or ``ponder drr cv --train DIR``) to measure,
without touching a test collection, what each stop policy would do on questions its judge never
saw: the questions are dealt into folds (``folds.question_folds``); for each fold a DM with probes
and a probe-free DM (``train_dm(probes=False)``) are trained on the other folds' questions, and
every policy over its threshold grid is replayed on the held-out fold's questions. Every number
is then out-of-fold: a policy's accuracy and its cost (``costs.question_costs``: completion and
prompt tokens, calls, and the wall-time proxy), and the judges' P's (AUROC, ECE). ``choose``
(``ponder.learning.drr.cv_report``) picks each policy's threshold from those numbers alone.

Policies (samples drawn in seed order; baseline fixed maj@k, one plain call a sample):

- ``fixed@n``, ``adaptive@t`` (doubling rounds 2, 4, 8), ``beta@t`` (Adaptive-Consistency, one
  sample a round): one plain call a sample;
- ``dm_sample/rR@t``: ``drr_sample`` with probes (segments + probes), rounds of R;
- ``dm_sample_free/rR@t``: ``drr_sample`` with ``probes: false`` (one call a sample, the
  probe-free DM), rounds of R;
- both also with the futility stop, ``...@t/give_up<g,n``: ``give_up_below: g``,
  ``give_up_after: n`` (stop once P(majority right) < g after n samples);
- ``bayes/rR@t``, ``bayes_free/rR@t``: ``drr_bayes``, with and without probes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.learning.drr.compare import bayes
from ponder.learning.drr.costs import Cost, QuestionCosts, question_costs
from ponder.learning.drr.folds import question_folds
from ponder.learning.drr.replay import (
    ADAPTIVE_GRID,
    BETA_GRID,
    DM_GRID,
    ScoredQuestion,
    Unit,
    adaptive,
    beta,
    dm_sample,
    fixed,
    majority_units,
    score_collection,
)
from ponder.learning.drr.signals import collection_signals
from ponder.learning.drr.train import max_tokens_of, resolve_dm_families, train_dm
from ponder.stopping.model import DM
from ponder.strategies.adaptive import doubling

ROUND_SIZES = (1, 2, 3, 4)
BAYES_GRID = (0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
GIVE_UP_GRID: tuple[tuple[float, int] | None, ...] = (
    None,
    *((g, n) for g in (0.05, 0.1, 0.15, 0.2) for n in (2, 3)),
)
"""``drr_sample``'s futility stop (``give_up_below``, ``give_up_after``); ``None``: off."""


@dataclass
class Point:
    """One policy at one threshold: per held-out question, right or not and its cost."""

    policy: str
    round_size: int | None
    param: float
    give_up: tuple[float, int] | None = None
    correct: dict[str, bool] = field(default_factory=dict)
    cost: dict[str, Cost] = field(default_factory=dict)
    drawn: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The policy as chosen (its threshold is the knob): ``dm_sample_free/r2``."""
        return self.policy if self.round_size is None else f"{self.policy}/r{self.round_size}"

    @property
    def label(self) -> str:
        g = "" if self.give_up is None else f"/give_up<{self.give_up[0]:g},{self.give_up[1]}"
        return f"{self.key}@{self.param:g}{g}"

    def total(self) -> Cost:
        return sum(self.cost.values(), Cost())

    @property
    def accuracy(self) -> float:
        return sum(self.correct.values()) / len(self.correct) if self.correct else 0.0


@dataclass
class JudgeScores:
    """A judge's out-of-fold P's with their labels and questions (for AUROC, ECE)."""

    name: str
    y: list[bool] = field(default_factory=list)
    p: list[float] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def add(self, y: bool, p: float, group: str) -> None:
        self.y.append(bool(y))
        self.p.append(float(p))
        self.groups.append(group)


@dataclass
class CVRun:
    """Everything out-of-fold: policy points and judge scores (``cv_report`` turns it into the
    report and the choice)."""

    questions: list[str]
    folds: int
    fold_of: dict[str, int]
    k: int
    points: list[Point]
    judges: list[JudgeScores]
    families: list[str]
    free_families: list[str]
    baseline: str = ""

    def point(self, label: str) -> Point:
        return next(p for p in self.points if p.label == label)


Policy = Callable[[ScoredQuestion, ScoredQuestion, QuestionCosts], tuple[Unit, Cost]]
Spec = tuple[str, int | None, float, tuple[float, int] | None, Policy]


def policies(dm: DM | None, free: DM, k: int) -> list[Spec]:
    """Every (policy, round size, threshold, futility stop, replay) for one fold's judges
    (``dm`` ``None``: a collection without probes, so no policy with probes)."""
    out: list[Spec] = []

    def fix(n: int) -> Policy:
        return lambda sp, sf, c: (fixed(sp, n), c.drawn(min(n, len(sp.traces)), None, False))

    def adapt(t: float) -> Policy:
        def run(sp: ScoredQuestion, sf: ScoredQuestion, c: QuestionCosts) -> tuple[Unit, Cost]:
            u = adaptive(sp, t)
            return u, c.drawn_in([e for e in doubling(len(sp.traces)) if e <= u.stopped_at])

        return run

    def bet(t: float) -> Policy:
        return lambda sp, sf, c: _at(beta(sp, t), c, 1, False)

    def dms(t: float, r: int, probed: bool, g: tuple[float, int] | None) -> Policy:
        up, after = g if g is not None else (None, 2)
        if probed:
            assert dm is not None
            return lambda sp, sf, c: _at(dm_sample(sp, dm, t, r, up, after), c, r, True)
        return lambda sp, sf, c: _at(dm_sample(sf, free, t, r, up, after), c, r, False)

    def bay(t: float, r: int, probed: bool) -> Policy:
        if probed:
            return lambda sp, sf, c: _at(bayes(sp, t, round_size=r), c, r, True)
        return lambda sp, sf, c: _at(bayes(sf, t, round_size=r), c, r, False)

    out += [("fixed", None, float(n), None, fix(n)) for n in range(1, k + 1)]
    out += [("adaptive", None, t, None, adapt(t)) for t in ADAPTIVE_GRID]
    out += [("beta", None, t, None, bet(t)) for t in BETA_GRID]
    for r in ROUND_SIZES:
        for name, judge, probed in (("dm_sample", dm, True), ("dm_sample_free", free, False)):
            if judge is not None and judge.sampling is not None:
                out += [
                    (name, r, t, g, dms(t, r, probed, g)) for t in DM_GRID for g in GIVE_UP_GRID
                ]
        if dm is not None:
            out += [("bayes", r, t, None, bay(t, r, True)) for t in BAYES_GRID]
        out += [("bayes_free", r, t, None, bay(t, r, False)) for t in BAYES_GRID]
    return out


def _at(u: Unit, c: QuestionCosts, r: int, probed: bool) -> tuple[Unit, Cost]:
    return u, c.drawn(u.stopped_at, r, probed)


def cross_validate(
    manifest: Manifest,
    records: Sequence[QuestionRecord],
    *,
    folds: int = 5,
    seed: int = 0,
    families: str | Sequence[str] | None = None,
    free_families: str | Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CVRun:
    """Train on k-1 folds, replay the held-out fold, for every fold (module doc). A collection
    without probes (``collection_signals``) gets no DM with probes, nor its policies and judges."""
    fold = question_folds(len(records), folds, seed)
    n_folds = max(fold) + 1
    mt = max_tokens_of(manifest)
    every = int(manifest.settings.get("probe_every", 64))
    ids = question_keys(records)
    points: dict[str, Point] = {}
    judges = {n: JudgeScores(n) for n in JUDGES}
    k = 0
    signals = collection_signals(manifest, records)
    probed = signals.probes
    if not probed and progress is not None:
        progress(f"no probes ({signals.why}): the policies and judges with probes are left out")
    fams: list[str] = [] if probed else list(resolve_dm_families(families))
    free_fams: list[str] = []
    for f in range(n_folds):
        train = [q for q, g in zip(records, fold, strict=True) if g != f]
        held = [(i, q) for i, (q, g) in enumerate(zip(records, fold, strict=True)) if g == f]
        dm = train_dm(manifest, train, seed, families=families) if probed else None
        free = train_dm(manifest, train, seed, families=free_families, probes=False)
        free_fams = list(free.feature_families)
        if dm is not None:
            fams = list(dm.feature_families)
        for i, q in held:
            scored_free = score_collection(free, [q], mt)
            scored = score_collection(dm, [q], mt) if dm is not None else scored_free
            if not scored or not scored_free:
                continue  # every sample failed: nothing to replay
            sp, sf = scored[0], scored_free[0]  # no probes: the votes-only policies read sf
            key = ids[i]
            k = max(k, len(sp.traces))
            costs = question_costs(q, every)
            for name, r, t, g, run in policies(dm, free, len(sp.traces)):
                u, c = run(sp, sf, costs)
                pt = points.setdefault(f"{name}/{r}@{t:g}/{g}", Point(name, r, t, g))
                pt.correct[key] = u.correct
                pt.cost[key] = c
                pt.drawn[key] = u.stopped_at
            judge_question(judges, key, q, sp, sf, dm, free)
        if progress is not None:
            progress(f"fold {f + 1}/{n_folds}: trained on {len(train)}, replayed {len(held)}")
    return CVRun(
        questions=ids,
        folds=n_folds,
        fold_of=dict(zip(ids, fold, strict=True)),
        k=k,
        points=list(points.values()),
        judges=list(judges.values()),
        families=fams,
        free_families=free_fams,
        baseline=f"fixed@{k}",
    )


JUDGES = (
    "DM with probes, P(correct) at final answers",
    "DM without probes, P(correct) at final answers",
    "sampling DM with probes, P(majority right)",
    "sampling DM without probes, P(majority right)",
    "self-critique P(yes) (untrained)",
    "mean token logprob (untrained)",
)


def judge_question(
    judges: dict[str, JudgeScores],
    key: str,
    q: QuestionRecord,
    sp: ScoredQuestion,
    sf: ScoredQuestion,
    dm: DM | None,
    free: DM,
) -> None:
    """Add one question's rows to each of the ``JUDGES`` (``judges`` in that order): per trace
    its P(correct) at the final answer from both DMs, self-critique and mean logprob; per n = 1..k
    the sampling DMs' P(majority right) of the first n samples."""
    j = list(judges.values())
    for t in sp.traces:
        if dm is not None:
            j[0].add(t.states[-1].correct, t.p[-1], key)
        if t.sample.critique_p_yes is not None:
            j[4].add(t.sample.correct, t.sample.critique_p_yes, key)
        if t.sample.lp:
            j[5].add(t.sample.correct, sum(t.sample.lp) / len(t.sample.lp), key)
    for t in sf.traces:
        j[1].add(t.states[-1].correct, t.p[-1], key)
    for judge, sq, d in ((j[2], sp, dm), (j[3], sf, free)):
        if d is None or d.sampling is None:
            continue
        for right, p in majority_units(d, sq):
            judge.add(right, p, key)


def question_keys(records: Sequence[QuestionRecord]) -> list[str]:
    """Each question's id, made unique (pooled collections of two datasets may share ids)."""
    seen: set[str] = set()
    out = []
    for i, q in enumerate(records):
        key = q.id if q.id not in seen else f"{q.id}#{i}"
        seen.add(key)
        out.append(key)
    return out
