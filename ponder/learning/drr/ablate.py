"""What each feature family is worth: train on train questions, judge test questions, by family.

Use ``ablate(train, test)`` (or ``ponder drr ablate --train DIR --test DIR``) to train the DRR
judge's checkpoint scorer and the learned aggregator once per family set and score the held-out
test collection: the DM's AUROC and ECE at final answers (one unit per trace) and the learned
aggregator's AUROC over answer groups and its pick accuracy, each AUROC with a 95% bootstrap
interval that resamples whole questions (``ponder.behaviour.stats.auroc_ci``). The families are
``votes``, ``confidence`` (logprob/DeepConf), ``length`` (length and form) and ``hidden`` (the
reasoner's hidden state; only where both collections have their sidecar, ``ponder corpus
hidden``, in one projection). Sets: each family alone, all but one, and all. Nothing is tuned on
the test collection. Each row also scores the DM's sampling scorer, P(majority right) of the
first n samples for n = 1..k (the judge ``drr_sample`` stops on and selective answering uses).
A *plain* test or train collection (no probes inside traces: ``--probe-every`` >= ``--max-tokens``,
or a probed train collection pooled with a plain one) gets
probe-free DMs (each trace's one-call end) over the families without ``votes``, and the learned
aggregator the same families plus ``votes`` (its votes are across samples: no probes needed).

``ablate_cv(train, folds=K)`` (``ponder drr ablate --train DIR --cv K``) needs no test collection:
the train questions are dealt into K folds (``folds.question_folds``), each fold is scored by
judges trained on the others, and the pooled out-of-fold scores are measured the same way; it
adds probe-free rows (the DM on each trace's one-call end, ``train_dm(probes=False)``), so what
the probes buy is measured on train too. A train set with no probes left (a plain collection, or
a probed one pooled with a plain one at the coarsest interval) gets only the probe-free rows,
the learned aggregator on each with ``votes`` added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ponder.behaviour.hidden import HiddenStates
from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.behaviour.stats import AurocCI, auroc_ci, ece
from ponder.errors import InputError
from ponder.grading import is_equivalent
from ponder.learning.drr.folds import question_folds
from ponder.learning.drr.replay import majority_units, score_collection
from ponder.learning.drr.train import max_tokens_of, train_dm
from ponder.stopping.features import DM_FAMILIES
from ponder.stopping.model import PROBE_FAMILIES

LEARNED_FAMILIES = {
    "votes": ("votes",),
    "confidence": ("confidence",),
    "length": ("length", "form"),
    "hidden": ("hidden",),
}


def family_sets(families: Sequence[str]) -> list[tuple[str, ...]]:
    """Each family alone, all but one (when there are 3+), and all, without repeats."""
    fams = tuple(f for f in DM_FAMILIES if f in families)
    sets: list[tuple[str, ...]] = [(f,) for f in fams]
    if len(fams) >= 3:
        sets += [tuple(g for g in fams if g != f) for f in fams]
    sets.append(fams)
    out: list[tuple[str, ...]] = []
    for s in sets:
        if s not in out:
            out.append(s)
    return out


@dataclass
class AblationRow:
    families: tuple[str, ...]
    dm_final: AurocCI
    dm_ece: float | None
    learned_groups: AurocCI | None
    learned_pick_accuracy: float | None
    cv_auroc: float | None
    probes: bool = True
    """False: a probe-free DM (each trace's one-call end, no probe answers)."""
    sampling: AurocCI | None = None
    """The sampling scorer's P(majority right) of the first n samples, n = 1..k (None when it
    could not be trained)."""
    sampling_ece: float | None = None
    learned_families: tuple[str, ...] | None = None
    """The learned aggregator's families when they differ from ``families`` (a plain test side:
    its votes across samples need no probes)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["families"] = list(self.families)
        if self.learned_families is not None:
            d["learned_families"] = list(self.learned_families)
        return d


Collection = tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None]


@dataclass
class Scores:
    """Held-out P's, labels and questions (pooled over folds in ``ablate_cv``)."""

    y: list[bool] = field(default_factory=list)
    p: list[float] = field(default_factory=list)
    g: list[str] = field(default_factory=list)
    picks: list[bool] = field(default_factory=list)
    cv: list[float] = field(default_factory=list)
    sampling: Scores | None = None

    def ci(self, resamples: int, seed: int) -> AurocCI:
        return auroc_ci(self.y, self.p, self.g, resamples=resamples, seed=seed)

    def sampling_ci(self, resamples: int, seed: int) -> tuple[AurocCI | None, float | None]:
        m = self.sampling
        if m is None or not m.y:
            return None, None
        return m.ci(resamples, seed), ece(m.y, m.p)


def _dm_scores(
    fams: tuple[str, ...],
    train: Collection,
    test: Collection,
    seed: int,
    into: Scores,
    probes: bool = True,
) -> None:
    dm = train_dm(train[0], train[1], seed, families=fams, hidden=train[2], probes=probes)
    for q in score_collection(dm, test[1], max_tokens_of(test[0]), test[2]):
        for t in q.traces:
            into.y.append(t.states[-1].correct)
            into.p.append(t.p[-1])
            into.g.append(q.record.id)
        if dm.sampling is None:
            continue
        into.sampling = into.sampling or Scores()
        for right, p in majority_units(dm, q):
            into.sampling.y.append(right)
            into.sampling.p.append(p)
            into.sampling.g.append(q.record.id)
    cv = dm.checkpoint.cv.get(f"auroc_{dm.checkpoint.cv.get('chosen')}")
    if cv is not None:
        into.cv.append(cv)


def _dm_row(
    fams: tuple[str, ...],
    train: Collection,
    test: Collection,
    resamples: int,
    seed: int,
    probes: bool = True,
) -> AblationRow:
    s = Scores()
    _dm_scores(fams, train, test, seed, s, probes=probes)
    smp, smp_ece = s.sampling_ci(resamples, seed)
    cv = s.cv[0] if s.cv else None
    return AblationRow(
        fams, s.ci(resamples, seed), ece(s.y, s.p), None, None, cv, probes, smp, smp_ece
    )


def _learned_scores(
    fams: tuple[str, ...], train: Collection, test: Collection, into: Scores
) -> bool:
    """Score ``test`` with the learned aggregator trained on ``train``; False if it could not
    be trained."""
    from ponder.aggregator.learned_features import group_features
    from ponder.behaviour.outcomes import sample_outcomes
    from ponder.learning.learned.train import train_artifact

    learned = tuple(f for fam in fams for f in LEARNED_FAMILIES[fam])
    try:
        art = train_artifact(train[0], train[1], learned, hidden=train[2])
    except InputError:
        return False
    for rec in test[1]:
        samples = sample_outcomes(rec, test[0], hidden=test[2])
        groups, rows = group_features(samples, len(samples), art.families)
        if not groups:
            into.picks.append(False)
            continue
        scores = [art.p_correct(art.logit(r)) for r in rows]
        right = [is_equivalent(gr.answer, rec.gold) for gr in groups]
        into.y += right
        into.p += scores
        into.g += [rec.id] * len(groups)
        into.picks.append(right[max(range(len(groups)), key=lambda j: scores[j])])
    return True


def _learned_row(
    fams: tuple[str, ...],
    train: Collection,
    test: Collection,
    resamples: int,
    seed: int,
) -> tuple[AurocCI | None, float | None]:
    s = Scores()
    if not _learned_scores(fams, train, test, s):
        return None, None
    acc = sum(s.picks) / len(s.picks) if s.picks else None
    return s.ci(resamples, seed), acc


def ablate(
    train: tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None],
    test: tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None],
    families: Sequence[str] | None = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    learned: bool = True,
) -> list[AblationRow]:
    """One row per family set (see the module doc); ``hidden`` is left out unless both
    collections have hidden states."""
    if {r.id for r in train[1]} & {r.id for r in test[1]} and (
        train[0].dataset.sha256 == test[0].dataset.sha256
    ):
        raise InputError("the train and test collections share questions; split by question")
    fams = list(families or DM_FAMILIES)
    if "hidden" in fams and (train[2] is None or test[2] is None):
        fams.remove("hidden")
    if "hidden" in fams:
        _require_every_vector(train, "train")
        _require_every_vector(test, "test")
    if _plain(test) or _plain(train):  # no probes on a side: probe-free DMs; votes in learned
        free = [f for f in fams if f not in PROBE_FAMILIES]
        extra = tuple(f for f in fams if f in PROBE_FAMILIES)
        rows = []
        for fs in family_sets(free):
            row = _dm_row(fs, train, test, resamples, seed, probes=False)
            if learned:
                row.learned_families = extra + fs
                row.learned_groups, row.learned_pick_accuracy = _learned_row(
                    row.learned_families, train, test, resamples, seed
                )
            rows.append(row)
        return rows
    rows = []
    for fs in family_sets(fams):
        row = _dm_row(fs, train, test, resamples, seed)
        if learned:
            row.learned_groups, row.learned_pick_accuracy = _learned_row(
                fs, train, test, resamples, seed
            )
        rows.append(row)
    return rows


