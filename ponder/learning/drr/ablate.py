"""What each feature family is worth: train on train questions, judge test questions, by family.

Use ``ablate(train, test)`` (or ``ponder drr ablate --train DIR --test DIR``) to train the DRR
judge's checkpoint scorer and the learned aggregator once per family set and score the held-out
test collection: the DM's AUROC and ECE at final answers (one unit per trace) and the learned
aggregator's AUROC over answer groups and its pick accuracy, each AUROC with a 95% bootstrap
interval that resamples whole questions (``ponder.behaviour.stats.auroc_ci``). The families are
``votes``, ``confidence`` (logprob/DeepConf), ``length`` (length and form) and ``hidden`` (the
reasoner's hidden state; only where both collections have their sidecar, ``ponder corpus
hidden``, in one projection). Sets: each family alone, all but one, and all. Nothing is tuned on
the test collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ponder.behaviour.hidden import HiddenStates
from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.behaviour.stats import AurocCI, auroc_ci, ece
from ponder.errors import InputError
from ponder.grading import is_equivalent
from ponder.learning.drr.replay import score_collection
from ponder.learning.drr.train import max_tokens_of, train_dm
from ponder.stopping.features import DM_FAMILIES

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["families"] = list(self.families)
        return d


def _dm_row(
    fams: tuple[str, ...],
    train: tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None],
    test: tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None],
    resamples: int,
    seed: int,
) -> tuple[AurocCI, float | None, float | None]:
    dm = train_dm(train[0], train[1], seed, families=fams, hidden=train[2], sampling=False)
    scored = score_collection(dm, test[1], max_tokens_of(test[0]), test[2])
    y, p, g = [], [], []
    for q in scored:
        for t in q.traces:
            y.append(t.states[-1].correct)
            p.append(t.p[-1])
            g.append(q.record.id)
    cv = dm.checkpoint.cv.get(f"auroc_{dm.checkpoint.cv.get('chosen')}")
    return auroc_ci(y, p, g, resamples=resamples, seed=seed), ece(y, p), cv


def _learned_row(
    fams: tuple[str, ...],
    train: tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None],
    test: tuple[Manifest, Sequence[QuestionRecord], HiddenStates | None],
    resamples: int,
    seed: int,
) -> tuple[AurocCI | None, float | None]:
    from ponder.aggregator.learned_features import group_features
    from ponder.behaviour.outcomes import sample_outcomes
    from ponder.learning.learned.train import train_artifact

    learned = tuple(f for fam in fams for f in LEARNED_FAMILIES[fam])
    try:
        art = train_artifact(train[0], train[1], learned, hidden=train[2])
    except InputError:
        return None, None
    y, p, g = [], [], []
    picks = []
    for rec in test[1]:
        samples = sample_outcomes(rec, test[0], hidden=test[2])
        groups, rows = group_features(samples, len(samples), art.families)
        if not groups:
            picks.append(False)
            continue
        scores = [art.p_correct(art.logit(r)) for r in rows]
        right = [is_equivalent(gr.answer, rec.gold) for gr in groups]
        y += right
        p += scores
        g += [rec.id] * len(groups)
        picks.append(right[max(range(len(groups)), key=lambda j: scores[j])])
    acc = sum(picks) / len(picks) if picks else None
    return auroc_ci(y, p, g, resamples=resamples, seed=seed), acc


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
    rows = []
    for s in family_sets(fams):
        dm_ci, dm_ece, cv = _dm_row(s, train, test, resamples, seed)
        lg, acc = _learned_row(s, train, test, resamples, seed) if learned else (None, None)
        rows.append(AblationRow(s, dm_ci, dm_ece, lg, acc, cv))
    return rows


def format_ablation(rows: Sequence[AblationRow]) -> str:
    lines = [
        "| families | DM AUROC, final answers [95% CI, by question] | DM ECE | train CV AUROC | "
        "learned: group AUROC [95% CI] | learned pick acc |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cv = f"{r.cv_auroc:.3f}" if r.cv_auroc is not None else "–"
        lg = r.learned_groups.text() if r.learned_groups is not None else "–"
        acc = f"{r.learned_pick_accuracy:.1%}" if r.learned_pick_accuracy is not None else "–"
        n = f"{r.dm_final.n} traces, {r.dm_final.groups} q"
        e = f"{r.dm_ece:.3f}" if r.dm_ece is not None else "–"
        fams = "+".join(r.families)
        lines.append(f"| {fams} | {r.dm_final.text()} ({n}) | {e} | {cv} | {lg} | {acc} |")
    return "\n".join(lines)
