"""Train the ``learned`` aggregator's artifact on a behaviour collection (scikit-learn, seconds).

Use ``train_artifact(manifest, records)`` (or ``ponder aggregate train --collection DIR --out
FILE``) on a collection of *train* questions, never the questions you will report on. Every answer
group of every question is one row (label: is that answer right); the model is an L2 logistic
regression on standardized features. Its strength ``C`` is chosen by 5-fold cross-validation over
questions, by how often the top-scoring group is right; the Platt calibration of P(correct) is
fitted on those out-of-fold picks, so it is not the training fit's optimism. scikit-learn is a
core dependency (the DRR judge trains with it too); using an artifact does not import it.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from typing import Any

from ponder.aggregator.learned import Calibration, LearnedArtifact
from ponder.aggregator.learned_features import FAMILIES, group_features, resolve_families
from ponder.behaviour.hidden import HiddenStates
from ponder.behaviour.outcomes import sample_outcomes
from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.errors import InputError, MissingExtraError
from ponder.grading import is_equivalent

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


def _sklearn() -> Any:
    try:
        import sklearn.linear_model as lm
    except ImportError:
        raise MissingExtraError(
            "training the learned aggregator needs scikit-learn: pip install scikit-learn"
        ) from None
    return lm


def dataset(
    records: Sequence[QuestionRecord],
    manifest: Manifest,
    families: Sequence[str],
    hidden: HiddenStates | None = None,
) -> tuple[list[str], list[list[float]], list[int], list[int]]:
    """``(feature names, rows, labels, question index of each row)`` of a collection
    (``hidden``: its hidden-state sidecar, for the ``hidden`` family)."""
    names: list[str] = []
    xs: list[list[float]] = []
    ys: list[int] = []
    qs: list[int] = []
    for qi, rec in enumerate(records):
        samples = sample_outcomes(rec, manifest, hidden=hidden)
        groups, rows = group_features(samples, len(samples), families)
        for g, row in zip(groups, rows, strict=True):
            if not names:
                names = sorted(row)
            xs.append([row[n] for n in names])
            ys.append(int(is_equivalent(g.answer, rec.gold)))
            qs.append(qi)
    return names, xs, ys, qs


def _standardize(xs: list[list[float]]) -> tuple[list[float], list[float]]:
    cols = list(zip(*xs, strict=True))
    mean = [sum(c) / len(c) for c in cols]
    scale = []
    for c, m in zip(cols, mean, strict=True):
        sd = math.sqrt(sum((v - m) ** 2 for v in c) / len(c))
        scale.append(sd if sd > 1e-9 else 1.0)
    return mean, scale


def _apply(xs: list[list[float]], mean: list[float], scale: list[float]) -> list[list[float]]:
    return [[(v - m) / s for v, m, s in zip(r, mean, scale, strict=True)] for r in xs]


def _fit(lm: Any, xs: list[list[float]], ys: list[int], c: float) -> Any:
    model = lm.LogisticRegression(C=c, max_iter=2000)
    model.fit(xs, ys)
    return model


def _out_of_fold(
    lm: Any, xs: list[list[float]], ys: list[int], qs: list[int], c: float, folds: int
) -> list[float]:
    """Out-of-fold logits of every row (questions split round-robin into ``folds``)."""
    out = [0.0] * len(xs)
    for f in range(folds):
        train = [i for i, q in enumerate(qs) if q % folds != f]
        test = [i for i, q in enumerate(qs) if q % folds == f]
        if not test:
            continue
        tr_y = [ys[i] for i in train]
        if len(set(tr_y)) < 2:  # a fold with one class: score by vote share order only
            continue
        mean, scale = _standardize([xs[i] for i in train])
        model = _fit(lm, _apply([xs[i] for i in train], mean, scale), tr_y, c)
        zs = model.decision_function(_apply([xs[i] for i in test], mean, scale))
        for i, z in zip(test, zs, strict=True):
            out[i] = float(z)
    return out


def _picks(logits: list[float], ys: list[int], qs: list[int]) -> list[tuple[float, int]]:
    """(logit, correct) of the top-scoring row of each question."""
    best: dict[int, int] = {}
    for i, q in enumerate(qs):
        if q not in best or logits[i] > logits[best[q]]:
            best[q] = i
    return [(logits[i], ys[i]) for i in best.values()]


def train_artifact(
    manifest: Manifest,
    records: Sequence[QuestionRecord],
    families: str | Sequence[str] = "all",
    *,
    folds: int = 5,
    hidden: HiddenStates | None = None,
) -> LearnedArtifact:
    """Fit the learned aggregator on ``records`` (see the module doc)."""
    lm = _sklearn()
    fams = resolve_families(families)
    if "hidden" in fams and hidden is None:
        raise InputError(
            "the hidden family needs the collection's hidden-state sidecar: run "
            "`ponder corpus hidden DIR` first"
        )
    names, xs, ys, qs = dataset(records, manifest, fams, hidden)
    if not xs or len(set(ys)) < 2:
        raise InputError(
            "the collection has too little to learn from: it needs answered questions with both "
            f"right and wrong answer groups (got {len(xs)} groups, {sum(ys)} right)"
        )
    n_q = len(set(qs))
    folds = max(2, min(folds, n_q))
    cv: dict[float, float] = {}
    for c in C_GRID:
        picks = _picks(_out_of_fold(lm, xs, ys, qs, c, folds), ys, qs)
        cv[c] = sum(y for _, y in picks) / len(picks)
    c_best = max(C_GRID, key=lambda c: (cv[c], -abs(math.log(c))))  # ties: closest to C=1
    oof = _out_of_fold(lm, xs, ys, qs, c_best, folds)
    picks = _picks(oof, ys, qs)
    calib = Calibration()
    if len({y for _, y in picks}) == 2:
        platt = lm.LogisticRegression(C=1e4, max_iter=2000).fit(
            [[z] for z, _ in picks], [y for _, y in picks]
        )
        calib = Calibration(a=float(platt.coef_[0][0]), b=float(platt.intercept_[0]))
    mean, scale = _standardize(xs)
    model = _fit(lm, _apply(xs, mean, scale), ys, c_best)
    sources = {s.data.get("confidence_source") for r in records for s in sample_outcomes(r)}
    sources.discard(None)
    majority = _picks(
        [row[names.index("share")] if "share" in names else 0.0 for row in xs], ys, qs
    )
    return LearnedArtifact(
        families=list(fams),
        features=names,
        mean=mean,
        scale=scale,
        coef=[float(c) for c in model.coef_[0]],
        intercept=float(model.intercept_[0]),
        calibration=calib,
        confidence_source=next(iter(sorted(str(s) for s in sources)), None),
        manifest=manifest,
        training={
            "questions": n_q,
            "groups": len(xs),
            "right_groups": sum(ys),
            "C": c_best,
            "cv_pick_accuracy": round(cv[c_best], 4),
            "cv_by_C": {str(c): round(v, 4) for c, v in cv.items()},
            "oracle": round(len({qs[i] for i, y in enumerate(ys) if y}) / n_q, 4),
            "plurality_pick_accuracy": round(sum(y for _, y in majority) / len(majority), 4),
            "sklearn_model": "LogisticRegression(l2)",
            **({"hidden_projection": hidden.projection} if "hidden" in fams and hidden else {}),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        },
    )


__all__ = ["FAMILIES", "dataset", "train_artifact"]