def _plain(side: Collection) -> bool:
    """True when ``side`` recorded no probes inside its traces (``ponder collect
    --probe-every`` >= ``--max-tokens``): a DM with probes cannot be replayed on it."""
    from ponder.learning.drr.test_report import collection_signals

    return not collection_signals(side[0], side[1]).probes


def _require_every_vector(
    side: tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None], name: str
) -> None:
    """Refuse a collection whose sidecar misses samples: their ``has_hidden = 0`` rows would
    score the hidden family on a mix of vectors and zeros."""
    hidden = side[2]
    assert hidden is not None
    missing = {r.id for r in side[1] for s in r.samples if hidden.vector(r.id, s.seed) is None}
    if missing:
        raise InputError(
            f"the {name} collection's hidden states miss samples of {len(missing)} of its "
            f"{len(side[1])} questions (e.g. {sorted(missing)[:3]}): run `ponder corpus hidden` "
            "on all of them, or limit the test side to the embedded ones with --test-first N"
        )


def ablate_cv(
    train: Collection,
    families: Sequence[str] | None = None,
    *,
    folds: int = 5,
    resamples: int = 1000,
    seed: int = 0,
    learned: bool = True,
) -> list[AblationRow]:
    """``ablate`` out-of-fold on the train questions alone (see the module doc): one row per
    family set, then the probe-free rows (the sets without probe families)."""
    fams = list(families or DM_FAMILIES)
    if "hidden" in fams and train[2] is None:
        fams.remove("hidden")
    if "hidden" in fams:
        _require_every_vector(train, "train")
    records = list(train[1])
    fold = question_folds(len(records), folds, seed)
    parts = []
    for f in range(max(fold) + 1):
        rest = [q for q, g in zip(records, fold, strict=True) if g != f]
        held = [q for q, g in zip(records, fold, strict=True) if g == f]
        parts.append(((train[0], rest, train[2]), (train[0], held, train[2])))
    plain = _plain(train)  # e.g. a probed and a plain corpus pooled: no probes left to use
    free = [f for f in fams if f not in PROBE_FAMILIES]
    extra = tuple(f for f in fams if f in PROBE_FAMILIES)
    sets = [] if plain else [(s, True) for s in family_sets(fams)]
    sets += [(s, False) for s in family_sets(free)] if free else []
    rows = []
    for s, probes in sets:
        # the learned aggregator runs on the rows with probes, or, on a plain train set, on the
        # probe-free rows with the cross-sample families (votes) added, as ``ablate`` does
        lfams = s if probes else extra + s
        with_learned = learned and (probes or plain)
        dm, lg = Scores(), Scores()
        trained = True
        for tr, te in parts:
            _dm_scores(s, tr, te, seed, dm, probes=probes)
            if with_learned:
                trained = _learned_scores(lfams, tr, te, lg) and trained
        cv = sum(dm.cv) / len(dm.cv) if dm.cv else None
        lci = lg.ci(resamples, seed) if with_learned and trained else None
        acc = sum(lg.picks) / len(lg.picks) if lci is not None and lg.picks else None
        smp, smp_ece = dm.sampling_ci(resamples, seed)
        dm_ci, dm_ece = dm.ci(resamples, seed), ece(dm.y, dm.p)
        row = AblationRow(s, dm_ci, dm_ece, lci, acc, cv, probes, smp, smp_ece)
        if with_learned and not probes:
            row.learned_families = lfams
        rows.append(row)
    return rows


def format_ablation(rows: Sequence[AblationRow]) -> str:
    lines = [
        "| families | DM AUROC, final answers [95% CI, by question] | DM ECE | train CV AUROC | "
        "sampling DM, P(majority right): AUROC [95% CI] | its ECE | "
        "learned: group AUROC [95% CI] | learned pick acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cv = f"{r.cv_auroc:.3f}" if r.cv_auroc is not None else "–"
        lg = r.learned_groups.text() if r.learned_groups is not None else "–"
        if r.learned_groups is not None and r.learned_families is not None:
            lg += f" ({'+'.join(r.learned_families)})"
        acc = f"{r.learned_pick_accuracy:.1%}" if r.learned_pick_accuracy is not None else "–"
        n = f"{r.dm_final.n} traces, {r.dm_final.groups} q"
        e = f"{r.dm_ece:.3f}" if r.dm_ece is not None else "–"
        smp = r.sampling.text() if r.sampling is not None else "–"
        se = f"{r.sampling_ece:.3f}" if r.sampling_ece is not None else "–"
        fams = "+".join(r.families) + ("" if r.probes else " (no probes: one-call end)")
        lines.append(
            f"| {fams} | {r.dm_final.text()} ({n}) | {e} | {cv} | {smp} | {se} | {lg} | {acc} |"
        )
    return "\n".join(lines)
